package multiproc

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
)

// syncObj is the shared segment and words behind a Lock, Semaphore, Event
// or Barrier.
type syncObj struct {
	ref *segRef
	mem []byte
}

func (s *syncObj) export(kind string, meta []byte) (handle.Desc, error) {
	return handle.Desc{Kind: kind, Meta: meta, Fds: []int{s.ref.seg.Fd()}}, nil
}

func importSeg(d handle.Desc, kind string) (*shm.Segment, error) {
	if d.Kind != kind || len(d.Fds) != 1 {
		handleCloseFds(d)
		return nil, fmt.Errorf("multiproc: a shared %s arrived where a %s was expected", d.Kind, kind)
	}
	return shm.Open(d.Fds[0])
}

// Offsets of the words of a sync segment, each on its own cache line.
const (
	offWord0 = 0
	offWord1 = 64
)

// Lock is a mutual-exclusion lock shared between processes, Python's
// multiprocessing.Lock, and a sync.Locker. The lock word lives in shared
// memory and records its holder's pid: if the holder dies while holding
// it, a waiter takes the lock over within about 100 ms instead of
// deadlocking (the data it guards may then be half-updated). Any process
// or goroutine may Unlock it. It travels to children as Value does.
type Lock struct {
	syncObj
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
	l.ref = newSegRef(l, seg)
	l.mem = seg.Bytes()
	l.mu.m = futex.Mutex{W: futex.Word(l.mem, offWord0)}
}

// Lock blocks until the lock is held by the caller.
func (l *Lock) Lock() { l.mu.lock() }

// Unlock releases the lock.
func (l *Lock) Unlock() {
	l.mu.unlock()
	runtime.KeepAlive(l)
}

// TryLock takes the lock if it is free (or its holder died) and reports
// whether it did.
func (l *Lock) TryLock() bool {
	ok := l.mu.tryLock()
	runtime.KeepAlive(l)
	return ok
}

// Takeovers counts the times this process took the lock over from a
// holder that had died with it.
func (l *Lock) Takeovers() int { return int(l.mu.takeovers.Load()) }

// ExportHandle is how a Lock travels to another process; called by the package.
func (l *Lock) ExportHandle() (handle.Desc, error) { return l.export("Lock", nil) }

// ImportHandle makes l the Lock described by d; called by the package.
func (l *Lock) ImportHandle(d handle.Desc) error {
	seg, err := importSeg(d, "Lock")
	if err != nil {
		return err
	}
	l.init(seg)
	return nil
}

// GobEncode refuses: a Lock is shared, never copied into a message.
func (l *Lock) GobEncode() ([]byte, error) { return nil, errTravel }

// GobDecode refuses, as GobEncode does.
func (l *Lock) GobDecode([]byte) error { return errTravel }

// MarshalBinary refuses, as GobEncode does.
func (l *Lock) MarshalBinary() ([]byte, error) { return nil, errTravel }

// UnmarshalBinary refuses, as GobEncode does.
func (l *Lock) UnmarshalBinary([]byte) error { return errTravel }

// gate lets one goroutine of this process at a time wait in the kernel on
// an object's futex word: the others wait in the Go scheduler, where a
// context can still call them off, and hold no OS thread.
type gate chan struct{}

