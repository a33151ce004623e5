//go:build linux && (amd64 || arm64)

package ring

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/gate"
)

// enter takes g, or fails with ctx's error or ErrClosed.
func (r *Ring) enter(ctx context.Context, g gate.Gate) error {
	if err := g.Enter(ctx, r.done); err != nil {
		if err == gate.ErrDone {
			return ErrClosed
		}
		return err
	}
	if r.closed.Load() {
		g.Leave()
		return ErrClosed
	}
	return nil
}

// A doorbell word is (sequence << 1) | sleepers. A waiter sets the
// sleepers bit before its last look at the condition and sleeps on the word
// it set; a waker, after its commit, looks at the word and only if the bit
// is set clears it, bumps the sequence and wakes every sleeper (at most one
// per process and side, thanks to the gates). Later wakers find the bit
// clear and make no system call until someone sleeps again. With seq-cst
// atomics this is Dekker-safe: the waiter's bit store comes before its
// condition load, the waker's commit before its bell load, so either the
// waker sees the bit or the waiter sees the commit. A sleeper that died
// leaves the bit set; it costs the next waker one wake-up call, nothing
// more. Waking all (instead of one) means no wake-up is ever owed to a
// waiter that gave up or died.
const (
	sleepersBit = 1
	bellStep    = 2 // one sequence step, keeping the sleepers bit
)

// recheck bounds every doorbell sleep: a safety net only, as no wake-up
// should ever be missed.
const recheck = 250 * time.Millisecond

// await blocks until cond holds, ctx ends or the handle closes. The caller
// holds s.wait, so it is the only goroutine of this handle sleeping on s.
// It spins first as the side's waiting policy says: a consumer keeping up
// with a steady producer should rarely sleep (measured on 2 CPUs, a fixed
// 8 µs spin let it fall into a sleep/wake rhythm at half the throughput in
// about half the runs).
func (r *Ring) await(ctx context.Context, s *side, cond func() bool) (err error) {
	if s.spin.Spin(cond) {
		return nil
	}
	t0 := time.Now()
	defer func() {
		if err == nil {
			s.spin.Parked(time.Since(t0))
		}
	}()
	for {
		v := atomic.LoadUint32(s.bell)
		if v&sleepersBit == 0 {
			if !atomic.CompareAndSwapUint32(s.bell, v, v|sleepersBit) {
				continue
			}
			v |= sleepersBit
		}
		if r.closed.Load() {
			return ErrClosed
		}
		if cond() {
			return nil
		}
		if err := sleep(ctx, s.bell, v, recheck); err != nil {
			return err
		}
	}
}

// sleep is one FUTEX_WAIT on bell while it holds v, bounded by max and by
// ctx: its deadline shortens the timeout and its cancellation bumps the bell
// and wakes it (bumping first, so a wake-up racing the sleep is not lost:
// futex.WaitCtx's WakeAll alone could fire just before the sleep starts).
func sleep(ctx context.Context, bell *uint32, v uint32, max time.Duration) error {
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
		// futex.AfterFunc's stop waits for a wake-up that has started:
		// Close unmaps the bell once this wait has left (its gate), so
		// the bump must be over by then.
		stop := futex.AfterFunc(ctx, func() {
			// A deadline is the futex timeout already; only a cancellation
			// needs the (cross-process, spurious for others) wake-up.
			if ctx.Err() != context.DeadlineExceeded {
				ringAll(bell)
			}
		})
		defer stop()
	}
	futex.Wait(bell, v, timeout) // any return means: look again
	return ctx.Err()
}

// wake wakes s's sleepers, if any; called after each commit.
func wake(s *side) {
	for {
		v := atomic.LoadUint32(s.bell)
		if v&sleepersBit == 0 {
			return
		}
		if atomic.CompareAndSwapUint32(s.bell, v, (v+bellStep)&^sleepersBit) {
			futex.WakeAll(s.bell)
			return
		}
	}
}

// ringAll bumps the bell without touching the sleepers bit and wakes every
// sleeper (cancellation, Close): the others look again and sleep again.
func ringAll(bell *uint32) {
	atomic.AddUint32(bell, bellStep)
	futex.WakeAll(bell)
}
