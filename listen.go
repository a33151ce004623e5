//go:build linux && (amd64 || arm64)

package multiproc

import (
	"container/list"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc/internal/auth"
	"golang.org/x/sys/unix"
)

// DefaultHandshakeTimeout bounds each connection's authentication
// handshake when ListenConfig.HandshakeTimeout (or DialConfig's) is zero.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultMaxPending is the number of connections a Listener holds at once
// between the kernel's accept and the caller's Accept (handshakes under
// way and authenticated connections not yet taken) when
// ListenConfig.MaxPending is zero. Each costs a descriptor, a goroutine
// and a few KiB: 4096 of them about 40 MiB at most.
const DefaultMaxPending = 4096

// ListenConfig holds the options of a Listener; its zero value is what
// Listen uses.
type ListenConfig struct {
	// HandshakeTimeout bounds each connection's authentication handshake
	// (0: DefaultHandshakeTimeout). A peer that is silent, or slow, for
	// longer is dropped and counted in Rejected.
	HandshakeTimeout time.Duration
	// MaxPending bounds the connections held between the kernel and
	// Accept (0: DefaultMaxPending): handshakes under way and
	// authenticated connections that Accept has not taken yet.
	//
	// The Listener keeps taking connections from the kernel's queue
	// whatever its peers do, so that a crowd of silent or slow peers
	// cannot keep a client waiting there. A connection that arrives with
	// MaxPending held makes room by dropping the handshake that has run
	// longest (it is counted in Rejected, its error matches
	// ErrAuthentication): a legitimate peer's handshake takes one round
	// trip, so it is dropped only if MaxPending others arrive within
	// that round trip. Only when all MaxPending are authenticated
	// connections waiting for Accept does the Listener stop taking
	// connections until Accept takes one. When the process runs out of
	// descriptors, the oldest handshake is dropped too.
	MaxPending int
	// OnReject, if set, is called (from the connection's own goroutine)
	// with each connection dropped before Accept could return it: a wrong
	// key, a peer that hung up or stayed silent through the handshake. It
	// must not block: Close waits for the calls under way.
	OnReject func(remote net.Addr, err error)
}

// Listener is Python's multiprocessing.connection.Listener: it accepts
// connections on a unix socket or a TCP port and, with an authkey, lets
// through only peers that prove they hold the same key (Python's
// handshake, byte for byte, so python3's Client can connect — and Go's
// Dial).
//
// Each connection is accepted and authenticated in its own goroutine under
// a deadline, so a peer that connects and stays silent (which blocks
// Python's accept() for ever) never delays the next one; Accept returns
// only connections that passed. Failures are counted (Rejected) and
// reported to ListenConfig.OnReject, never returned by Accept.
//
// The limits on hostile peers: each handshake has one deadline
// (HandshakeTimeout, 10 s by default) for all of it, which a peer that
// trickles bytes does not push back; each handshake message is at most
// 256 bytes; and at most MaxPending connections (4096 by default) are
// held, the oldest handshake making room for a new connection (see
// ListenConfig.MaxPending). A crowd of a thousand silent or slow peers
// does not delay a legitimate client measurably. There is no limit per
// peer address: a unix socket's peers have none, and one TCP address can
// be many clients behind a NAT.
//
// A Listener belongs to the process that made it: it does not travel to
// children (the Conns it returns do).
//
// A Listener must not be copied after first use (go vet reports copies).
type Listener struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	cfg  ListenConfig
	key  []byte
	ln   net.Listener
	path string // the unix socket file this Listener made; "" for abstract names and TCP

	ready    chan *Conn
	closed   chan struct{}
	dead     chan struct{} // closed when the accept loop stopped on an error (loopErr)
	once     sync.Once
	wg       sync.WaitGroup
	rejected atomic.Int64
	offered  atomic.Int32 // connections authenticated and waiting for Accept (Wait's readiness)

	mu       sync.Mutex                 // guards room through loopErr below
	room     sync.Cond                  // on mu: signalled when pending drops or closed is closed
	pending  int                        // connections held: handshakes and authenticated ones not yet accepted (≤ cfg.MaxPending)
	inflight map[net.Conn]*list.Element // connections in their handshake, closed by Close; the Element is in oldest
	oldest   list.List                  // of *handshaking, oldest first: the one to drop for room
	loopErr  error                      // why the accept loop stopped, if not Close
}

