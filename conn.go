package multiproc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/wire"
	"golang.org/x/sys/unix"
)

// DefaultMaxMessage is the largest message a Conn accepts by default
// (Conn.SetMaxMessage changes it): a longer length prefix is an error
// before anything is allocated, so a garbled stream cannot ask for gigabytes.
const DefaultMaxMessage = 1 << 30

// Errors of a Conn used against its direction.
var (
	ErrSendOnly    = errors.New("multiproc: Recv on the send-only end of a one-way Pipe")
	ErrReceiveOnly = errors.New("multiproc: Send on the receive-only end of a one-way Pipe")
)

// errZeroConn is what every method of a Conn that no constructor made
// returns (a zero Conn, or a nil *Conn).
var errZeroConn = errors.New("multiproc: use of a zero Conn: a Conn comes from Pipe or ConnFromFd")

// Conn is one end of a Pipe, Python's multiprocessing.connection.Connection.
// Send and Recv carry Go values; SendBytes and RecvBytes carry raw
// messages. Every message is framed as Python frames it (a 4-byte
// big-endian length, or -1 and an 8-byte length for 2 GiB and more), so
// SendBytes and RecvBytes interoperate with a python3 process holding the
// other end (its send_bytes and recv_bytes).
//
// A *Conn reaches a child as a Func argument or an exported field of one
// (as Value does): the child gets its own descriptor for the same end.
// The parent's copy stays open until it is closed, and the peer sees EOF
// only when every copy of an end is closed — close the ends a process
// does not use, as with any pipe. Send and Recv may be called from
// different goroutines; concurrent Sends (or Recvs) are serialised, and
// Poll may be called beside them.
//
// Every wait can be bounded: RecvContext, RecvBytesContext, SendContext,
// SendBytesContext and PollContext are the methods without Context with a
// context that ends the wait. A receive that gives up part-way through a
// message keeps what it read, and the next receive goes on with that
// message, so the stream stays in step. A send that gives up before any
// byte of its message went out leaves the Conn as it was; one that gives
// up part-way through cannot take back what went out, and every later
// send on that Conn fails (the peer can read the messages before it, then
// an incomplete one).
//
// The zero Conn is not usable: every method returns an error saying so.
type Conn struct {
	f        *os.File
	readable bool
	writable bool
	max      atomic.Int64

	// The receiving side, used by the holder of rmu.
	rmu  ctxMutex
	r    *bufio.Reader
	fr   wire.FrameReader // a message part-way read, kept across calls
	rbuf []byte           // Recv's buffer, reused from message to message
	// held says that bytes wait in r or fr, so Poll need not ask the
	// kernel; it is set by the holder of rmu and read without it.
	held atomic.Bool

	// The sending side, used by the holder of wmu.
	wmu  ctxMutex
	wbuf []byte
	werr error // a send stopped part-way through a message: every send returns this

	// Poll waits on pf, a second descriptor for the same pipe end with
	// deadlines of its own, so that its waiting never disturbs a receive
	// (a read deadline on f would). pmu serialises the waiting Polls;
	// pfmu guards pf itself, which Close closes.
	pmu  ctxMutex
	pfmu sync.Mutex
	pf   *os.File

	closeOnce sync.Once
	closed    chan struct{}
}

// ctxMutex is a mutex whose Lock can be given up when a context ends, so
// that a receive waiting behind another one is bounded too.
type ctxMutex struct{ ch chan struct{} }

func newCtxMutex() ctxMutex { return ctxMutex{make(chan struct{}, 1)} }

func (m *ctxMutex) Lock()   { m.ch <- struct{}{} }
func (m *ctxMutex) Unlock() { <-m.ch }

