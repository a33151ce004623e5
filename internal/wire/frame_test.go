//go:build linux && (amd64 || arm64)

package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// pattern returns n bytes with a period of 251 (prime, so it does not line
// up with power-of-two buffer sizes) that depend on seed. It fills by
// doubling copies because a byte loop over 64 MiB is slow under -race.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	const period = 251
	for i := 0; i < n && i < period; i++ {
		b[i] = byte(i*7) + seed
	}
	for filled := min(n, period); filled < n; filled *= 2 {
		copy(b[filled:], b[:filled])
	}
	return b
}

func TestAppendHeader(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want []byte
	}{
		{0, []byte{0, 0, 0, 0}},
		{5, []byte{0, 0, 0, 5}},
		{0x01020304, []byte{1, 2, 3, 4}},
		{0x7FFFFFFE, []byte{0x7F, 0xFF, 0xFF, 0xFE}},
		{0x7FFFFFFF, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF}},
		{1 << 32, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0}},
	} {
		if tc.n > math.MaxInt {
			continue // 32-bit platform
		}
		if got := AppendHeader([]byte("x"), int(tc.n)); !bytes.Equal(got[1:], tc.want) || got[0] != 'x' {
			t.Errorf("AppendHeader(%d) = % x, want x + % x", tc.n, got, tc.want)
		}
	}
}

// pipeRoundTrip writes frames of every size from one goroutine and reads them
// back concurrently on another end, checking content and order.
func pipeRoundTrip(t *testing.T, w io.WriteCloser, r io.Reader) {
	sizes := []int{0, 1, 16383, 16384, 16385, 1 << 20, 64 << 20}
	payloads := make([][]byte, len(sizes))
	for i, n := range sizes {
		payloads[i] = pattern(n, byte(i))
	}
	werr := make(chan error, 1)
	go func() {
		defer w.Close()
		for _, p := range payloads {
			if err := WriteFrame(w, p); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	var buf []byte
	for i, want := range payloads {
		var got []byte
		var err error
		if i%2 == 0 {
			got, err = ReadFrame(r, 128<<20)
		} else {
			buf, err = ReadFrameInto(r, 128<<20, buf)
			got = buf
		}
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", i, len(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d, contents differ", i, len(got), len(want))
		}
	}
	if _, err := ReadFrame(r, 0); err != io.EOF {
		t.Fatalf("after the last frame: got %v, want io.EOF", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("writer: %v", err)
	}
}

func TestRoundTripOSPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	deadline := time.Now().Add(60 * time.Second)
	r.SetDeadline(deadline)
	w.SetDeadline(deadline)
	pipeRoundTrip(t, w, r)
}

