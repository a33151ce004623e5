//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// cancelledAtOnce checks that r's Get returns context.Canceled without
// waiting (well within a second, on a loaded machine).
func cancelledAtOnce[R any](t *testing.T, what string, r *multiproc.AsyncResult[R]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := r.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get of the cancelled %s = %v; want context.Canceled at once", what, err)
	}
}

// TestAsyncResultCancel: with the only worker busy, cancelled tasks
// queued behind it (some waiting in the worker's socket, some in the
// pool's queue) never run, and the worker lives on; a running task's
// worker is killed and replaced; Cancel after the result changes nothing.
func TestAsyncResultCancel(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 1})
	pid, err := whoAmI.Apply(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	ran, _ := multiproc.NewValue[int64](0)
	held, release := newEvent(t), newEvent(t)
	busy := holdUntil.ApplyAsync(p, gateJob{held, release})
	if err := held.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// More than the worker prefetches: some wait in its socket, the rest
	// in the pool's queue.
	queued := make([]*multiproc.AsyncResult[int64], 6)
	for i := range queued {
		queued[i] = queueSum.ApplyAsync(p, counterJob{Counter: ran, N: 1})
	}
	for i, r := range queued {
		r.Cancel()
		cancelledAtOnce(t, "queued task", r)
		if i == 0 {
			r.Cancel() // again: nothing
			cancelledAtOnce(t, "queued task", r)
		}
	}
	if busy.Ready() {
		t.Fatal("the running task ended when the queued ones were cancelled")
	}
	release.Set()
	if _, err := busy.Get(ctx); err != nil {
		t.Fatal(err)
	}
	// One worker runs tasks in order: whoAmI, queued after the cancelled
	// tasks, comes back only after they would have run. The worker
	// skipped them: it was not killed.
	if again, err := whoAmI.Apply(ctx, p, 0); err != nil || again != pid {
		t.Fatalf("after the cancelled queued tasks: worker pid %d, then %d (%v); want the same worker", pid, again, err)
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("%d cancelled queued tasks ran", n)
	}

	// A running task: its worker is killed and replaced.
	started, _ := multiproc.NewValue[int64](0)
	long := startedSleep.ApplyAsync(p, sleepJob{started, time.Minute})
	waitFor(t, 20*time.Second, "the worker to run the long task", func() bool { return started.Load() == 1 })
	long.Cancel()
	cancelledAtOnce(t, "running task", long)
	after, err := whoAmI.Apply(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if after == pid {
		t.Fatalf("the worker (pid %d) of the cancelled running task still runs", pid)
	}

	// Cancel after the result: the result stays.
	r := double.ApplyAsync(p, 21)
	if v, err := r.Get(ctx); err != nil || v != 42 {
		t.Fatal(v, err)
	}
	r.Cancel()
	if v, err := r.Get(ctx); err != nil || v != 42 {
		t.Fatalf("Get after a late Cancel = %v, %v; want 42", v, err)
	}
	if again, err := whoAmI.Apply(ctx, p, 0); err != nil || again != after {
		t.Fatalf("a late Cancel touched the worker: pid %d, then %d (%v)", after, again, err)
	}
}

// ctxExecutor forwards to a Pool and hands out the ctx of each Submit.
type ctxExecutor struct {
	p    *multiproc.Pool
	ctxs chan context.Context
}

func (e *ctxExecutor) Submit(ctx context.Context, t *multiproc.Task, done func([]multiproc.Result, error)) {
	e.ctxs <- ctx
	e.p.Submit(ctx, t, done)
}

func (e *ctxExecutor) Workers() int { return e.p.Workers() }

// TestAsyncResultCancelAnyExecutor: Cancel reaches an Executor through
// the ctx its Submit got, so it works on any one.
func TestAsyncResultCancelAnyExecutor(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	e := &ctxExecutor{p: newPool(t, multiproc.PoolOptions{Processes: 1}), ctxs: make(chan context.Context, 1)}
	r := sleeps.ApplyAsync(e, time.Minute)
	sub := <-e.ctxs
	if sub.Err() != nil {
		t.Fatalf("the task's ctx ended before Cancel: %v", sub.Err())
	}
	r.Cancel()
	cancelledAtOnce(t, "task", r)
	select {
	case <-sub.Done():
	case <-ctx.Done():
		t.Fatal("Cancel did not end the ctx the executor got")
	}
	if !errors.Is(sub.Err(), context.Canceled) {
		t.Fatalf("the executor's ctx ended with %v", sub.Err())
	}
}

// TestMapAsync: results in input order through Get; a cancelled map
// returns context.Canceled at once and leaves the pool usable.
func TestMapAsync(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	args := make([]int, 50)
	for i := range args {
		args[i] = i
	}
	r := double.MapAsync(p, args)
	args[0] = 1000 // encoded already: the map does not see it
	got, err := r.Get(ctx)
	if err != nil || len(got) != 50 {
		t.Fatal(got, err)
	}
	for i, v := range got {
		if v != 2*i {
			t.Fatalf("MapAsync result %d = %d", i, v)
		}
	}
	long := make([]time.Duration, 8)
	for i := range long {
		long[i] = time.Minute
	}
	m := sleeps.MapAsync(p, long)
	m.Cancel()
	cancelledAtOnce(t, "map", m)
	if v, err := double.Apply(ctx, p, 4); err != nil || v != 8 {
		t.Fatalf("Apply after a cancelled MapAsync: %v, %v", v, err)
	}
	var nilPool *multiproc.Pool
	if _, err := double.MapAsync(nilPool, args).Get(ctx); err == nil {
		t.Fatal("MapAsync on a nil Pool succeeded")
	}
}
