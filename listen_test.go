//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// sockEcho answers every pickled object on its Conn with [obj, its pid]
// until EOF: a Conn from Accept, passed to a pool task.
var sockEcho = multiproc.Register("test.sock-echo", func(ctx context.Context, c *multiproc.Conn) (int, error) {
	defer c.Close()
	for n := 0; ; n++ {
		v, err := c.RecvPickle()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := c.SendPickle([]any{v, os.Getpid()}); err != nil {
			return n, err
		}
	}
})

// TestSocketGoGo: Dial to Listen over each network, with and without a
// key, every kind of message; a wrong key fails on both sides.
func TestSocketGoGo(t *testing.T) {
	for _, a := range sockAddrs(t) {
		for _, key := range []string{"", "k3y"} {
			t.Run(a.name+"/key="+key, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				l, err := multiproc.Listen(a.network, a.addr, []byte(key))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				type res struct {
					c   *multiproc.Conn
					err error
				}
				got := make(chan res, 1)
				go func() { c, err := l.Accept(ctx); got <- res{c, err} }()
				c, err := multiproc.Dial(ctx, a.network, l.Addr().String(), []byte(key))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				r := <-got
				if r.err != nil {
					t.Fatal(r.err)
				}
				s := r.c
				defer s.Close()
				// A receive that never returns is ended by the deadline.
				defer context.AfterFunc(ctx, func() { c.Close(); s.Close() })()
				if err := c.SendBytes([]byte("raw")); err != nil {
					t.Fatal(err)
				}
				if b, err := s.RecvBytes(); err != nil || string(b) != "raw" {
					t.Fatalf("%q %v", b, err)
				}
				if err := s.Send(Point{1, 2}); err != nil {
					t.Fatal(err)
				}
				var p Point
				if err := c.Recv(&p); err != nil || p != (Point{1, 2}) {
					t.Fatalf("%v %v", p, err)
				}
				if err := c.SendPickle(goExpected()); err != nil {
					t.Fatal(err)
				}
				if v, err := s.RecvPickle(); err != nil || !deepEqual(v, any(goExpected())) {
					t.Fatalf("%#v %v", v, err)
				}
				c.Close()
				if _, err := s.RecvBytes(); !errors.Is(err, io.EOF) {
					t.Fatalf("after the peer closed: %v", err)
				}
			})
		}
	}
	t.Run("wrong-key", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rejects := make(chan error, 1)
		l, err := multiproc.ListenConfig{OnReject: func(_ net.Addr, err error) { rejects <- err }}.Listen("unix", fmt.Sprintf("@multiproc-wrongkey-%d-%s", os.Getpid(), t.Name()), []byte("a"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if _, err := multiproc.Dial(ctx, "unix", l.Addr().String(), []byte("b")); !errors.Is(err, multiproc.ErrAuthentication) {
			t.Fatalf("Dial: %v", err)
		}
		if err := <-rejects; !errors.Is(err, multiproc.ErrAuthentication) || !strings.HasPrefix(err.Error(), "multiproc: ") || strings.Count(err.Error(), "multiproc:") != 1 {
			t.Fatalf("listener side: %v", err)
		}
	})
}

type Point struct{ X, Y int }

