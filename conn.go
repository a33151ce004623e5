//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"encoding/binary"
	"reflect"
	"sync/atomic"

	"github.com/multiproc-go/multiproc/internal/fdwait"
	"github.com/multiproc-go/multiproc/internal/gate"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/wait"
	"github.com/multiproc-go/multiproc/internal/wire"
	"golang.org/x/sys/unix"
)

// DefaultMaxMessage is the largest message a Conn accepts by default
// (Conn.SetMaxMessage changes it): a longer length prefix is an error
// before anything is allocated, so a garbled stream cannot ask for gigabytes.
const DefaultMaxMessage = 1 << 30

// Errors of a Conn used against its direction.
var (
	ErrSendOnly    = newError("Recv on the send-only end of a one-way Pipe")
	ErrReceiveOnly = newError("Send on the receive-only end of a one-way Pipe")
)

// errZeroConn is what every method of a Conn that no constructor made
// returns (a zero Conn, or a nil *Conn).
var errZeroConn = &pkgError{"use of a zero Conn: a Conn comes from Pipe, ConnFromFd, ConnFromNet, Dial or Accept", ErrNotInitialized}

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
// A receive or send that must wait first spins briefly (a reply often
// comes within microseconds), then sleeps in poll(2) holding its OS thread
// as a blocking read does in C or Python, and after 20 ms moves to Go's
// poller, so that many idle Conns do not hold a thread each.
//
// Every wait can be bounded: RecvContext, RecvBytesContext, SendContext,
// SendBytesContext and PollContext are the methods without Context with a
// context that ends the wait. A receive that gives up part-way through a
// message keeps what it read, and the next receive goes on with that
// message, so the stream stays in step (a message over the limit, a
// malformed header, or a message cut short by the peer's closing is an
// error that every later receive returns again). A send that gives up before any
// byte of its message went out leaves the Conn as it was; one that gives
// up part-way through cannot take back what went out, and every later
// send on that Conn fails (the peer can read the messages before it, then
// an incomplete one).
//
// The zero Conn is not usable: every method but SetMaxMessage returns an
// error saying so.
//
// A Conn must not be copied after first use (go vet reports copies).
type Conn struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	fd       *fdwait.FD // non-blocking, not Go's poller's (internal/fdwait)
	readable bool
	writable bool
	max      atomic.Int64

	// rmu guards the receiving side: rd, rspin, fr, rbuf (and writes of
	// held). A gate, so that a receive waiting behind another one gives
	// up when its context ends.
	rmu gate.Gate
	// r reads the descriptor exactly: a message's header, then its payload,
	// never past it (no read-ahead buffer), so that another process holding
	// the same descriptor — a child or pool worker it was passed to, before
	// or after this one — finds the next message whole, as with Python's
	// Connection.
	rd    connReader
	rspin wait.Spinner     // how a receive waits
	fr    wire.FrameReader // a message part-way read, kept across calls
	rbuf  []byte           // Recv's buffer, reused from message to message
	// held says that part of a message waits in fr, so Poll need not ask
	// the kernel; it is set by the holder of rmu and read without it.
	held atomic.Bool

	// wmu guards the sending side: wspin, wbuf, werr (a gate, as rmu).
	wmu   gate.Gate
	wspin wait.Spinner // how a send waits for room in the pipe
	wbuf  []byte
	werr  error // a send stopped part-way through a message: every send returns this
}

// Pipe returns the two ends of a new pipe. With duplex, both ends send and
// receive (a socketpair); without, the first end only receives and the
// second only sends (pipe2), as in Python.
func Pipe(duplex bool) (*Conn, *Conn, error) {
	if err := checkCreate("Pipe"); err != nil {
		return nil, nil, err
	}
	var fds [2]int
	if duplex {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return nil, nil, errorf("socketpair: %w", err)
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
		return nil, nil, errorf("pipe2: %w", err)
	}
	// 1 MiB instead of 64 KiB where the system allows (fs.pipe-max-size).
	unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 1<<20)
	return newConn(p[0], true, false), newConn(p[1], false, true), nil
}

