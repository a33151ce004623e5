package multiproc

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/gate"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
)

func importSeg(d handle.Desc, kind string) (*shm.Segment, error) {
	if d.Kind != kind || len(d.Fds) != 1 {
		handleCloseFds(d)
		return nil, errorf("a shared %s arrived where a %s was expected", d.Kind, kind)
	}
	return shm.Open(d.Fds[0])
}

// exportSeg describes o's segment for exportHandle.
func exportSeg(o *object, k *kind, name string) (handle.Desc, error) {
	fd, err := o.fd(k)
	if err != nil {
		return handle.Desc{}, err
	}
	return handle.Desc{Kind: name, Fds: []int{fd}}, nil
}

// Offsets of the words of a sync segment, each on its own cache line.
const (
	offWord0 = 0
	offWord1 = 64
)

// xlock is the mutex of a Lock, Value or Array: a futex word in shared
// memory (at the start of its object's segment) that holds its holder's
// pid, so a holder that dies is noticed and the lock taken over (never a
// silent deadlock). The word is the whole state: any process may unlock,
// as the word records who locked, not who may unlock. A gate in front of
// the wait lets one goroutine of this process sleep in the kernel and
// keeps the others in the Go scheduler, holding no OS thread; it is held
// only while waiting, never while the lock is held, so a release by
// another process leaves nothing behind in this one.
type xlock struct {
	gate      gate.Gate
	takeovers atomic.Int64
}

func (l *xlock) init() { l.gate = gate.New() }

func (l *xlock) lock(ctx context.Context, o *object, k *kind) error {
	p := o.base.Load()
	if p == nil {
		return o.useErr(k)
	}
	m := futex.Mutex{W: (*uint32)(unsafe.Pointer(p))}
	if m.TryFast() {
		return nil
	}
	r, err := o.enter(k)
	if err != nil {
		return err
	}
	defer r.leave()
	if err := l.gate.Enter(ctx, r.done); err != nil {
		return o.waitErr(k, ctx, err)
	}
	defer l.gate.Leave()
	wctx, stop := r.waitCtx(ctx)
	recovered, err := m.LockContext(wctx)
	stop()
	if err != nil {
		return o.waitErr(k, ctx, err)
	}
	if recovered {
		l.takeovers.Add(1)
	}
	return nil
}

// lockOrPanic is Lock for the methods without an error result: one call,
// whose fast path is a compare-and-swap.
func (l *xlock) lockOrPanic(o *object, k *kind) {
	if p := o.base.Load(); p != nil && (futex.Mutex{W: (*uint32)(unsafe.Pointer(p))}).TryFast() {
		return
	}
	if err := l.lock(context.Background(), o, k); err != nil {
		panic(err)
	}
}

func (l *xlock) unlock(o *object, k *kind) {
	if !(futex.Mutex{W: (*uint32)(o.mem(k))}).Unlock() {
		panic(k.unlocked)
	}
}

func (l *xlock) tryLock(o *object, k *kind) bool {
	return futex.Mutex{W: (*uint32)(o.mem(k))}.TryLock()
}

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
type Lock struct {
	object
	mu xlock
}

