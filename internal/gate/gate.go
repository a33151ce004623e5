//go:build linux && (amd64 || arm64)

// Package gate holds the process-local lock in front of a shared wait: it
// lets one goroutine of a process at a time sleep in the kernel on a futex
// word (every such sleeper pins an OS thread), while the others wait in the
// Go scheduler, where they hold no thread and a context or a Close can still
// call them off. A Gate is never held across a caller's critical section,
// only around a wait, so it needs no owner and nothing to hand back when
// another process releases what was waited for.
package gate

import (
	"context"
	"errors"
)

// ErrDone is returned by Enter when its done channel was closed (the object
// behind the gate was closed in this process); callers report their own
// closed error.
var ErrDone = errors.New("multiproc: gate closed")

// Gate is a lock a waiting goroutine can give up on: a channel of capacity
// 1, full while held. The zero Gate is not usable: make one with New.
type Gate chan struct{}

// New makes an open, free Gate.
func New() Gate { return make(Gate, 1) }

// Enter takes g, waiting until it is free, ctx is done (ctx.Err()) or done
// is closed (ErrDone; a nil done never is).
func (g Gate) Enter(ctx context.Context, done <-chan struct{}) error {
	select {
	case g <- struct{}{}:
		return nil
	default:
	}
	select {
	case g <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return ErrDone
	}
}

// Take takes g, waiting as long as it takes; Close uses it to wait for the
// holder to leave and to keep the gate taken for good.
func (g Gate) Take() { g <- struct{}{} }

// Leave frees g for the next goroutine.
func (g Gate) Leave() { <-g }
