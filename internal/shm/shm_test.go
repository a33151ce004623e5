//go:build linux && (amd64 || arm64)

package shm

import (
	"runtime/debug"
	"testing"

	"golang.org/x/sys/unix"
)

// twoHolders makes a segment of size bytes and opens it a second time,
// through a duplicate of its descriptor, as another process would; both
// are closed at the end of the test.
func twoHolders(t *testing.T, size int) (s, o *Segment) {
	t.Helper()
	s, err := Create("test", size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	fd, err := unix.FcntlInt(uintptr(s.Fd()), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	o, err = Open(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return s, o
}

func TestCreateOpenShare(t *testing.T) {
	s, o := twoHolders(t, 100)
	if s.Size() != PageSize || o.Size() != PageSize {
		t.Fatalf("sizes %d and %d, want one page", s.Size(), o.Size())
	}
	s.Bytes()[7] = 42
	if o.Bytes()[7] != 42 {
		t.Fatal("a second mapping does not see the first one's write")
	}
	o.Bytes()[8] = 9
	if s.Bytes()[8] != 9 {
		t.Fatal("the first mapping does not see the second one's write")
	}
	if err := s.Grow(3 * PageSize); err != nil || s.Size() != 3*PageSize {
		t.Fatal(err, s.Size())
	}
	if err := o.Remap(); err != nil || o.Size() != 3*PageSize || o.Bytes()[7] != 42 {
		t.Fatal("Remap after Grow", err, o.Size())
	}
}

func TestBadInput(t *testing.T) {
	if _, err := Create("x", 0); err == nil {
		t.Fatal("Create of 0 bytes succeeded")
	}
	if _, err := Open(-1); err == nil {
		t.Fatal("Open(-1) succeeded")
	}
}

// TestRetire: a retired segment's fd is closed and its memory is no longer
// shared; the address stays usable (private) or faults (reserve).
func TestRetire(t *testing.T) {
	s, err := Create("test", 100)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.FcntlInt(uintptr(s.Fd()), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Open(fd)
	if err != nil {
		t.Fatal(err)
	}
	old := s.Bytes()
	old[7] = 42
	if err := s.Retire(false); err != nil {
		t.Fatal(err)
	}
	if s.Fd() != -1 || old[7] != 0 {
		t.Fatalf("after Retire: fd %d, byte %d", s.Fd(), old[7])
	}
	old[7] = 1 // private now: the other mapping keeps 42
	if o.Bytes()[7] != 42 {
		t.Fatal("a write after Retire reached the shared memory")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	om := o.Bytes()
	if err := o.Retire(true); err != nil {
		t.Fatal(err)
	}
	faulted := make(chan any, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() { faulted <- recover() }()
		sink = om[7]
	}()
	if <-faulted == nil {
		t.Fatal("a reserved segment did not fault")
	}
}

var sink byte

// TestGrowPastAnotherHolder: a holder that grows the segment to less than
// another holder already grew it to (its own mapping is older) maps the
// bigger file instead of failing on the seal against shrinking (a race
// TestDictKill met: two writers growing a Dict's segment).
func TestGrowPastAnotherHolder(t *testing.T) {
	s, o := twoHolders(t, PageSize)
	if err := s.Grow(4 * PageSize); err != nil {
		t.Fatal(err)
	}
	if err := o.Grow(2 * PageSize); err != nil || o.Size() != 4*PageSize {
		t.Fatalf("Grow to 2 pages of a file another holder grew to 4 = %v, size %d; want nil, 4 pages", err, o.Size())
	}
	// Shrinking is still refused where it would really shrink.
	if err := unix.Ftruncate(o.Fd(), int64(PageSize)); err != unix.EPERM {
		t.Fatalf("ftruncate to shrink = %v, want EPERM (the seal)", err)
	}
}
