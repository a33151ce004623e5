//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/internal/parked"
)

var (
	// sendAfter receives one message on j.Go, then sends j.Msg on j.Out.
	sendAfter = multiproc.Register("test.sendAfter", func(ctx context.Context, j sendAfterJob) (int, error) {
		var go_ string
		if err := j.Go.RecvContext(ctx, &go_); err != nil {
			return 0, err
		}
		return 0, j.Out.Send(j.Msg)
	})
	// waitForWord blocks until a message arrives on its Conn.
	waitForWord = multiproc.Register("test.waitForWord", func(ctx context.Context, c *multiproc.Conn) (int, error) {
		var s string
		return 0, c.RecvContext(ctx, &s)
	})
)

type sendAfterJob struct {
	Go, Out *multiproc.Conn
	Msg     string
}

// pipes makes n one-way pipes, closed when the test ends.
func pipes(t *testing.T, n int) (rs, ws []*multiproc.Conn) {
	t.Helper()
	for range n {
		r, w, err := multiproc.Pipe(false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		rs, ws = append(rs, r), append(ws, w)
	}
	return rs, ws
}

// onePipe is one pipe of pipes.
func onePipe(t *testing.T) (r, w *multiproc.Conn) {
	rs, ws := pipes(t, 1)
	return rs[0], ws[0]
}

func asWaitables[T multiproc.Waitable](xs []T) []multiproc.Waitable {
	out := make([]multiproc.Waitable, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// One of a thousand pipes written by a child: Wait returns that one, with
// its message still in it, and holds one thread however many it watches.
func TestWaitManyConns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, ws := pipes(t, 1000)
	goR, goW := onePipe(t)
	const k = 617
	p := start(t, sendAfter.Process(sendAfterJob{Go: goR, Out: ws[k], Msg: "hello"}))
	objs := asWaitables(rs)

	// Nothing written: Wait gives up when ctx ends.
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	got, err := multiproc.Wait(short, objs...)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) || got != nil {
		t.Fatalf("Wait with nothing ready = %v, %v; want nil, DeadlineExceeded", got, err)
	}

	threads := countThreads(t)
	type res struct {
		got []multiproc.Waitable
		err error
	}
	done := make(chan res, 1)
	go func() { got, err := multiproc.Wait(ctx, objs...); done <- res{got, err} }()
	if err := parked.Wait(ctx, "(*waitSet).block", 1); err != nil {
		t.Fatal(err)
	}
	if n := countThreads(t); n > threads+2 {
		t.Errorf("a Wait on 1000 Conns: %d threads, %d before", n, threads)
	}
	if err := goW.Send("go"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || len(r.got) != 1 || r.got[0] != multiproc.Waitable(rs[k]) {
		t.Fatalf("Wait = %v, %v; want [rs[%d]]", r.got, r.err, k)
	}
	var s string
	if err := rs[k].RecvContext(ctx, &s); err != nil || s != "hello" {
		t.Fatalf("Recv after Wait = %q, %v; want the message Wait left in place", s, err)
	}
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

// Wait looks before it blocks: with ctx done, it still returns what is
// ready, every time (it consumes nothing), and each object once.
func TestWaitLooksFirstAndConsumesNothing(t *testing.T) {
	rs, ws := pipes(t, 3)
	if err := ws[1].Send("x"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 3 {
		got, err := multiproc.Wait(ctx, rs[0], rs[1], rs[2], rs[1])
		if err != nil || len(got) != 1 || got[0] != multiproc.Waitable(rs[1]) {
			t.Fatalf("Wait = %v, %v; want [rs[1]]", got, err)
		}
	}
	if got, err := multiproc.Wait(ctx, rs[0], rs[2]); !errors.Is(err, context.Canceled) || got != nil {
		t.Fatalf("Wait on nothing ready, ctx done = %v, %v; want nil, Canceled", got, err)
	}
	// The end of the stream is ready too, and Recv then reports it.
	ws[2].Close()
	got, err := multiproc.Wait(ctx, rs[0], rs[2])
	if err != nil || len(got) != 1 || got[0] != multiproc.Waitable(rs[2]) {
		t.Fatalf("Wait with rs[2] at EOF = %v, %v", got, err)
	}
	var s string
	if err := rs[2].Recv(&s); !errors.Is(err, io.EOF) {
		t.Fatalf("Recv at EOF = %v", err)
	}
}

// A Conn closed in this process while a Wait sleeps on it wakes the Wait,
// which returns it; its next call reports the close.
func TestWaitWokenByClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rs, _ := pipes(t, 2)
	done := make(chan []multiproc.Waitable, 1)
	go func() {
		got, err := multiproc.Wait(ctx, rs[0], rs[1])
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	if err := parked.Wait(ctx, "(*waitSet).block", 1); err != nil {
		t.Fatal(err)
	}
	rs[1].Close()
	select {
	case got := <-done:
		if len(got) != 1 || got[0] != multiproc.Waitable(rs[1]) {
			t.Fatalf("Wait = %v; want the closed Conn", got)
		}
	case <-ctx.Done():
		t.Fatal("Close did not wake Wait")
	}
	var s string
	if err := rs[1].Recv(&s); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("Recv on the closed Conn = %v; want ErrClosed", err)
	}
}

// A Process is ready once it has ended; its Done channel, taken before
// Start, closes then; a Listener is ready with a connection that Accept
// then returns.
func TestWaitProcessAndListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, w := onePipe(t)
	p := waitForWord.Process(r)
	done := p.Done()
	select {
	case <-done:
		t.Fatal("Done closed before Start")
	default:
	}
	if _, err := multiproc.Wait(ctx, p); !errors.Is(err, multiproc.ErrNotStarted) {
		t.Fatalf("Wait on an unstarted Process = %v; want ErrNotStarted", err)
	}
	start(t, p)
	if !slices.Contains(multiproc.ActiveChildren(), p) {
		t.Errorf("ActiveChildren() = %v misses the running child", multiproc.ActiveChildren())
	}
	l, err := multiproc.Listen("unix", fmt.Sprintf("@multiproc-test-wait-%d", time.Now().UnixNano()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	if got, err := multiproc.Wait(short, p, l); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait before anything happened = %v, %v", got, err)
	}
	cancelShort()

	dialed := make(chan error, 1)
	go func() {
		c, err := multiproc.Dial(ctx, "unix", l.Addr().String(), nil)
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	got, err := multiproc.Wait(ctx, p, l)
	if err != nil || len(got) != 1 || got[0] != multiproc.Waitable(l) {
		t.Fatalf("Wait with a client dialling = %v, %v; want [l]", got, err)
	}
	c, err := l.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept after Wait: %v (Wait must not take the connection)", err)
	}
	c.Close()
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}

	if err := w.Send("go"); err != nil {
		t.Fatal(err)
	}
	got, err = multiproc.Wait(ctx, l, p)
	if err != nil || len(got) != 1 || got[0] != multiproc.Waitable(p) {
		t.Fatalf("Wait with the child ending = %v, %v; want [p]", got, err)
	}
	select {
	case <-done:
	default:
		t.Fatal("Wait returned the Process but Done is not closed")
	}
	if slices.Contains(multiproc.ActiveChildren(), p) {
		t.Error("ActiveChildren lists a child that has ended")
	}
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

// A killed child wakes a Wait that sleeps on it and on Conns.
func TestWaitKilledChild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, _ := onePipe(t) // the child waits on it for ever: it is killed
	p := start(t, waitForWord.Process(r))
	rs, _ := pipes(t, 4)
	done := make(chan []multiproc.Waitable, 1)
	go func() {
		got, err := multiproc.Wait(ctx, append(asWaitables(rs), p)...)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	if err := parked.Wait(ctx, "(*waitSet).block", 1); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if got := <-done; len(got) != 1 || got[0] != multiproc.Waitable(p) {
		t.Fatalf("Wait = %v; want the killed Process", got)
	}
	if code, _ := p.ExitCode(); code != -9 {
		t.Errorf("exit code %d; want -9", code)
	}
}

func TestWaitBadObjects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, w := onePipe(t)
	var nilConn *multiproc.Conn
	for _, tc := range []struct {
		name string
		objs []multiproc.Waitable
		want error
	}{
		{"nil interface", []multiproc.Waitable{r, nil}, multiproc.ErrNotInitialized},
		{"nil *Conn", []multiproc.Waitable{nilConn}, multiproc.ErrNotInitialized},
		{"zero Conn", []multiproc.Waitable{new(multiproc.Conn)}, multiproc.ErrNotInitialized},
		{"zero Listener", []multiproc.Waitable{new(multiproc.Listener)}, multiproc.ErrNotInitialized},
		{"send-only end", []multiproc.Waitable{w}, multiproc.ErrSendOnly},
		{"unstarted Process", []multiproc.Waitable{waitForWord.Process(r)}, multiproc.ErrNotStarted},
	} {
		if got, err := multiproc.Wait(ctx, tc.objs...); !errors.Is(err, tc.want) || got != nil {
			t.Errorf("%s: Wait = %v, %v; want an error matching %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := multiproc.Wait(nil, r); err == nil { //nolint:staticcheck // a nil ctx is the bad input
		t.Error("Wait(nil ctx) did not fail")
	}
}

// Part of a message read by a receive cut short stays in the Conn, where
// epoll cannot see it: a Wait on the same Conns as before (which reuses
// what it learned of them) still returns that Conn, and stops returning
// it once the message is received whole.
func TestWaitHeldPartOfMessage(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	c, raw := rawPair(t)
	rs, _ := pipes(t, 3)
	objs := []multiproc.Waitable{rs[0], c, rs[1], rs[2]}
	done, cancel := context.WithCancel(ctx)
	cancel()
	for range 2 { // the second Wait reuses the first one's look
		if got, err := multiproc.Wait(done, objs...); !errors.Is(err, context.Canceled) || got != nil {
			t.Fatalf("Wait with nothing ready = %v, %v; want nil, Canceled", got, err)
		}
	}
	msg := framed([]byte("hello, part by part"))
	if _, err := raw.Write(msg[:7]); err != nil {
		t.Fatal(err)
	}
	// Receive until the receive gives up with the 7 bytes read and held.
	for {
		if ctx.Err() != nil {
			t.Fatal("Wait never returned the Conn holding part of a message")
		}
		short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
		_, err := c.RecvBytesContext(short)
		cancelShort()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a receive of part of a message: %v; want DeadlineExceeded", err)
		}
		if ok, err := c.Poll(0); err != nil || !ok {
			t.Fatalf("Poll with part of a message held = %v, %v", ok, err)
		}
		if got, err := multiproc.Wait(done, objs...); err == nil {
			if len(got) != 1 || got[0] != multiproc.Waitable(c) {
				t.Fatalf("Wait with part of a message held = %v; want [c]", got)
			}
			break
		} else if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		// The 7 bytes were not all read yet: they are still in the kernel,
		// and Wait would have returned c. Only a cut after reading them
		// leaves them held; try again.
	}
	if _, err := raw.Write(msg[7:]); err != nil {
		t.Fatal(err)
	}
	if b, err := c.RecvBytesContext(ctx); err != nil || string(b) != "hello, part by part" {
		t.Fatalf("the rest of the message: %q, %v", b, err)
	}
	for range 2 {
		if got, err := multiproc.Wait(done, objs...); !errors.Is(err, context.Canceled) || got != nil {
			t.Fatalf("Wait after the message was received = %v, %v; want nil, Canceled", got, err)
		}
	}
}