// TestSocketConnToPoolTask: a Conn from Accept travels to a pool worker,
// which serves the dialer.
func TestSocketConnToPoolTask(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := multiproc.Listen("tcp", "127.0.0.1:0", []byte("pool"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pool, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Terminate()
	client, err := multiproc.Dial(ctx, "tcp", l.Addr().String(), []byte("pool"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	defer context.AfterFunc(ctx, func() { client.Close() })()
	served, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := sockEcho.ApplyAsync(pool, served)
	for i := range 3 {
		if err := client.SendPickle(multiproc.Tuple{"ping", i}); err != nil {
			t.Fatal(err)
		}
		v, err := client.RecvPickle()
		if err != nil {
			t.Fatal(err)
		}
		l, ok := v.([]any)
		if !ok || len(l) != 2 || !deepEqual(l[0], multiproc.Tuple{"ping", int64(i)}) || l[1] == int64(os.Getpid()) {
			t.Fatalf("from the worker: %#v", v)
		}
	}
	served.Close() // the worker holds its own copy
	client.Close()
	if n, err := res.Get(ctx); err != nil || n != 3 {
		t.Fatalf("task: %d, %v", n, err)
	}
}

// TestSocketHostilePeers: a silent peer does not block the next client;
// one that announces a 1 GiB answer is refused without allocating it; one
// that hangs up mid-handshake is counted and forgotten.
func TestSocketHostilePeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rejects := make(chan error, 10)
	l, err := multiproc.ListenConfig{
		HandshakeTimeout: time.Hour, // the silent peer must not be saved by a timeout
		OnReject:         func(_ net.Addr, err error) { rejects <- err },
	}.Listen("tcp", "127.0.0.1:0", []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	readChallenge(t, silent) // the handshake has started with it

	// The next client gets through while the silent one holds on.
	c, err := multiproc.Dial(ctx, "tcp", addr, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	// 1 GiB announced as the answer to the challenge.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	huge, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer huge.Close()
	readChallenge(t, huge)
	huge.Write(binary.BigEndian.AppendUint32(nil, 1<<30))
	select {
	case err := <-rejects:
		if !errors.Is(err, multiproc.ErrAuthentication) || !strings.Contains(err.Error(), "1073741824") {
			t.Fatalf("1 GiB answer: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the 1 GiB answer was not refused")
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("allocated %d bytes while refusing it", grew)
	}

	// A peer that hangs up mid-handshake.
	quitter, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	readChallenge(t, quitter)
	quitter.Close()
	select {
	case err := <-rejects:
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("hang-up: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the hang-up was not reported")
	}
	if n := l.Rejected(); n != 2 {
		t.Fatalf("Rejected() = %d, want 2", n)
	}
	// Still serving.
	c2, err := multiproc.Dial(ctx, "tcp", addr, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if s, err := l.Accept(ctx); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
}

// TestSocketDialHostileServer: a server that announces a 1 GiB challenge,
// or says nothing, fails Dial with a clear error in bounded time.
func TestSocketDialHostileServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write(binary.BigEndian.AppendUint32(nil, 1<<30))
			defer c.Close()
		}
	}()
	if _, err := multiproc.Dial(ctx, "tcp", ln.Addr().String(), []byte("k")); !errors.Is(err, multiproc.ErrAuthentication) {
		t.Fatalf("1 GiB challenge: %v", err)
	}
	// A server without authkey never challenges: the handshake timeout ends it.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	_, err = multiproc.DialConfig{HandshakeTimeout: 200 * time.Millisecond}.Dial(ctx, "tcp", silent.Addr().String(), []byte("k"))
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent server: %v", err)
	}
	// And ctx ends it too.
	cctx, ccancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer ccancel()
	if _, err := multiproc.Dial(cctx, "tcp", silent.Addr().String(), []byte("k")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled Dial: %v", err)
	}
}

func readChallenge(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, b); err != nil || !strings.HasPrefix(string(b), "#CHALLENGE#{sha256}") {
		t.Fatalf("challenge %q, %v", b, err)
	}
}

// TestListenAddresses: TCP beyond loopback needs a key; a stale unix
// socket file is replaced, a live one or a regular file is not; Close
// removes the socket file.
func TestListenAddresses(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0"} {
		if l, err := multiproc.Listen("tcp", addr, nil); err == nil {
			l.Close()
			t.Fatalf("Listen(tcp, %s) without a key succeeded", addr)
		} else if !strings.Contains(err.Error(), "authkey") {
			t.Fatalf("Listen(tcp, %s): %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		l, err := multiproc.Listen("tcp", addr, nil)
		if err != nil {
			t.Fatalf("Listen(tcp, %s): %v", addr, err)
		}
		l.Close()
	}
	l, err := multiproc.Listen("tcp", ":0", []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()

	dir := t.TempDir()
	stale := filepath.Join(dir, "stale")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close() // as a killed process leaves it
	if _, err := os.Stat(stale); err != nil {
		t.Fatal(err)
	}
	l, err = multiproc.Listen("unix", stale, nil)
	if err != nil {
		t.Fatalf("over a stale socket file: %v", err)
	}
	if _, err := multiproc.Listen("unix", stale, nil); err == nil || !strings.Contains(err.Error(), "accepts on it") {
		t.Fatalf("over a live one: %v", err)
	}
	l.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after Close: %v", err)
	}
	regular := filepath.Join(dir, "regular")
	os.WriteFile(regular, []byte("precious"), 0o600)
	if _, err := multiproc.Listen("unix", regular, nil); err == nil {
		t.Fatal("Listen over a regular file succeeded")
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "precious" {
		t.Fatalf("the regular file: %q, %v", b, err)
	}
	if _, err := multiproc.Listen("udp", "127.0.0.1:0", nil); err == nil {
		t.Fatal("udp accepted")
	}

	// Accept after Close, and Close with an Accept blocked.
	l, err = multiproc.Listen("unix", fmt.Sprintf("@multiproc-close-%d-%s", os.Getpid(), filepath.Base(dir)), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := l.Accept(context.Background()); done <- err }()
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, multiproc.ErrClosed) {
			t.Fatalf("blocked Accept: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not end a blocked Accept")
	}
}

// TestRecvPickleBadFrames: a frame that is not a pickle, a malicious one
// or one over a decoding limit is an error and the Conn goes on; one over
// SetMaxMessage is reported by every receive until the limit is raised.
func TestRecvPickleBadFrames(t *testing.T) {
	a, b, err := multiproc.Pipe(true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range [][]byte{
		[]byte("not a pickle"),
		[]byte("cos\nsystem\n(S'echo pwned'\ntR."),
		{0x80, 4, 0x8c, 5, 'p', 'o', 's', 'i', 'x', 0x94, 0x8c, 6, 's', 'y', 's', 't', 'e', 'm', 0x93, '.'},
		[]byte("L" + strings.Repeat("9", 5000) + "L\n."),
		[]byte("\x80\x04" + strings.Repeat("]", 2000) + strings.Repeat("a", 1999) + "."),
		[]byte("\x80\x04]\x94h\x00a."), // l = []; l.append(l)
	} {
		if err := b.SendBytesContext(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SendPickleContext(ctx, "fine"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{multiproc.ErrNotPickle, multiproc.ErrPickleUnsafe, multiproc.ErrPickleUnsafe,
		multiproc.ErrPickleLimit, multiproc.ErrPickleLimit, multiproc.ErrPickleUnsupported} {
		if v, err := a.RecvPickleContext(ctx); !errors.Is(err, want) || strings.Count(err.Error(), "multiproc:") != 1 {
			t.Fatalf("message %d: %v, %v", i, v, err)
		}
	}
	if v, err := a.RecvPickleContext(ctx); err != nil || v != "fine" {
		t.Fatalf("after the bad frames: %v, %v", v, err)
	}
	if err := b.SendPickle(struct{ A int }{1}); !errors.Is(err, multiproc.ErrPickleUnsupported) {
		t.Fatalf("SendPickle(struct): %v", err)
	}
	a.SetMaxMessage(10)
	b.SendPickle(strings.Repeat("x", 100))
	for range 2 {
		if _, err := a.RecvPickleContext(ctx); !errors.Is(err, multiproc.ErrMessageTooLarge) {
			t.Fatalf("a message over the limit: %v", err)
		}
	}
	a.SetMaxMessage(0)
	if v, err := a.RecvPickleContext(ctx); err != nil || v != strings.Repeat("x", 100) {
		t.Fatalf("after raising the limit: %v, %v", v, err)
	}
	// A receive with nothing to receive ends with its context, and the
	// Conn goes on.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := a.RecvPickleContext(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RecvPickleContext on an empty pipe: %v", err)
	}
	b.SendPickle(multiproc.Tuple{int64(1)})
	if v, err := a.RecvPickleContext(ctx); err != nil || !deepEqual(v, multiproc.Tuple{int64(1)}) {
		t.Fatalf("after a receive that timed out: %v, %v", v, err)
	}
	if _, err := a.RecvPickleContext(nil); err == nil { //nolint:staticcheck // a nil context is an error
		t.Fatal("RecvPickleContext(nil) worked")
	}
}

func deepEqual(a, b any) bool { return reflect.DeepEqual(a, b) }

// TestConnFromNet: a Conn of a net.Conn's socket waits for a late reply
// (ConnFromFd of nc.File()'s descriptor failed here with EAGAIN).
func TestConnFromNet(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	asked := make(chan struct{})
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		io.ReadFull(s, make([]byte, 4))
		<-asked // reply only once the Conn waits in RecvBytes
		s.Write([]byte{0, 0, 0, 2, 'h', 'i'})
	}()
	nc, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := multiproc.ConnFromNet(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendBytes(nil); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		b, err := c.RecvBytes()
		if err == nil && string(b) != "hi" {
			err = errors.New("got " + string(b))
		}
		got <- err
	}()
	// Let RecvBytes reach its wait (nothing is there to read yet); a
	// broken Conn fails at once instead of waiting.
	select {
	case err := <-got:
		t.Fatalf("RecvBytes returned before the reply: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(asked)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no reply")
	}
}
