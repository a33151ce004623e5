//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/internal/parked"
)

type semJob struct {
	Sem     *multiproc.Semaphore
	Inside  *multiproc.Value[int64] // processes inside now
	MaxSeen *multiproc.Value[int64]
	Overlap *multiproc.Event // set by the first process that finds another inside
}

type meetJob struct {
	Barrier *multiproc.Barrier
	Go      *multiproc.Event
	Order   *multiproc.Array[int64]
	Index   int
	Rounds  int
}

var (
	bounded = multiproc.Register("test.bounded", func(ctx context.Context, j semJob) (int, error) {
		for range 10 {
			if err := j.Sem.Acquire(ctx); err != nil {
				return 0, err
			}
			n := j.Inside.Add(1)
			j.MaxSeen.Lock()
			if n > j.MaxSeen.Load() {
				j.MaxSeen.Store(n)
			}
			j.MaxSeen.Unlock()
			// Until two have been inside at once, whoever is inside
			// waits for a second one: the overlap the test asserts is
			// forced, not hoped for (a Semaphore admitting only one
			// would hang here until the deadline).
			if n >= 2 {
				j.Overlap.Set()
			}
			if err := j.Overlap.Wait(ctx); err != nil {
				return 0, err
			}
			j.Inside.Add(-1)
			j.Sem.Release()
		}
		return 0, nil
	})
	meet = multiproc.Register("test.meet", func(ctx context.Context, j meetJob) (int, error) {
		if err := j.Go.Wait(ctx); err != nil {
			return 0, err
		}
		for r := range j.Rounds {
			// Nobody starts round r+1 before everyone finished round r.
			j.Order.Store(j.Index, int64(r))
			if err := j.Barrier.Wait(ctx); err != nil {
				return 0, err
			}
			for i := range j.Order.Len() {
				if j.Order.Load(i) < int64(r) {
					return 0, errors.New("passed the barrier before a party arrived")
				}
			}
			if err := j.Barrier.Wait(ctx); err != nil {
				return 0, err
			}
		}
		return 0, nil
	})
	waitBarrier = multiproc.Register("test.waitBarrier", func(ctx context.Context, b *multiproc.Barrier) (int, error) {
		err := b.Wait(ctx)
		if errors.Is(err, multiproc.ErrBrokenBarrier) {
			return 1, nil
		}
		return 0, err
	})
)

func TestSemaphoreBoundsProcesses(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	sem, err := multiproc.NewSemaphore(2)
	if err != nil {
		t.Fatal(err)
	}
	j := semJob{Sem: sem}
	j.Inside, _ = multiproc.NewValue[int64](0)
	j.MaxSeen, _ = multiproc.NewValue[int64](0)
	j.Overlap, _ = multiproc.NewEvent()
	var ps []*multiproc.Process
	for range 6 {
		ps = append(ps, start(t, bounded.Process(j)))
	}
	joinAll(t, ctx, ps)
	if m := j.MaxSeen.Load(); m != 2 {
		t.Fatalf("at most %d processes were inside a Semaphore(2)", m)
	}
	if _, err := multiproc.NewSemaphore(-1); err == nil {
		t.Fatal("NewSemaphore(-1) succeeded")
	}
	// Acquire with a deadline on an exhausted semaphore.
	sem.Acquire(ctx)
	sem.Acquire(ctx)
	if sem.TryAcquire() {
		t.Fatal("TryAcquire on an exhausted semaphore")
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := sem.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past deadline = %v", err)
	}
	sem.Release()
	if !sem.TryAcquire() {
		t.Fatal("TryAcquire after Release failed")
	}
}

func TestEventAndBarrierAcrossProcesses(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	b, _ := multiproc.NewBarrier(3)
	ev, _ := multiproc.NewEvent()
	order, _ := multiproc.NewArray[int64](3)
	var ps []*multiproc.Process
	for i := range 3 {
		ps = append(ps, start(t, meet.Process(meetJob{Barrier: b, Go: ev, Order: order, Index: i, Rounds: 50})))
	}
	if ev.IsSet() {
		t.Fatal("new Event is set")
	}
	ev.Set()
	joinAll(t, ctx, ps)
	ev.Clear()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := ev.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a cleared Event = %v", err)
	}
}

func TestBarrierBrokenByDeadline(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	b, _ := multiproc.NewBarrier(3)
	p := waitBarrier.Process(b) // the second party; the third never comes
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := b.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past deadline = %v", err)
	}
	if r, err := waitBarrier.Call(ctx, b); err != nil || r != 1 {
		t.Fatalf("Wait on a broken barrier in a child = %v, %v", r, err)
	}
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
	code, _ := p.ExitCode()
	if code != 0 || !b.Broken() {
		t.Fatal("the waiting child did not see the barrier break")
	}
	if _, err := multiproc.NewBarrier(0); err == nil {
		t.Fatal("NewBarrier(0) succeeded")
	}
}

