//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// gateInit is an Initializer that lets the first Free workers through;
// every later one (a replacement) publishes its pid in Pid and waits for
// Go: a test can catch a replacement while it starts.
type gateInit struct {
	Count *multiproc.Value[int64]
	Pid   *multiproc.Value[int64]
	Go    *multiproc.Event
	Free  int64
}

func (r *gateInit) Run(ctx context.Context) error {
	if r.Count.Add(1) <= r.Free {
		return nil
	}
	r.Pid.Store(int64(os.Getpid()))
	return r.Go.Wait(ctx)
}

func init() { multiproc.RegisterRunner("test.gateInit", &gateInit{}) }

func newGateInit(t *testing.T, free int64) *gateInit {
	t.Helper()
	count, err := multiproc.NewValue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := multiproc.NewValue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	return &gateInit{Count: count, Pid: pid, Go: newEvent(t), Free: free}
}

// startingReplacement kills p's only worker and returns the pid of its
// replacement, caught in g's Initializer.
func startingReplacement(t *testing.T, ctx context.Context, p *multiproc.Pool, g *gateInit) int {
	t.Helper()
	pid, err := whoAmI.Apply(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, 20*time.Second, "the replacement worker to start its Initializer", func() bool { return g.Pid.Load() != 0 })
	return int(g.Pid.Load())
}

// TestPoolReplacementKilledWhileStarting: a replacement worker killed
// while it runs its Initializer is retried; the pool goes on (it used to
// break for good: "died before it answered the start handshake").
func TestPoolReplacementKilledWhileStarting(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	g := newGateInit(t, 1)
	p := newPool(t, multiproc.PoolOptions{Processes: 1, Initializer: g})
	starting := startingReplacement(t, ctx, p, g)
	syscall.Kill(starting, syscall.SIGKILL)
	g.Go.Set()
	if v, err := double.Apply(ctx, p, 4); err != nil || v != 8 {
		t.Fatalf("Apply after a replacement was killed while it started: %v, %v", v, err)
	}
	if n := g.Count.Load(); n < 3 {
		t.Fatalf("the Initializer ran %d times; want the killed replacement retried", n)
	}
	p.Close()
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPoolReplacementStartsFailingBreaksPool: a replacement that dies at
// every start breaks the pool, with an error that says so, after a few
// attempts (not at the first, and not never).
func TestPoolReplacementStartsFailingBreaksPool(t *testing.T) {
	if testing.Short() {
		t.Skip("about 1.5 s of retry backoff")
	}
	ctx := testCtx(t, 60*time.Second)
	g := newGateInit(t, 1)
	p := newPool(t, multiproc.PoolOptions{Processes: 1, Initializer: g})
	killed := map[int]bool{}
	last := startingReplacement(t, ctx, p, g)
	res := double.ApplyAsync(p, 4) // waits for a worker
	for !res.Ready() {
		if ctx.Err() != nil {
			t.Fatal("the pool neither started a worker nor broke")
		}
		if pid := int(g.Pid.Load()); !killed[pid] {
			killed[pid] = true
			syscall.Kill(pid, syscall.SIGKILL)
			last = pid
		}
		time.Sleep(time.Millisecond)
	}
	_, err := res.Get(ctx)
	if !errors.Is(err, multiproc.ErrPoolClosed) || !strings.Contains(err.Error(), "starts in a row failed") {
		t.Fatalf("task of a pool whose every start fails = %v", err)
	}
	if len(killed) < 4 {
		t.Fatalf("the pool broke after %d killed starts (last pid %d); want retries", len(killed), last)
	}
	t.Logf("broke after %d killed starts: %v", len(killed), err)
	if _, err := double.Apply(ctx, p, 1); !errors.Is(err, multiproc.ErrPoolClosed) {
		t.Fatalf("Apply on the broken pool = %v", err)
	}
}

// TestPoolTerminateWhileReplacementStarts: Terminate kills a worker that
// is still in its Initializer, and returns (it used to wait forever).
func TestPoolTerminateWhileReplacementStarts(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	g := newGateInit(t, 1)
	p := newPool(t, multiproc.PoolOptions{Processes: 1, Initializer: g})
	starting := startingReplacement(t, ctx, p, g)
	done := make(chan struct{})
	go func() {
		p.Terminate()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		g.Go.Set() // let the stuck Terminate go, so the test binary can end
		t.Fatal("Terminate did not return while a replacement's Initializer blocked")
	}
	if err := syscall.Kill(starting, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the starting worker %d after Terminate: kill(0) = %v; want it killed and reaped", starting, err)
	}
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPoolRetiredWorkersCloseDescriptors: with MaxTasksPerChild 1 every
// task retires its worker; what each worker owned is closed when it is
// gone, not when the garbage collector gets to it (no runtime.GC here).
func TestPoolRetiredWorkersCloseDescriptors(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	n := 300
	if testing.Short() || raceBuild {
		n = 30 // one leaked descriptor per worker shows as well
	}
	// A first pool opens what the package opens once (the children's
	// stdin), so that it is counted in before.
	p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 1})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
	before := openFds(t)
	p, err = multiproc.NewPool(multiproc.PoolOptions{Processes: 3, MaxTasksPerChild: 1})
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]*multiproc.AsyncResult[int], n)
	for i := range rs {
		rs[i] = double.ApplyAsync(p, i)
	}
	for i, r := range rs {
		if v, err := r.Get(ctx); err != nil || v != 2*i {
			t.Fatalf("task %d = %v, %v", i, v, err)
		}
	}
	p.Close()
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if after := openFds(t); after > before {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			t.Logf("fd %s: %s", e.Name(), l)
		}
		t.Fatalf("%d descriptors open after %d retired workers, %d before", after, n, before)
	}
}
