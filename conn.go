package multiproc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"sync"
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
// different goroutines; concurrent Sends (or Recvs) are serialised.
type Conn struct {
	f        *os.File
	readable bool
	writable bool
	max      int64

	rmu  sync.Mutex
	r    *bufio.Reader
	rbuf []byte

	wmu  sync.Mutex
	wbuf []byte

	closeOnce sync.Once
	closed    chan struct{}
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
	c.max = DefaultMaxMessage
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
// wire.ErrFrameTooLarge, and the Conn is then unusable (the stream is out
// of step).
func (c *Conn) SetMaxMessage(n int64) {
	c.rmu.Lock()
	c.max = n
	c.rmu.Unlock()
}

func (c *Conn) check(write bool) error {
	if c == nil || c.f == nil {
		return errors.New("multiproc: use of a nil or zero Conn")
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

// SendBytes sends b as one message. Sending to an end whose peer is
// closed returns an error matching syscall.EPIPE (the process does not
// die of SIGPIPE).
func (c *Conn) SendBytes(b []byte) error {
	if err := c.check(true); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeFrame(b)
}

func (c *Conn) writeFrame(b []byte) error {
	if len(b) <= 16<<10 {
		// Header and payload in one write: one syscall, one segment.
		c.wbuf = append(wire.AppendHeader(c.wbuf[:0], len(b)), b...)
		_, err := c.f.Write(c.wbuf)
		return c.sendErr(err)
	}
	if _, err := c.f.Write(wire.AppendHeader(c.wbuf[:0], len(b))); err != nil {
		return c.sendErr(err)
	}
	_, err := c.f.Write(b)
	return c.sendErr(err)
}

func (c *Conn) sendErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("%w: Conn", ErrClosed)
	}
	return fmt.Errorf("multiproc: Conn send: %w", err)
}

// RecvBytes receives one message. It returns io.EOF once the other end is
// closed and every message sent before has been received; a message cut
// short by the peer's closing is an error matching io.ErrUnexpectedEOF.
func (c *Conn) RecvBytes() ([]byte, error) {
	if err := c.check(false); err != nil {
		return nil, err
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.readFrame(nil)
}

func (c *Conn) readFrame(buf []byte) ([]byte, error) {
	if c.r == nil {
		c.r = bufio.NewReaderSize(waitReader{c.f}, 64<<10)
	}
	b, err := wire.ReadFrameInto(c.r, c.max, buf)
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return nil, fmt.Errorf("%w: Conn", ErrClosed)
		}
		return nil, err
	}
	return b, nil
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
// the type's name, so a mismatch is a clear error. Shared objects (Value,
// Queue, ...) cannot be sent: pass them as a Func argument instead.
func (c *Conn) Send(v any) error {
	if err := c.check(true); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// Layout: type name (length-prefixed), then the value. It is framed
	// like SendBytes; a Python peer sees it as an opaque message.
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return errors.New("multiproc: Send(nil)")
	}
	p := reflect.New(rv.Type())
	p.Elem().Set(rv)
	name := rv.Type().String()
	msg := binary.AppendUvarint(make([]byte, 0, 64+len(name)), uint64(len(name)))
	msg = append(msg, name...)
	msg, err := wire.AppendAny(msg, p.Interface())
	if err != nil {
		return err
	}
	return c.writeFrame(msg)
}

// Recv receives a value sent with Send into the value v points to. It
// returns io.EOF once the other end is closed and drained.
func (c *Conn) Recv(v any) error {
	if err := c.check(false); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("multiproc: Recv needs a non-nil pointer, not %T", v)
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	b, err := c.readFrame(c.rbuf[:0])
	if err != nil {
		return err
	}
	c.rbuf = b[:0]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return errors.New("multiproc: Recv: the message was not sent with Send")
	}
	name := b[k : k+int(n)]
	if want := rv.Type().Elem().String(); string(name) != want {
		return fmt.Errorf("multiproc: Recv into a %s, but the message holds a %s", want, name)
	}
	return wire.DecodeAny(b[k+int(n):], v)
}

// Poll reports whether a message (or EOF) is ready to be received,
// waiting up to timeout for one (0: do not wait; negative: wait forever).
func (c *Conn) Poll(timeout time.Duration) (bool, error) {
	if err := c.check(false); err != nil {
		return false, err
	}
	c.rmu.Lock()
	buffered := c.r != nil && c.r.Buffered() > 0
	c.rmu.Unlock()
	if buffered {
		return true, nil
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return false, err
	}
	ready := func(fd uintptr) bool {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		return err == nil && n > 0
	}
	if timeout == 0 {
		var ok bool
		if err := rc.Control(func(fd uintptr) { ok = ready(fd) }); err != nil {
			return false, c.sendErr(err)
		}
		return ok, nil
	}
	if timeout > 0 {
		c.f.SetReadDeadline(time.Now().Add(timeout))
		defer c.f.SetReadDeadline(time.Time{})
	}
	// Read's callback runs when the poller says the fd is readable; it
	// only looks, consuming nothing.
	var ok bool
	err = rc.Read(func(fd uintptr) bool {
		ok = ready(fd)
		return ok
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false, nil
	}
	if err != nil {
		return false, c.sendErr(err)
	}
	return ok, nil
}

// Close closes this end. Later calls on it return an error matching
// ErrClosed; a Recv blocked on it returns at once. Closing twice is fine.
func (c *Conn) Close() error {
	if c == nil || c.f == nil {
		return nil
	}
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.f.Close()
	})
	return err
}

// ExportHandle is how a Conn travels to another process; called by the package.
func (c *Conn) ExportHandle() (handle.Desc, error) {
	if c.f == nil {
		return handle.Desc{}, errors.New("multiproc: passing a zero Conn")
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

// ImportHandle makes c the Conn described by d; called by the package.
func (c *Conn) ImportHandle(d handle.Desc) error {
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

// GobEncode refuses: a Conn travels only as a Func argument.
func (c *Conn) GobEncode() ([]byte, error) { return nil, errTravel }

// GobDecode refuses, as GobEncode does.
func (c *Conn) GobDecode([]byte) error { return errTravel }

// MarshalBinary refuses, as GobEncode does.
func (c *Conn) MarshalBinary() ([]byte, error) { return nil, errTravel }

// UnmarshalBinary refuses, as GobEncode does.
func (c *Conn) UnmarshalBinary([]byte) error { return errTravel }
