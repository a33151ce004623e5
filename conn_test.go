//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/internal/parked"
	aconfig "github.com/multiproc-go/multiproc/internal/wire/testtypes/a/config"
	bconfig "github.com/multiproc-go/multiproc/internal/wire/testtypes/b/config"
)

type msg struct {
	ID    int
	Name  string
	Vals  []float64
	Inner *struct{ OK bool }
}

type echoJob struct {
	Conn  *multiproc.Conn
	Bytes bool
}

var (
	// echo sends back every message it receives until EOF.
	echo = multiproc.Register("test.echo", func(ctx context.Context, j echoJob) (int, error) {
		n := 0
		for {
			if j.Bytes {
				b, err := j.Conn.RecvBytesContext(ctx)
				if err == io.EOF {
					return n, nil
				}
				if err != nil {
					return n, err
				}
				if err := j.Conn.SendBytes(b); err != nil {
					return n, err
				}
			} else {
				var m msg
				if err := j.Conn.RecvContext(ctx, &m); err == io.EOF {
					return n, nil
				} else if err != nil {
					return n, err
				}
				m.ID++
				if err := j.Conn.Send(m); err != nil {
					return n, err
				}
			}
			n++
		}
	})
	// sendBig sends one message of N bytes (byte i = i%251) and returns.
	sendBig = multiproc.Register("test.sendBig", func(ctx context.Context, j bigJob) (int, error) {
		b := make([]byte, j.N)
		for i := range b {
			b[i] = byte(i % 251)
		}
		return 0, j.Conn.SendBytes(b)
	})
)

type bigJob struct {
	Conn *multiproc.Conn
	N    int
}

func TestPipePingPongStructs(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	a, b, err := multiproc.Pipe(true)
	if err != nil {
		t.Fatal(err)
	}
	p := echo.Process(echoJob{Conn: b})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	b.Close() // the child has its own copy
	for i := range 5000 {
		out := msg{ID: i, Name: fmt.Sprint("m", i), Vals: []float64{float64(i), 0.5}, Inner: &struct{ OK bool }{i%2 == 0}}
		if err := a.Send(out); err != nil {
			t.Fatal(err)
		}
		var in msg
		if err := a.RecvContext(ctx, &in); err != nil {
			t.Fatal(err)
		}
		if in.ID != i+1 || in.Name != out.Name || len(in.Vals) != 2 || in.Vals[0] != float64(i) || in.Inner == nil || in.Inner.OK != (i%2 == 0) {
			t.Fatalf("round trip %d: %+v", i, in)
		}
	}
	a.Close()
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPipeBytesAndEOF(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	a, b, _ := multiproc.Pipe(true)
	p := echo.Process(echoJob{Conn: b, Bytes: true})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, size := range []int{0, 1, 64, 16 << 10, 16<<10 + 1, 1 << 20} {
		in := bytes.Repeat([]byte{byte(size)}, size)
		if err := a.SendBytes(in); err != nil {
			t.Fatal(err)
		}
		out, err := a.RecvBytesContext(ctx)
		if err != nil || !bytes.Equal(in, out) {
			t.Fatalf("size %d: %v", size, err)
		}
	}
	a.Close()
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPipe64MiBFromExitedChild(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	r, w, err := multiproc.Pipe(false)
	if err != nil {
		t.Fatal(err)
	}
	p := sendBig.Process(bigJob{Conn: w, N: 64 << 20})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, err := r.RecvBytesContext(ctx)
	if err != nil || len(b) != 64<<20 {
		t.Fatalf("64 MiB message: %d bytes, %v", len(b), err)
	}
	for i := 0; i < len(b); i += 4093 {
		if b[i] != byte(i%251) {
			t.Fatalf("byte %d = %d", i, b[i])
		}
	}
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RecvBytesContext(ctx); err != io.EOF {
		t.Fatalf("after the writer exited: %v, want io.EOF", err)
	}
}

func TestConnErrors(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	r, w, _ := multiproc.Pipe(false)
	if err := r.SendBytes([]byte("x")); !errors.Is(err, multiproc.ErrReceiveOnly) {
		t.Fatalf("Send on the receive end: %v", err)
	}
	if _, err := w.RecvBytesContext(ctx); !errors.Is(err, multiproc.ErrSendOnly) {
		t.Fatalf("Recv on the send end: %v", err)
	}
	r.Close()
	if err := sendUntilFails(ctx, w); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Send to a closed peer: %v, want EPIPE", err)
	}
	if _, err := r.RecvBytesContext(ctx); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal("second Close:", err)
	}

	a, b, _ := multiproc.Pipe(true)
	defer a.Close()
	defer b.Close()
	if err := a.Send(42); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := b.RecvContext(ctx, &s); err == nil || !strings.Contains(err.Error(), "int") {
		t.Fatalf("Recv of an int into a string: %v", err)
	}
	if err := b.RecvContext(ctx, s); err == nil {
		t.Fatal("Recv into a non-pointer succeeded")
	}
	if err := a.Send(make(chan int)); err == nil {
		t.Fatal("Send of a channel succeeded")
	}
	v, _ := multiproc.NewValue[int64](1)
	if err := a.Send(struct{ V *multiproc.Value[int64] }{v}); err == nil {
		t.Fatal("Send of a shared Value succeeded")
	}
}

