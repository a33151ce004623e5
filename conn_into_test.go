//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// TestConnRecvBytesInto: a message that fits lands in the caller's
// buffer; one that does not is received whole in the error and the stream
// stays in step; a message cut short by a context goes on, in a later
// call, without writing the first call's buffer again; a message begun by
// Recv is finished by RecvBytesInto.
func TestConnRecvBytesInto(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c, raw := rawPair(t)
	write := func(b []byte) {
		t.Helper()
		if _, err := raw.Write(b); err != nil {
			t.Fatal("raw write:", err)
		}
	}

	// Fits: buf[:n] is the message.
	write(framed([]byte("hello")))
	buf := make([]byte, 16)
	n, err := c.RecvBytesIntoContext(ctx, buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("RecvBytesInto = %d, %v (%q); want 5, nil, hello", n, err, buf[:n])
	}

	// Too short: the whole message is in the error.
	long := patterned(100, 1)
	write(framed(long))
	write(framed([]byte("next")))
	n, err = c.RecvBytesIntoContext(ctx, buf[:10])
	var short *multiproc.BufferTooShortError
	if !errors.As(err, &short) || n != 0 || !bytes.Equal(short.Message, long) || short.Len != 10 {
		t.Fatalf("RecvBytesInto of 100 bytes into 10 = %d, %v; want a *BufferTooShortError holding them", n, err)
	}
	if !strings.HasPrefix(err.Error(), "multiproc: ") || strings.Count(err.Error(), "multiproc:") != 1 {
		t.Errorf("error text %q: want one \"multiproc: \" prefix", err)
	}
	if n, err = c.RecvBytesIntoContext(ctx, buf); err != nil || string(buf[:n]) != "next" {
		t.Fatalf("the message after the long one = %q, %v; want next", buf[:n], err)
	}

	// Cut short by its context, then finished in another buffer: the
	// first buffer is not written again.
	p := patterned(1000, 2)
	frame := framed(p)
	write(frame[:4+300])
	first := make([]byte, 2000)
	rctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = c.RecvBytesIntoContext(rctx, first)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RecvBytesInto of a message cut short = %v; want the deadline", err)
	}
	for i := range first {
		first[i] = 0xEE
	}
	write(frame[4+300:])
	second := make([]byte, 2000)
	if n, err = c.RecvBytesIntoContext(ctx, second); err != nil || !bytes.Equal(second[:n], p) {
		t.Fatalf("the resumed message = %d bytes, %v; want the 1000 sent", n, err)
	}
	if bytes.Count(first, []byte{0xEE}) != len(first) {
		t.Fatal("the buffer of the cancelled call was written after it returned")
	}

	// Begun by Recv (cut short), finished by RecvBytesInto, too short for it.
	p = patterned(3000, 3)
	frame = framed(p)
	write(frame[:4+1000])
	rctx, cancel = context.WithTimeout(ctx, 20*time.Millisecond)
	var v msg
	err = c.RecvContext(rctx, &v)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv of a message cut short = %v; want the deadline", err)
	}
	write(frame[4+1000:])
	if _, err = c.RecvBytesIntoContext(ctx, buf); !errors.As(err, &short) || !bytes.Equal(short.Message, p) {
		t.Fatalf("RecvBytesInto of the message Recv began = %v; want a *BufferTooShortError holding it", err)
	}
	// Recv goes on with a buffer of its own; the error's Message is intact.
	m := msg{ID: 7, Name: "seven"}
	write(framed(sendEncoded(t, ctx, m)))
	var got msg
	if err := c.RecvContext(ctx, &got); err != nil || got.ID != 7 || got.Name != "seven" {
		t.Fatalf("Recv after = %+v, %v", got, err)
	}
	if !bytes.Equal(short.Message, p) {
		t.Fatal("a later Recv wrote over the error's Message")
	}

	// An empty message into an empty buffer.
	write(framed(nil))
	if n, err = c.RecvBytesIntoContext(ctx, nil); n != 0 || err != nil {
		t.Fatalf("an empty message into a nil buffer = %d, %v", n, err)
	}

	// The peer closes: io.EOF, as RecvBytes.
	raw.Close()
	if _, err = c.RecvBytesIntoContext(ctx, buf); !errors.Is(err, io.EOF) {
		t.Fatalf("RecvBytesInto after the peer closed = %v; want io.EOF", err)
	}

	// This end closed: ErrClosed.
	c.Close()
	if _, err = c.RecvBytesInto(buf); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("RecvBytesInto after Close = %v; want ErrClosed", err)
	}
}

// RecvBytesInto receives each message into the same buffer; a message
// longer than the buffer comes back whole in a *BufferTooShortError.
func ExampleConn_RecvBytesInto() {
	a, b, err := multiproc.Pipe(true)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	defer b.Close()
	a.SendBytes([]byte("short"))
	a.SendBytes([]byte("a message longer than the buffer"))

	buf := make([]byte, 16)
	n, err := b.RecvBytesInto(buf)
	fmt.Printf("%q %v\n", buf[:n], err)
	_, err = b.RecvBytesInto(buf)
	var short *multiproc.BufferTooShortError
	if errors.As(err, &short) {
		fmt.Printf("%d bytes did not fit in %d: %q\n", len(short.Message), short.Len, short.Message)
	}
	// Output:
	// "short" <nil>
	// 32 bytes did not fit in 16: "a message longer than the buffer"
}
