package shm

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestCreateOpenShare(t *testing.T) {
	s, err := Create("test", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Size() != PageSize {
		t.Fatalf("size %d, want one page", s.Size())
	}
	s.Bytes()[7] = 42
	fd, err := unix.FcntlInt(uintptr(s.Fd()), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Open(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
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
