//go:build linux && (amd64 || arm64)

package futex

import (
	"context"
	"sync/atomic"
	"time"
)

// cancelCheck bounds one kernel wait of a cancellable WaitCtx.
const cancelCheck = 50 * time.Millisecond

// WaitCtx is Wait bounded by ctx: it returns ctx.Err() once ctx is done
// (its deadline becomes the futex timeout, and a cancellation wakes the word
// so the sleeper notices at once), else nil after any wake-up.
func WaitCtx(ctx context.Context, addr *uint32, val uint32) error {
	return waitCtx(ctx, addr, val, 0)
}

// WaitFor is WaitCtx whose kernel wait also ends after max, with nil: for
// a waiter that has something to look at now and then.
func WaitFor(ctx context.Context, addr *uint32, val uint32, max time.Duration) error {
	return waitCtx(ctx, addr, val, max)
}

// waitCtx is WaitCtx whose kernel wait also ends after max (none if 0).
func waitCtx(ctx context.Context, addr *uint32, val uint32, max time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	timeout := max
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			return context.DeadlineExceeded
		}
		if timeout <= 0 || d < timeout {
			timeout = d
		}
	}
	if ctx.Done() != nil {
		stop := AfterFunc(ctx, func() { WakeAll(addr) })
		defer stop()
		// A cancellation between the check above and the kernel wait would
		// wake nobody: cap the wait, so such a waiter notices soon anyway.
		if timeout <= 0 || timeout > cancelCheck {
			timeout = cancelCheck
		}
	}
	if err := Wait(addr, val, timeout); err != nil && err != ErrTimeout {
		return err
	}
	return ctx.Err() // nil after a wake-up or a capped wait: the caller checks again
}

// AfterFunc is context.AfterFunc whose stop also waits for an f that has
// started: once stop returns, f is not running and never will. A wake-up
// that touches a shared mapping (a doorbell bump) needs it: the caller
// returns after stop, and the mapping's owner may unmap it then (Close),
// which context.AfterFunc's own stop, not waiting for a started f, let
// happen under f.
func AfterFunc(ctx context.Context, f func()) (stop func()) {
	ran := make(chan struct{})
	cancelStop := context.AfterFunc(ctx, func() {
		defer close(ran)
		f()
	})
	var stopped atomic.Bool
	return func() {
		if stopped.CompareAndSwap(false, true) && !cancelStop() {
			<-ran // started (or ran): wait for its end
		}
	}
}