func TestRoundTripNetPipe(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	deadline := time.Now().Add(60 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	pipeRoundTrip(t, a, b)
}

// writeCounter records each Write so tests can see how frames are split.
type writeCounter struct {
	bytes.Buffer
	writes []int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	return w.Buffer.Write(p)
}

func TestWriteFrameSplitsLikePython(t *testing.T) {
	for _, tc := range []struct {
		n      int
		writes []int
	}{
		{0, []int{4}},
		{100, []int{104}},
		{16384, []int{16388}},
		{16385, []int{4, 16385}},
	} {
		var w writeCounter
		if err := WriteFrame(&w, pattern(tc.n, 1)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(w.writes, tc.writes) {
			t.Errorf("WriteFrame(%d bytes) made writes %v, want %v", tc.n, w.writes, tc.writes)
		}
	}
}

func TestLongFormSmallPayload(t *testing.T) {
	in := []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 1, 'z'}
	r := bytes.NewReader(in)
	got, err := ReadFrame(r, 0)
	if err != nil || string(got) != "abc" {
		t.Fatalf("got %q, %v; want \"abc\"", got, err)
	}
	if got, err = ReadFrame(r, 0); err != nil || string(got) != "z" {
		t.Fatalf("next frame: got %q, %v; want \"z\"", got, err)
	}
	if _, err = ReadFrame(r, 0); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestEmptyFrame(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFrame(&b, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), []byte{0, 0, 0, 0}) {
		t.Fatalf("empty frame is % x", b.Bytes())
	}
	got, err := ReadFrame(&b, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("got %q, %v; want an empty payload", got, err)
	}
}

func TestReadFrameIntoReusesBuffer(t *testing.T) {
	var in bytes.Buffer
	WriteFrame(&in, pattern(50, 3))
	WriteFrame(&in, pattern(5000, 4))
	buf := make([]byte, 0, 100)
	got, err := ReadFrameInto(&in, 0, buf)
	if err != nil || !bytes.Equal(got, pattern(50, 3)) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if &got[0] != &buf[:1][0] {
		t.Error("a payload that fits did not reuse buf")
	}
	got, err = ReadFrameInto(&in, 0, got)
	if err != nil || !bytes.Equal(got, pattern(5000, 4)) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	got, err = ReadFrameInto(&in, 0, got)
	if err != io.EOF || len(got) != 0 || cap(got) < 5000 {
		t.Fatalf("at end: got len %d cap %d, %v; want buf[:0], io.EOF", len(got), cap(got), err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	long := func(n uint64) []byte {
		return binary.BigEndian.AppendUint64([]byte{0xFF, 0xFF, 0xFF, 0xFF}, n)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		max  int64
		want error // matched with errors.Is
	}{
		{"clean EOF", nil, 0, io.EOF},
		{"EOF in header", []byte{0, 0}, 0, io.ErrUnexpectedEOF},
		{"EOF in long header", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0}, 0, io.ErrUnexpectedEOF},
		{"EOF before payload", []byte{0, 0, 0, 3}, 0, io.ErrUnexpectedEOF},
		{"EOF in payload", []byte{0, 0, 0, 3, 'a', 'b'}, 0, io.ErrUnexpectedEOF},
		{"EOF in large payload", append([]byte{0, 0x40, 0, 0}, pattern(3<<20, 1)...), 0, io.ErrUnexpectedEOF},
		{"negative header", []byte{0xFF, 0xFF, 0xFF, 0xFB, 'a'}, 0, ErrBadFrame},
		{"min int32 header", []byte{0x80, 0, 0, 0}, 0, ErrBadFrame},
		{"long form top bit", long(1 << 63), 0, ErrBadFrame},
		{"over limit", []byte{0, 0, 0, 11}, 10, ErrFrameTooLarge},
		{"long form over default", long(1<<30 + 1), 0, ErrFrameTooLarge},
		{"long form over max int64", long(1<<63 - 1), 1 << 62, ErrFrameTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFrame(bytes.NewReader(tc.in), tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Errorf("payload %q returned with an error", got)
			}
			switch tc.want {
			case io.EOF:
				if err != io.EOF {
					t.Errorf("got %#v, want exactly io.EOF", err)
				}
			case io.ErrUnexpectedEOF:
				if err.Error() != "got end of file during message" {
					t.Errorf("message %q", err)
				}
			}
			if strings.Contains(err.Error(), "multiproc:") {
				t.Errorf("message %q says multiproc: (the package's boundary adds it)", err)
			}
		})
	}
}

func TestOverLimitReadsNothing(t *testing.T) {
	in := append([]byte{0, 0, 4, 0}, pattern(1024, 1)...)
	r := bytes.NewReader(in)
	_, err := ReadFrame(r, 1000)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "1024") || !strings.Contains(err.Error(), "1000") {
		t.Errorf("message %q does not state the length and limit", err)
	}
	if r.Len() != 1024 {
		t.Errorf("reader advanced into the payload: %d bytes left, want 1024", r.Len())
	}
	// 1 GiB claimed over a limit: nothing is allocated for it.
	hdr := binary.BigEndian.AppendUint64([]byte{0xFF, 0xFF, 0xFF, 0xFF}, 1<<40)
	if n := allocBytes(func() { ReadFrameInto(bytes.NewReader(hdr), 1<<30, make([]byte, 0, 16)) }); n > 4096 {
		t.Errorf("rejecting an oversized frame allocated %d bytes", n)
	}
}

// allocBytes reports the bytes f allocates on the heap.
func allocBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestTruncatedHugeFrameAllocatesLittle(t *testing.T) {
	in := append([]byte{0x40, 0, 0, 0}, pattern(100, 1)...) // claims 1 GiB, sends 100 bytes
	var err error
	n := allocBytes(func() { _, err = ReadFrame(bytes.NewReader(in), 2<<30) })
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v", err)
	}
	if n > 4<<20 {
		t.Errorf("a truncated 1 GiB frame allocated %d bytes", n)
	}
}