// LockContext locks m, or returns ctx's error if ctx ends first.
func (m *ctxMutex) LockContext(ctx context.Context) error {
	select {
	case m.ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pipe returns the two ends of a new pipe. With duplex, both ends send and
// receive (a socketpair); without, the first end only receives and the
// second only sends (pipe2), as in Python.
func Pipe(duplex bool) (*Conn, *Conn, error) {
	var fds [2]int
	if duplex {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("multiproc: socketpair: %w", err)
		}
		fds = pair
		// Larger kernel buffers than the default ~200 KiB: fewer wake-ups
		// for big messages (the kernel caps them at net.core.[rw]mem_max).
		for _, fd := range fds {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
		}
		return newConn(fds[0], true, true), newConn(fds[1], true, true), nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, nil, fmt.Errorf("multiproc: pipe2: %w", err)
	}
	// 1 MiB instead of 64 KiB where the system allows (fs.pipe-max-size).
	unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 1<<20)
	return newConn(p[0], true, false), newConn(p[1], false, true), nil
}

// newConn wraps a non-blocking fd (Go's poller then waits for it: a
// blocked Recv holds no OS thread).
func newConn(fd int, readable, writable bool) *Conn {
	c := &Conn{}
	c.init(fd, readable, writable)
	return c
}

func (c *Conn) init(fd int, readable, writable bool) {
	c.f = os.NewFile(uintptr(fd), "multiproc-conn")
	c.readable, c.writable = readable, writable
	c.max.Store(DefaultMaxMessage)
	c.rmu, c.wmu, c.pmu = newCtxMutex(), newCtxMutex(), newCtxMutex()
	c.closed = make(chan struct{})
}

// ConnFromFd makes a duplex Conn of fd, a connected socket (or a pipe end
// used both ways) inherited or made outside the package — for example to
// talk to a python3 process's multiprocessing.connection.Connection. The
// Conn owns fd from then on.
func ConnFromFd(fd int) *Conn {
	unix.SetNonblock(fd, true)
	unix.CloseOnExec(fd)
	return newConn(fd, true, true)
}

// SetMaxMessage sets the largest message Recv and RecvBytes accept on this
// end (default DefaultMaxMessage); a longer one is an error matching
// ErrMessageTooLarge, reported before anything of the message is read or
// allocated, and again by every later receive, until the limit is raised:
// the next receive then reads the message. A limit of zero or less means
// DefaultMaxMessage.
func (c *Conn) SetMaxMessage(n int64) {
	if c == nil {
		return
	}
	if n <= 0 {
		n = DefaultMaxMessage
	}
	c.max.Store(n)
}

func (c *Conn) check(write bool) error {
	if c == nil || c.f == nil {
		return errZeroConn
	}
	select {
	case <-c.closed:
		return fmt.Errorf("%w: Conn", ErrClosed)
	default:
	}
	if write && !c.writable {
		return ErrReceiveOnly
	}
	if !write && !c.readable {
		return ErrSendOnly
	}
	return nil
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
	return fmt.Errorf("multiproc: Conn %s: %w", op, ctxCause(ctx))
}

// ctxCause is ctx.Err() for a context that ended; a deadline that the
// descriptor saw pass a moment before the context did counts as its.
func ctxCause(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// SendBytes sends b as one message. Sending to an end whose peer is
// closed returns an error matching syscall.EPIPE (the process does not
// die of SIGPIPE). It waits while the pipe is full; SendBytesContext
// bounds that wait.
func (c *Conn) SendBytes(b []byte) error {
	return c.SendBytesContext(context.Background(), b)
}

// SendBytesContext is SendBytes, giving up when ctx ends (see Conn for
// what a send cut short leaves). The error then matches ctx.Err().
func (c *Conn) SendBytesContext(ctx context.Context, b []byte) error {
	if err := c.check(true); err != nil {
		return err
	}
	if err := c.wmu.LockContext(ctx); err != nil {
		return ctxErr(ctx, "send")
	}
	defer c.wmu.Unlock()
	return c.writeFrameContext(ctx, b)
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
		c.werr = fmt.Errorf("multiproc: Conn send: an earlier send was cut short after %d of the %d bytes of its message, so the peer could not read a later one: this end can send no more", sent, total)
		return fmt.Errorf("multiproc: Conn send: %w; %d of the %d bytes of the message went out, so this end can send no more", ctxCause(ctx), sent, total)
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
		return fmt.Errorf("%w: Conn", ErrClosed)
	default:
	}
	if errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("%w: Conn", ErrClosed)
	}
	return fmt.Errorf("multiproc: Conn %s: %w", op, err)
}

