//go:build linux && (amd64 || arm64)

package spawn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/multiproc-go/multiproc/internal/fdwait"
	"github.com/multiproc-go/multiproc/internal/wait"
	"golang.org/x/sys/unix"
)

// Ctl is one end of a control channel: a SOCK_STREAM socketpair carrying
// typed messages, each with optional file descriptors (SCM_RIGHTS). Sends
// are serialised; one goroutine at a time may Recv.
type Ctl struct {
	// fd is non-blocking and not Go's poller's: a message caught spinning
	// then costs no spurious wake-up of the poller's thread (see
	// internal/fdwait).
	fd *fdwait.FD

	wmu sync.Mutex // guards hdr; held by Send for a whole message
	hdr []byte

	// Receive state, owned by the one goroutine in Recv (no lock): bytes
	// read but not yet parsed, and the stream's error.
	rbuf []byte
	r, w int
	oob  []byte
	err  error // set once the stream is broken: every later Recv returns it

	// Spin is the waiting policy of Recv. A receiver that hands each
	// message to another goroutine of its process sets Spin.Handoff.
	Spin wait.Spinner

	// fdMu guards fds: descriptors received but not yet claimed by a
	// message, in arrival order, which Close may empty during a Recv.
	// (err is not fdMu's: only the receiver reads or writes it, and does
	// so under fdMu only where it also touches fds.)
	fdMu sync.Mutex
	fds  []int
}

// MaxMessage is the largest length a message header may announce: a larger
// one is a corrupt stream. It is a sanity bound on the framing, not on
// memory: Recv never allocates what a header announces beyond
// smallPayload, it grows the payload as the bytes actually arrive (see
// Recv), so a peer that lies about a length costs at most about twice what
// it really sent.
const MaxMessage = 1 << 36

// smallPayload is the most Recv allocates at once on the word of a header:
// a larger payload grows as its bytes arrive.
const smallPayload = 1 << 20

// maxPendingFds bounds the descriptors held for messages not yet parsed.
// A message's descriptors arrive with its first bytes, so at most the
// current message's and a next one's (read ahead) can be waiting: more is
// a peer flooding descriptors, a broken stream.
const maxPendingFds = 2 * MaxFds

// MaxFds is the most descriptors one message may carry (the kernel's
// SCM_MAX_FD is 253).
const MaxFds = 250

// ErrTooManyFds refuses a message before anything of it is written.
var ErrTooManyFds = errors.New("too many descriptors in one message")

// ErrCorrupt reports a control stream that broke its framing.
var ErrCorrupt = errors.New("corrupt control stream")

// hdrLen is a message header: magic u32, type, fd count, payload length u64.
const hdrLen = 4 + 1 + 1 + 8

// NewCtl wraps fd, a connected AF_UNIX stream socket, which the Ctl then
// owns. It works on the socket through os.File and raw sendmsg/recvmsg,
// not the net package, which would make every program that uses multiproc
// link the C runtime and start slower.
func NewCtl(fd int) (*Ctl, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Ctl{fd: fdwait.New(fd), rbuf: make([]byte, 64<<10), oob: make([]byte, unix.CmsgSpace(4*MaxFds))}, nil
}

// Pair makes a connected socketpair: the first end wrapped as a Ctl for
// this process, the second as a file to hand to a child. Both are
// close-on-exec; exec.Cmd.ExtraFiles clears that for the child's copy.
func Pair() (*Ctl, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	ctl, err := NewCtl(fds[0])
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return ctl, os.NewFile(uintptr(fds[1]), "multiproc-ctl"), nil
}