// handshaking is a connection in its handshake. dropped (guarded by
// Listener.mu) says the Listener closed it to make room, and has already
// given its pending count back.
type handshaking struct {
	nc      net.Conn
	dropped bool
}

// errZeroListener is what the methods of a Listener that Listen did not
// make return (Addr panics with it).
var errZeroListener = &pkgError{"use of a zero Listener: a Listener comes from Listen", ErrNotInitialized}

// errDropped is the error a handshake dropped for room reports.
var errDropped = errorf("%w: handshake dropped to make room for a newer connection (ListenConfig.MaxPending connections pending)", ErrAuthentication)

// Listen listens on address and returns a Listener, as Python's
// Listener(address, authkey=authkey).
//
// network is "unix" or "tcp". A unix address is a socket file's path, or
// "@name" for Linux's abstract namespace (Python's "\0name"). A TCP
// address is "host:port"; port 0 picks a free port, which Addr tells.
//
// With a non-empty authkey every connection must pass the handshake; with
// an empty one there is none (as Python's Listener with authkey=None — a
// Python Client must then pass authkey=None too). A TCP listener on an
// address other than loopback needs an authkey: without one Listen refuses.
//
// A socket file left by a process that died does not make Listen fail: if
// a socket file exists at the path and nothing accepts on it (a connection
// attempt is refused), Listen removes it and binds again. A socket file
// someone listens on is an "address in use" error, and a file that is not
// a socket is never removed. Close removes the socket file, as Python does.
func Listen(network, address string, authkey []byte) (*Listener, error) {
	return ListenConfig{}.Listen(network, address, authkey)
}

// Listen is the package's Listen with the options of cfg.
func (cfg ListenConfig) Listen(network, address string, authkey []byte) (*Listener, error) {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	l := &Listener{
		cfg:      cfg,
		key:      append([]byte(nil), authkey...),
		ready:    make(chan *Conn),
		closed:   make(chan struct{}),
		dead:     make(chan struct{}),
		inflight: make(map[net.Conn]*list.Element),
	}
	l.room.L = &l.mu
	var err error
	switch network {
	case "unix":
		l.ln, l.path, err = listenUnix(address)
	case "tcp", "tcp4", "tcp6":
		if len(authkey) == 0 {
			if err := mustBeLoopback(network, address); err != nil {
				return nil, err
			}
		}
		l.ln, err = net.Listen(network, address)
		if err != nil {
			err = errorf("Listen: %w", err)
		}
	default:
		return nil, errorf("Listen: network %q: want \"unix\" or \"tcp\"", network)
	}
	if err != nil {
		return nil, err
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// mustBeLoopback refuses a TCP address that other machines could reach:
// without an authkey anyone there could connect.
func mustBeLoopback(network, address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return errorf("Listen: %w", err)
	}
	why := ""
	if host == "" {
		why = "all interfaces"
	} else if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			why = host
		}
	} else {
		ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip", host)
		if err != nil {
			return errorf("Listen: %w", err)
		}
		for _, ip := range ips {
			if !ip.IsLoopback() {
				why = host + " (" + ip.String() + ")"
			}
		}
	}
	if why != "" {
		return errorf("Listen %s %s: a TCP listener beyond loopback needs an authkey (else anyone who can reach %s may connect)", network, address, why)
	}
	return nil
}