func (g gate) enter(ctx context.Context) error {
	select {
	case g <- struct{}{}:
		return nil
	default:
	}
	select {
	case g <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g gate) leave() { <-g }

// Semaphore is a counting semaphore shared between processes, Python's
// multiprocessing.Semaphore: Acquire takes one of its units, waiting while
// none is free, and Release gives one back. It travels to children as
// Value does. Unlike Lock it has no owner: a unit held by a process that
// dies is not given back.
type Semaphore struct {
	syncObj
	s    futex.Sema
	gate gate
}

// NewSemaphore makes a semaphore with n free units; n < 0 is an error.
func NewSemaphore(n int) (*Semaphore, error) {
	if n < 0 || n > 1<<31 {
		return nil, fmt.Errorf("multiproc: NewSemaphore(%d): the count must be in [0, 2^31]", n)
	}
	seg, err := shm.Create("semaphore", 128)
	if err != nil {
		return nil, err
	}
	s := &Semaphore{}
	s.init(seg)
	for range n {
		s.s.Release()
	}
	return s, nil
}

func (s *Semaphore) init(seg *shm.Segment) {
	s.ref = newSegRef(s, seg)
	s.mem = seg.Bytes()
	s.s = futex.Sema{Count: futex.Word(s.mem, offWord0), Waiters: futex.Word(s.mem, offWord1)}
	s.gate = make(gate, 1)
}

// Acquire takes a unit, waiting until one is free or ctx is done (then it
// returns ctx.Err() and takes nothing).
func (s *Semaphore) Acquire(ctx context.Context) error {
	defer runtime.KeepAlive(s)
	if s.s.TryAcquire() {
		return nil
	}
	if err := s.gate.enter(ctx); err != nil {
		return err
	}
	defer s.gate.leave()
	return s.s.Acquire(ctx)
}

// TryAcquire takes a unit if one is free and reports whether it did.
func (s *Semaphore) TryAcquire() bool {
	ok := s.s.TryAcquire()
	runtime.KeepAlive(s)
	return ok
}

// Release gives a unit back, waking a waiter in any process.
func (s *Semaphore) Release() {
	s.s.Release()
	runtime.KeepAlive(s)
}

// ExportHandle is how a Semaphore travels; called by the package.
func (s *Semaphore) ExportHandle() (handle.Desc, error) { return s.export("Semaphore", nil) }

// ImportHandle makes s the Semaphore described by d; called by the package.
func (s *Semaphore) ImportHandle(d handle.Desc) error {
	seg, err := importSeg(d, "Semaphore")
	if err != nil {
		return err
	}
	s.init(seg)
	return nil
}

// GobEncode refuses: a Semaphore is shared, never copied into a message.
func (s *Semaphore) GobEncode() ([]byte, error) { return nil, errTravel }

// GobDecode refuses, as GobEncode does.
func (s *Semaphore) GobDecode([]byte) error { return errTravel }

// MarshalBinary refuses, as GobEncode does.
func (s *Semaphore) MarshalBinary() ([]byte, error) { return nil, errTravel }

// UnmarshalBinary refuses, as GobEncode does.
func (s *Semaphore) UnmarshalBinary([]byte) error { return errTravel }

// Event is a flag shared between processes, Python's multiprocessing.Event:
// Wait blocks until some process Sets it. It travels to children as Value
// does.
type Event struct {
	syncObj
	e    futex.Event
	gate gate
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
	e.ref = newSegRef(e, seg)
	e.mem = seg.Bytes()
	e.e = futex.Event{W: futex.Word(e.mem, offWord0)}
	e.gate = make(gate, 1)
}

// Set sets the flag and wakes every waiter in every process.
func (e *Event) Set() {
	e.e.Set()
	runtime.KeepAlive(e)
}

// Clear resets the flag.
func (e *Event) Clear() {
	e.e.Clear()
	runtime.KeepAlive(e)
}

// IsSet reports whether the flag is set.
func (e *Event) IsSet() bool {
	ok := e.e.IsSet()
	runtime.KeepAlive(e)
	return ok
}

// Wait blocks until the flag is set (nil) or ctx is done (ctx.Err()).
func (e *Event) Wait(ctx context.Context) error {
	defer runtime.KeepAlive(e)
	if e.e.IsSet() {
		return nil
	}
	// Waiters of this process share one kernel waiter; the others poll the
	// flag when it leaves.
	for {
		if err := e.gate.enter(ctx); err != nil {
			if e.e.IsSet() {
				return nil
			}
			return err
		}
		err := e.e.Wait(ctx)
		e.gate.leave()
		if err == nil || e.e.IsSet() {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
	}
}

// ExportHandle is how an Event travels; called by the package.
func (e *Event) ExportHandle() (handle.Desc, error) { return e.export("Event", nil) }

// ImportHandle makes e the Event described by d; called by the package.
func (e *Event) ImportHandle(d handle.Desc) error {
	seg, err := importSeg(d, "Event")
	if err != nil {
		return err
	}
	e.init(seg)
	return nil
}

// GobEncode refuses: an Event is shared, never copied into a message.
func (e *Event) GobEncode() ([]byte, error) { return nil, errTravel }

// GobDecode refuses, as GobEncode does.
func (e *Event) GobDecode([]byte) error { return errTravel }

// MarshalBinary refuses, as GobEncode does.
func (e *Event) MarshalBinary() ([]byte, error) { return nil, errTravel }

// UnmarshalBinary refuses, as GobEncode does.
func (e *Event) UnmarshalBinary([]byte) error { return errTravel }

// Barrier makes n parties — processes or goroutines — wait for each other,
// Python's multiprocessing.Barrier: each Wait blocks until n have called
// it, then all return and the barrier is ready for the next round. A
// waiter whose context ends breaks the barrier: it returns its context's
// error, and every other waiter, now and later, an error matching
// ErrBrokenBarrier. It travels to children as Value does.
type Barrier struct {
	syncObj
	b    futex.Barrier
	gate gate
}

// NewBarrier makes a barrier for n parties (1 ≤ n ≤ 65535).
func NewBarrier(n int) (*Barrier, error) {
	if n < 1 || n > futex.MaxParties {
		return nil, fmt.Errorf("multiproc: NewBarrier(%d): parties must be in [1, %d]", n, futex.MaxParties)
	}
	seg, err := shm.Create("barrier", 128)
	if err != nil {
		return nil, err
	}
	b := &Barrier{}
	b.init(seg, uint32(n))
	return b, nil
}

func (b *Barrier) init(seg *shm.Segment, n uint32) {
	b.ref = newSegRef(b, seg)
	b.mem = seg.Bytes()
	b.b = futex.Barrier{W: futex.Word(b.mem, offWord0), Parties: n}
	*futex.Word(b.mem, offWord1) = n
	b.gate = make(gate, 1)
}

// Wait arrives at the barrier and blocks until all parties have arrived
// (nil), the barrier breaks (ErrBrokenBarrier), or ctx ends (its error; the
// barrier breaks for everyone).
func (b *Barrier) Wait(ctx context.Context) error {
	defer runtime.KeepAlive(b)
	gen, done, err := b.b.Arrive()
	if !done && err == nil {
		// Goroutines of this process take turns sleeping in the kernel;
		// the others wait in the Go scheduler, holding no OS thread.
		if ok, perr := b.b.Passed(gen); ok {
			err = perr
		} else if gerr := b.gate.enter(ctx); gerr != nil {
			err = b.b.Break(gen, gerr)
		} else {
			err = b.b.Await(ctx, gen)
			b.gate.leave()
		}
	}
	if errors.Is(err, futex.ErrBroken) {
		return ErrBrokenBarrier
	}
	return err
}

// Broken reports whether the barrier is broken.
func (b *Barrier) Broken() bool { return b.b.Broken() }

// ExportHandle is how a Barrier travels; called by the package.
func (b *Barrier) ExportHandle() (handle.Desc, error) { return b.export("Barrier", nil) }

// ImportHandle makes b the Barrier described by d; called by the package.
func (b *Barrier) ImportHandle(d handle.Desc) error {
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

// GobEncode refuses: a Barrier is shared, never copied into a message.
func (b *Barrier) GobEncode() ([]byte, error) { return nil, errTravel }

// GobDecode refuses, as GobEncode does.
func (b *Barrier) GobDecode([]byte) error { return errTravel }

// MarshalBinary refuses, as GobEncode does.
func (b *Barrier) MarshalBinary() ([]byte, error) { return nil, errTravel }

// UnmarshalBinary refuses, as GobEncode does.
func (b *Barrier) UnmarshalBinary([]byte) error { return errTravel }