// newConn wraps a non-blocking fd. A wait on it spins, then parks the
// waiting thread in poll(2), then (after 20 ms) Go's poller: see
// internal/fdwait for why a Conn's descriptor is not Go's poller's.
func newConn(fd int, readable, writable bool) *Conn {
	c := &Conn{}
	c.init(fd, readable, writable)
	return c
}

func (c *Conn) init(fd int, readable, writable bool) {
	c.fd = fdwait.New(fd)
	c.rmu, c.wmu = gate.New(), gate.New()
	c.readable, c.writable = readable, writable
	c.max.Store(DefaultMaxMessage)
}

// ConnFromFd makes a duplex Conn of fd, a connected socket (or a pipe end
// used both ways) inherited or made outside the package — for example to
// talk to a python3 process's multiprocessing.connection.Connection.
//
// The Conn owns fd from then on: it closes it, so nothing else may use or
// close it. Pass a descriptor nothing else owns — one inherited from a
// parent, or from unix.Socketpair — never the Fd() of an *os.File or of
// net.Conn's File(), which still own theirs: the two would close the same
// number (and the second close could hit a descriptor opened since). For a
// net.Conn, use ConnFromNet; to keep a descriptor of your own, pass a
// duplicate (unix.Dup).
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
	if c == nil || c.fd == nil {
		return errZeroConn
	}
	if c.fd.Closed() {
		return errorf("%w: Conn", ErrClosed)
	}
	if write && !c.writable {
		return ErrReceiveOnly
	}
	if !write && !c.readable {
		return ErrSendOnly
	}
	return nil
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
	if ctx == nil {
		return errNilContext
	}
	if err := c.check(true); err != nil {
		return err
	}
	if err := c.wmu.Enter(ctx, nil); err != nil {
		return ctxErr(ctx, "send")
	}
	defer c.wmu.Leave()
	return c.writeFrameContext(ctx, b)
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
	if err := c.enterRecv(ctx); err != nil {
		return nil, err
	}
	defer c.rmu.Leave()
	b, err := c.readFrameContext(ctx, nil)
	if err != nil {
		return nil, err
	}
	c.giveRbuf(b)
	return b, nil
}

// enterRecv checks a byte receive's arguments and takes rmu; the caller
// leaves it.
func (c *Conn) enterRecv(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	if err := c.check(false); err != nil {
		return err
	}
	if err := c.rmu.Enter(ctx, nil); err != nil {
		return ctxErr(ctx, "receive")
	}
	return nil
}

// giveRbuf forgets Recv's buffer when b, a message handed to the caller,
// is in it (a Recv cut short began the message there). The caller holds
// rmu.
func (c *Conn) giveRbuf(b []byte) {
	if cap(b) > 0 && cap(c.rbuf) > 0 && &b[:1][0] == &c.rbuf[:1][0] {
		c.rbuf = nil
	}
}

// RecvBytesInto receives one message into buf and returns its length:
// buf[:n] holds it. It is Python's Connection.recv_bytes_into (an offset
// is a slice, buf[off:]). A program that receives many large messages
// reuses one buffer this way, where RecvBytes gives each message a new
// one (the caller keeps it). A message longer than buf is received all
// the same and nothing of it is lost: the error is a *BufferTooShortError
// holding the whole message, as Python's BufferTooShort does. The other
// errors, and the wait, are RecvBytes's; RecvBytesIntoContext bounds the
// wait. buf is not written after the call returns, whatever it returns.
func (c *Conn) RecvBytesInto(buf []byte) (int, error) {
	return c.RecvBytesIntoContext(context.Background(), buf)
}

