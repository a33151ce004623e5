//go:build linux && (amd64 || arm64)

// Package futex holds the futex system call on shared memory and the
// cross-process synchronisation words built on it: a mutex that survives
// its holder's death, a counting semaphore, an event and a barrier.
//
// Every word lives in memory shared between processes (a memfd mapping), so
// the operations are the non-private futex ones, every access is a
// sync/atomic one, and every wait loop treats EINTR and spurious wake-ups as
// "check the condition again". A goroutine blocked in Wait pins an OS thread
// for as long as it waits: callers limit how many goroutines of a process
// wait on the same word (the root package gates them).
package futex

import (
	"errors"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/wait"
	"golang.org/x/sys/unix"
)

const (
	opWait = 0 // FUTEX_WAIT, without FUTEX_PRIVATE_FLAG: the word is shared between processes
	opWake = 1 // FUTEX_WAKE
)

// ErrTimeout is returned by Wait when its timeout passed before a wake-up.
var ErrTimeout = errors.New("futex wait timed out")

// Wait blocks while *addr == val, until a Wake on addr, a signal, or the
// timeout (none when timeout <= 0). It returns nil for every wake-up,
// including spurious ones and EINTR, and ErrTimeout when the time is up:
// the caller re-checks its condition either way.
func Wait(addr *uint32, val uint32, timeout time.Duration) error {
	var tsp unsafe.Pointer
	var ts unix.Timespec
	if timeout > 0 {
		ts = unix.NsecToTimespec(int64(timeout))
		tsp = unsafe.Pointer(&ts)
	}
	// unix.Syscall6, never RawSyscall: the wait may be long and the
	// scheduler must hand this thread's P to other goroutines.
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWait, uintptr(val), uintptr(tsp), 0, 0)
	switch e {
	case 0, unix.EAGAIN, unix.EINTR:
		return nil
	case unix.ETIMEDOUT:
		return ErrTimeout
	default:
		return syscall.Errno(e)
	}
}

// Wake wakes up to n waiters blocked on addr and returns how many woke.
func Wake(addr *uint32, n int) int {
	if n <= 0 {
		n = 1<<31 - 1
	}
	r, _, _ := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWake, uintptr(n), 0, 0, 0)
	return int(r)
}

// WakeAll wakes every waiter blocked on addr.
func WakeAll(addr *uint32) { Wake(addr, 0) }

// The waiting policies of the words that carry none of their own: one
// per kind of wait and process (see package wait).
var (
	mutexSpin   wait.Spinner
	semaSpin    wait.Spinner
	eventSpin   wait.Spinner
	barrierSpin wait.Spinner
)

// Word returns the uint32 at offset off of the shared mapping mem, which
// must be 4-byte aligned and inside mem.
func Word(mem []byte, off int) *uint32 {
	if off < 0 || off+4 > len(mem) || off%4 != 0 {
		panic("multiproc: futex word out of range")
	}
	return (*uint32)(unsafe.Pointer(&mem[off]))
}

// atomic helpers, named for what they do to a shared word.
func load(w *uint32) uint32               { return atomic.LoadUint32(w) }
func cas(w *uint32, old, new uint32) bool { return atomic.CompareAndSwapUint32(w, old, new) }
