//go:build linux && (amd64 || arm64)

// Package shm makes shared-memory segments: memfd_create + mmap(MAP_SHARED).
// Nothing is ever created under /dev/shm, so a crash leaks nothing: the
// kernel frees a segment when the last process holding its fd or a mapping
// of it is gone. A segment travels to another process as its fd.
package shm

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PageSize is the host page size; segments are sized in whole pages.
var PageSize = os.Getpagesize()

// Segment is one mapped memfd. The fd stays open so that the segment can be
// sent to other processes; Close unmaps and closes it.
type Segment struct {
	fd  int
	mem []byte
}

// Create makes a zero-filled segment of at least size bytes (rounded up to a
// whole page). name shows in /proc/PID/fd and maps, for debugging only.
func Create(name string, size int) (*Segment, error) {
	if size <= 0 {
		return nil, fmt.Errorf("shared segment size %d is not positive", size)
	}
	size = roundPage(size)
	fd, err := unix.MemfdCreate("multiproc:"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err == unix.EMFILE || err == unix.ENFILE {
		fd, err = afterCollection(func() (int, error) {
			return unix.MemfdCreate("multiproc:"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sizing a %d-byte shared segment: %w", size, err)
	}
	// No peer may shrink it under another's mapping (that would be SIGBUS).
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK)
	return mapFd(fd, size)
}

// Open maps the segment behind fd, which the Segment then owns.
func Open(fd int) (*Segment, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shared segment fd %d: %w", fd, err)
	}
	if st.Size <= 0 {
		unix.Close(fd)
		return nil, errors.New("shared segment is empty")
	}
	return mapFd(fd, int(st.Size))
}

// afterCollection retries create after a garbage collection, for a
// process out of descriptors: shared objects dropped without Close give
// theirs back only when collected, and a program that makes and drops
// them in a loop allocates too little Go memory to trigger a collection
// before the limit. It gives up after about a second.
func afterCollection(create func() (int, error)) (int, error) {
	var fd int
	var err error
	for i := range 10 {
		runtime.GC()
		// The cleanups run on a goroutine of their own after the
		// collection: let it work.
		time.Sleep(time.Millisecond << i)
		if fd, err = create(); err != unix.EMFILE && err != unix.ENFILE {
			break
		}
	}
	return fd, err
}

func mapFd(fd, size int) (*Segment, error) {
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mmap of a %d-byte shared segment: %w", size, err)
	}
	return &Segment{fd: fd, mem: mem}, nil
}

// Bytes is the mapped memory. It is valid until Close.
func (s *Segment) Bytes() []byte { return s.mem }

// Fd is the memfd, for sending the segment to another process.
func (s *Segment) Fd() int { return s.fd }

// Size is the mapped length in bytes.
func (s *Segment) Size() int { return len(s.mem) }

// Grow enlarges the file behind the segment to at least size bytes and maps
// the new size in this process. Other holders see the new size with Remap.
func (s *Segment) Grow(size int) error {
	size = roundPage(size)
	if size <= len(s.mem) {
		return nil
	}
	if err := unix.Ftruncate(s.fd, int64(size)); err != nil {
		// Another holder may have grown the file past size since this one
		// last mapped it; the seal against shrinking then refuses the
		// smaller size (EPERM). The file is big enough: map it.
		var st unix.Stat_t
		if err == unix.EPERM && unix.Fstat(s.fd, &st) == nil && st.Size >= int64(size) {
			return s.Remap()
		}
		return fmt.Errorf("growing a shared segment to %d bytes: %w", size, err)
	}
	return s.Remap()
}

// Remap maps the segment again at the file's current size if it grew.
// Slices taken from Bytes before the call stay valid only until Close of
// the old mapping, which Remap does: callers must not hold them across it.
func (s *Segment) Remap() error {
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return fmt.Errorf("shared segment: %w", err)
	}
	if int(st.Size) <= len(s.mem) {
		return nil
	}
	mem, err := unix.Mremap(s.mem, int(st.Size), unix.MREMAP_MAYMOVE)
	if err != nil {
		return fmt.Errorf("remapping a shared segment to %d bytes: %w", st.Size, err)
	}
	s.mem = mem
	return nil
}

// Close unmaps the segment and closes its fd. Other processes' mappings
// are not affected.
func (s *Segment) Close() error {
	var err error
	if s.mem != nil {
		err = unix.Munmap(s.mem)
		s.mem = nil
	}
	if s.fd >= 0 {
		if e := unix.Close(s.fd); err == nil {
			err = e
		}
		s.fd = -1
	}
	return err
}

// Retire closes the fd and gives the memory back now while keeping the
// address range reserved, for a mapping that goroutines of this process may
// still be about to touch (they raced a Close). Without reserve, the range
// becomes private zero-filled memory that such a late access reads or
// writes harmlessly, and that Close unmaps later. With reserve, it becomes
// inaccessible for the rest of the process's life: for memory whose address
// was handed out (a slice of it), a late access faults loudly instead of
// reaching whatever the address would be reused for. Either way no other
// process sees what this one does after Retire.
func (s *Segment) Retire(reserve bool) error {
	var err error
	if len(s.mem) > 0 {
		prot, flags := unix.PROT_READ|unix.PROT_WRITE, unix.MAP_FIXED|unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE
		if reserve {
			prot = unix.PROT_NONE
		}
		_, err = unix.MmapPtr(-1, 0, unsafe.Pointer(&s.mem[0]), uintptr(len(s.mem)), prot, flags)
		if err != nil {
			err = fmt.Errorf("releasing a shared segment: %w", err)
		}
		if reserve && err == nil {
			s.mem = nil // never unmapped
		}
	}
	if e := s.CloseFd(); err == nil {
		err = e
	}
	return err
}

// CloseFd closes only the fd and keeps the mapping, for memory whose
// address was handed out and must stay valid for the life of the process.
func (s *Segment) CloseFd() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}

func roundPage(n int) int { return (n + PageSize - 1) &^ (PageSize - 1) }
