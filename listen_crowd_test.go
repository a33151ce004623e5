//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// crowd opens n connections to a unix socket at path and returns them;
// the test's cleanup closes them. It raises RLIMIT_NOFILE's soft limit to
// the hard one first (Go does so at start-up too; this is for a test
// binary run under a lower one), and skips when even that cannot hold the
// crowd on both ends.
func crowd(t *testing.T, path string, n int) []net.Conn {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
			lim = raised
		}
	}
	if need := uint64(2*n + 256); lim.Cur < need {
		t.Skipf("RLIMIT_NOFILE %d is below the %d descriptors a crowd of %d needs", lim.Cur, need, n)
	}
	cs := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("crowd connection %d: %v", len(cs), err)
		}
		cs = append(cs, c)
	}
	return cs
}

// dialWithin dials l with key and checks that the connection comes out of
// Accept within limit.
func dialWithin(t *testing.T, l *multiproc.Listener, key []byte, limit time.Duration) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c, err := multiproc.Dial(ctx, "unix", l.Addr().String(), key)
	if err != nil {
		t.Fatalf("a legitimate Dial behind the crowd: %v (after %v)", err, time.Since(start))
	}
	defer c.Close()
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept of the legitimate client: %v (after %v)", err, time.Since(start))
	}
	defer s.Close()
	if err := c.Send("hello"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := s.RecvContext(ctx, &got); err != nil || got != "hello" {
		t.Fatalf("after the handshake: %q, %v", got, err)
	}
	t.Logf("the legitimate client was through in %v", time.Since(start))
}

// TestListenSilentCrowd: 1,000 connections that never say a word (the
// handshake timeout is an hour, so no deadline saves the day) do not keep
// a legitimate client out for even a second. Before, the 65th silent peer
// filled the Listener's 64 slots and every later client waited in the
// kernel's queue until its own handshake timed out.
func TestListenSilentCrowd(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 300 // still far beyond the old limit of 64
	}
	key := []byte("crowd")
	path := filepath.Join(t.TempDir(), "s")
	l, err := multiproc.ListenConfig{HandshakeTimeout: time.Hour}.Listen("unix", path, key)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	crowd(t, path, n)
	dialWithin(t, l, key, time.Second)
	if n := l.Rejected(); n != 0 {
		t.Fatalf("Rejected() = %d: a silent peer within MaxPending was dropped", n)
	}
}

// TestListenCrowdBeyondMaxPending: more silent peers than MaxPending: the
// oldest handshakes are dropped (and counted) to make room, so the newest
// connection, the legitimate one, still gets through within a second.
func TestListenCrowdBeyondMaxPending(t *testing.T) {
	const maxPending, n = 16, 100
	key := []byte("crowd")
	path := filepath.Join(t.TempDir(), "s")
	rejects := make(chan error, n)
	l, err := multiproc.ListenConfig{
		HandshakeTimeout: time.Hour,
		MaxPending:       maxPending,
		OnReject:         func(_ net.Addr, err error) { rejects <- err },
	}.Listen("unix", path, key)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	crowd(t, path, n)
	dialWithin(t, l, key, time.Second)
	// At least n+1-maxPending handshakes were dropped to make room; each
	// says why.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n + 1 - maxPending {
		select {
		case err := <-rejects:
			if !errors.Is(err, multiproc.ErrAuthentication) {
				t.Fatalf("a dropped handshake reports %v", err)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d dropped handshakes reported", i, n+1-maxPending)
		}
	}
}

// TestListenSlowLoris: peers that read the challenge and then trickle
// their answer one byte at a time (a slow-loris attack), with 1,000 silent
// ones beside them, do not delay a legitimate client beyond a second; and
// the handshake deadline is one deadline for the whole handshake, which
// trickling does not push back.
func TestListenSlowLoris(t *testing.T) {
	n, loris := 1000, 100
	if testing.Short() {
		n, loris = 200, 50
	}
	key := []byte("crowd")
	path := filepath.Join(t.TempDir(), "s")
	rejects := make(chan error, n+loris)
	const timeout = time.Second
	l, err := multiproc.ListenConfig{
		HandshakeTimeout: timeout,
		OnReject:         func(_ net.Addr, err error) { rejects <- err },
	}.Listen("unix", path, key)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	slow := crowd(t, path, loris)
	for _, c := range slow {
		readChallenge(t, c)
	}
	// Trickle: every 50 ms each slow peer sends one byte of a length
	// header that announces a 100-byte answer, then of the answer.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		msg := append([]byte{0, 0, 0, 100}, make([]byte, 100)...)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(msg); i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, c := range slow {
				c.Write(msg[i : i+1])
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	crowd(t, path, n)
	dialWithin(t, l, key, time.Second)

	// Every slow peer is dropped by the handshake deadline although it
	// keeps sending: not later than the timeout after it connected (plus
	// slack for a loaded machine), well before its trickle of 104 bytes
	// (5.2 s) ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range loris {
		select {
		case err := <-rejects:
			_ = err
		case <-ctx.Done():
			t.Fatalf("%d of %d slow peers dropped", i, loris)
		}
	}
	if d := time.Since(start); d > timeout+3*time.Second {
		t.Fatalf("the slow peers were dropped after %v: trickling pushed the %v deadline back", d, timeout)
	}
}

// TestListenStaleRace: two Listen calls at once on one stale socket file.
// Exactly one wins, and the winner is the one that a Dial reaches; the
// other says the address is in use. Before, both succeeded about once in
// twenty: one removed the file the other had just bound, leaving it on an
// unlinked socket nobody can reach.
func TestListenStaleRace(t *testing.T) {
	rounds := 100
	if testing.Short() {
		rounds = 40
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for round := range rounds {
		path := filepath.Join(dir, fmt.Sprintf("s%d", round))
		ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ul.SetUnlinkOnClose(false)
		ul.Close() // stale, as a killed process leaves it

		var ls [2]*multiproc.Listener
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range ls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ls[i], errs[i] = multiproc.Listen("unix", path, nil)
			}()
		}
		close(start)
		wg.Wait()
		var won []*multiproc.Listener
		for i, l := range ls {
			if errs[i] == nil {
				won = append(won, l)
				defer l.Close()
			} else if !errors.Is(errs[i], syscall.EADDRINUSE) {
				t.Fatalf("round %d: the loser's error %v does not match EADDRINUSE", round, errs[i])
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d of 2 Listen calls won (errors %v, %v)", round, len(won), errs[0], errs[1])
		}
		c, err := multiproc.Dial(ctx, "unix", path, nil)
		if err != nil {
			t.Fatalf("round %d: the winner is unreachable: %v", round, err)
		}
		if err := c.Send(round); err != nil {
			t.Fatal(err)
		}
		// The loser's probe (it connects to learn the socket is live) may
		// come out of Accept first: it is the one that reads EOF.
		for got := -1; got != round; {
			s, err := won[0].Accept(ctx)
			if err != nil {
				t.Fatalf("round %d: the winner's Accept: %v", round, err)
			}
			err = s.RecvContext(ctx, &got)
			s.Close()
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		c.Close()
		won[0].Close()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: socket file after Close: %v", round, err)
		}
	}
}
