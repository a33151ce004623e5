package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// The default: no options but two local workers, the Func methods work as
// on a Pool.
func TestEmbeddedFuncs(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := connect(t, ctx, Options{Processes: 2})
	if c.URL() != "" {
		t.Errorf("URL() = %q without Listen, want \"\"", c.URL())
	}
	if n := c.Workers(); n != 2 {
		t.Errorf("Workers() = %d, want 2", n)
	}
	xs := make([]int, 1000)
	for i := range xs {
		xs[i] = i
	}
	got, err := square.Map(ctx, c, xs)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != i*i {
			t.Fatalf("Map[%d] = %d, want %d", i, v, i*i)
		}
	}
	if v, err := square.Apply(ctx, c, 12); err != nil || v != 144 {
		t.Fatalf("Apply = %d, %v", v, err)
	}
	var rs []*multiproc.AsyncResult[int]
	for i := range 50 {
		rs = append(rs, square.ApplyAsync(c, i))
	}
	for i, r := range rs {
		if v, err := r.Get(ctx); err != nil || v != i*i {
			t.Fatalf("ApplyAsync(%d).Get = %d, %v", i, v, err)
		}
	}
	var seen []int
	for v, err := range square.IMap(ctx, c, slices.Values(xs[:30])) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, v)
	}
	if !slices.Equal(seen, got[:30]) {
		t.Fatalf("IMap = %v, want %v", seen, got[:30])
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Hosts) != 1 || st.Workers != 2 || st.Completed == 0 || st.Failed != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestEmbeddedTaskErrors(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := connect(t, ctx, Options{Processes: 1})
	_, err := failer.Apply(ctx, c, -4)
	var re *multiproc.RemoteError
	if !errors.As(err, &re) || re.Text != "negative -4" || re.Panic {
		t.Fatalf("Apply(-4) error = %#v, want RemoteError \"negative -4\"", err)
	}
	_, err = failer.Apply(ctx, c, 13)
	if !errors.As(err, &re) || !re.Panic || !strings.Contains(re.Text, "unlucky") {
		t.Fatalf("Apply(13) error = %v, want a panic", err)
	}
	_, err = failer.Map(ctx, c, []int{1, 2, 3, -9, 5})
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "item 3") {
		t.Fatalf("Map error = %v, want item 3's", err)
	}
	// Shared-memory objects cannot leave the machine: refused at the call.
	v, err := multiproc.NewValue[int64](1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = shared.Apply(ctx, c, v)
	if !errors.Is(err, multiproc.ErrShared) || strings.Count(err.Error(), "multiproc:") != 1 {
		t.Fatalf("Apply(*Value) error = %v, want a refusal", err)
	}
	if v.Load() != 1 {
		t.Fatal("the refused task ran")
	}
	// A crash inside the task: ErrWorkerDied, run once, the worker replaced.
	log := filepath.Join(t.TempDir(), "runs")
	_, err = crash.Apply(ctx, c, counted{Path: log, N: 1})
	if !errors.Is(err, multiproc.ErrWorkerDied) || strings.Count(err.Error(), "multiproc:") != 1 {
		t.Fatalf("crash error = %v, want ErrWorkerDied (prefixed once)", err)
	}
	t.Log(err)
	if n := total(runs(t, log)); n != 1 {
		t.Fatalf("the crashing task ran %d times, want 1", n)
	}
	if v, err := square.Apply(ctx, c, 3); err != nil || v != 9 {
		t.Fatalf("Apply after a crash = %d, %v", v, err)
	}
}

func TestEmbeddedTaskTimeout(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := connect(t, ctx, Options{Processes: 1, TaskTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err := slow.Apply(ctx, c, counted{N: 1, Ms: 60_000})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "multiproc: ") {
		t.Fatalf("error = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if v, err := slow.Apply(ctx, c, counted{N: 4}); err != nil || v != 8 {
		t.Fatalf("Apply after a timeout = %d, %v", v, err)
	}
}

// A cancelled Map returns at once; its running task is killed and its
// queued tasks never run, now or later.
func TestEmbeddedCancelDropsQueued(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := connect(t, ctx, Options{Processes: 1})
	log := filepath.Join(t.TempDir(), "runs")
	jobs := make([]counted, 8) // one worker: chunks of 2, the first blocks
	for i := range jobs {
		jobs[i] = counted{Path: log, N: i, Ms: 60_000}
	}
	mctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := slow.Map(mctx, c, jobs)
		errc <- err
	}()
	waitFor(t, time.Minute, "the first task to start", func() bool { return total(runs(t, log)) >= 1 })
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Map error = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Map did not return within 10s of its cancel")
	}
	// The queue is FIFO and there is one worker: once a task submitted now
	// has run, any of the cancelled ones still queued would have run first.
	if v, err := slow.Apply(ctx, c, counted{Path: log, N: 100}); err != nil || v != 200 {
		t.Fatalf("Apply after cancel = %d, %v", v, err)
	}
	got := runs(t, log)
	if got[0] != 1 || got[100] != 1 || total(got) != 2 {
		t.Fatalf("runs after cancel = %v, want only item 0 (killed) and the new task", got)
	}
}