func TestManyWaitersFewThreads(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	const n = 150
	b, _ := multiproc.NewBarrier(n + 1)
	ev, _ := multiproc.NewEvent()
	sem, _ := multiproc.NewSemaphore(0)
	before := countThreads(t)
	done := make(chan error, 3*n)
	for range n {
		go func() { done <- b.Wait(ctx) }()
		go func() { done <- ev.Wait(ctx) }()
		go func() { done <- sem.Acquire(ctx) }()
	}
	waitParked(t, ctx, "(*Barrier).Wait", n)
	waitParked(t, ctx, "(*Event).Wait", n)
	waitParked(t, ctx, "(*Semaphore).Acquire", n)
	if during := countThreads(t); during > before+20 {
		t.Fatalf("%d goroutines blocked on a Barrier, an Event and a Semaphore took %d OS threads", 3*n, during-before)
	}
	if err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	ev.Set()
	for range n {
		sem.Release()
	}
	for range 3 * n {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("waiters were not released")
		}
	}
}

// waitParked waits until n goroutines are blocked in frame, or fails
// the test at ctx's end.
func waitParked(t *testing.T, ctx context.Context, frame string, n int) {
	t.Helper()
	if err := parked.Wait(ctx, frame, n); err != nil {
		t.Fatal(err)
	}
}

// mustPanicIs calls f and fails unless it panics with an error matching
// target (any panic when target is nil).
func mustPanicIs(t *testing.T, what string, target error, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("%s did not panic", what)
		}
		if target == nil {
			return
		}
		err, ok := r.(error)
		if !ok || !errors.Is(err, target) {
			t.Fatalf("%s panicked with %v, want an error matching %v", what, r, target)
		}
		if !strings.HasPrefix(err.Error(), "multiproc: ") || strings.Count(err.Error(), "multiproc:") != 1 {
			t.Fatalf("%s panicked with %q", what, err)
		}
	}()
	f()
}

// TestCloseSyncObjects: Close ends the calls blocked in this process with
// ErrClosed (a Lock() panics with it), is idempotent, and every later
// call fails; a Barrier closed under a waiter breaks for the others.
func TestCloseSyncObjects(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	closed := multiproc.ErrClosed
	j := newHandoff(t)
	p := holdAll.Process(j)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := j.Held.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	sem, _ := multiproc.NewSemaphore(0)
	ev, _ := multiproc.NewEvent()
	bar, _ := multiproc.NewBarrier(3)
	other := waitBarrier.Process(bar) // another party, in a child
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 5)
	go func() { errs <- j.Lock.LockContext(ctx) }()
	go func() {
		defer func() {
			r := recover()
			err, _ := r.(error)
			errs <- err
		}()
		j.Lock.Lock()
	}()
	go func() { errs <- sem.Acquire(ctx) }()
	go func() { errs <- ev.Wait(ctx) }()
	go func() { errs <- bar.Wait(ctx) }()
	waitParked(t, ctx, "(*Lock).LockContext", 1)
	waitParked(t, ctx, "(*Lock).Lock", 1)
	waitParked(t, ctx, "(*Semaphore).Acquire", 1)
	waitParked(t, ctx, "(*Event).Wait", 1)
	waitParked(t, ctx, "(*Barrier).Wait", 1)
	for _, c := range []interface{ Close() error }{j.Lock, sem, ev, bar} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	}
	for range 5 {
		select {
		case err := <-errs:
			if !errors.Is(err, closed) {
				t.Fatalf("a call blocked during Close returned %v", err)
			}
		case <-ctx.Done():
			t.Fatal("Close did not end a blocked call")
		}
	}
	if err := other.Join(ctx); err != nil {
		t.Fatalf("the child waiting at the Barrier: %v", err)
	}

	mustPanicIs(t, "Lock.Lock", closed, j.Lock.Lock)
	mustPanicIs(t, "Lock.Unlock", closed, j.Lock.Unlock)
	mustPanicIs(t, "Lock.TryLock", closed, func() { j.Lock.TryLock() })
	mustPanicIs(t, "Lock.Takeovers", closed, func() { j.Lock.Takeovers() })
	if err := sem.Acquire(ctx); !errors.Is(err, closed) {
		t.Fatalf("Acquire after Close = %v", err)
	}
	mustPanicIs(t, "Semaphore.TryAcquire", closed, func() { sem.TryAcquire() })
	mustPanicIs(t, "Semaphore.Release", closed, sem.Release)
	if err := ev.Wait(ctx); !errors.Is(err, closed) {
		t.Fatalf("Event.Wait after Close = %v", err)
	}
	mustPanicIs(t, "Event.Set", closed, ev.Set)
	mustPanicIs(t, "Event.Clear", closed, ev.Clear)
	mustPanicIs(t, "Event.IsSet", closed, func() { ev.IsSet() })
	if err := bar.Wait(ctx); !errors.Is(err, closed) {
		t.Fatalf("Barrier.Wait after Close = %v", err)
	}
	mustPanicIs(t, "Barrier.Broken", closed, func() { bar.Broken() })
}

