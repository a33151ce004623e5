//go:build unix && linux && (amd64 || arm64)

package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pyPeer is the Python side of TestPythonInterop: it speaks first, then
// answers each message with "py:" + the message reversed, except for a few
// commands.
const pyPeer = `
import sys
from multiprocessing.connection import Connection
c = Connection(3)
c.send_bytes(b"hello from python")
c.send_bytes(b"")
while True:
    m = c.recv_bytes()
    if m == b"bye":
        break
    elif m == b"empty":
        c.send_bytes(b"")
    elif m == b"big":
        c.send_bytes(bytes(range(256)) * (1 << 18))
    else:
        c.send_bytes(b"py:" + m[::-1])
c.close()
`

func TestPythonInterop(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not on PATH; skipping the multiprocessing.connection interop test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Keep both ends out of other children; ExtraFiles re-enables fd 3.
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	// Our end is non-blocking so the runtime poller can apply deadlines;
	// Python's end stays blocking, as Connection expects.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	conn := os.NewFile(uintptr(fds[0]), "go-end")
	child := os.NewFile(uintptr(fds[1]), "python-end")
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		t.Fatal(err)
	}

	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, "-c", pyPeer)
	cmd.ExtraFiles = []*os.File{child} // fd 3 in the child
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		child.Close()
		t.Fatal(err)
	}
	child.Close() // so that Python exiting gives us EOF
	waited := false
	defer func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("python stderr:\n%s", stderr.Bytes())
		}
	}()

	expect := func(want []byte) {
		t.Helper()
		got, err := ReadFrame(conn, 128<<20)
		if err != nil {
			t.Fatalf("reading from python: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("from python: got %d bytes %.40q, want %d bytes %.40q", len(got), got, len(want), want)
		}
	}
	send := func(p []byte) {
		t.Helper()
		if err := WriteFrame(conn, p); err != nil {
			t.Fatalf("writing to python: %v", err)
		}
	}

	expect([]byte("hello from python"))
	expect([]byte{})

	sizes := []int{0, 1, 3, 16384, 16385, 1 << 20, 8 << 20}
	if !testing.Short() {
		sizes = append(sizes, 64<<20) // python reverses it byte by byte: slow under -race on a loaded machine
	}
	for _, n := range sizes {
		p := pattern(n, byte(n))
		send(p)
		want := append([]byte("py:"), p...)
		slices.Reverse(want[3:])
		expect(want)
	}

	// Python accepts the long form for any size, so a small one must work.
	long := binary.BigEndian.AppendUint64([]byte{0xFF, 0xFF, 0xFF, 0xFF}, 5)
	if _, err := conn.Write(append(long, "hello"...)); err != nil {
		t.Fatal(err)
	}
	expect([]byte("py:olleh"))

	send([]byte("empty"))
	expect([]byte{})

	send([]byte("big"))
	big := make([]byte, 64<<20)
	for i := 0; i < 256; i++ {
		big[i] = byte(i)
	}
	for filled := 256; filled < len(big); filled *= 2 {
		copy(big[filled:], big[:filled])
	}
	expect(big)

	send([]byte("bye"))
	if _, err := ReadFrame(conn, 0); err != io.EOF {
		t.Fatalf("after python exited: got %v, want io.EOF", err)
	}
	waited = true
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v", err)
	}
}
