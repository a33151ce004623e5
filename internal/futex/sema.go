//go:build linux && (amd64 || arm64)

package futex

import (
	"context"
	"sync/atomic"
	"time"
)

// Sema is a counting semaphore in two shared words: the count of free
// units and the number of processes' waiters that may sleep on it.
type Sema struct{ Count, Waiters *uint32 }

// TryAcquire takes a unit if one is free.
func (s Sema) TryAcquire() bool {
	for {
		c := load(s.Count)
		if c == 0 {
			return false
		}
		if cas(s.Count, c, c-1) {
			return true
		}
	}
}

// Acquire takes a unit, waiting until one is free or ctx is done.
func (s Sema) Acquire(ctx context.Context) error {
	if semaSpin.Spin(s.TryAcquire) {
		return nil
	}
	t0 := time.Now()
	atomic.AddUint32(s.Waiters, 1)
	defer atomic.AddUint32(s.Waiters, ^uint32(0))
	for {
		if s.TryAcquire() {
			semaSpin.Parked(time.Since(t0))
			return nil
		}
		if err := WaitCtx(ctx, s.Count, 0); err != nil {
			return err
		}
	}
}

// SemaMax is the most units a Sema holds (Linux's SEM_VALUE_MAX, as
// Python's): the count word is never bumped past it, so it cannot wrap.
const SemaMax = 1<<31 - 1

// Release returns a unit and wakes a waiter if one may sleep. It reports
// false, and changes nothing, when the count is at SemaMax already.
func (s Sema) Release() bool {
	for {
		c := load(s.Count)
		if c >= SemaMax {
			return false
		}
		if cas(s.Count, c, c+1) {
			break
		}
	}
	if load(s.Waiters) != 0 {
		Wake(s.Count, 1)
	}
	return true
}

// ReleaseBelow returns a unit if that leaves at most max free, and wakes
// a waiter if one may sleep; it reports false, changing nothing, if the
// count is at max already.
func (s Sema) ReleaseBelow(max uint32) bool {
	for {
		c := load(s.Count)
		if c >= max {
			return false
		}
		if cas(s.Count, c, c+1) {
			break
		}
	}
	if load(s.Waiters) != 0 {
		Wake(s.Count, 1)
	}
	return true
}

// Value is the count of free units.
func (s Sema) Value() uint32 { return load(s.Count) }

// Event is a flag in one shared word that waiters sleep on until it is
// set. The word's bit 0 is the flag; bit 1 says that a waiter may sleep on
// it, so that a Set with nobody asleep (a waiter that spins, or none)
// makes no system call. A waiter sets the bit before its last look at the
// flag and sleeps on the word it set; Set swaps the word to "set, no
// sleepers" and wakes only if the bit was there: with seq-cst atomics
// either the waiter sees the flag or Set sees the bit. A sleeper that gave
// up leaves the bit: the next Set makes one needless wake-up call.
type Event struct{ W *uint32 }

const (
	eventSet      = 1
	eventSleepers = 2
)

// Set sets the flag and wakes every waiter that may sleep.
func (e Event) Set() {
	if atomic.SwapUint32(e.W, eventSet)&eventSleepers != 0 {
		WakeAll(e.W)
	}
}

// Clear resets the flag (the sleepers bit stays).
func (e Event) Clear() { atomic.AndUint32(e.W, ^uint32(eventSet)) }

// IsSet reports the flag.
func (e Event) IsSet() bool { return load(e.W)&eventSet != 0 }

// Wait blocks until the flag is set or ctx is done.
func (e Event) Wait(ctx context.Context) (err error) {
	if eventSpin.Spin(e.IsSet) {
		return nil
	}
	t0 := time.Now()
	defer func() {
		if err == nil {
			eventSpin.Parked(time.Since(t0))
		}
	}()
	for {
		v := load(e.W)
		if v&eventSet != 0 {
			return nil
		}
		if v&eventSleepers == 0 && !cas(e.W, v, v|eventSleepers) {
			continue
		}
		if err := WaitCtx(ctx, e.W, v|eventSleepers); err != nil {
			if e.IsSet() {
				return nil
			}
			return err
		}
	}
}
