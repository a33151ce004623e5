//go:build linux && (amd64 || arm64)

package futex

import (
	"context"
	"sync/atomic"
	"time"
)

// Bell is a doorbell word in shared memory: (sequence << 1) | sleepers.
// A waiter Arms it (sets the sleepers bit) before its last look at the
// condition it waits for and sleeps on the value Arm returned; a waker,
// after its commit, Wakes it: only if the bit is set does it clear it,
// bump the sequence and wake every sleeper. Later wakers find the bit
// clear and make no system call until someone sleeps again. With seq-cst
// atomics this is Dekker-safe: the waiter's bit store comes before its
// condition load, the waker's commit before its bell load, so either the
// waker sees the bit or the waiter sees the commit. A sleeper that died
// leaves the bit set; it costs the next waker one wake-up call, nothing
// more. Waking all (instead of one) means no wake-up is ever owed to a
// waiter that gave up or died. (The queue's ring and the pool's task
// slots sleep on Bells.)
type Bell struct{ W *uint32 }

const (
	bellSleepers = 1
	bellStep     = 2 // one sequence step, keeping the sleepers bit
)

// Arm sets the sleepers bit and returns the word to Sleep on.
func (b Bell) Arm() uint32 {
	for {
		v := atomic.LoadUint32(b.W)
		if v&bellSleepers != 0 || atomic.CompareAndSwapUint32(b.W, v, v|bellSleepers) {
			return v | bellSleepers
		}
	}
}

// Sleep is one FUTEX_WAIT on the bell while it holds v, bounded by max and
// by ctx: its deadline shortens the timeout and its cancellation rings the
// bell (bumping first, so that a wake-up racing the start of the sleep is
// not lost: WaitCtx's WakeAll alone could fire just before it). Any nil
// return means: look at the condition again.
func (b Bell) Sleep(ctx context.Context, v uint32, max time.Duration) error {
	timeout := max
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			return context.DeadlineExceeded
		}
		timeout = min(timeout, d)
	}
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		// AfterFunc's stop waits for a wake-up that has started: the
		// bell's owner may unmap it once this sleep has returned.
		stop := AfterFunc(ctx, func() {
			// A deadline is the futex timeout already; only a cancellation
			// needs the (cross-process, spurious for others) wake-up.
			if ctx.Err() != context.DeadlineExceeded {
				b.Ring()
			}
		})
		defer stop()
	}
	Wait(b.W, v, timeout) // any return means: look again
	return ctx.Err()
}

// Wake wakes the bell's sleepers, if any: called after each commit.
func (b Bell) Wake() {
	for {
		v := atomic.LoadUint32(b.W)
		if v&bellSleepers == 0 {
			return
		}
		if atomic.CompareAndSwapUint32(b.W, v, (v+bellStep)&^bellSleepers) {
			WakeAll(b.W)
			return
		}
	}
}

// Ring bumps the bell without touching the sleepers bit and wakes every
// sleeper (a cancellation, a Close, a peer's death): the others look
// again and sleep again.
func (b Bell) Ring() {
	atomic.AddUint32(b.W, bellStep)
	WakeAll(b.W)
}

// Sleepers reports whether the sleepers bit is set: someone armed the
// bell and no Wake has cleared it since.
func (b Bell) Sleepers() bool { return atomic.LoadUint32(b.W)&bellSleepers != 0 }
