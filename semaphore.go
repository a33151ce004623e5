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
// Close releases this process's hold on it. After Close, and on a zero
// Semaphore, every method but Close fails: Acquire and passing it to another process
// return an error matching ErrClosed (ErrNotInitialized for a zero
// Semaphore), the others panic with it.
type Semaphore struct {
	object
	s    futex.Sema
	gate gate.Gate
}

// NewSemaphore makes a semaphore with n free units; n must be in [0, 2^31].
func NewSemaphore(n int) (*Semaphore, error) {
	if err := checkCreate("NewSemaphore"); err != nil {
		return nil, err
	}
	if n < 0 || n > 1<<31 {
		return nil, errorf("NewSemaphore(%d): the count must be in [0, 2^31]", n)
	}
	seg, err := shm.Create("semaphore", 128)
	if err != nil {
		return nil, own(err)
	}
	// Nobody else can see the segment yet: set the count, no loop.
	atomic.StoreUint32(futex.Word(seg.Bytes(), offWord0), uint32(n))
	s := &Semaphore{}
	s.init(seg)
	return s, nil
}

func (s *Semaphore) init(seg *shm.Segment) {
	initObject(&s.object, s, seg)
	mem := seg.Bytes()
	s.s = futex.Sema{Count: futex.Word(mem, offWord0), Waiters: futex.Word(mem, offWord1)}
	s.gate = gate.New()
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
	r, err := s.enter(kSemaphore)
	if err != nil {
		return err
	}
	defer r.leave()
	if err := s.gate.Enter(ctx, r.done); err != nil {
		return s.waitErr(kSemaphore, ctx, err)
	}
	defer s.gate.Leave()
	wctx, stop := r.waitCtx(ctx)
	defer stop()
	return s.waitErr(kSemaphore, ctx, s.s.Acquire(wctx))
}

// TryAcquire takes a unit if one is free and reports whether it did.
func (s *Semaphore) TryAcquire() bool {
	s.mem(kSemaphore)
	ok := s.s.TryAcquire()
	runtime.KeepAlive(s)
	return ok
}

// Release gives a unit back, waking a waiter in any process.
func (s *Semaphore) Release() {
	s.mem(kSemaphore)
	s.s.Release()
	runtime.KeepAlive(s)
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