func FuzzReadFrame(f *testing.F) {
	var seed bytes.Buffer
	WriteFrame(&seed, []byte("hello"))
	WriteFrame(&seed, nil)
	f.Add(seed.Bytes())
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 2, 'h', 'i'})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFB})
	f.Add([]byte{0x7F, 0xFF, 0xFF, 0xFF, 1, 2})
	const limit = 64
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var buf []byte
		for i := 0; ; i++ {
			var p []byte
			var err error
			if i%2 == 0 {
				p, err = ReadFrame(r, limit)
			} else {
				buf, err = ReadFrameInto(r, limit, buf)
				p = buf
			}
			if err != nil {
				if len(p) != 0 {
					t.Fatalf("payload of %d bytes with error %v", len(p), err)
				}
				return
			}
			if len(p) > limit || cap(p) > 1024 {
				t.Fatalf("payload len %d cap %d exceeds limit %d", len(p), cap(p), limit)
			}
		}
	})
}

// stutter reads from data, failing with errStutter once when it reaches
// the offset stop (and returning the bytes before it first).
type stutter struct {
	data []byte
	stop int
	done bool
}

var errStutter = errors.New("interrupted")

func (s *stutter) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	if !s.done && s.stop == 0 {
		s.done = true
		return 0, errStutter
	}
	n := len(p)
	if !s.done {
		n = min(n, s.stop)
	}
	n = copy(p, s.data[:min(n, len(s.data))])
	s.data = s.data[n:]
	s.stop -= n
	return n, nil
}

// TestFrameReaderResumes interrupts a read at every offset of a stream of
// messages (short and long headers, empty and non-empty payloads): the
// interrupted Next returns the reader's error, and the next calls go on
// to return every message whole, in order.
func TestFrameReaderResumes(t *testing.T) {
	var stream bytes.Buffer
	msgs := [][]byte{pattern(5, 1), {}, pattern(300, 2)}
	for _, m := range msgs {
		WriteFrame(&stream, m)
	}
	// A long-form header for a small payload, as Python accepts.
	long := binary.BigEndian.AppendUint64([]byte{0xFF, 0xFF, 0xFF, 0xFF}, 7)
	stream.Write(append(long, pattern(7, 3)...))
	msgs = append(msgs, pattern(7, 3))
	all := stream.Bytes()
	for stop := range len(all) {
		r := &stutter{data: all, stop: stop}
		var fr FrameReader
		buf := make([]byte, 0, 16)
		interrupted := false
		for i, want := range msgs {
			got, err := fr.Next(r, 0, buf)
			if err == errStutter {
				if interrupted {
					t.Fatalf("stop %d: interrupted twice", stop)
				}
				interrupted = true
				got, err = fr.Next(r, 0, buf)
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("stop %d, message %d: got %d bytes, %v; want %d bytes", stop, i, len(got), err, len(want))
			}
		}
		if _, err := fr.Next(r, 0, buf); err != io.EOF || fr.Partial() {
			t.Fatalf("stop %d: at the end: %v, partial %v; want io.EOF", stop, err, fr.Partial())
		}
		if !interrupted {
			t.Fatalf("stop %d: never interrupted", stop)
		}
	}
}

// TestFrameReaderStickyHeaderErrors: after an oversized or malformed
// header, Next keeps returning the error instead of reading the payload
// as the next header.
func TestFrameReaderStickyHeaderErrors(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want error
	}{
		{append([]byte{0, 0, 0, 11}, pattern(11, 1)...), ErrFrameTooLarge},
		{[]byte{0xFF, 0xFF, 0xFF, 0xFB, 0, 0, 0, 1, 'x'}, ErrBadFrame},
	} {
		var fr FrameReader
		r := bytes.NewReader(tc.in)
		for range 3 {
			if _, err := fr.Next(r, 10, nil); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		}
		if !fr.Partial() {
			t.Error("a reader stopped at a bad header says it holds no partial message")
		}
	}
}
