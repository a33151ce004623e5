package futex

import (
	"context"
	"errors"
)

// ErrBroken is returned by Barrier.Wait once the barrier is broken.
var ErrBroken = errors.New("multiproc: barrier is broken")

// Barrier packs its whole state in one shared word, so that one CAS decides
// every race between an arrival, a release and a break:
// bit 31 broken, bits 16..30 the generation, bits 0..15 the arrivals.
type Barrier struct {
	W       *uint32
	Parties uint32
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
	var gen uint32
	for {
		v := load(b.W)
		if v&brokenBit != 0 {
			return ErrBroken
		}
		gen = v & genMask
		n := v&countMask + 1
		if n >= b.Parties {
			next := ((gen >> genShift) + 1) << genShift & genMask
			if cas(b.W, v, next) {
				WakeAll(b.W)
				return nil
			}
			continue
		}
		if cas(b.W, v, v+1) {
			break
		}
	}
	passed := func() bool { v := load(b.W); return v&genMask != gen || v&brokenBit != 0 }
	Spin(SpinTime, passed)
	for {
		v := load(b.W)
		if v&genMask != gen {
			return nil
		}
		if v&brokenBit != 0 {
			return ErrBroken
		}
		if err := WaitCtx(ctx, b.W, v); err != nil {
			// Break it, unless the release won the race.
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
	}
}

// Broken reports whether the barrier is broken.
func (b Barrier) Broken() bool { return load(b.W)&brokenBit != 0 }
