package futex

import (
	"context"
	"time"
)

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
	}
	if err := Wait(addr, val, timeout); err != nil && err != ErrTimeout {
		return err
	}
	return ctx.Err()
}
