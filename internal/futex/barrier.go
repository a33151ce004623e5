//go:build linux && (amd64 || arm64)

package futex

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// ErrBroken is returned by Barrier.Wait once the barrier is broken.
var ErrBroken = errors.New("barrier is broken")

// Barrier packs its whole state in one shared word, so that one CAS decides
// every race between an arrival, a release and a break:
// bit 31 broken, bits 16..30 the generation, bits 0..15 the arrivals.
//
// Two optional shared words tell waiters more: Reset records the
// generation a Reset ended (so that its waiters report a broken barrier,
// not a passed one), and Pids, one slot per party, the generation and pid
// of each waiter of the round, so that the others see a waiter that died
// inside Wait and break the barrier instead of waiting for it forever.
type Barrier struct {
	W       *uint32
	Parties uint32
	Reset   *uint32  // nil: Reset unsupported; else 0, or the ended generation | 1
	Pids    []uint64 // nil, or Parties slots: generation<<32 | pid
}

const (
	brokenBit = 1 << 31
	genShift  = 16
	countMask = 1<<16 - 1
	genMask   = (1<<15 - 1) << genShift
)

// MaxParties is the largest party count a Barrier word can hold.
const MaxParties = countMask

// Wait arrives at the barrier and blocks until Parties processes (or
// goroutines) have arrived. If ctx ends first, the barrier breaks: this
// waiter gets ctx's error and every other waiter, now and later, ErrBroken.
func (b Barrier) Wait(ctx context.Context) error {
	gen, done, err := b.Arrive()
	if done || err != nil {
		return err
	}
	return b.Await(ctx, gen)
}

// Arrive counts one party in. done is true when it was the last one (the
// round is over, every waiter released); otherwise gen is the round to
// Await.
func (b Barrier) Arrive() (gen uint32, done bool, err error) {
	for {
		v := load(b.W)
		if v&brokenBit != 0 {
			return 0, false, ErrBroken
		}
		gen = v & genMask
		n := v&countMask + 1
		if n >= b.Parties {
			next := ((gen >> genShift) + 1) << genShift & genMask
			if cas(b.W, v, next) {
				WakeAll(b.W)
				return gen, true, nil
			}
			continue
		}
		if cas(b.W, v, v+1) {
			if int(n-1) < len(b.Pids) {
				// A process killed between the CAS and this store is not
				// seen dead (the window is a few instructions).
				atomic.StoreUint64(&b.Pids[n-1], uint64(gen)<<32|uint64(selfPid))
			}
			return gen, false, nil
		}
	}
}

// Passed reports whether round gen is over (nil) or the barrier broke
// (ErrBroken); ok is false while the round goes on.
func (b Barrier) Passed(gen uint32) (ok bool, err error) {
	v := load(b.W)
	if v&genMask != gen {
		if b.Reset != nil && load(b.Reset) == gen|1 {
			return true, ErrBroken
		}
		return true, nil
	}
	if v&brokenBit != 0 {
		return true, ErrBroken
	}
	return false, nil
}

// Await waits for round gen to end. If ctx ends first, it breaks the
// barrier (unless the round ended meanwhile) and returns ctx's error.
func (b Barrier) Await(ctx context.Context, gen uint32) error {
	if barrierSpin.Spin(func() bool { ok, _ := b.Passed(gen); return ok }) {
		_, err := b.Passed(gen)
		return err
	}
	t0 := time.Now()
	checked := t0
	for {
		v := load(b.W)
		if ok, err := b.Passed(gen); ok {
			barrierSpin.Parked(time.Since(t0))
			return err
		}
		if err := waitCtx(ctx, b.W, v, ownerCheck); err != nil {
			return b.Break(gen, err)
		}
		if b.Pids != nil && time.Since(checked) >= ownerCheck {
			checked = time.Now()
			if b.deadWaiter(gen) {
				return b.Break(gen, ErrBroken)
			}
		}
	}
}

// deadWaiter reports whether a waiter of round gen died inside Wait.
func (b Barrier) deadWaiter(gen uint32) bool {
	v := load(b.W)
	if v&genMask != gen {
		return false
	}
	n := min(int(v&countMask), len(b.Pids))
	for i := range n {
		s := atomic.LoadUint64(&b.Pids[i])
		if uint32(s>>32) != gen {
			continue // not stored yet
		}
		if pid := uint32(s); pid != selfPid && !Alive(pid) {
			return true
		}
	}
	return false
}

// Abort breaks the barrier whatever its round: every waiter, now and
// later, gets ErrBroken until ResetBarrier.
func (b Barrier) Abort() {
	for {
		v := load(b.W)
		if v&brokenBit != 0 || cas(b.W, v, v|brokenBit) {
			WakeAll(b.W)
			return
		}
	}
}

// ResetBarrier starts a new round with nobody arrived and the barrier
// whole; the waiters of the round it ends get ErrBroken. b.Reset must not
// be nil.
func (b Barrier) ResetBarrier() {
	for {
		// Break the round first: no arrival can end it then, so the
		// generation recorded as reset is one that did not pass.
		v := load(b.W)
		if v&brokenBit == 0 && !cas(b.W, v, v|brokenBit) {
			continue
		}
		v |= brokenBit
		gen := v & genMask
		atomic.StoreUint32(b.Reset, gen|1)
		next := ((gen >> genShift) + 1) << genShift & genMask
		if cas(b.W, v, next) {
			WakeAll(b.W)
			return
		}
	}
}

// Waiting is the number of parties arrived in the current round (0 once
// broken).
func (b Barrier) Waiting() int {
	v := load(b.W)
	if v&brokenBit != 0 {
		return 0
	}
	return int(v & countMask)
}

// Break breaks round gen for everyone because of err, unless the round
// is already over; it returns what the breaking waiter should report.
func (b Barrier) Break(gen uint32, err error) error {
	for {
		v := load(b.W)
		if v&genMask != gen {
			return nil
		}
		if v&brokenBit != 0 || cas(b.W, v, v|brokenBit) {
			WakeAll(b.W)
			return err
		}
	}
}

// Broken reports whether the barrier is broken.
func (b Barrier) Broken() bool { return load(b.W)&brokenBit != 0 }