// RecvBytes receives one message. It returns io.EOF once the other end is
// closed and every message sent before has been received; a message cut
// short by the peer's closing is an error matching io.ErrUnexpectedEOF.
// It waits until a message comes; RecvBytesContext bounds that wait.
func (c *Conn) RecvBytes() ([]byte, error) {
	return c.RecvBytesContext(context.Background())
}

// RecvBytesContext is RecvBytes, giving up when ctx ends; the error then
// matches ctx.Err(), and the part of a message read so far is kept for
// the next receive.
func (c *Conn) RecvBytesContext(ctx context.Context) ([]byte, error) {
	if err := c.check(false); err != nil {
		return nil, err
	}
	if err := c.rmu.LockContext(ctx); err != nil {
		return nil, ctxErr(ctx, "receive")
	}
	defer c.rmu.Unlock()
	b, err := c.readFrameContext(ctx, nil)
	if err != nil {
		return nil, err
	}
	if cap(b) > 0 && cap(c.rbuf) > 0 && &b[:1][0] == &c.rbuf[:1][0] {
		// A Recv began this message in its buffer: the caller has it now.
		c.rbuf = nil
	}
	return b, nil
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
		c.r = bufio.NewReaderSize(waitReader{c.f}, 64<<10)
	}
	release := bound(ctx, c.f, false)
	b, err := c.fr.Next(c.r, c.max.Load(), buf)
	release()
	c.held.Store(c.r.Buffered() > 0 || c.fr.Partial())
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

// spinWait is how long a Recv polls its descriptor with non-blocking
// reads before it parks in Go's poller: a reply in a request/response
// exchange often comes within it, and waking a parked goroutine costs
// several microseconds more. Bounded by time, not by tries: on a busy
// machine the peer may need this CPU.
const spinWait = 25 * time.Microsecond

// waitReader reads f, polling it briefly before parking in the poller.
type waitReader struct{ f *os.File }

// Read reads into p, polling briefly before it parks.
func (w waitReader) Read(p []byte) (int, error) {
	rc, err := w.f.SyscallConn()
	if err != nil || runtime.NumCPU() < 2 {
		return w.f.Read(p)
	}
	var start time.Time
	for i := 0; ; i++ {
		var n int
		var rerr error
		if cerr := rc.Control(func(fd uintptr) { n, rerr = unix.Read(int(fd), p) }); cerr != nil {
			break // closed: let os.File say so
		}
		switch {
		case rerr == nil && n == 0 && len(p) > 0:
			return 0, io.EOF
		case rerr == nil:
			return n, nil
		case rerr != unix.EAGAIN && rerr != unix.EINTR:
			return w.f.Read(p) // report it the usual way
		}
		if i == 0 {
			start = time.Now()
		} else if time.Since(start) > spinWait {
			break
		}
		runtime.Gosched() // let other goroutines of this process run meanwhile
	}
	return w.f.Read(p)
}

// Send sends a Go value: anything the package's codec takes (numbers,
// strings, slices, maps, structs by their exported fields, pointers, and
// interface values of types registered with RegisterType; as encoding/gob
// would, but with no type information on the wire). The
// receiver must Recv into a pointer to the same type; the message carries
// the type's name (with its full import path), so a mismatch is a clear
// error. Shared objects (Value, Queue, ...) cannot be sent: pass them as a
// Func argument instead. It waits while the pipe is full; SendContext
// bounds that wait.
func (c *Conn) Send(v any) error {
	return c.SendContext(context.Background(), v)
}

// SendContext is Send, giving up when ctx ends (see Conn for what a send
// cut short leaves). The error then matches ctx.Err().
func (c *Conn) SendContext(ctx context.Context, v any) error {
	if err := c.check(true); err != nil {
		return err
	}
	// Layout: type name (length-prefixed), then the value. It is framed
	// like SendBytes; a Python peer sees it as an opaque message.
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return errors.New("multiproc: Send(nil)")
	}
	p := reflect.New(rv.Type())
	p.Elem().Set(rv)
	name := wire.TypeName(rv.Type())
	msg := binary.AppendUvarint(make([]byte, 0, 64+len(name)), uint64(len(name)))
	msg = append(msg, name...)
	msg, err := wire.AppendAny(msg, p.Interface())
	if err != nil {
		return err
	}
	if err := c.wmu.LockContext(ctx); err != nil {
		return ctxErr(ctx, "send")
	}
	defer c.wmu.Unlock()
	return c.writeFrameContext(ctx, msg)
}

