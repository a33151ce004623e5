package multiproc_test

import (
	"bytes"
	"context"
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
				b, err := j.Conn.RecvBytes()
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
				if err := j.Conn.Recv(&m); err == io.EOF {
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
		if err := a.Recv(&in); err != nil {
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
		out, err := a.RecvBytes()
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
	b, err := r.RecvBytes()
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
	if _, err := r.RecvBytes(); err != io.EOF {
		t.Fatalf("after the writer exited: %v, want io.EOF", err)
	}
}

func TestConnErrors(t *testing.T) {
	r, w, _ := multiproc.Pipe(false)
	if err := r.SendBytes([]byte("x")); !errors.Is(err, multiproc.ErrReceiveOnly) {
		t.Fatalf("Send on the receive end: %v", err)
	}
	if _, err := w.RecvBytes(); !errors.Is(err, multiproc.ErrSendOnly) {
		t.Fatalf("Recv on the send end: %v", err)
	}
	r.Close()
	if err := w.SendBytes([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Send to a closed peer: %v, want EPIPE", err)
	}
	if _, err := r.RecvBytes(); !errors.Is(err, multiproc.ErrClosed) {
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
	if err := b.Recv(&s); err == nil || !strings.Contains(err.Error(), "int") {
		t.Fatalf("Recv of an int into a string: %v", err)
	}
	if err := b.Recv(s); err == nil {
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
			_, err = r.RecvBytes()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("RecvBytes = %v, want an error about %q", err, c.want)
			}
		})
	}
}

func TestConnPoll(t *testing.T) {
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
	if m, err := b.RecvBytes(); err != nil || string(m) != "hi" {
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
	first, err := goEnd.RecvBytes()
	if err != nil || string(first) != "hello from python" {
		t.Fatalf("first message from python: %q, %v", first, err)
	}
	for _, m := range []string{"abc", "", "multiproc"} {
		if err := goEnd.SendBytes([]byte(m)); err != nil {
			t.Fatal(err)
		}
		back, err := goEnd.RecvBytes()
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
	back, err := goEnd.RecvBytes()
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
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		m, err := a.RecvBytes()
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
