package multiproc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

type semJob struct {
	Sem     *multiproc.Semaphore
	Inside  *multiproc.Value[int64] // processes inside now
	MaxSeen *multiproc.Value[int64]
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
		for range 20 {
			if err := j.Sem.Acquire(ctx); err != nil {
				return 0, err
			}
			n := j.Inside.Add(1)
			j.MaxSeen.Lock()
			if n > j.MaxSeen.Load() {
				j.MaxSeen.Store(n)
			}
			j.MaxSeen.Unlock()
			time.Sleep(time.Millisecond)
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
	time.Sleep(300 * time.Millisecond)
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
