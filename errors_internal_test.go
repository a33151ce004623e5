//go:build linux && (amd64 || arm64)

package multiproc

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
	"golang.org/x/sys/unix"
)

// corruptDesc is a handle to a fresh segment of size bytes, prepared by
// fill, as another process that scribbled on it would send it.
func corruptDesc(t *testing.T, kind string, meta []byte, size int, fill func([]byte)) handle.Desc {
	t.Helper()
	seg, err := shm.Create("corrupt", size)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if fill != nil {
		fill(seg.Bytes())
	}
	fd, err := unix.FcntlInt(uintptr(seg.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return handle.Desc{Kind: kind, Meta: meta, Fds: []int{fd}}
}

// TestCorruptSegmentsMatchErrCorrupt: every shared object that arrives
// with a segment no operation of the package could have written is an
// error matching ErrCorrupt (as the doc of ErrCorrupt promises), saying
// "multiproc: " once. Before, a Value's, Array's, Barrier's or Queue's
// each had its own unmatched error.
func TestCorruptSegmentsMatchErrCorrupt(t *testing.T) {
	for _, c := range []struct {
		what string
		imp  func() error
	}{
		{"Value too small", func() error {
			// A memfd of the sender's own making, too small for a Value.
			fd, err := unix.MemfdCreate("small", unix.MFD_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Ftruncate(fd, 64); err != nil {
				t.Fatal(err)
			}
			return new(Value[int64]).importHandle(handle.Desc{Kind: "Value", Meta: scalarMeta[int64](1), Fds: []int{fd}})
		}},
		{"Array shorter than its length", func() error {
			return new(Array[int64]).importHandle(corruptDesc(t, "Array", scalarMeta[int64](1), offData+8, func(b []byte) { b[offLen+4] = 1 }))
		}},
		{"Barrier of no parties", func() error {
			return new(Barrier).importHandle(corruptDesc(t, "Barrier", nil, 128, nil))
		}},
		{"Queue without a ring", func() error {
			return new(Queue[int]).importHandle(corruptDesc(t, "Queue", []byte("int"), 4096, func(b []byte) { b[0] = 0xff }))
		}},
	} {
		err := c.imp()
		if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), "multiproc: ") || strings.Count(err.Error(), "multiproc:") != 1 {
			t.Errorf("%s: %v", c.what, err)
		}
	}
}

// TestErrorfQuotesWithoutSurgery: errorf leaves the text of what it
// quotes whole — a "multiproc: " inside someone else's text stays — and
// writes the prefix once, however deep the package's own errors nest.
func TestErrorfQuotesWithoutSurgery(t *testing.T) {
	foreign := errors.New("the peer said multiproc: hello")
	inner := errorf("inner: %w", ErrClosed)
	err := errorf("outer: %w (%v)", inner, foreign)
	want := "multiproc: outer: inner: use of a closed object (the peer said multiproc: hello)"
	if err.Error() != want || !errors.Is(err, ErrClosed) {
		t.Fatalf("%q, want %q", err, want)
	}
	var ee *ExitError
	err = errorf("pool: %w", &ExitError{Name: "w", Pid: 1, ExitCode: 2, Message: "multiproc: a child's own words"})
	if want := "multiproc: pool: process w (pid 1) failed: exit status 2: multiproc: a child's own words"; err.Error() != want || !errors.As(err, &ee) {
		t.Fatalf("%q, want %q", err, want)
	}
	if got := childText(userError{fmt.Errorf("mine: %w", ErrClosed)}); got != "mine: multiproc: use of a closed object" {
		t.Fatalf("a user's error crosses as %q", got)
	}
	if got := childText(errorf("decoding: %w", ErrCorrupt)); got != "decoding: shared memory is corrupt" {
		t.Fatalf("the package's error crosses as %q", got)
	}
}