// listenUnix binds a unix socket, replacing a stale socket file (one
// nobody accepts on) but never a file that is not a socket.
//
// Replacing is check (a connection is refused), remove, bind: two Listen
// calls doing it at once could each remove the socket the other had just
// bound, and one would listen on an unlinked socket nobody can reach; and
// a socket bound but not yet listening refuses connections too. So every
// Listen on a path holds an exclusive flock on the path's directory from
// its first bind to its last: Listen calls on one directory, in any
// process, bind one at a time. (Where the directory cannot be opened for
// the lock, Listen goes on without it.)
func listenUnix(address string) (net.Listener, string, error) {
	if address == "" {
		return nil, "", newError("Listen: empty unix address")
	}
	abstract := address[0] == '@' || address[0] == 0
	if address[0] == 0 {
		address = "@" + address[1:] // Python's spelling of an abstract name
	}
	if !abstract {
		if unlock, err := lockDir(filepath.Dir(address)); err == nil {
			defer unlock()
		}
	}
	ln, err := net.Listen("unix", address)
	if err == nil || abstract || !errors.Is(err, syscall.EADDRINUSE) {
		if err != nil {
			return nil, "", errorf("Listen: %w", err)
		}
		if abstract {
			return ln, "", nil
		}
		return ln, address, nil
	}
	fi, serr := os.Lstat(address)
	if serr != nil || fi.Mode().Type() != fs.ModeSocket {
		return nil, "", errorf("Listen: %w (and it is not a socket file: not removed)", err)
	}
	// Is anyone accepting? A refused connection means the socket file is
	// a leftover of a process that is gone.
	c, derr := net.DialTimeout("unix", address, time.Second)
	if derr == nil {
		c.Close()
		return nil, "", errorf("Listen: %w (a process accepts on it)", err)
	}
	if !errors.Is(derr, syscall.ECONNREFUSED) {
		return nil, "", errorf("Listen: %w (and connecting to it failed: %v)", err, derr)
	}
	if rerr := os.Remove(address); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return nil, "", errorf("Listen: removing the stale socket file: %w", rerr)
	}
	ln, err = net.Listen("unix", address)
	if err != nil {
		return nil, "", errorf("Listen: %w", err)
	}
	return ln, address, nil
}

// lockDir waits for an exclusive flock on the directory dir and returns
// its release.
func lockDir(dir string) (unlock func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return func() { unix.Close(fd) }, nil // closing the last descriptor releases the lock
}

// acceptLoop takes connections from the kernel as they come and runs
// each one's handshake in its own goroutine, making room for it (see
// ListenConfig.MaxPending) when MaxPending are held.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	backoff := time.Duration(0)
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			var ne net.Error
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors: a silent crowd may hold them. Drop
				// the oldest handshake and try again at once; with none
				// to drop, wait as below.
				l.mu.Lock()
				dropped := l.dropOldest()
				l.mu.Unlock()
				if dropped {
					continue
				}
			}
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				// Out of descriptors or memory for now: wait and retry, as
				// net/http does, rather than spin or give up.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
				case <-l.closed:
					return
				}
				continue
			}
			l.mu.Lock()
			l.loopErr = errorf("Accept: %w", err)
			l.mu.Unlock()
			close(l.dead) // not ready: handshakes under way may still deliver
			wakeWaiters()
			return
		}
		backoff = 0
		l.mu.Lock()
		for l.pending >= l.cfg.MaxPending && !l.dropOldest() && !l.isClosed() {
			l.room.Wait() // all held are authenticated: wait for Accept
		}
		if l.isClosed() {
			l.mu.Unlock()
			nc.Close()
			return
		}
		l.pending++
		l.inflight[nc] = l.oldest.PushBack(&handshaking{nc: nc})
		l.mu.Unlock()
		l.wg.Add(1)
		go l.serve(nc)
	}
}

