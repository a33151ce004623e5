//go:build linux && (amd64 || arm64)

package multiproc

// How a Conn waits: for its lock, for its descriptor, within a context.
// The descriptor is not Go's poller's (see internal/fdwait for why).

import (
	"context"
	"errors"
	"io"

	"github.com/multiproc-go/multiproc/internal/fdwait"
	"github.com/multiproc-go/multiproc/internal/wire"
	"golang.org/x/sys/unix"
)

// ctxErr is the error of a wait that ctx ended; op says which.
func ctxErr(ctx context.Context, op string) error {
	return errorf("Conn %s: %w", op, ctxCause(ctx))
}

// ctxCause is ctx.Err() for a context that ended; a deadline that the
// descriptor saw pass a moment before the context did counts as its.
func ctxCause(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// writeFrame sends b as one message; the caller holds wmu.
func (c *Conn) writeFrame(b []byte) error {
	return c.writeFrameContext(context.Background(), b)
}

func (c *Conn) writeFrameContext(ctx context.Context, b []byte) error {
	if c.werr != nil {
		return c.werr
	}
	if ctx.Err() != nil {
		return ctxErr(ctx, "send")
	}
	sent, err := c.write(ctx, b)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		if sent == 0 {
			return ctxErr(ctx, "send")
		}
		total := len(wire.AppendHeader(c.wbuf[:0], len(b))) + len(b)
		c.werr = errorf("Conn send: an earlier send was cut short after %d of the %d bytes of its message, so the peer could not read a later one: this end can send no more", sent, total)
		return errorf("Conn send: %w; %d of the %d bytes of the message went out, so this end can send no more", ctxCause(ctx), sent, total)
	}
	return c.ioErr("send", err)
}

// write writes b's header and b, and says how many bytes went out.
func (c *Conn) write(ctx context.Context, b []byte) (int, error) {
	if len(b) <= 16<<10 {
		// Header and payload in one write: one syscall, one segment.
		c.wbuf = append(wire.AppendHeader(c.wbuf[:0], len(b)), b...)
		return c.writeAll(ctx, c.wbuf)
	}
	n, err := c.writeAll(ctx, wire.AppendHeader(c.wbuf[:0], len(b)))
	if err != nil {
		return n, err
	}
	m, err := c.writeAll(ctx, b)
	return n + m, err
}

// writeAll writes all of p, waiting (as the waiting policy says) while the
// pipe is full.
func (c *Conn) writeAll(ctx context.Context, p []byte) (int, error) {
	return c.fd.WriteAll(ctx, &c.wspin, p, unix.Write)
}

// ioErr is the error of op failing with err, a descriptor's error: one
// matching ErrClosed once the Conn is closed, whatever the system call
// said.
func (c *Conn) ioErr(op string, err error) error {
	if c.fd.Closed() || errors.Is(err, fdwait.ErrClosed) {
		return errorf("%w: Conn", ErrClosed)
	}
	return errorf("Conn %s: %w", op, err)
}

// readFrame reads one message, into buf if it fits; the caller holds rmu.
func (c *Conn) readFrame(buf []byte) ([]byte, error) {
	return c.readFrameContext(context.Background(), buf)
}

func (c *Conn) readFrameContext(ctx context.Context, buf []byte) ([]byte, error) {
	if ctx.Err() != nil {
		return nil, ctxErr(ctx, "receive")
	}
	c.rd.c, c.rd.ctx = c, ctx
	b, err := c.fr.Next(&c.rd, c.max.Load(), buf)
	c.rd.ctx = nil
	if partial := c.fr.Partial(); c.held.Swap(partial) != partial && partial {
		// Bytes now wait here, where epoll cannot see them: a Wait must
		// look at this Conn's held flag again (see connEvents).
		connEvents.Add(1)
		wakeWaiters()
	}
	// Whatever the error, fr has kept the part of a message read so far,
	// so the stream stays in step: a receive cut short by its context goes
	// on with the next one; an over-long or malformed header, or a message
	// cut short by the peer's closing, is reported again by every receive.
	switch {
	case err == nil:
		return b, nil
	case err == io.EOF:
		return nil, io.EOF
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil, ctxErr(ctx, "receive")
	case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrBadFrame), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, errorf("receive: %w", err)
	}
	return nil, c.ioErr("receive", err)
}

// connReader reads the Conn's descriptor for its FrameReader, waiting as
// the package's waiting policy says (internal/fdwait): a reply in a
// request/response exchange often comes within microseconds, and the
// receiver catches it spinning; a longer wait parks this thread in
// poll(2). The holder of rmu sets ctx for the receive in progress.
type connReader struct {
	c   *Conn
	ctx context.Context
}

// Read reads into p, waiting until something arrives.
func (r *connReader) Read(p []byte) (int, error) {
	var n int
	var rerr error
	err := r.c.fd.Read(r.ctx, &r.c.rspin, func(fd int) bool {
		n, rerr = unix.Read(fd, p)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}
