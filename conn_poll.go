//go:build linux && (amd64 || arm64)

package multiproc

// Poll: whether a Conn has a message, without reading it.

import (
	"context"
	"errors"
	"time"

	"github.com/multiproc-go/multiproc/internal/fdwait"
	"golang.org/x/sys/unix"
)

// Poll reports whether a message (or EOF) is ready to be received,
// waiting up to timeout for one (0: do not wait; negative: wait forever).
// It never reads, so it may be called while another goroutine receives
// (a message it saw may then be that goroutine's). PollContext is Poll
// with a context instead of a timeout.
func (c *Conn) Poll(timeout time.Duration) (bool, error) {
	if timeout == 0 {
		if err := c.check(false); err != nil {
			return false, err
		}
		return c.ready()
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	ok, err := c.PollContext(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return false, nil // the timeout: not ready
	}
	return ok, err
}

// PollContext reports whether a message (or EOF) is ready to be received,
// waiting for one until ctx ends; it then returns false and an error
// matching ctx.Err(). With a context already ended it only looks. Like
// Poll, it never reads.
func (c *Conn) PollContext(ctx context.Context) (bool, error) {
	if ctx == nil {
		return false, errNilContext
	}
	if err := c.check(false); err != nil {
		return false, err
	}
	if ok, err := c.ready(); ok || err != nil {
		return ok, err
	}
	if ctx.Err() != nil {
		return false, ctxErr(ctx, "poll")
	}
	// The wait looks whenever poll(2) says the descriptor may be
	// readable; it consumes nothing, so a receive beside it is undisturbed.
	var ok bool
	err := c.fd.Read(ctx, nil, func(fd int) bool {
		ok = c.held.Load() || fdwait.Ready(fd, unix.POLLIN)
		return ok
	})
	switch {
	case err == nil:
		return ok, nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return false, ctxErr(ctx, "poll")
	}
	return false, c.ioErr("poll", err)
}

// ready reports, without waiting, whether a receive would find data.
func (c *Conn) ready() (bool, error) {
	if c.held.Load() {
		return true, nil
	}
	var ok bool
	if err := c.fd.Do(func(fd int) { ok = fdwait.Ready(fd, unix.POLLIN) }); err != nil {
		return false, c.ioErr("poll", err)
	}
	return ok, nil
}
