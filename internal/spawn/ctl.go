package spawn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Ctl is one end of a control channel: a SOCK_STREAM socketpair carrying
// typed messages, each with optional file descriptors (SCM_RIGHTS). Sends
// are serialised; one goroutine at a time may Recv.
type Ctl struct {
	conn *net.UnixConn

	wmu sync.Mutex
	hdr []byte

	// receive state: bytes read but not yet parsed, and fds received but
	// not yet claimed by a message, in arrival order.
	rbuf []byte
	r, w int
	oob  []byte

	fdMu sync.Mutex // fds is shared with Close, which may run during a Recv
	fds  []int
}

// MaxMessage is the largest control message accepted: larger lengths are
// treated as a corrupt stream rather than allocated.
const MaxMessage = 1 << 36

// maxFds is the most descriptors one message may carry (the kernel's
// SCM_MAX_FD is 253).
const maxFds = 250

// ErrCorrupt reports a control stream that broke its framing.
var ErrCorrupt = errors.New("multiproc: corrupt control stream")

// hdrLen is a message header: magic u32, type, fd count, payload length u64.
const hdrLen = 4 + 1 + 1 + 8

// NewCtl wraps a connected AF_UNIX stream socket; the Ctl owns f.
func NewCtl(f *os.File) (*Ctl, error) {
	c, err := net.FileConn(f)
	f.Close() // FileConn dup'ed it
	if err != nil {
		return nil, fmt.Errorf("multiproc: control socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, errors.New("multiproc: control socket is not a unix socket")
	}
	return &Ctl{conn: uc, rbuf: make([]byte, 64<<10), oob: make([]byte, unix.CmsgSpace(4*maxFds))}, nil
}

// Pair makes a connected socketpair: the first end wrapped as a Ctl for
// this process, the second as a file to hand to a child. Both are
// close-on-exec; exec.Cmd.ExtraFiles clears that for the child's copy.
func Pair() (*Ctl, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("multiproc: socketpair: %w", err)
	}
	ctl, err := NewCtl(os.NewFile(uintptr(fds[0]), "multiproc-ctl"))
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return ctl, os.NewFile(uintptr(fds[1]), "multiproc-ctl"), nil
}

// Send writes one message of type typ with payload and fds. The fds stay
// open in this process (the receiver gets its own copies).
func (c *Ctl) Send(typ byte, payload []byte, fds []int) error {
	if len(fds) > maxFds {
		return fmt.Errorf("multiproc: %d descriptors in one message, at most %d", len(fds), maxFds)
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
	n, _, err := c.conn.WriteMsgUnix(first, oob, nil)
	if err == nil && n < len(first) {
		_, err = c.conn.Write(first[n:])
	}
	if err == nil && len(rest) > 0 {
		_, err = c.conn.Write(rest)
	}
	return err
}

// Recv reads the next message. The payload is a fresh slice owned by the
// caller, and so are the fds. At EOF between messages it returns io.EOF.
func (c *Ctl) Recv() (typ byte, payload []byte, fds []int, err error) {
	if err := c.fill(hdrLen); err != nil {
		return 0, nil, nil, err
	}
	h := c.rbuf[c.r : c.r+hdrLen]
	if binary.LittleEndian.Uint32(h) != 0x4d50 {
		return 0, nil, nil, ErrCorrupt
	}
	typ, nfd := h[4], int(h[5])
	size := binary.LittleEndian.Uint64(h[6:])
	if size > MaxMessage {
		return 0, nil, nil, ErrCorrupt
	}
	c.r += hdrLen
	payload = make([]byte, size)
	n := copy(payload, c.rbuf[c.r:c.w])
	c.r += n
	for n < len(payload) {
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
	if nfd > len(c.fds) {
		return 0, nil, nil, fmt.Errorf("%w: a message announced %d descriptors, %d arrived", ErrCorrupt, nfd, len(c.fds))
	}
	if nfd > 0 {
		fds = append([]int(nil), c.fds[:nfd]...)
		c.fds = c.fds[nfd:]
	}
	return typ, payload, fds, nil
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
	n, oobn, _, _, err := c.conn.ReadMsgUnix(b, c.oob)
	n, oobn = max(n, 0), max(oobn, 0) // -1 on some errors
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(c.oob[:oobn])
		if perr == nil {
			for _, m := range msgs {
				if fds, e := unix.ParseUnixRights(&m); e == nil {
					c.fdMu.Lock()
					c.fds = append(c.fds, fds...)
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
		return fmt.Errorf("multiproc: control stream ended inside a message: %w", io.ErrUnexpectedEOF)
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
	return c.conn.Close()
}

// SetReadDeadline makes a blocked or later Recv fail with
// os.ErrDeadlineExceeded once t has passed; the zero time clears it.
func (c *Ctl) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// CloseWrite shuts down the sending direction: the peer reads EOF.
func (c *Ctl) CloseWrite() error { return c.conn.CloseWrite() }
