//go:build linux && (amd64 || arm64)

package spawn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func pair(t *testing.T) (*Ctl, *Ctl) {
	t.Helper()
	a, bf, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(bf.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	bf.Close()
	b, err := NewCtl(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestCtlMessagesAndFds(t *testing.T) {
	a, b := pair(t)
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	big := bytes.Repeat([]byte("x"), 3<<20)
	wfd := int(w.Fd())
	sent := make(chan struct{})
	defer func() { <-sent }() // before w is closed
	go func() {
		defer close(sent)
		a.Send(MsgTask, []byte("small"), []int{wfd})
		a.Send(MsgResult, big, nil)
		a.Send(MsgExit, nil, nil)
		a.Close()
	}()
	typ, p, fds, err := b.Recv()
	if err != nil || typ != MsgTask || string(p) != "small" || len(fds) != 1 {
		t.Fatal(typ, string(p), fds, err)
	}
	// The received fd is a working copy of the pipe's write end.
	passed := os.NewFile(uintptr(fds[0]), "passed")
	passed.Write([]byte("via SCM_RIGHTS"))
	passed.Close()
	buf := make([]byte, 64)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "via SCM_RIGHTS" {
		t.Fatalf("read %q through the passed fd", buf[:n])
	}
	typ, p, _, err = b.Recv()
	if err != nil || typ != MsgResult || !bytes.Equal(p, big) {
		t.Fatal("large message", typ, len(p), err)
	}
	if typ, p, _, err = b.Recv(); err != nil || typ != MsgExit || len(p) != 0 {
		t.Fatal(typ, p, err)
	}
	if _, _, _, err := b.Recv(); err != io.EOF {
		t.Fatalf("after the peer closed: %v, want io.EOF", err)
	}
}

func TestCtlCorruptStream(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCtl(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	unix.Write(fds[1], []byte("garbage that is not a header"))
	unix.Close(fds[1])
	if _, _, _, err := c.Recv(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage: %v, want ErrCorrupt", err)
	}
}

func TestCtlTooManyFds(t *testing.T) {
	a, _ := pair(t)
	if err := a.Send(MsgTask, nil, make([]int, MaxFds+1)); err == nil {
		t.Fatal("a message with too many fds was sent")
	}
}

// rawPair is a Ctl and the raw peer socket, to write what a hostile child
// would.
func rawPair(t *testing.T) (*Ctl, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCtl(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); unix.Close(fds[1]) })
	return c, fds[1]
}

func header(typ byte, nfd int, size uint64) []byte {
	h := binary.LittleEndian.AppendUint32(nil, 0x4d50)
	h = append(h, typ, byte(nfd))
	return binary.LittleEndian.AppendUint64(h, size)
}

// A header announcing 64 GiB must cost what was really sent, not 64 GiB.
func TestCtlHugeAnnouncedLength(t *testing.T) {
	c, peer := rawPair(t)
	sent := 5 << 20
	go func() {
		unix.Write(peer, header(MsgResult, 0, MaxMessage))
		chunk := make([]byte, 64<<10)
		for n := 0; n < sent; n += len(chunk) {
			if _, err := unix.Write(peer, chunk); err != nil {
				break
			}
		}
		unix.Shutdown(peer, unix.SHUT_WR)
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, _, err := c.Recv()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a stream that ended inside a huge message: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(8*sent) {
		t.Fatalf("Recv allocated %d bytes for %d that arrived", grew, sent)
	}
}

// Descriptors no header announced are closed and break the stream.
func TestCtlUnannouncedFds(t *testing.T) {
	c, peer := rawPair(t)
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	before := openFds(t)
	// A well-formed empty message that carries descriptors it does not announce.
	rights := unix.UnixRights(int(w.Fd()), int(w.Fd()), int(w.Fd()))
	if err := unix.Sendmsg(peer, header(MsgResult, 0, 0), rights, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.Recv(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a message with unannounced descriptors: %v, want ErrCorrupt", err)
	}
	if n := openFds(t); n != before {
		t.Fatalf("%d descriptors open after, %d before: the unannounced ones were kept", n, before)
	}
	if _, _, _, err := c.Recv(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Recv after a broken stream: %v, want ErrCorrupt again", err)
	}
}

// A flood of descriptors ahead of any message is bounded.
func TestCtlFdFlood(t *testing.T) {
	c, peer := rawPair(t)
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	before := openFds(t)
	fds := make([]int, MaxFds)
	for i := range fds {
		fds[i] = int(w.Fd())
	}
	rights := unix.UnixRights(fds...)
	// One byte of a header per flood message: the header completes after
	// 14 of them, each carrying 250 descriptors.
	h := header(MsgResult, 0, 0)
	for i := range h {
		if err := unix.Sendmsg(peer, h[i:i+1], rights, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	_, _, _, err := c.Recv()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a descriptor flood: %v, want ErrCorrupt", err)
	}
	if n := openFds(t); n > before+2*MaxFds {
		t.Fatalf("%d descriptors open, %d before: the flood was not bounded", n, before)
	}
	c.Close()
	if n := openFds(t); n > before {
		t.Fatalf("%d descriptors open after Close, %d before", n, before)
	}
}

func openFds(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(es)
}
