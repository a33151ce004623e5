//go:build linux && (amd64 || arm64)

package multiproc

// Poll: whether a Conn has a message, without reading it.

import (
	"context"
	"errors"
	"os"
	"time"

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
	if err := c.pmu.LockContext(ctx); err != nil {
		return false, ctxErr(ctx, "poll")
	}
	defer c.pmu.Unlock()
	pf, err := c.pollFile()
	if err != nil {
		return false, err
	}
	rc, err := pf.SyscallConn()
	if err != nil {
		return false, c.ioErr("poll", err)
	}
	release := bound(ctx, pf, false)
	defer release()
	// rc.Read's callback runs whenever the poller says the descriptor may
	// be readable; it only looks, consuming nothing.
	var ok bool
	err = rc.Read(func(fd uintptr) bool {
		ok = c.held.Load() || readable(int(fd))
		return ok
	})
	switch {
	case err == nil:
		return ok, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, ctxErr(ctx, "poll")
	}
	return false, c.ioErr("poll", err)
}

// ready reports, without waiting, whether a receive would find data.
func (c *Conn) ready() (bool, error) {
	if c.held.Load() {
		return true, nil
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return false, c.ioErr("poll", err)
	}
	var ok bool
	if err := rc.Control(func(fd uintptr) { ok = readable(int(fd)) }); err != nil {
		return false, c.ioErr("poll", err)
	}
	return ok, nil
}

// readable asks the kernel whether fd has data or its peer has gone.
func readable(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(p, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// pollFile returns the descriptor Poll waits on, a duplicate of f made on
// first use and closed by Close.
func (c *Conn) pollFile() (*os.File, error) {
	c.pfmu.Lock()
	defer c.pfmu.Unlock()
	select {
	case <-c.closed:
		return nil, errorf("%w: Conn", ErrClosed)
	default:
	}
	if c.pf != nil {
		return c.pf, nil
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return nil, c.ioErr("poll", err)
	}
	var fd int
	var derr error
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, c.ioErr("poll", err)
	}
	if derr != nil {
		return nil, errorf("Conn poll: %w", derr)
	}
	// The duplicate shares f's non-blocking open file, so Go's poller
	// takes it, and its deadlines are its own.
	c.pf = os.NewFile(uintptr(fd), "multiproc-conn-poll")
	return c.pf, nil
}
