//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"

	"github.com/multiproc-go/multiproc/internal/gate"
)

// How a shared object's call waits, in one place for every type (Lock,
// Semaphore, Event, Barrier, Condition, JoinableQueue):
//
//  1. enter: the call registers with the object, so that Close waits for
//     it to leave before it retires the mapping (the memory stays valid
//     for the whole wait);
//  2. gate: goroutines of this process take turns sleeping in the kernel
//     (every futex sleeper pins an OS thread); the others wait in the Go
//     scheduler, where ctx and Close can still call them off;
//  3. wait: the one through the gate sleeps on the shared word, with a
//     context that also ends when the object is closed in this process;
//  4. error: what ended the wait becomes the caller's error — ctx's own,
//     or the object's closed error when Close ended it.
//
// wait does all four; a type whose wait needs work of its own between
// enter and leave (a Condition's waiter slot) calls enter, gated and
// leave itself.

// wait runs sleep as a call of object o (of kind k) with context ctx:
// enter, gate g, sleep, error. giveUp, if not nil, turns the error of a
// caller that gave up at the gate (before sleeping) into the one to
// return (a Barrier breaks then).
func (o *object) wait(ctx context.Context, k *kind, g gate.Gate, sleep func(context.Context) error, giveUp func(error) error) error {
	r, err := o.enter(k)
	if err != nil {
		return err
	}
	defer r.leave()
	return o.gated(ctx, k, r, g, sleep, giveUp)
}

// gated is steps 2 to 4 of wait, for a caller that entered already.
func (o *object) gated(ctx context.Context, k *kind, r *segRef, g gate.Gate, sleep func(context.Context) error, giveUp func(error) error) error {
	if err := g.Enter(ctx, r.done); err != nil {
		if giveUp != nil {
			err = giveUp(err)
		}
		return o.waitErr(k, ctx, err)
	}
	defer g.Leave()
	wctx, stop := r.waitCtx(ctx)
	defer stop()
	return o.waitErr(k, ctx, sleep(wctx))
}

// enter starts a call that may wait: Close waits for it to leave.
func (o *object) enter(k *kind) (*segRef, error) {
	r := o.ref
	if r == nil {
		return nil, k.zero
	}
	r.users.RLock()
	if o.base.Load() == nil {
		r.users.RUnlock()
		return nil, k.closed
	}
	return r, nil
}

func (r *segRef) leave() { r.users.RUnlock() }

// waitCtx is ctx, also done when the object is closed in this process:
// the context a kernel wait gets.
func (r *segRef) waitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Done() == nil {
		return r.ctx, func() {}
	}
	c, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.ctx, cancel)
	return c, func() { stop(); cancel() }
}

// waitErr turns the error of a wait on behalf of a caller with context
// ctx into the caller's: the object's closed error when Close ended it.
func (o *object) waitErr(k *kind, ctx context.Context, err error) error {
	if err != nil && ctx.Err() == nil && (err == gate.ErrDone || o.base.Load() == nil) {
		return k.closed
	}
	return err
}