// Recv receives a value sent with Send into the value v points to. It
// returns io.EOF once the other end is closed and drained. It waits until
// a message comes; RecvContext bounds that wait.
func (c *Conn) Recv(v any) error {
	return c.RecvContext(context.Background(), v)
}

// RecvContext is Recv, giving up when ctx ends; the error then matches
// ctx.Err(), and the part of a message read so far is kept for the next
// receive.
func (c *Conn) RecvContext(ctx context.Context, v any) error {
	if err := c.check(false); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("multiproc: Recv needs a non-nil pointer, not %T", v)
	}
	if err := c.rmu.LockContext(ctx); err != nil {
		return ctxErr(ctx, "receive")
	}
	defer c.rmu.Unlock()
	b, err := c.readFrameContext(ctx, c.rbuf[:0])
	if err != nil {
		return err
	}
	c.rbuf = b[:0]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return errors.New("multiproc: Recv: the message was not sent with Send")
	}
	name := b[k : k+int(n)]
	if want := wire.TypeName(rv.Type().Elem()); string(name) != want {
		return fmt.Errorf("multiproc: Recv into a %s of a message holding a value of type %s", want, name)
	}
	return wire.DecodeAny(b[k+int(n):], v)
}

// Poll reports whether a message (or EOF) is ready to be received,
// waiting up to timeout for one (0: do not wait; negative: wait forever).
// It never reads, so it may be called while another goroutine receives
// (a message it saw may then be that goroutine's). PollContext is Poll
// with a context instead of a timeout.
func (c *Conn) Poll(timeout time.Duration) (bool, error) {
	ctx := context.Background()
	switch {
	case timeout == 0:
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		cancel()
	case timeout > 0:
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
		return nil, fmt.Errorf("%w: Conn", ErrClosed)
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
		return nil, fmt.Errorf("multiproc: Conn poll: %w", derr)
	}
	// The duplicate shares f's non-blocking open file, so Go's poller
	// takes it, and its deadlines are its own.
	c.pf = os.NewFile(uintptr(fd), "multiproc-conn-poll")
	return c.pf, nil
}

// Close closes this end. Later calls on it return an error matching
// ErrClosed; a Recv, Send or Poll blocked on it returns at once. Closing
// twice is fine.
func (c *Conn) Close() error {
	if c == nil || c.f == nil {
		return errZeroConn
	}
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		c.pfmu.Lock()
		if c.pf != nil {
			c.pf.Close()
		}
		c.pfmu.Unlock()
		err = c.f.Close()
	})
	return err
}

// exportHandle is how a Conn travels to another process; called by the package.
func (c *Conn) exportHandle() (handle.Desc, error) {
	if c == nil || c.f == nil {
		return handle.Desc{}, errZeroConn
	}
	select {
	case <-c.closed:
		return handle.Desc{}, fmt.Errorf("%w: passing a closed Conn", ErrClosed)
	default:
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return handle.Desc{}, err
	}
	// The fd stays valid while the Conn is open: do not close a Conn
	// while a Start or a pool call that carries it is under way.
	var fd int
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return handle.Desc{}, err
	}
	meta := []byte{0, 0}
	if c.readable {
		meta[0] = 1
	}
	if c.writable {
		meta[1] = 1
	}
	return handle.Desc{Kind: "Conn", Meta: meta, Fds: []int{fd}}, nil
}

// importHandle makes c the Conn described by d; called by the package.
func (c *Conn) importHandle(d handle.Desc) error {
	if d.Kind != "Conn" || len(d.Fds) != 1 || len(d.Meta) != 2 {
		handleCloseFds(d)
		return fmt.Errorf("multiproc: a shared %s arrived where a Conn was expected", d.Kind)
	}
	fd := d.Fds[0]
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	c.init(fd, d.Meta[0] == 1, d.Meta[1] == 1)
	return nil
}
