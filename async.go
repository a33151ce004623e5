//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"time"

	"github.com/multiproc-go/multiproc/internal/wait"
)

// AsyncResult is the pending result of ApplyAsync, Python's AsyncResult.
//
// An AsyncResult must not be copied after first use (go vet reports copies).
type AsyncResult[R any] struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	done chan struct{}
	val  R
	err  error
}

// Get waits for the result: the function's value, its error (a
// *RemoteError), an error matching ErrWorkerDied, context.DeadlineExceeded
// (TaskTimeout) or ErrPoolClosed — or ctx.Err() if ctx ends first, in
// which case the task goes on and Get may be called again. Before it
// sleeps, Get looks for the result for a few to a few hundred
// microseconds (the package's waiting policy, which learns how long a
// sleep and wake-up cost on this machine): a result that comes within
// that time costs no wake-up.
func (r *AsyncResult[R]) Get(ctx context.Context) (R, error) {
	if ctx == nil {
		var zero R
		return zero, errNilContext
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

// Ready reports whether the result has arrived.
func (r *AsyncResult[R]) Ready() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Done returns a channel closed once the result has arrived.
func (r *AsyncResult[R]) Done() <-chan struct{} { return r.done }
