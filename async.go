//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"sync"
	"time"

	"github.com/multiproc-go/multiproc/internal/wait"
)

// AsyncResult is the pending result of ApplyAsync or MapAsync, Python's
// AsyncResult. Its methods are safe for concurrent use; it is used
// through the pointer the call returned, and must not be copied after
// first use (go vet reports copies).
type AsyncResult[R any] struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	done   chan struct{}
	cancel func()   // ends the ctx the task was submitted with
	tc     *taskCtx // that ctx, for a call that has one (help)

	mu       sync.Mutex // guards finished, and val and err until done closes
	finished bool
	val      R
	err      error
}

// newAsync returns a pending AsyncResult whose Cancel calls cancel.
func newAsync[R any](cancel func()) *AsyncResult[R] {
	return &AsyncResult[R]{done: make(chan struct{}), cancel: cancel}
}

// set records the outcome, unless one is recorded already (a Cancel came
// first), and releases the task's ctx.
func (r *AsyncResult[R]) set(v R, err error) {
	r.mu.Lock()
	if !r.finished {
		r.val, r.err, r.finished = v, err, true
		close(r.done)
	}
	r.mu.Unlock()
	if r.cancel != nil {
		r.cancel() // the outcome is in: this only frees the ctx
	}
}

// Cancel gives up on the task: Get returns an error matching
// context.Canceled at once, and the executor is told through the ctx the
// task was submitted with (Executor.Submit's), which Cancel ends. On a
// Pool, a task still queued, or waiting in a busy worker, never runs; a
// running one's worker is killed shortly after and replaced, as for
// TaskTimeout, and what the task had done by then stays done. Other
// executors stop the task as their Submit documents. Cancel after the
// result has arrived changes nothing (Get keeps returning it), and
// calling it again does nothing.
func (r *AsyncResult[R]) Cancel() {
	if r == nil || r.done == nil {
		return // not made by a call: nothing to cancel
	}
	// The executor first: once Cancel returns, a Pool has withdrawn the
	// task or is killing its worker.
	r.cancel()
	var zero R
	r.set(zero, context.Canceled)
}

// Get waits for the result: the function's value, its error (a
// *RemoteError), an error matching ErrWorkerDied, context.DeadlineExceeded
// (TaskTimeout), ErrPoolClosed or context.Canceled (Cancel) — or ctx.Err()
// if ctx ends first, in which case the task goes on and Get may be called
// again. Before it sleeps, Get looks for the result for a few to a few
// hundred microseconds (the package's waiting policy, which learns how
// long a sleep and wake-up cost on this machine): a result that comes
// within that time costs no wake-up.
func (r *AsyncResult[R]) Get(ctx context.Context) (R, error) {
	if ctx == nil {
		var zero R
		return zero, errNilContext
	}
	// A Pool may let the caller collect the result itself, on this
	// goroutine, rather than have another goroutine hand it over.
	if r.tc != nil {
		if help := r.tc.helper(); help != nil {
			help(ctx, r.Ready)
		}
	}
	// A result often comes within microseconds of the call: look for it
	// as the waiting policy says before parking. A goroutine that parks
	// here makes the one that delivers the result wake a thread for it,
	// which on 2 CPUs competes with the worker (the pool's round trip
	// took about a third longer so).
	if getSpin.Spin(func() bool { return r.Ready() || ctx.Err() != nil }) && r.Ready() {
		return r.val, r.err
	}
	t0 := time.Now()
	select {
	case <-r.done:
		getSpin.Parked(time.Since(t0))
		return r.val, r.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// getSpin is the waiting policy of Get, one for the process.
var getSpin wait.Spinner

// Ready reports whether the result has arrived (or Cancel was called).
func (r *AsyncResult[R]) Ready() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Done returns a channel closed once the result has arrived (or Cancel
// was called).
func (r *AsyncResult[R]) Done() <-chan struct{} { return r.done }

// taskCtx is the ctx an AsyncResult submits its task with. Its cancel
// runs the hooks registered with onCancel before it returns, so that a
// Pool has withdrawn a task its worker has not started by the time
// Cancel returns (context.AfterFunc would run them later, on a goroutine
// of their own, by which time the worker may have started the task). To
// any other Executor it is an ordinary context.Context.
type taskCtx struct {
	context.Context // the parent: Deadline and Value
	// cancelOnly: nothing but Cancel ends it (the parent never does), so
	// a Pool may queue its task in a busy worker, from which it can still
	// withdraw it.
	cancelOnly bool
	// waited: the caller waits for the result at once (Apply), so an
	// executor may let it collect the result itself: it sets help,
	// which Get calls before it waits.
	waited     bool
	stopParent func() bool

	mu    sync.Mutex // guards err, hooks and help; done closes when err is set
	done  chan struct{}
	err   error
	hooks map[*func()]struct{}
	help  func(ctx context.Context, ready func() bool) // returns once ready, or when it cannot help
}

// setHelp records how Get may collect the result itself.
func (c *taskCtx) setHelp(f func(ctx context.Context, ready func() bool)) {
	c.mu.Lock()
	c.help = f
	c.mu.Unlock()
}

// helper returns what setHelp recorded, or nil.
func (c *taskCtx) helper() func(ctx context.Context, ready func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.help
}

// newTaskCtx returns a taskCtx that ends with parent, or when cancelled.
func newTaskCtx(parent context.Context) *taskCtx {
	c := &taskCtx{Context: parent, cancelOnly: parent.Done() == nil, done: make(chan struct{})}
	if err := parent.Err(); err != nil {
		c.end(err) // ended already: at once, not on AfterFunc's goroutine
	} else if !c.cancelOnly {
		c.stopParent = context.AfterFunc(parent, func() { c.end(parent.Err()) })
	}
	return c
}

func (c *taskCtx) Done() <-chan struct{} { return c.done }

func (c *taskCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *taskCtx) cancel() { c.end(context.Canceled) }

// end ends c with err and runs its hooks, on this goroutine.
func (c *taskCtx) end(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	close(c.done)
	hooks := c.hooks
	c.hooks = nil
	c.mu.Unlock()
	if c.stopParent != nil {
		c.stopParent()
	}
	for f := range hooks {
		(*f)()
	}
}

// onCancel registers f to run when c ends, on the goroutine that ends it
// (the caller must not hold a lock f takes when it may end c); stop
// unregisters it and reports whether it did so before f ran. If c has
// ended already, f is not run: the caller checks Err.
func (c *taskCtx) onCancel(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return func() bool { return false }
	}
	if c.hooks == nil {
		c.hooks = map[*func()]struct{}{}
	}
	key := &f
	c.hooks[key] = struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.hooks[key]
		delete(c.hooks, key)
		return ok
	}
}
