//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"runtime"
	"sync/atomic"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/gate"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
)

// Semaphore is a counting semaphore shared between processes, Python's
// multiprocessing.Semaphore: Acquire takes one of its units, waiting while
// none is free, and Release gives one back. It travels to children as
// Value does. Unlike Lock it has no owner: a unit held by a process that
// dies is not given back.
//
// NewBoundedSemaphore makes one whose count may never exceed its initial
// value, in any process: Python's BoundedSemaphore.
//
// Close releases this process's hold on it. After Close, and on a zero
// Semaphore, every method but Close fails: Acquire and passing it to another process
// return an error matching ErrClosed (ErrNotInitialized for a zero
// Semaphore), the others panic with it. A Semaphore must not be copied
// after first use (go vet reports copies).
type Semaphore struct {
	_ noCopy
	object
	s     futex.Sema
	gate  gate.Gate
	bound *uint32 // in the segment: 0 unbounded, else the bound + 1
}

// Offset of a bounded semaphore's bound, beside its waiters' count.
const offBound = offWord1 + 8

// NewSemaphore makes a semaphore with n free units; n must be in
// [0, 2^31-1] (the most units a Semaphore holds: Linux's SEM_VALUE_MAX, as
// in Python).
func NewSemaphore(n int) (*Semaphore, error) {
	return newSemaphore("NewSemaphore", n, false)
}

// NewBoundedSemaphore makes a semaphore with n free units (n in [0,
// 2^31-1]; 0 is valid: nothing to Acquire until some process Releases, and
// then a Release past the bound panics at once) that refuses to hold more
// than n: a Release that would make the count exceed n panics, as
// golang.org/x/sync/semaphore's does (Python raises ValueError). The
// bound is in the shared memory: it holds in every process the Semaphore
// reaches.
func NewBoundedSemaphore(n int) (*Semaphore, error) {
	return newSemaphore("NewBoundedSemaphore", n, true)
}

func newSemaphore(name string, n int, bounded bool) (*Semaphore, error) {
	if err := checkCreate(name); err != nil {
		return nil, err
	}
	if n < 0 || n > futex.SemaMax {
		return nil, errorf("%s(%d): the count must be in [0, 2^31-1]", name, n)
	}
	seg, err := shm.Create("semaphore", 128)
	if err != nil {
		return nil, own(err)
	}
	// Nobody else can see the segment yet: set the count, no loop.
	atomic.StoreUint32(futex.Word(seg.Bytes(), offWord0), uint32(n))
	if bounded {
		atomic.StoreUint32(futex.Word(seg.Bytes(), offBound), uint32(n)+1)
	}
	s := &Semaphore{}
	s.init(seg)
	return s, nil
}

func (s *Semaphore) init(seg *shm.Segment) {
	initObject(&s.object, s, seg)
	mem := seg.Bytes()
	s.s = futex.Sema{Count: futex.Word(mem, offWord0), Waiters: futex.Word(mem, offWord1)}
	s.gate = gate.New()
	s.bound = futex.Word(mem, offBound)
}

// Acquire takes a unit, waiting until one is free or ctx is done (then it
// returns ctx.Err() and takes nothing), or the Semaphore is closed in
// this process (an error matching ErrClosed).
func (s *Semaphore) Acquire(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	defer runtime.KeepAlive(s)
	if s.base.Load() == nil {
		return s.useErr(kSemaphore)
	}
	if s.s.TryAcquire() {
		return nil
	}
	return s.wait(ctx, kSemaphore, s.gate, s.s.Acquire, nil)
}

// TryAcquire takes a unit if one is free and reports whether it did.
func (s *Semaphore) TryAcquire() bool {
	s.mem(kSemaphore)
	ok := s.s.TryAcquire()
	runtime.KeepAlive(s)
	return ok
}

// Release gives a unit back, waking a waiter in any process. On a
// bounded semaphore (NewBoundedSemaphore), a Release that would leave
// more units free than the bound panics, changing nothing. A Release that
// would make the count more than 2^31-1 panics and gives nothing back
// (Python raises ValueError: released too many times); the count never
// wraps.
func (s *Semaphore) Release() {
	s.mem(kSemaphore)
	var ok bool
	if b := atomic.LoadUint32(s.bound); b != 0 {
		if !s.s.ReleaseBelow(b - 1) {
			panic(errorf("Release of a BoundedSemaphore past its bound %d", b-1))
		}
		ok = true
	} else {
		ok = s.s.Release()
	}
	runtime.KeepAlive(s)
	if !ok {
		panic(errSemaphoreMax)
	}
}

var errSemaphoreMax = errorf("Semaphore released too many times: it holds 2^31-1 units, the most it can")

// Value returns the number of free units as of the call (Python's
// get_value); other processes may change it at once.
func (s *Semaphore) Value() int {
	s.mem(kSemaphore)
	n := int(s.s.Value())
	runtime.KeepAlive(s)
	return n
}

// Close releases this process's descriptor and mapping of the Semaphore
// now; other processes keep theirs, and the units. Closing again does
// nothing and returns nil. An Acquire blocked in this process returns an
// error matching ErrClosed; units this process took are not given back.
func (s *Semaphore) Close() error { return s.close(kSemaphore) }

// exportHandle is how a Semaphore travels; called by the package.
func (s *Semaphore) exportHandle() (handle.Desc, error) {
	return exportSeg(&s.object, kSemaphore, "Semaphore")
}

// importHandle makes s the Semaphore described by d; called by the package.
func (s *Semaphore) importHandle(d handle.Desc) error {
	seg, err := importSeg(d, "Semaphore")
	if err != nil {
		return err
	}
	s.init(seg)
	return nil
}
