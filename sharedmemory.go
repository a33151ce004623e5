//go:build linux && (amd64 || arm64)

package multiproc

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"strings"
	"syscall"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
	"golang.org/x/sys/unix"
)

// shmDir is where glibc's shm_open, and so Python's SharedMemory, keeps
// POSIX shared memory objects on Linux.
const shmDir = "/dev/shm/"

// SharedMemory is a block of shared memory with a name, Python's
// multiprocessing.shared_memory.SharedMemory: the same POSIX shared memory
// object under /dev/shm, so a Go process and a python3 process (3.8 to
// 3.13) that open one name see each other's writes with no copy.
//
// A *SharedMemory reaches a child or a pool task as a Func argument (or
// an exported field of one, or of a Runner) and is there the same memory,
// passed as its descriptor: the child needs no name lookup, and it works
// even after the name was unlinked. It cannot be sent through a Conn or a
// Queue; send its Name and open it there instead.
//
// # Lifetime, leaks and Python's resource tracker
//
// Close unmaps the block in this process; Unlink removes its name. The
// memory lives until the name is gone and every process has closed its
// mapping or exited. multiproc never unlinks a block behind the user's
// back: not at Close, not when a SharedMemory is garbage, not at exit. A
// program that creates a block and dies (or forgets Unlink) leaves the
// name in /dev/shm, where `ls -l /dev/shm` shows it and `rm
// /dev/shm/NAME` (or OpenSharedMemory(name) then Unlink) removes it; the
// names this package picks start with "psm_", as Python's do.
//
// Python differs, and the difference bites across languages: every python3
// process that creates or merely opens a block registers it with its
// resource tracker, which unlinks every registered block that was not
// unlinked when the last process of that Python program exits. So a
// python3 program (not a multiprocessing child of the creator) that only
// opens a block made by Go removes its name when it ends, and the Go
// creator's later Unlink fails with an error matching fs.ErrNotExist. A
// Python reader should open with SharedMemory(name, track=False) on 3.13
// and later, or call
// multiprocessing.resource_tracker.unregister(shm._name, "shared_memory")
// after opening on 3.8 to 3.12. The other way round, a block that python3
// created is unlinked by Python's tracker when that Python program exits,
// whatever Go still does with it (the mappings stay valid; the name goes).
//
// # Names
//
// Names follow Python's (that is glibc's shm_open) rules: leading slashes
// are ignored ("foo" and "/foo" are one block), the rest must be 1 to 255
// bytes with no "/" and no NUL byte. Name returns the name as given, as
// Python's .name does.
//
// # After Close
//
// Every method but Close and Unlink fails after Close: Bytes panics with
// an error matching ErrClosed. A slice that Bytes returned before Close
// faults loudly if used after it — its address range stays reserved and
// inaccessible for the rest of the process's life, as Array.Slice's does
// — and never reads or writes memory the address was reused for.
// Another process that shrinks the file behind a mapping (Python cannot;
// a hostile process with access to /dev/shm could) makes an access past
// the new end fault with SIGBUS: shared memory by name gives every process
// that can open the name that power.
type SharedMemory struct {
	noCopy noCopy
	object
	name string
	size int
}

var kSharedMemory = newKind("SharedMemory", "CreateSharedMemory or OpenSharedMemory")

// shmPath checks name as glibc's shm_open does (and Python, which adds one
// leading slash) and returns the path of its object.
func shmPath(name string) (string, error) {
	base := strings.TrimLeft(name, "/")
	switch {
	case base == "" || strings.ContainsAny(base, "/\x00"):
		return "", &fs.PathError{Op: "shm_open", Path: "/" + name, Err: syscall.EINVAL}
	case len(base) > 255:
		return "", &fs.PathError{Op: "shm_open", Path: "/" + name, Err: syscall.ENAMETOOLONG}
	}
	return shmDir + base, nil
}

// CreateSharedMemory creates a new block of size bytes, zero-filled, as
// Python's SharedMemory(name, create=True, size=size). An empty name
// picks a free one the way Python does ("psm_" and 8 hex digits). A name
// that exists already is an error matching fs.ErrExist; a size below 1 an
// error. The object is created with mode 0600.
func CreateSharedMemory(name string, size int) (*SharedMemory, error) {
	if err := checkCreate("CreateSharedMemory"); err != nil {
		return nil, err
	}
	if size <= 0 {
		return nil, errorf("CreateSharedMemory: size %d must be a positive number different from zero", size)
	}
	for {
		n := name
		if n == "" {
			var b [4]byte
			rand.Read(b[:])
			n = "psm_" + hex.EncodeToString(b[:])
		}
		m, err := createShm(n, size)
		if name == "" && errors.Is(err, fs.ErrExist) {
			continue // Python picks again
		}
		return m, err
	}
}