func TestConnGarbledFrames(t *testing.T) {
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"huge length", []byte{0x7f, 0xff, 0xff, 0xff}, "limit"},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xfb}, "malformed"},
		{"truncated payload", []byte{0, 0, 0, 10, 1, 2, 3}, "end of file"},
		{"truncated header", []byte{0, 0}, "end of file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			r := multiproc.ConnFromFd(fds[0])
			defer r.Close()
			r.SetMaxMessage(1 << 20)
			raw := os.NewFile(uintptr(fds[1]), "raw")
			raw.Write(c.data)
			raw.Close()
			_, err = r.RecvBytesContext(ctx)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("RecvBytes = %v, want an error about %q", err, c.want)
			}
		})
	}
}

func TestConnPoll(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	a, b, _ := multiproc.Pipe(true)
	defer a.Close()
	defer b.Close()
	if ok, err := b.Poll(0); ok || err != nil {
		t.Fatalf("Poll on an empty pipe = %v, %v", ok, err)
	}
	start := time.Now()
	if ok, _ := b.Poll(50 * time.Millisecond); ok {
		t.Fatal("Poll with timeout on an empty pipe = true")
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Fatal("Poll returned before its timeout")
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		a.SendBytes([]byte("hi"))
	}()
	if ok, err := b.Poll(10 * time.Second); !ok || err != nil {
		t.Fatalf("Poll while a message arrives = %v, %v", ok, err)
	}
	if m, err := b.RecvBytesContext(ctx); err != nil || string(m) != "hi" {
		t.Fatal(m, err)
	}
}

// TestConnPythonInterop exchanges messages with a real python3 process
// that holds the other end as a multiprocessing.connection.Connection.
func TestConnPythonInterop(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the interop test needs it")
	}
	ctx := testCtx(t, 120*time.Second)
	// The Python side gets a plain socketpair end as fd 3.
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	goEnd := multiproc.ConnFromFd(fds[0])
	defer goEnd.Close()
	pyEnd := os.NewFile(uintptr(fds[1]), "py")
	script := `
from multiprocessing.connection import Connection
c = Connection(3)
c.send_bytes(b"hello from python")
while True:
    try:
        m = c.recv_bytes()
    except EOFError:
        break
    c.send_bytes(b"py:" + m[::-1] if len(m) < 100 else m)
`
	cmd := exec.CommandContext(ctx, py, "-c", script)
	cmd.ExtraFiles = []*os.File{pyEnd}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pyEnd.Close()
	first, err := goEnd.RecvBytesContext(ctx)
	if err != nil || string(first) != "hello from python" {
		t.Fatalf("first message from python: %q, %v", first, err)
	}
	for _, m := range []string{"abc", "", "multiproc"} {
		if err := goEnd.SendBytes([]byte(m)); err != nil {
			t.Fatal(err)
		}
		back, err := goEnd.RecvBytesContext(ctx)
		rev := []rune(m)
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
		if err != nil || string(back) != "py:"+string(rev) {
			t.Fatalf("echo of %q: %q, %v", m, back, err)
		}
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := goEnd.SendBytes(big); err != nil {
		t.Fatal(err)
	}
	back, err := goEnd.RecvBytesContext(ctx)
	if err != nil || !bytes.Equal(back, big) {
		t.Fatalf("64 MiB through python: %d bytes, %v", len(back), err)
	}
	goEnd.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v", err)
	}
}

