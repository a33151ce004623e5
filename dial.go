//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"net"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc/internal/auth"
	"golang.org/x/sys/unix"
)

// DialConfig holds the options of Dial; its zero value is what Dial uses.
type DialConfig struct {
	// HandshakeTimeout bounds the authentication handshake after the
	// connection is made (0: DefaultHandshakeTimeout), whatever ctx's
	// deadline: a server that never sends its challenge (a Listener without
	// authkey, say) is an error, not a hang.
	HandshakeTimeout time.Duration
}

// Dial connects to a Listener (Go's, or python3's
// multiprocessing.connection.Listener) and returns the connection as a
// Conn, as Python's Client(address, authkey=authkey). network and address
// are as for Listen. With a non-empty authkey Dial runs Python's Client
// side of the handshake; a wrong key (on either side) is an error matching
// ErrAuthentication. ctx bounds the connection and the handshake.
func Dial(ctx context.Context, network, address string, authkey []byte) (*Conn, error) {
	return DialConfig{}.Dial(ctx, network, address, authkey)
}

// Dial is the package's Dial with the options of cfg.
func (cfg DialConfig) Dial(ctx context.Context, network, address string, authkey []byte) (*Conn, error) {
	if ctx == nil {
		return nil, errNilContext
	}
	switch network {
	case "unix":
		if address != "" && address[0] == 0 {
			address = "@" + address[1:]
		}
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, errorf("Dial: network %q: want \"unix\" or \"tcp\"", network)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, errorf("Dial: %w", err)
	}
	if len(authkey) > 0 {
		nc.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
		stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
		err := auth.Answer(nc, authkey)
		if err == nil {
			err = auth.Deliver(nc, authkey)
		}
		if !stop() || ctx.Err() != nil {
			if err == nil {
				err = ctx.Err()
			} else {
				err = errorf("Dial: %w (%v)", ctx.Err(), err)
			}
		}
		if err != nil {
			nc.Close()
			if _, ok := err.(ownError); !ok && err != ctx.Err() {
				err = errorf("Dial: %w", err)
			}
			return nil, err
		}
		nc.SetDeadline(time.Time{})
	}
	c, err := ConnFromNet(nc)
	nc.Close()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ConnFromNet makes a duplex Conn of a connected socket made with the net
// package (a *net.UnixConn or *net.TCPConn, from net.Dial or a
// net.Listener's Accept) and closes nc: the Conn holds a duplicate of its
// descriptor, which can travel to children. No handshake is run: use Dial
// and Listen for an authkey. Prefer it to ConnFromFd(int(f.Fd())) of
// nc.File(): there, an *os.File and the Conn would own one descriptor
// number, and both close it.
func ConnFromNet(nc net.Conn) (*Conn, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, errorf("a %T has no descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, errorf("%w", err)
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, errorf("%w", err)
	}
	if derr != nil {
		return nil, errorf("dup: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, errorf("%w", err)
	}
	nc.Close()
	return newConn(fd, true, true), nil
}