func createShm(name string, size int) (*SharedMemory, error) {
	path, err := shmPath(name)
	if err != nil {
		return nil, errorf("CreateSharedMemory: %w", err)
	}
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, errorf("CreateSharedMemory: %w", &fs.PathError{Op: "shm_open", Path: "/" + name, Err: err})
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		unix.Unlink(path)
		return nil, errorf("CreateSharedMemory: sizing %q to %d bytes: %w", name, size, err)
	}
	seg, err := mapShm(fd, name, size)
	if err != nil {
		unix.Unlink(path)
		return nil, err
	}
	return newSharedMemory(seg, name), nil
}

// OpenSharedMemory opens the existing block called name, as Python's
// SharedMemory(name): read and write, its size the object's own. A name
// that does not exist is an error matching fs.ErrNotExist; an empty block
// (its creator has not sized it yet) is an error.
func OpenSharedMemory(name string) (*SharedMemory, error) {
	path, err := shmPath(name)
	if err != nil {
		return nil, errorf("OpenSharedMemory: %w", err)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errorf("OpenSharedMemory: %w", &fs.PathError{Op: "shm_open", Path: "/" + name, Err: err})
	}
	seg, err := mapShm(fd, name, -1)
	if err != nil {
		return nil, err
	}
	return newSharedMemory(seg, name), nil
}

func newSharedMemory(seg *shm.Segment, name string) *SharedMemory {
	m := &SharedMemory{}
	m.init(seg, name)
	return m
}

func (m *SharedMemory) init(seg *shm.Segment, name string) {
	m.name, m.size = name, seg.Size()
	initObject(&m.object, m, seg)
}

// mapShm maps fd (which it owns) at the object's real size; want >= 0 is
// the size the caller made it.
func mapShm(fd int, name string, want int) (*shm.Segment, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, errorf("shared memory %q: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, errorf("shared memory %q is not a shared memory object", name)
	}
	if st.Size <= 0 {
		unix.Close(fd)
		return nil, errorf("shared memory %q is empty (0 bytes): its creator has not sized it", name)
	}
	if want >= 0 && st.Size != int64(want) {
		unix.Close(fd)
		return nil, errorf("shared memory %q is %d bytes, not the %d asked for", name, st.Size, want)
	}
	if uint64(st.Size) > 1<<47 {
		unix.Close(fd)
		return nil, errorf("shared memory %q is too large to map (%d bytes)", name, st.Size)
	}
	seg, err := shm.Open(fd)
	if err != nil {
		return nil, errorf("shared memory %q: %w", name, err)
	}
	return seg, nil
}

// Name returns the block's name as Python's .name reports it: as given to
// CreateSharedMemory or OpenSharedMemory (or picked), without the slash
// that Python and glibc put in front.
func (m *SharedMemory) Name() string { return m.name }

// Size returns the block's length in bytes: len(Bytes()) without handing
// the memory out.
func (m *SharedMemory) Size() int {
	m.mem(kSharedMemory)
	return m.size
}

// Bytes returns the block itself, Python's .buf: writes through it are
// seen at once by every process that maps the block, Go or Python. Plain
// memory: guard concurrent writers yourself (a Lock, or ranges given to
// each). See the type's doc for what becomes of it after Close. It panics
// (with an error matching ErrClosed) after Close.
func (m *SharedMemory) Bytes() []byte {
	r := m.ref
	if r == nil {
		panic(kSharedMemory.zero)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		panic(kSharedMemory.closed)
	}
	r.keepMap = true
	return r.seg.Bytes()
}

// Close unmaps the block in this process and closes its descriptor; the
// block and its name live on. Closing again does nothing and returns nil.
func (m *SharedMemory) Close() error {
	if m.ref == nil {
		return kSharedMemory.zero
	}
	return m.close(kSharedMemory)
}

// Unlink removes the block's name, as Python's unlink (shm_unlink): no
// process can open it any more, and its memory is freed once every
// mapping is gone. Mappings that exist stay valid. It works after Close
// too. Unlinking a name that is gone (a second Unlink, or Python's
// resource tracker was first) is an error matching fs.ErrNotExist.
func (m *SharedMemory) Unlink() error {
	path, err := shmPath(m.name)
	if err != nil {
		return errorf("Unlink: %w", err)
	}
	if err := unix.Unlink(path); err != nil {
		return errorf("Unlink: %w", &fs.PathError{Op: "shm_unlink", Path: "/" + m.name, Err: err})
	}
	return nil
}

// exportHandle is how a SharedMemory travels to another process; called by the package.
func (m *SharedMemory) exportHandle() (handle.Desc, error) {
	d, err := exportSeg(&m.object, kSharedMemory, "SharedMemory")
	d.Meta = []byte(m.name)
	return d, err
}

// importHandle makes m the SharedMemory described by d; called by the package.
func (m *SharedMemory) importHandle(d handle.Desc) error {
	if d.Kind != "SharedMemory" || len(d.Fds) != 1 || len(d.Meta) > 4096 {
		handleCloseFds(d)
		return errorf("a shared %s arrived where a SharedMemory was expected", d.Kind)
	}
	seg, err := mapShm(d.Fds[0], string(d.Meta), -1)
	if err != nil {
		return err
	}
	m.init(seg, string(d.Meta))
	return nil
}