// RecvBytesIntoContext is RecvBytesInto, giving up when ctx ends; the
// error then matches ctx.Err(), and the part of a message read so far is
// kept (in a buffer of the Conn's, not buf) for the next receive.
func (c *Conn) RecvBytesIntoContext(ctx context.Context, buf []byte) (int, error) {
	if err := c.enterRecv(ctx); err != nil {
		return 0, err
	}
	defer c.rmu.Leave()
	// The full slice expression: the frame reader fills a buffer up to its
	// capacity, and the caller lent only its length.
	b, err := c.readFrameContext(ctx, buf[:len(buf):len(buf)])
	if err != nil {
		// A message cut short stays in the frame reader; it must not go on
		// in the caller's buffer in a later call.
		c.fr.Unshare()
		return 0, err
	}
	if len(b) > 0 && len(buf) > 0 && &b[0] == &buf[0] {
		return len(b), nil
	}
	// The message did not fit, or an earlier receive began it in another
	// buffer (perhaps Recv's, which it keeps unless the error takes it).
	if len(b) > len(buf) {
		c.giveRbuf(b)
		return 0, &BufferTooShortError{Message: b, Len: len(buf)}
	}
	return copy(buf, b), nil
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
	if ctx == nil {
		return errNilContext
	}
	if err := c.check(true); err != nil {
		return err
	}
	// Layout: type name (length-prefixed), then the value. It is framed
	// like SendBytes; a Python peer sees it as an opaque message.
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return newError("Send(nil)")
	}
	p := reflect.New(rv.Type())
	p.Elem().Set(rv)
	name := wire.TypeName(rv.Type())
	msg := binary.AppendUvarint(make([]byte, 0, 64+len(name)), uint64(len(name)))
	msg = append(msg, name...)
	msg, err := wire.AppendAny(msg, p.Interface())
	if err != nil {
		return own(err)
	}
	if err := c.wmu.Enter(ctx, nil); err != nil {
		return ctxErr(ctx, "send")
	}
	defer c.wmu.Leave()
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
	if ctx == nil {
		return errNilContext
	}
	if err := c.check(false); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errorf("Recv needs a non-nil pointer, not %T", v)
	}
	if err := c.rmu.Enter(ctx, nil); err != nil {
		return ctxErr(ctx, "receive")
	}
	defer c.rmu.Leave()
	b, err := c.readFrameContext(ctx, c.rbuf[:0])
	if err != nil {
		return err
	}
	c.rbuf = b[:0]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return newError("Recv: the message was not sent with Send")
	}
	name := b[k : k+int(n)]
	if want := wire.TypeName(rv.Type().Elem()); string(name) != want {
		return errorf("Recv into a %s of a message holding a value of type %s", want, name)
	}
	return own(wire.DecodeAny(b[k+int(n):], v))
}

// Close closes this end. Later calls on it return an error matching
// ErrClosed; a Recv, Send or Poll blocked on it returns at once. Closing
// twice is fine.
func (c *Conn) Close() error {
	if c == nil || c.fd == nil {
		return errZeroConn
	}
	c.fd.Close() // a second Close finds it closed: fine
	connEvents.Add(1)
	wakeWaiters() // a Wait on c sees it closed
	return nil
}

// exportHandle is how a Conn travels to another process; called by the package.
func (c *Conn) exportHandle() (handle.Desc, error) {
	if c == nil || c.fd == nil {
		return handle.Desc{}, errZeroConn
	}
	if c.fd.Closed() {
		return handle.Desc{}, errorf("%w: passing a closed Conn", ErrClosed)
	}
	if c.held.Load() {
		return handle.Desc{}, newError("passing a Conn that holds part of a message (a receive was cut short): finish that receive first, or the other process would start in the middle of it")
	}
	// Duplicated inside Do, which keeps the descriptor open: a Close racing
	// the export cannot let its number go to another file first.
	var fd int
	var derr error
	if err := c.fd.Do(func(f int) { fd, derr = handle.Dup(f) }); err != nil {
		return handle.Desc{}, errorf("%w: passing a closed Conn", ErrClosed)
	}
	if derr != nil {
		return handle.Desc{}, errorf("passing a Conn: %w", derr)
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
		return errorf("a shared %s arrived where a Conn was expected", d.Kind)
	}
	fd := d.Fds[0]
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	c.init(fd, d.Meta[0] == 1, d.Meta[1] == 1)
	return nil
}