// isClosed reports whether Close has begun.
func (l *Listener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// dropOldest closes the handshake that has run longest and gives its
// pending count back, reporting whether there was one. l.mu is held.
func (l *Listener) dropOldest() bool {
	e := l.oldest.Front()
	if e == nil {
		return false
	}
	h := l.oldest.Remove(e).(*handshaking)
	delete(l.inflight, h.nc)
	h.dropped = true
	h.nc.Close() // its handshake fails at once
	l.pending--
	return true
}

// release gives one pending count back. l.mu is held.
func (l *Listener) release() {
	l.pending--
	l.room.Signal()
}

// serve authenticates one connection and hands it to Accept.
func (l *Listener) serve(nc net.Conn) {
	defer l.wg.Done()
	err := l.handshake(nc)
	l.mu.Lock()
	e, held := l.inflight[nc]
	if held {
		delete(l.inflight, nc)
		l.oldest.Remove(e)
	} else {
		err = errDropped // its count is back already
	}
	l.mu.Unlock()
	var c *Conn
	if err == nil {
		c, err = ConnFromNet(nc)
	}
	if err != nil {
		nc.Close()
		if held {
			l.mu.Lock()
			l.release()
			l.mu.Unlock()
		}
		if l.isClosed() {
			return // closing: not a rejection
		}
		l.rejected.Add(1)
		if l.cfg.OnReject != nil {
			l.cfg.OnReject(nc.RemoteAddr(), own(err))
		}
		return
	}
	l.offered.Add(1)
	wakeWaiters()
	select {
	case l.ready <- c: // Accept counts it taken
	case <-l.closed:
		l.offered.Add(-1)
		c.Close()
	}
	l.mu.Lock()
	l.release()
	l.mu.Unlock()
}

// handshake runs Python's Listener side of the handshake (deliver a
// challenge, then answer the peer's) under the handshake deadline.
func (l *Listener) handshake(nc net.Conn) error {
	if len(l.key) == 0 {
		return nil
	}
	nc.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
	if err := auth.Deliver(nc, l.key); err != nil {
		return err
	}
	if err := auth.Answer(nc, l.key); err != nil {
		return err
	}
	return nc.SetDeadline(time.Time{})
}

// Accept waits for the next authenticated connection and returns it as a
// Conn, as Python's listener.accept(). It returns ctx's error when ctx
// ends first, and an error matching ErrClosed once the Listener is
// closed. Connections that fail the handshake never come out of Accept:
// see Rejected.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	if ctx == nil {
		return nil, errNilContext
	}
	if l == nil || l.ln == nil {
		return nil, errZeroListener
	}
	select {
	case <-l.closed:
		return nil, errorf("%w: Listener", ErrClosed)
	default:
	}
	select {
	case c := <-l.ready:
		l.offered.Add(-1)
		return c, nil
	case <-l.dead:
		select {
		case c := <-l.ready: // one that was authenticated meanwhile
			l.offered.Add(-1)
			return c, nil
		default:
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.loopErr
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.closed:
		return nil, errorf("%w: Listener", ErrClosed)
	}
}

// Rejected returns how many connections this Listener dropped before
// Accept could return them: a wrong key, a peer that does not speak the
// protocol, hung up mid-handshake or stayed silent past the handshake
// timeout, or dropped to make room (ListenConfig.MaxPending). A zero
// Listener has rejected none.
func (l *Listener) Rejected() int64 { return l.rejected.Load() }

// Addr returns the address the Listener accepts on: a *net.UnixAddr (an
// abstract name starts with "@") or a *net.TCPAddr, whose port is the one
// picked for ":0".
func (l *Listener) Addr() net.Addr {
	if l == nil || l.ln == nil {
		panic(errZeroListener)
	}
	return l.ln.Addr()
}

// Close stops accepting, drops the connections still in their handshake
// or not yet accepted, and removes the unix socket file. Accept calls
// blocked on it return an error matching ErrClosed; Conns already
// returned by Accept stay open. Closing twice is fine.
func (l *Listener) Close() error {
	if l == nil || l.ln == nil {
		return errZeroListener
	}
	var err error
	l.once.Do(func() {
		l.mu.Lock()
		close(l.closed)
		wakeWaiters()
		for nc := range l.inflight {
			nc.Close()
		}
		l.room.Broadcast()
		l.mu.Unlock()
		err = l.ln.Close() // a net.UnixListener removes its socket file
		l.wg.Wait()
		if err != nil {
			err = errorf("Listener close: %w", err)
		}
	})
	return err
}