// TestConnConcurrentSenders: messages sent from several goroutines at once
// (small ones in one write, large ones in two) never interleave.
func TestConnConcurrentSenders(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	a, b, _ := multiproc.Pipe(true)
	p := echo.Process(echoJob{Conn: b, Bytes: true})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	const senders, each = 4, 200
	done := make(chan error, senders)
	for s := range senders {
		go func() {
			for i := range each {
				size := 1 + (i*7919)%40000 // both sides of the 16 KiB single-write limit
				done <- nil
				if err := a.SendBytes(bytes.Repeat([]byte{byte(s)}, size)); err != nil {
					done <- err
					return
				}
			}
		}()
	}
	for range senders * each {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("no sender went on:", ctx.Err())
		}
		m, err := a.RecvBytesContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range m {
			if c != m[0] {
				t.Fatalf("a %d-byte message mixes the bytes of two senders", len(m))
			}
		}
	}
	a.Close()
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

// rawPair returns a Conn on one end of a socketpair and the other end as
// a plain blocking file, through which a test writes whatever bytes it
// likes.
func rawPair(t *testing.T) (*multiproc.Conn, *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := multiproc.ConnFromFd(fds[0])
	raw := os.NewFile(uintptr(fds[1]), "raw")
	t.Cleanup(func() { c.Close(); raw.Close() })
	return c, raw
}

