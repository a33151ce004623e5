package futex

import (
	"context"
	"time"
)

// cancelCheck bounds one kernel wait of a cancellable WaitCtx.
const cancelCheck = 50 * time.Millisecond

// WaitCtx is Wait bounded by ctx: it returns ctx.Err() once ctx is done
// (its deadline becomes the futex timeout, and a cancellation wakes the word
// so the sleeper notices at once), else nil after any wake-up.
func WaitCtx(ctx context.Context, addr *uint32, val uint32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { WakeAll(addr) })
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