// Send writes one message of type typ with payload and fds. The fds stay
// open in this process (the receiver gets its own copies).
func (c *Ctl) Send(typ byte, payload []byte, fds []int) error {
	if len(fds) > MaxFds {
		return fmt.Errorf("%w: %d, at most %d", ErrTooManyFds, len(fds), MaxFds)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	h := c.hdr[:0]
	h = binary.LittleEndian.AppendUint32(h, 0x4d50) // "MP": catches a desynchronised stream early
	h = append(h, typ, byte(len(fds)))
	h = binary.LittleEndian.AppendUint64(h, uint64(len(payload)))
	// Small messages go out in one write with their header.
	first := h
	rest := payload
	if len(payload) <= 16<<10 {
		first = append(h, payload...)
		rest = nil
	}
	c.hdr = first[:0]
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	var n int
	var serr error
	err := c.fd.Write(context.Background(), nil, func(fd int) bool {
		n, serr = unix.SendmsgN(fd, first, oob, nil, unix.MSG_NOSIGNAL)
		return serr != unix.EAGAIN && serr != unix.EINTR
	})
	if err == nil {
		err = serr
	}
	if err == nil && n < len(first) {
		err = c.writeAll(first[n:])
	}
	if err == nil && len(rest) > 0 {
		err = c.writeAll(rest)
	}
	return err
}

// writeAll writes all of p, waiting while the socket is full.
func (c *Ctl) writeAll(p []byte) error {
	_, err := c.fd.WriteAll(context.Background(), nil, p, func(fd int, b []byte) (int, error) {
		return unix.SendmsgN(fd, b, nil, nil, unix.MSG_NOSIGNAL)
	})
	return err
}

// Recv reads the next message. The payload is a fresh slice owned by the
// caller, and so are the fds. At EOF between messages it returns io.EOF.
//
// The peer is not trusted: a header that breaks the framing, descriptors
// nobody announced, or more of them than any message may carry make the
// stream broken (an error matching ErrCorrupt, from this and every later
// Recv; the extra descriptors are closed). A large payload is read in
// growing pieces, so memory follows the bytes that arrived, not the length
// the header claims.
func (c *Ctl) Recv() (typ byte, payload []byte, fds []int, err error) {
	if c.err != nil {
		return 0, nil, nil, c.err
	}
	typ, payload, fds, err = c.recv()
	if errors.Is(err, ErrCorrupt) {
		c.err = err
	}
	return typ, payload, fds, err
}

func (c *Ctl) recv() (typ byte, payload []byte, fds []int, err error) {
	if err := c.fill(hdrLen); err != nil {
		return 0, nil, nil, err
	}
	h := c.rbuf[c.r : c.r+hdrLen]
	if binary.LittleEndian.Uint32(h) != 0x4d50 {
		return 0, nil, nil, fmt.Errorf("%w: bad header %q", ErrCorrupt, h)
	}
	typ, nfd := h[4], int(h[5])
	size := binary.LittleEndian.Uint64(h[6:])
	if size > MaxMessage || nfd > MaxFds {
		return 0, nil, nil, fmt.Errorf("%w: a header announced %d bytes and %d descriptors", ErrCorrupt, size, nfd)
	}
	c.r += hdrLen
	payload = make([]byte, min(size, smallPayload))
	n := copy(payload, c.rbuf[c.r:c.w])
	c.r += n
	for uint64(n) < size {
		if n == len(payload) {
			// Grow by what has arrived: a lying header costs at most
			// about twice what the peer really sent.
			grow := int(min(size-uint64(n), uint64(n)))
			payload = slices.Grow(payload, grow)[:n+grow]
		}
		// Read the rest straight into the payload, still collecting any
		// descriptors that arrive on the way.
		m, err := c.read(payload[n:])
		if err != nil {
			return 0, nil, nil, unexpected(err)
		}
		n += m
	}
	c.fdMu.Lock()
	defer c.fdMu.Unlock()
	if c.err != nil { // read saw a descriptor flood
		return 0, nil, nil, c.err
	}
	if nfd > len(c.fds) {
		return 0, nil, nil, fmt.Errorf("%w: a message announced %d descriptors, %d arrived", ErrCorrupt, nfd, len(c.fds))
	}
	if nfd > 0 {
		fds = append([]int(nil), c.fds[:nfd]...)
		c.fds = c.fds[nfd:]
	}
	// A message's descriptors arrive with its first bytes: when nothing of
	// the next message has been read, any left are ones nobody announced.
	if c.r == c.w && len(c.fds) > 0 {
		n := len(c.fds)
		closeAll(c.fds)
		c.fds = nil
		closeAll(fds)
		return 0, nil, nil, fmt.Errorf("%w: %d descriptors arrived that no message announced", ErrCorrupt, n)
	}
	return typ, payload, fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// fill makes at least n unparsed bytes available in rbuf.
func (c *Ctl) fill(n int) error {
	for c.w-c.r < n {
		if c.r > 0 {
			c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
			c.r = 0
		}
		m, err := c.read(c.rbuf[c.w:])
		c.w += m
		if err != nil {
			if err == io.EOF && c.w-c.r > 0 {
				return unexpected(err)
			}
			return err
		}
	}
	return nil
}

func (c *Ctl) read(b []byte) (int, error) {
	var n, oobn int
	var rerr error
	// A pool task's answer often comes within microseconds: the wait
	// spins for it (as the waiting policy says) before it parks.
	err := c.fd.Read(context.Background(), &c.Spin, func(fd int) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(fd, b, c.oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	if err == nil {
		err = rerr
	}
	n, oobn = max(n, 0), max(oobn, 0)
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(c.oob[:oobn])
		if perr == nil {
			for _, m := range msgs {
				if fds, e := unix.ParseUnixRights(&m); e == nil {
					c.fdMu.Lock()
					if c.err != nil || len(c.fds)+len(fds) > maxPendingFds {
						// A flood: close what came, and the stream is broken.
						closeAll(fds)
						if c.err == nil {
							c.err = fmt.Errorf("%w: more than %d descriptors arrived ahead of their messages", ErrCorrupt, maxPendingFds)
						}
					} else {
						c.fds = append(c.fds, fds...)
					}
					c.fdMu.Unlock()
				}
			}
		}
	}
	if err == nil && n == 0 && len(b) > 0 {
		return 0, io.EOF
	}
	return n, err
}

func unexpected(err error) error {
	if err == io.EOF {
		return fmt.Errorf("control stream ended inside a message: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// Close closes the socket and any received descriptors nobody claimed.
func (c *Ctl) Close() error {
	c.fdMu.Lock()
	for _, fd := range c.fds {
		unix.Close(fd)
	}
	c.fds = nil
	c.fdMu.Unlock()
	if err := c.fd.Close(); err != nil {
		return os.ErrClosed
	}
	return nil
}

// SetReadDeadline makes a blocked or later Recv fail with
// os.ErrDeadlineExceeded once t has passed; the zero time clears it.
func (c *Ctl) SetReadDeadline(t time.Time) error {
	c.fd.SetReadDeadline(t)
	return nil
}
