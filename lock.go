//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"runtime"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
)

// Lock is a mutual-exclusion lock shared between processes, Python's
// multiprocessing.Lock, and a sync.Locker. The lock word lives in shared
// memory and records its holder's pid: if the holder dies while holding
// it, a waiter takes the lock over within about 100 ms instead of
// deadlocking (the data it guards may then be half-updated). Any process
// or goroutine may Unlock it, as in Python: a lock taken in one process
// may be released in another. It travels to children as Value does.
//
// Close releases this process's hold on it. After Close, and on a zero
// Lock, every method but Close fails: LockContext and passing it to another process return
// an error matching ErrClosed (ErrNotInitialized for a zero Lock), the
// others panic with it.
//
// A Lock must not be copied after first use (go vet reports copies).
type Lock struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	object
	mu xlock
}

// NewLock makes an unlocked Lock.
func NewLock() (*Lock, error) {
	if err := checkCreate("NewLock"); err != nil {
		return nil, err
	}
	seg, err := shm.Create("lock", 128)
	if err != nil {
		return nil, own(err)
	}
	l := &Lock{}
	l.init(seg)
	return l, nil
}

func (l *Lock) init(seg *shm.Segment) {
	initObject(&l.object, l, seg)
	l.mu.init()
}

// Lock blocks until the lock is held by the caller. It panics if the Lock
// is closed, even while it waits: LockContext returns an error instead.
func (l *Lock) Lock() {
	l.mu.lockOrPanic(&l.object, kLock)
	runtime.KeepAlive(l)
}

// LockContext is Lock bounded by ctx: it returns ctx.Err() if ctx ends
// before the lock is taken (then it is not held), or an error matching
// ErrClosed if the Lock is closed meanwhile in this process.
func (l *Lock) LockContext(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	err := l.mu.lock(ctx, &l.object, kLock)
	runtime.KeepAlive(l)
	return err
}

// Unlock releases the lock, whichever process or goroutine locked it. It
// panics if the lock is not held.
func (l *Lock) Unlock() {
	l.mu.unlock(&l.object, kLock)
	runtime.KeepAlive(l)
}

// TryLock takes the lock if it is free (or its holder died) and reports
// whether it did.
func (l *Lock) TryLock() bool {
	ok := l.mu.tryLock(&l.object, kLock)
	runtime.KeepAlive(l)
	return ok
}

// Takeovers counts the times this process took the lock over from a
// holder that had died with it.
func (l *Lock) Takeovers() int {
	l.mem(kLock)
	return int(l.mu.takeovers.Load())
}

// Close releases this process's descriptor and mapping of the Lock now;
// other processes keep theirs. Closing again does nothing and returns
// nil. A call blocked in Lock panics, one in LockContext returns an error
// matching ErrClosed. Close does not unlock: a lock this process holds
// stays held until some process Unlocks it or this process exits (and a
// waiter takes it over).
func (l *Lock) Close() error { return l.close(kLock) }

// exportHandle is how a Lock travels to another process; called by the package.
func (l *Lock) exportHandle() (handle.Desc, error) { return exportSeg(&l.object, kLock, "Lock") }

// importHandle makes l the Lock described by d; called by the package.
func (l *Lock) importHandle(d handle.Desc) error {
	seg, err := importSeg(d, "Lock")
	if err != nil {
		return err
	}
	l.init(seg)
	return nil
}
