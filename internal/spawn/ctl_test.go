package spawn

import (
	"bytes"
	"errors"
	"io"
	"os"
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
