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
	"sync"
)

// ErrDone is returned by Enter when its done channel was closed (the object
// behind the gate was closed in this process); callers report their own
// closed error.
var ErrDone = errors.New("gate closed")

// Gate is a lock a waiting goroutine can give up on. Taking a free gate
// and leaving one nobody waits for costs a sync.Mutex lock and unlock (a
// channel, which the first version was, costs the runtime's channel lock
// twice over, about a tenth of a Queue message's CPU time); waiters queue
// in order, each on a channel of its own. A Gate is a handle: copies share
// the lock. The zero Gate is not usable: make one with New.
type Gate struct{ s *state }

type state struct {
	mu      sync.Mutex // guards held and waiters
	held    bool
	waiters []chan struct{} // in arrival order; closed to hand the gate over
}

// New makes an open, free Gate.
func New() Gate { return Gate{&state{}} }

// Enter takes g, waiting until it is free, ctx is done (ctx.Err()) or done
// is closed (ErrDone; a nil done never is).
func (g Gate) Enter(ctx context.Context, done <-chan struct{}) error {
	s := g.s
	s.mu.Lock()
	if !s.held {
		s.held = true
		s.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	s.waiters = append(s.waiters, ready)
	s.mu.Unlock()
	var err error
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-done:
		err = ErrDone
	}
	s.mu.Lock()
	select {
	case <-ready:
		// Handed over while giving up: pass it on.
		s.mu.Unlock()
		g.Leave()
		return err
	default:
	}
	for i, w := range s.waiters {
		if w == ready {
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	return err
}

// Take takes g, waiting as long as it takes.
func (g Gate) Take() { g.Enter(context.Background(), nil) }

// Lock is Take and Unlock is Leave: a Gate is a sync.Locker, for a caller
// that holds it as a plain lock.
func (g Gate) Lock()   { g.Take() }
func (g Gate) Unlock() { g.Leave() }

// Leave frees g, handing it to the longest waiter if there is one.
func (g Gate) Leave() {
	s := g.s
	s.mu.Lock()
	if len(s.waiters) > 0 {
		w := s.waiters[0]
		s.waiters[0] = nil
		s.waiters = s.waiters[1:]
		close(w) // still held: now by w's goroutine
	} else {
		s.held = false
	}
	s.mu.Unlock()
}

// TryEnter takes g if it is free and reports whether it did; it never
// waits.
func (g Gate) TryEnter() bool {
	s := g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		return false
	}
	s.held = true
	return true
}
