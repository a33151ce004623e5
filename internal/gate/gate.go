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
	"sync/atomic"
)

// ErrDone is returned by Enter when its done channel was closed (the object
// behind the gate was closed in this process); callers report their own
// closed error.
var ErrDone = errors.New("gate closed")

// Gate is a lock a waiting goroutine can give up on. Taking a free gate
// and leaving one nobody waits for costs one compare-and-swap each: a
// Queue message goes through two gates, and every atomic read-modify-write
// is a fence that waits for the stores to shared memory before it (a
// channel, the first version, cost the runtime's channel lock twice over;
// a sync.Mutex around the state, the second, two such fences per call).
// Waiters queue in order, each on a channel of its own. A Gate is a
// handle: copies share the lock. The zero Gate is not usable: make one
// with New.
type Gate struct{ s *state }

// Values of state.word.
const (
	free    = 0
	held    = 1
	waiting = 2 // held, and the waiters list may not be empty: Leave takes mu
)

type state struct {
	word    atomic.Int32
	mu      sync.Mutex      // guards waiters and the moves of word to and from waiting
	waiters []chan struct{} // in arrival order; closed to hand the gate over
}

// New makes an open, free Gate.
func New() Gate { return Gate{&state{}} }

// Enter takes g, waiting until it is free, ctx is done (ctx.Err()) or done
// is closed (ErrDone; a nil done never is).
func (g Gate) Enter(ctx context.Context, done <-chan struct{}) error {
	s := g.s
	if s.word.CompareAndSwap(free, held) {
		return nil
	}
	s.mu.Lock()
	for {
		v := s.word.Load()
		if v == free && s.word.CompareAndSwap(free, held) {
			s.mu.Unlock()
			return nil
		}
		if v == waiting || (v == held && s.word.CompareAndSwap(held, waiting)) {
			break
		}
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
	if len(s.waiters) == 0 {
		s.word.CompareAndSwap(waiting, held) // the holder's Leave is fast again
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
	if s.word.CompareAndSwap(held, free) {
		return
	}
	s.mu.Lock()
	if len(s.waiters) > 0 {
		w := s.waiters[0]
		s.waiters[0] = nil
		s.waiters = s.waiters[1:]
		if len(s.waiters) == 0 {
			s.word.Store(held)
		}
		close(w) // still held: now by w's goroutine
	} else {
		s.word.Store(free)
	}
	s.mu.Unlock()
}

// TryEnter takes g if it is free and reports whether it did; it never
// waits.
func (g Gate) TryEnter() bool { return g.s.word.CompareAndSwap(free, held) }
