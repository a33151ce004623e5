//go:build linux && (amd64 || arm64)

package multiproc

// How a Conn waits: for its lock, for its descriptor, within a context.

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc/internal/wait"
	"github.com/multiproc-go/multiproc/internal/wire"
	"golang.org/x/sys/unix"
)

// ctxMutex is a mutex whose Lock can be given up when a context ends, so
// that a receive waiting behind another one is bounded too. The zero
// value is an unlocked mutex.
type ctxMutex struct {
	once sync.Once
	ch   chan struct{}
}

func (m *ctxMutex) sem() chan struct{} {
	m.once.Do(func() { m.ch = make(chan struct{}, 1) })
	return m.ch
}

func (m *ctxMutex) Lock()   { m.sem() <- struct{}{} }
func (m *ctxMutex) Unlock() { <-m.sem() }

// LockContext locks m, or returns ctx's error if ctx ends first.
func (m *ctxMutex) LockContext(ctx context.Context) error {
	ch := m.sem()
	select {
	case ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked
// read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// bound makes the read (or write) of f, or of the poll descriptor, give
// up with os.ErrDeadlineExceeded once ctx ends, until the returned
// function is called, which undoes it. The deadline is set only when ctx
// ends (context.AfterFunc), so a call with a context that cannot end costs
// nothing. The caller must hold the lock of that direction: no one else
// sets its deadline.
func bound(ctx context.Context, f *os.File, write bool) (release func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	set := f.SetReadDeadline
	if write {
		set = f.SetWriteDeadline
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(aLongTimeAgo)
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
			set(time.Time{})
		}
	}
}

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
	release := bound(ctx, c.f, true)
	sent, err := c.write(b)
	release()
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
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
func (c *Conn) write(b []byte) (int, error) {
	if len(b) <= 16<<10 {
		// Header and payload in one write: one syscall, one segment.
		c.wbuf = append(wire.AppendHeader(c.wbuf[:0], len(b)), b...)
		return c.f.Write(c.wbuf)
	}
	n, err := c.f.Write(wire.AppendHeader(c.wbuf[:0], len(b)))
	if err != nil {
		return n, err
	}
	m, err := c.f.Write(b)
	return n + m, err
}

// ioErr is the error of op failing with err, a descriptor's error: one
// matching ErrClosed once the Conn is closed (a descriptor closed under a
// waiting call says "use of closed file", which os.ErrClosed does not match).
func (c *Conn) ioErr(op string, err error) error {
	select {
	case <-c.closed:
		return errorf("%w: Conn", ErrClosed)
	default:
	}
	if errors.Is(err, os.ErrClosed) {
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
	if c.r == nil {
		c.r = newWaitReader(c.f)
	}
	release := bound(ctx, c.f, false)
	b, err := c.fr.Next(c.r, c.max.Load(), buf)
	release()
	c.held.Store(c.fr.Partial())
	// Whatever the error, fr has kept the part of a message read so far,
	// so the stream stays in step: a receive cut short by its context goes
	// on with the next one; an over-long or malformed header, or a message
	// cut short by the peer's closing, is reported again by every receive.
	switch {
	case err == nil:
		return b, nil
	case err == io.EOF:
		return nil, io.EOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, ctxErr(ctx, "receive")
	case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrBadFrame), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, err // these say "multiproc:" already
	}
	return nil, c.ioErr("receive", err)
}

// waitReader reads f, polling it (as the package's waiting policy says)
// before it parks in Go's poller: a reply in a request/response exchange
// often comes within microseconds, and waking a parked goroutine costs
// more (from a few to hundreds of microseconds, depending on the machine).
type waitReader struct {
	f    *os.File
	rc   syscall.RawConn
	spin wait.Spinner
}

func newWaitReader(f *os.File) *waitReader {
	w := &waitReader{f: f}
	w.rc, _ = f.SyscallConn()
	return w
}

// Read reads into p, polling before it parks.
func (w *waitReader) Read(p []byte) (int, error) {
	if w.rc == nil {
		return w.f.Read(p)
	}
	var n int
	var rerr error
	closed := false
	read := func() bool {
		if cerr := w.rc.Control(func(fd uintptr) { n, rerr = unix.Read(int(fd), p) }); cerr != nil {
			closed = true // let os.File say so
			return true
		}
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	}
	if w.spin.Spin(read) && !closed {
		switch {
		case rerr == nil && n == 0 && len(p) > 0:
			return 0, io.EOF
		case rerr == nil:
			return n, nil
		}
		return w.f.Read(p) // report the error the usual way
	}
	t0 := time.Now()
	n, err := w.f.Read(p)
	if err == nil {
		w.spin.Parked(time.Since(t0))
	}
	return n, err
}