// Close stops the local workers and the embedded server and removes its
// store; calls after it fail with ErrPoolClosed.
func TestEmbeddedClose(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	c, err := Connect(ctx, Options{Processes: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.emb.dir
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("store %s still there after Close: %v", dir, err)
	}
	if _, err := square.Apply(ctx, c, 2); !errors.Is(err, multiproc.ErrPoolClosed) {
		t.Fatalf("Apply after Close = %v, want ErrPoolClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// A burst of ApplyAsync travels in messages of several tasks, run in one
// worker round trip: one task crashing its worker fails alone.
func TestEmbeddedBurstWithCrash(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := connect(t, ctx, Options{Processes: 2})
	var rs []*multiproc.AsyncResult[int]
	for i := range 200 {
		rs = append(rs, crashOn7.ApplyAsync(c, i%50))
	}
	for i, r := range rs {
		v, err := r.Get(ctx)
		if i%50 == 7 {
			if !errors.Is(err, multiproc.ErrWorkerDied) {
				t.Fatalf("task %d: %d, %v; want ErrWorkerDied", i, v, err)
			}
			continue
		}
		if err != nil || v != i%50 {
			t.Fatalf("task %d = %d, %v", i, v, err)
		}
	}
}

// IMap over an endless sequence keeps a bounded window in flight: the
// loop stops when the caller stops, and little ran beyond what it took.
func TestEmbeddedIMapEndless(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := connect(t, ctx, Options{Processes: 2})
	log := filepath.Join(t.TempDir(), "runs")
	endless := func(yield func(counted) bool) {
		for i := 0; ; i++ {
			if !yield(counted{Path: log, N: i}) {
				return
			}
		}
	}
	n := 0
	for v, err := range slow.IMap(ctx, c, endless) {
		if err != nil {
			t.Fatal(err)
		}
		if v != 2*n {
			t.Fatalf("IMap result %d = %d, want %d", n, v, 2*n)
		}
		if n++; n == 50 {
			break
		}
	}
	// At most the window (2×Workers) beyond the 50 taken was sent. (An
	// item may have run twice: the cancel of one that shared a worker
	// round trip with others stops them all, and they run again.)
	waitFor(t, time.Minute, "the hosts to finish what was sent", func() bool {
		st, err := c.Stats(ctx)
		return err == nil && st.Running == 0 && st.Queued == 0
	})
	got := runs(t, log)
	if sent := len(got); sent < 50 || sent > 50+2*c.Workers() {
		t.Fatalf("%d items ran (%d runs) for 50 results, window %d", sent, total(got), 2*c.Workers())
	}
	for i := range 50 {
		if got[i] == 0 {
			t.Fatalf("item %d never ran: %v", i, got)
		}
	}
}

// Tasks that travel several to a message (a burst of ApplyAsync) can be
// cancelled as those that travel alone: once they are cancelled, those
// that had not started never run and a running one is stopped, though
// they share a message (and a worker round trip) with others.
func TestCancelTasksOfSeveral(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	c := connect(t, ctx, Options{Processes: 1})
	log := filepath.Join(t.TempDir(), "runs")
	rs := make([]*multiproc.AsyncResult[int], 80)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < len(rs); i += 4 {
				rs[i] = slow.ApplyAsync(c, counted{Path: log, N: i, Ms: 50})
			}
		})
	}
	wg.Wait()
	waitFor(t, 30*time.Second, "the first tasks to run", func() bool { return total(runs(t, log)) >= 2 })
	c.mu.Lock()
	multi := 0
	for _, cl := range c.pending {
		if cl.multi {
			multi++
		}
	}
	c.mu.Unlock()
	for _, r := range rs {
		r.Cancel()
	}
	// Cancel ends the ctx; the client publishes the cancels as it sees
	// that (on goroutines of the ctx's AfterFunc): count the runs once
	// they are all out.
	waitFor(t, 30*time.Second, "the cancels to be sent", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.pending) == 0
	})
	if err := c.nc.FlushTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	before := total(runs(t, log))
	for i, r := range rs {
		v, err := r.Get(ctx)
		if !errors.Is(err, context.Canceled) && (err != nil || v != 2*i) {
			t.Fatalf("task %d: %d, %v", i, v, err)
		}
	}
	if multi == 0 {
		t.Fatal("no task travelled with others: the test tests nothing")
	}
	// Once the host is idle, count the runs: the cancelled tasks did not.
	waitFor(t, 30*time.Second, "the host to be idle", func() bool {
		st, err := c.Stats(ctx)
		return err == nil && st.Running == 0 && st.Queued == 0
	})
	// A few may start in the moment between the cancels (a group
	// stopped by the first runs its others again, each on its own, until
	// their own cancels arrive): not the dozens left.
	if after := total(runs(t, log)); after > before+5 {
		t.Fatalf("%d runs when the tasks were cancelled, %d after: cancelled tasks ran (%d of them travelled with others)", before, after, multi)
	} else {
		t.Logf("%d tasks of %d travelled with others; %d runs at the cancel, %d after", multi, len(rs), before, after)
	}
	if v, err := square.Apply(ctx, c, 9); err != nil || v != 81 {
		t.Fatalf("Apply after the cancels = %d, %v", v, err)
	}
}
