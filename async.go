//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
)

// AsyncResult is the pending result of ApplyAsync, Python's AsyncResult.
type AsyncResult[R any] struct {
	done chan struct{}
	val  R
	err  error
}

// Get waits for the result: the function's value, its error (a
// *RemoteError), an error matching ErrWorkerDied, context.DeadlineExceeded
// (TaskTimeout) or ErrPoolClosed — or ctx.Err() if ctx ends first, in
// which case the task goes on and Get may be called again.
func (r *AsyncResult[R]) Get(ctx context.Context) (R, error) {
	if ctx == nil {
		var zero R
		return zero, errNilContext
	}
	select {
	case <-r.done:
		return r.val, r.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

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