// TestZeroValues: a zero shared object fails every method with one clear
// error, never a nil-pointer panic.
func TestZeroValues(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	zero := multiproc.ErrNotInitialized
	var (
		l multiproc.Lock
		v multiproc.Value[int]
		a multiproc.Array[float64]
		s multiproc.Semaphore
		e multiproc.Event
		b multiproc.Barrier
		q multiproc.Queue[int]
	)
	mustPanicIs(t, "zero Lock.Lock", zero, l.Lock)
	mustPanicIs(t, "zero Lock.Unlock", zero, l.Unlock)
	mustPanicIs(t, "zero Lock.TryLock", zero, func() { l.TryLock() })
	mustPanicIs(t, "zero Value.Load", zero, func() { v.Load() })
	mustPanicIs(t, "zero Value.Store", zero, func() { v.Store(1) })
	mustPanicIs(t, "zero Value.Add", zero, func() { v.Add(1) })
	mustPanicIs(t, "zero Value.Lock", zero, v.Lock)
	mustPanicIs(t, "zero Array.Len", zero, func() { a.Len() })
	mustPanicIs(t, "zero Array.Load", zero, func() { a.Load(0) })
	mustPanicIs(t, "zero Array.Slice", zero, func() { a.Slice() })
	mustPanicIs(t, "zero Array.Unlock", zero, a.Unlock)
	mustPanicIs(t, "zero Semaphore.Release", zero, s.Release)
	mustPanicIs(t, "zero Event.Set", zero, e.Set)
	mustPanicIs(t, "zero Event.IsSet", zero, func() { e.IsSet() })
	mustPanicIs(t, "zero Barrier.Broken", zero, func() { b.Broken() })
	mustPanicIs(t, "zero Queue.Len", zero, func() { q.Len() })
	mustPanicIs(t, "zero Queue.Full", zero, func() { q.Full() })
	mustPanicIs(t, "zero Queue.Empty", zero, func() { q.Empty() })
	for what, err := range map[string]error{
		"Lock.LockContext":  l.LockContext(ctx),
		"Value.LockContext": v.LockContext(ctx),
		"Array.LockContext": a.LockContext(ctx),
		"Semaphore.Acquire": s.Acquire(ctx),
		"Event.Wait":        e.Wait(ctx),
		"Barrier.Wait":      b.Wait(ctx),
		"Queue.Put":         q.Put(ctx, 1),
		"Queue.TryPut":      q.TryPut(1),
		"Lock.Close":        l.Close(),
		"Value.Close":       v.Close(),
		"Array.Close":       a.Close(),
		"Semaphore.Close":   s.Close(),
		"Event.Close":       e.Close(),
		"Barrier.Close":     b.Close(),
		"Queue.Close":       q.Close(),
	} {
		if !errors.Is(err, zero) || strings.Count(err.Error(), "multiproc:") != 1 {
			t.Errorf("zero %s = %v, want an error matching ErrNotInitialized", what, err)
		}
	}
	if _, err := q.Get(ctx); !errors.Is(err, zero) {
		t.Errorf("zero Queue.Get = %v", err)
	}
	if _, err := q.TryGet(); !errors.Is(err, zero) {
		t.Errorf("zero Queue.TryGet = %v", err)
	}
}

// TestNewSemaphoreIsConstantTime: NewSemaphore(2^31-1) used to count up one
// by one (seconds); it sets the count.
func TestNewSemaphoreIsConstantTime(t *testing.T) {
	done := make(chan error, 1)
	go func() {
		s, err := multiproc.NewSemaphore(1<<31 - 1)
		if err == nil && !s.TryAcquire() {
			err = errors.New("TryAcquire failed on a Semaphore(2^31-1)")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("NewSemaphore(2^31-1) took over 5 s")
	}
	if _, err := multiproc.NewSemaphore(1 << 31); err == nil {
		t.Fatal("NewSemaphore(2^31) succeeded")
	}
}

// TestSemaphoreMax: a Semaphore holds at most 2^31-1 units (Linux's
// SEM_VALUE_MAX, as Python's). NewSemaphore refuses more, and a Release
// past it panics and changes nothing. The count word used to wrap:
// NewSemaphore(2^31) then 2^31 Releases left TryAcquire false.
func TestSemaphoreMax(t *testing.T) {
	for _, n := range []int{1 << 31, 1<<32 + 1, -1} {
		if s, err := multiproc.NewSemaphore(n); err == nil {
			s.Close()
			t.Errorf("NewSemaphore(%d) succeeded", n)
		}
	}
	sem, err := multiproc.NewSemaphore(1<<31 - 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sem.Close()
	mustPanicIs(t, "Release at the maximum", nil, sem.Release)
	if !sem.TryAcquire() {
		t.Fatal("TryAcquire on a full Semaphore failed: the count wrapped")
	}
	sem.Release() // back to the maximum: fine
	mustPanicIs(t, "Release at the maximum", nil, sem.Release)
	if !sem.TryAcquire() {
		t.Fatal("TryAcquire after a refused Release failed")
	}
}