// framed is payload with Python's 4-byte length prefix.
func framed(payload []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

// sendEncoded returns the payload Send makes of v.
func sendEncoded(t *testing.T, ctx context.Context, v any) []byte {
	t.Helper()
	x, y, err := multiproc.Pipe(true)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	defer y.Close()
	if err := x.Send(v); err != nil {
		t.Fatal(err)
	}
	b, err := y.RecvBytesContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// TestConnReceiveResumesAfterContext: a sender writes a stream of
// messages in pieces, each cut inside a message (in a header, in a small
// payload, in a 1 MiB one), and waits for the test's signal before the
// next piece. Receives with a short context give up at each cut; the
// stream stays in step, and every message arrives whole and in order,
// whichever of Recv and RecvBytes began it.
func TestConnReceiveResumesAfterContext(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	c, raw := rawPair(t)
	m1 := msg{ID: 1, Name: strings.Repeat("x", 3000), Vals: []float64{1, 2}}
	m4 := msg{ID: 4, Name: "four"}
	p1, p2, p3, p4 := sendEncoded(t, ctx, m1), patterned(1000, 2), patterned(1<<20+3, 3), sendEncoded(t, ctx, m4)
	if len(p4) > len(p2) || len(p2) > len(p1) {
		t.Fatal("the sizes no longer make Recv reuse its buffer as this test needs")
	}
	var stream []byte
	var starts []int
	for _, p := range [][]byte{p1, p2, p3, p4} {
		starts = append(starts, len(stream))
		stream = append(stream, framed(p)...)
	}
	cuts := []int{2, 4 + len(p1)/2, starts[1] + 4 + 500, starts[2] + 4 + 600<<10, len(stream)}

	wrote := make(chan int)
	next := make(chan struct{})
	go func() {
		prev := 0
		for i, cut := range cuts {
			if _, err := raw.Write(stream[prev:cut]); err != nil {
				t.Error("raw write:", err)
				return
			}
			prev = cut
			select {
			case wrote <- i:
			case <-ctx.Done():
				return
			}
			if i < len(cuts)-1 {
				select {
				case <-next:
				case <-ctx.Done():
					return
				}
			}
		}
	}()

	var got []any
	phase := 0
	// receive receives the next message with a context of d: messages 1
	// and 4 with Recv, the others with RecvBytes, except that in phase 2
	// Recv begins message 2 (which RecvBytes finishes later).
	receive := func(d time.Duration) error {
		rctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		n := len(got)
		if n == 0 || n == 3 || (n == 1 && phase == 2) {
			var m msg
			err := c.RecvContext(rctx, &m)
			if err == nil {
				if n == 1 {
					t.Fatal("Recv returned message 2, which was not all sent")
				}
				got = append(got, m)
			}
			return err
		}
		b, err := c.RecvBytesContext(rctx)
		if err == nil {
			got = append(got, b)
		}
		return err
	}
	for phase = range len(cuts) - 1 {
		// Receive until the sender has written its piece and a receive
		// has then found nothing more to read: it gave up mid-message.
		written := false
		for {
			if !written {
				select {
				case <-wrote:
					written = true
				default:
				}
			}
			err := receive(100 * time.Millisecond)
			if err == nil {
				continue
			}
			if !errors.Is(err, context.DeadlineExceeded) || strings.Count(err.Error(), "multiproc:") != 1 {
				t.Fatalf("phase %d: a receive cut short by its context: %v", phase, err)
			}
			if written {
				break
			}
		}
		if ok, err := c.Poll(0); !ok || err != nil {
			t.Fatalf("phase %d: Poll with part of a message held = %v, %v; want true", phase, ok, err)
		}
		next <- struct{}{}
	}
	for len(got) < 4 {
		if err := receive(30 * time.Second); err != nil {
			t.Fatalf("after the last piece, message %d: %v", len(got)+1, err)
		}
	}
	if g, ok := got[0].(msg); !ok || g.ID != 1 || g.Name != m1.Name || len(g.Vals) != 2 {
		t.Errorf("message 1 = %+v", got[0])
	}
	if g, ok := got[1].([]byte); !ok || !bytes.Equal(g, p2) {
		t.Errorf("message 2 (begun by Recv, finished by RecvBytes, then Recv went on) is not what was sent")
	}
	if g, ok := got[2].([]byte); !ok || !bytes.Equal(g, p3) {
		t.Errorf("message 3 (1 MiB, cut at 600 KiB) is not what was sent")
	}
	if g, ok := got[3].(msg); !ok || g.ID != 4 || g.Name != "four" {
		t.Errorf("message 4 = %+v", got[3])
	}
}

// TestConnPollBesideRecv: Polls that time out while another goroutine
// waits in a receive neither make that receive fail nor take its
// message (Poll used to set a read deadline on the descriptor both use).
func TestConnPollBesideRecv(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	a, b, err := multiproc.Pipe(true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	type result struct {
		m   []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		m, err := b.RecvBytesContext(ctx)
		got <- result{m, err}
	}()
	for i := range 20 {
		if ok, err := b.Poll(10 * time.Millisecond); ok || err != nil {
			t.Fatalf("Poll %d on an empty pipe = %v, %v", i, ok, err)
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		ok, err := b.PollContext(pctx)
		cancel()
		if ok || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("PollContext %d on an empty pipe = %v, %v; want false, DeadlineExceeded", i, ok, err)
		}
		select {
		case r := <-got:
			t.Fatalf("the receive returned while Polls timed out: %q, %v", r.m, r.err)
		default:
		}
	}
	if err := a.SendBytes([]byte("after the polls")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || string(r.m) != "after the polls" {
			t.Fatalf("the receive beside the Polls = %q, %v", r.m, r.err)
		}
	case <-ctx.Done():
		t.Fatal("the receive never returned")
	}
}

// TestConnCloseWakesWaiters: Close ends a Poll and a receive waiting on
// the Conn with ErrClosed, and Close is idempotent.
func TestConnCloseWakesWaiters(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	a, b, _ := multiproc.Pipe(true)
	defer a.Close()
	errs := make(chan error, 2)
	go func() {
		_, err := b.PollContext(ctx)
		errs <- err
	}()
	go func() {
		_, err := b.RecvBytesContext(ctx)
		errs <- err
	}()
	// Close once both are blocked, so that it is Close that wakes them.
	if err := parked.Wait(ctx, "(*Conn).PollContext", 1); err != nil {
		t.Fatal(err)
	}
	if err := parked.Wait(ctx, "(*Conn).RecvBytesContext", 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, multiproc.ErrClosed) {
				t.Fatalf("a wait ended by Close: %v, want ErrClosed", err)
			}
		case <-ctx.Done():
			t.Fatal("Close did not wake a waiter")
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

// TestConnSendContext: a send that gives up before any byte of its
// message went out leaves the Conn usable; one that gives up part-way
// through fails every later send (it cannot take back what went out).
func TestConnSendContext(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	t.Run("clean", func(t *testing.T) {
		r, w, _ := multiproc.Pipe(false)
		defer r.Close()
		defer w.Close()
		// 4092 bytes and a 4-byte header: PIPE_BUF, which a pipe takes
		// whole or not at all, so the pipe fills at a message boundary.
		n := 0
		for ; ; n++ {
			err := w.SendBytesContext(short(), patterned(4092, byte(n)))
			if err == nil {
				continue
			}
			if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "no more") {
				t.Fatalf("a send to a full pipe: %v", err)
			}
			break
		}
		for i := range n {
			m, err := r.RecvBytesContext(ctx)
			if err != nil || !bytes.Equal(m, patterned(4092, byte(i))) {
				t.Fatalf("message %d of %d: %d bytes, %v", i, n, len(m), err)
			}
		}
		if err := w.SendBytesContext(ctx, []byte("still in step")); err != nil {
			t.Fatal(err)
		}
		if m, err := r.RecvBytesContext(ctx); err != nil || string(m) != "still in step" {
			t.Fatalf("after a send that gave up cleanly: %q, %v", m, err)
		}
	})
	t.Run("cut short", func(t *testing.T) {
		r, w, _ := multiproc.Pipe(false)
		defer r.Close()
		defer w.Close()
		err := w.SendBytesContext(short(), make([]byte, 4<<20)) // more than a pipe holds
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no more") || strings.Count(err.Error(), "multiproc:") != 1 {
			t.Fatalf("a send cut short: %v", err)
		}
		for _, err := range []error{w.SendBytesContext(ctx, []byte("x")), w.SendContext(ctx, 1), w.SendBytes(nil)} {
			if err == nil || !strings.Contains(err.Error(), "cut short") {
				t.Fatalf("a send after one was cut short: %v", err)
			}
		}
		if _, err := r.RecvBytesContext(short()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("receiving the incomplete message: %v", err)
		}
		w.Close()
		if _, err := r.RecvBytesContext(ctx); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("the incomplete message once the sender closed: %v", err)
		}
	})
}

// TestConnZeroValue: every method of a zero Conn (and of a nil *Conn)
// returns one clear error; none panics.
func TestConnZeroValue(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	var zero multiproc.Conn
	var nilConn *multiproc.Conn
	var want string
	for _, c := range []*multiproc.Conn{&zero, nilConn} {
		c.SetMaxMessage(10)
		var x int
		_, e1 := c.RecvBytes()
		_, e2 := c.RecvBytesContext(ctx)
		_, e3 := c.Poll(0)
		_, e4 := c.PollContext(ctx)
		for i, err := range []error{c.Send(1), c.SendContext(ctx, 1), c.SendBytes(nil), c.SendBytesContext(ctx, nil),
			c.Recv(&x), c.RecvContext(ctx, &x), e1, e2, e3, e4, c.Close()} {
			if err == nil {
				t.Fatalf("method %d of a zero Conn succeeded", i)
			}
			if want == "" {
				want = err.Error()
			}
			if err.Error() != want || !strings.Contains(want, "zero Conn") || !strings.HasPrefix(want, "multiproc: ") {
				t.Fatalf("method %d of a zero Conn: %v; want %q", i, err, want)
			}
		}
	}
	err := echo.Process(echoJob{Conn: &zero}).Start()
	if err == nil || !strings.Contains(err.Error(), "zero Conn") {
		t.Fatalf("passing a zero Conn to a child: %v", err)
	}
}

// TestConnMessageTooLarge: an over-long message is an error matching
// ErrMessageTooLarge, from every receive until the limit is raised; the
// message is left unread, so it then arrives whole.
func TestConnMessageTooLarge(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	a, b, _ := multiproc.Pipe(true)
	defer a.Close()
	defer b.Close()
	b.SetMaxMessage(10)
	big := patterned(20, 1)
	a.SendBytes(big)
	a.SendBytes([]byte("ok"))
	for range 2 {
		_, err := b.RecvBytesContext(ctx)
		if !errors.Is(err, multiproc.ErrMessageTooLarge) || !strings.Contains(err.Error(), "20 bytes") || strings.Count(err.Error(), "multiproc:") != 1 {
			t.Fatalf("an over-long message: %v", err)
		}
	}
	b.SetMaxMessage(100)
	if m, err := b.RecvBytesContext(ctx); err != nil || !bytes.Equal(m, big) {
		t.Fatalf("the message after raising the limit: %v", err)
	}
	if m, err := b.RecvBytesContext(ctx); err != nil || string(m) != "ok" {
		t.Fatalf("the next message: %q, %v", m, err)
	}
}

// holder carries a value of a registered type in an interface field.
type holder struct{ V any }

func init() {
	multiproc.RegisterType(aconfig.Config{})
	multiproc.RegisterType(bconfig.Config{})
}

// TestConnTypesOfSameNamedPackages: a.Config and b.Config, from two
// packages both named config, are two types to Send, Recv and
// RegisterType (by their reflect names, both were "config.Config": the
// second RegisterType panicked, and a Recv of one into the other
// succeeded with the fields of the wrong type).
func TestConnTypesOfSameNamedPackages(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	a, b, _ := multiproc.Pipe(true)
	defer a.Close()
	defer b.Close()
	if err := a.Send(aconfig.Config{Name: "a", N: 1}); err != nil {
		t.Fatal(err)
	}
	var bc bconfig.Config
	err := b.RecvContext(ctx, &bc)
	if err == nil || !strings.Contains(err.Error(), "testtypes/a/config.Config") || !strings.Contains(err.Error(), "testtypes/b/config.Config") {
		t.Fatalf("Recv of an a/config.Config into a b/config.Config: %v (got %+v)", err, bc)
	}
	for _, v := range []any{aconfig.Config{Name: "a", N: 1}, bconfig.Config{Host: "b", Port: 2}} {
		if err := a.Send(holder{v}); err != nil {
			t.Fatal(err)
		}
		var h holder
		if err := b.RecvContext(ctx, &h); err != nil || h.V != v {
			t.Fatalf("%T in an interface: got %#v, %v", v, h.V, err)
		}
	}
}

// sendUntilFails sends small messages to c, whose peer the caller has
// closed, until a send fails, and returns that error (nil if none failed
// before ctx ended). The first send usually fails; but a child being
// started at that moment by another test holds a copy of every
// descriptor between its fork and its exec, so the peer may not be gone
// yet.
func sendUntilFails(ctx context.Context, c *multiproc.Conn) error {
	for ctx.Err() == nil {
		if err := c.SendBytesContext(ctx, []byte("x")); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

var recvOne = multiproc.Register("test.recvOne", func(ctx context.Context, r *multiproc.Conn) (string, error) {
	b, err := r.RecvBytesContext(ctx)
	return string(b), err
})

// A Conn read by several processes in turn — this one, then a child, then
// another — loses nothing: each receive reads its own message and no
// further, so what one process has not received is still in the pipe for
// the next (as with Python's Connection).
func TestConnReadersInTurnLoseNothing(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	r, w, err := multiproc.Pipe(false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for i := range 4 {
		if err := w.SendBytes([]byte{'m', byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := r.RecvBytesContext(ctx)
	if err != nil || string(b) != "m0" {
		t.Fatalf("first receive here: %q, %v", b, err)
	}
	for _, want := range []string{"m1", "m2"} {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		got, err := recvOne.Call(cctx, r)
		cancel()
		if err != nil || got != want {
			t.Fatalf("a child's receive: %q, %v; want %q", got, err, want)
		}
	}
	b, err = r.RecvBytesContext(ctx)
	if err != nil || string(b) != "m3" {
		t.Fatalf("last receive here: %q, %v", b, err)
	}
}