// NewLock makes an unlocked Lock.
func NewLock() (*Lock, error) {
	seg, err := shm.Create("lock", 128)
	if err != nil {
		return nil, err
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
	if n < 0 || n > 1<<31 {
		return nil, errorf("NewSemaphore(%d): the count must be in [0, 2^31]", n)
	}
	seg, err := shm.Create("semaphore", 128)
	if err != nil {
		return nil, err
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

// Event is a flag shared between processes, Python's multiprocessing.Event:
// Wait blocks until some process Sets it. It travels to children as Value
// does.
//
// Close releases this process's hold on it. After Close, and on a zero
// Event, every method but Close fails: Wait and passing it to another process return an
// error matching ErrClosed (ErrNotInitialized for a zero Event), the
// others panic with it.
type Event struct {
	object
	e    futex.Event
	gate gate.Gate
}

// NewEvent makes an Event that is not set.
func NewEvent() (*Event, error) {
	seg, err := shm.Create("event", 128)
	if err != nil {
		return nil, err
	}
	e := &Event{}
	e.init(seg)
	return e, nil
}

func (e *Event) init(seg *shm.Segment) {
	initObject(&e.object, e, seg)
	e.e = futex.Event{W: futex.Word(seg.Bytes(), offWord0)}
	e.gate = gate.New()
}

// Set sets the flag and wakes every waiter in every process.
func (e *Event) Set() {
	e.mem(kEvent)
	e.e.Set()
	runtime.KeepAlive(e)
}

// Clear resets the flag.
func (e *Event) Clear() {
	e.mem(kEvent)
	e.e.Clear()
	runtime.KeepAlive(e)
}

// IsSet reports whether the flag is set.
func (e *Event) IsSet() bool {
	e.mem(kEvent)
	ok := e.e.IsSet()
	runtime.KeepAlive(e)
	return ok
}

// Wait blocks until the flag is set (nil), ctx is done (ctx.Err()) or the
// Event is closed in this process (an error matching ErrClosed).
func (e *Event) Wait(ctx context.Context) error {
	defer runtime.KeepAlive(e)
	if e.base.Load() == nil {
		return e.useErr(kEvent)
	}
	if e.e.IsSet() {
		return nil
	}
	r, err := e.enter(kEvent)
	if err != nil {
		return err
	}
	defer r.leave()
	wctx, stop := r.waitCtx(ctx)
	defer stop()
	// Waiters of this process share one kernel waiter; the others poll the
	// flag when it leaves.
	for {
		if err := e.gate.Enter(ctx, r.done); err != nil {
			if e.e.IsSet() {
				return nil
			}
			return e.waitErr(kEvent, ctx, err)
		}
		err := e.e.Wait(wctx)
		e.gate.Leave()
		if err == nil || e.e.IsSet() {
			return nil
		}
		if wctx.Err() != nil {
			return e.waitErr(kEvent, ctx, err)
		}
	}
}

// Close releases this process's descriptor and mapping of the Event now;
// other processes keep theirs. Closing again does nothing and returns
// nil. A Wait blocked in this process returns an error matching ErrClosed.
func (e *Event) Close() error { return e.close(kEvent) }

// exportHandle is how an Event travels; called by the package.
func (e *Event) exportHandle() (handle.Desc, error) { return exportSeg(&e.object, kEvent, "Event") }

// importHandle makes e the Event described by d; called by the package.
func (e *Event) importHandle(d handle.Desc) error {
	seg, err := importSeg(d, "Event")
	if err != nil {
		return err
	}
	e.init(seg)
	return nil
}

// Barrier makes n parties — processes or goroutines — wait for each other,
// Python's multiprocessing.Barrier: each Wait blocks until n have called
// it, then all return and the barrier is ready for the next round. A
// waiter whose context ends breaks the barrier: it returns its context's
// error, and every other waiter, now and later, an error matching
// ErrBrokenBarrier. It travels to children as Value does.
//
// Close releases this process's hold on it. After Close, and on a zero
// Barrier, every method but Close fails: Wait and passing it to another process return an
// error matching ErrClosed (ErrNotInitialized for a zero Barrier), Broken
// panics with it.
type Barrier struct {
	object
	b    futex.Barrier
	gate gate.Gate
}

// NewBarrier makes a barrier for n parties (1 ≤ n ≤ 65535).
func NewBarrier(n int) (*Barrier, error) {
	if n < 1 || n > futex.MaxParties {
		return nil, errorf("NewBarrier(%d): parties must be in [1, %d]", n, futex.MaxParties)
	}
	seg, err := shm.Create("barrier", 128)
	if err != nil {
		return nil, err
	}
	*futex.Word(seg.Bytes(), offWord1) = uint32(n)
	b := &Barrier{}
	b.init(seg, uint32(n))
	return b, nil
}

func (b *Barrier) init(seg *shm.Segment, n uint32) {
	initObject(&b.object, b, seg)
	b.b = futex.Barrier{W: futex.Word(seg.Bytes(), offWord0), Parties: n}
	b.gate = gate.New()
}

// Wait arrives at the barrier and blocks until all parties have arrived
// (nil), the barrier breaks (ErrBrokenBarrier), or ctx ends (its error; the
// barrier breaks for everyone). Closing the Barrier in this process ends
// a Wait as its context would, with an error matching ErrClosed.
func (b *Barrier) Wait(ctx context.Context) error {
	defer runtime.KeepAlive(b)
	r, err := b.enter(kBarrier)
	if err != nil {
		return err
	}
	defer r.leave()
	gen, done, err := b.b.Arrive()
	if !done && err == nil {
		// Goroutines of this process take turns sleeping in the kernel;
		// the others wait in the Go scheduler, holding no OS thread.
		if ok, perr := b.b.Passed(gen); ok {
			err = perr
		} else if gerr := b.gate.Enter(ctx, r.done); gerr != nil {
			err = b.waitErr(kBarrier, ctx, b.b.Break(gen, gerr))
		} else {
			wctx, stop := r.waitCtx(ctx)
			err = b.waitErr(kBarrier, ctx, b.b.Await(wctx, gen))
			stop()
			b.gate.Leave()
		}
	}
	if errors.Is(err, futex.ErrBroken) {
		return ErrBrokenBarrier
	}
	return err
}

// Broken reports whether the barrier is broken.
func (b *Barrier) Broken() bool {
	b.mem(kBarrier)
	ok := b.b.Broken()
	runtime.KeepAlive(b)
	return ok
}

// Close releases this process's descriptor and mapping of the Barrier
// now; other processes keep theirs. Closing again does nothing and returns
// nil. A Wait blocked in this process returns an error matching
// ErrClosed, and the barrier breaks for the other parties, as when a
// waiter's context ends.
func (b *Barrier) Close() error { return b.close(kBarrier) }

// exportHandle is how a Barrier travels; called by the package.
func (b *Barrier) exportHandle() (handle.Desc, error) {
	return exportSeg(&b.object, kBarrier, "Barrier")
}

// importHandle makes b the Barrier described by d; called by the package.
func (b *Barrier) importHandle(d handle.Desc) error {
	seg, err := importSeg(d, "Barrier")
	if err != nil {
		return err
	}
	n := *futex.Word(seg.Bytes(), offWord1)
	if n < 1 || n > futex.MaxParties {
		seg.Close()
		return errors.New("multiproc: shared Barrier segment is corrupt")
	}
	b.init(seg, n)
	return nil
}
