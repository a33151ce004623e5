//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

var (
	// killSelf SIGKILLs its own worker when x is negative.
	killSelf = multiproc.Register("test.killSelf", func(ctx context.Context, x int) (int, error) {
		if x < 0 {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		return x * 10, nil
	})
	failOdd = multiproc.Register("test.failOdd", func(ctx context.Context, x int) (int, error) {
		if x%2 == 1 {
			return 0, errors.New("odd input")
		}
		return x, nil
	})
	whoAmI   = multiproc.Register("test.whoAmI", func(ctx context.Context, x int) (int, error) { return os.Getpid(), nil })
	queueSum = multiproc.Register("test.valueAdd", func(ctx context.Context, a counterJob) (int64, error) {
		return a.Counter.Add(int64(a.N)), nil
	})
)

type initRunner struct {
	Fail      bool
	Counter   *multiproc.Value[int64]
	FailAfter int64 // fail once the counter passes it (0: never)
}

func (r *initRunner) Run(ctx context.Context) error {
	if r.Fail {
		return errors.New("init refused")
	}
	if r.Counter != nil {
		if n := r.Counter.Add(1); r.FailAfter > 0 && n > r.FailAfter {
			return errors.New("init refused this time")
		}
	}
	return nil
}

func init() { multiproc.RegisterRunner("test.initRunner", &initRunner{}) }

// sleepJob is a task that counts itself in Started, then sleeps D or until
// its context ends: a test waits on Started, not on the clock.
type sleepJob struct {
	Started *multiproc.Value[int64]
	D       time.Duration
}

var startedSleep = multiproc.Register("test.startedSleep", func(ctx context.Context, j sleepJob) (bool, error) {
	j.Started.Add(1)
	select {
	case <-time.After(j.D):
		return false, nil
	case <-ctx.Done():
		return true, nil
	}
})

func newPool(t *testing.T, opts multiproc.PoolOptions) *multiproc.Pool {
	t.Helper()
	p, err := multiproc.NewPool(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Terminate() })
	return p
}

func TestPoolMapInOrder(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	args := make([]int, 10000)
	for i := range args {
		args[i] = i
	}
	rs, err := double.Map(ctx, p, args)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r != 2*i {
			t.Fatalf("result %d = %d", i, r)
		}
	}
	empty, err := double.Map(ctx, p, nil)
	if err != nil || len(empty) != 0 {
		t.Fatal(empty, err)
	}
}

func TestPoolApplyAsyncFanOut(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 3})
	var rs []*multiproc.AsyncResult[int]
	for i := range 500 {
		rs = append(rs, double.ApplyAsync(p, i))
	}
	for i, r := range rs {
		select {
		case <-r.Done():
		case <-ctx.Done():
			t.Fatal("Done never closed")
		}
		v, err := r.Get(ctx)
		if err != nil || v != 2*i {
			t.Fatalf("ApplyAsync %d = %d, %v", i, v, err)
		}
		if !r.Ready() {
			t.Fatal("Ready false after Get")
		}
	}
	pending := sleeps.ApplyAsync(p, time.Minute)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := pending.Get(short); !errors.Is(err, context.DeadlineExceeded) || pending.Ready() {
		t.Fatalf("Get of a running task past its deadline = %v, Ready %v", err, pending.Ready())
	}
	v, err := double.Apply(ctx, p, 5)
	if err != nil || v != 10 {
		t.Fatal(v, err)
	}
}

func TestPoolErrors(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	_, err := failOdd.Map(ctx, p, []int{0, 2, 4, 5, 6, 7})
	var re *multiproc.RemoteError
	if !errors.As(err, &re) || re.Text != "odd input" || !strings.Contains(err.Error(), "item 3") {
		t.Fatalf("Map with failing items = %v", err)
	}
	var got []string
	for v, err := range failOdd.IMap(ctx, p, slices.Values([]int{1, 2, 3, 4})) {
		if errors.As(err, &re) {
			got = append(got, re.Text)
		} else if err != nil {
			got = append(got, err.Error())
		} else {
			got = append(got, "ok")
		}
		_ = v
	}
	if strings.Join(got, ",") != "odd input,ok,odd input,ok" {
		t.Fatalf("IMap items = %v", got)
	}
	quietStderr(t) // the panic's stack
	pp := newPool(t, multiproc.PoolOptions{Processes: 1})
	_, err = panics.Apply(ctx, pp, "oops")
	if !errors.As(err, &re) || !re.Panic || re.Text != "oops" {
		t.Fatalf("Apply of a panicking func = %v", err)
	}
}

func TestPoolIMap(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	var got []int
	for v, err := range double.IMap(ctx, p, slices.Values([]int{1, 2, 3, 4, 5, 6, 7})) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if !slices.Equal(got, []int{2, 4, 6, 8, 10, 12, 14}) {
		t.Fatalf("IMap = %v", got)
	}
	got = nil
	for v, err := range double.IMapUnordered(ctx, p, slices.Values([]int{1, 2, 3, 4, 5, 6, 7})) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{2, 4, 6, 8, 10, 12, 14}) {
		t.Fatalf("IMapUnordered = %v", got)
	}
	// An endless input works: in-flight work is bounded; stop after 50.
	endless := func(yield func(int) bool) {
		for i := 0; ; i++ {
			if !yield(i) {
				return
			}
		}
	}
	n := 0
	for v, err := range double.IMap(ctx, p, endless) {
		if err != nil || v != 2*n {
			t.Fatalf("endless IMap item %d = %d, %v", n, v, err)
		}
		if n++; n == 50 {
			break
		}
	}
	// The pool still works after the early stop.
	if v, err := double.Apply(ctx, p, 1); err != nil || v != 2 {
		t.Fatal(v, err)
	}
}

func TestPoolWorkerKilledMidTask(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	healthy := make([]*multiproc.AsyncResult[int], 20)
	for i := range healthy {
		healthy[i] = killSelf.ApplyAsync(p, i)
	}
	dying := killSelf.ApplyAsync(p, -1)
	for i, r := range healthy {
		if v, err := r.Get(ctx); err != nil || v != 10*i {
			t.Fatalf("healthy task %d = %d, %v", i, v, err)
		}
	}
	_, err := dying.Get(ctx)
	var ee *multiproc.ExitError
	if !errors.Is(err, multiproc.ErrWorkerDied) || !errors.As(err, &ee) || ee.ExitCode != -9 {
		t.Fatalf("task whose worker died = %v", err)
	}
	// In Map: the chunk holding the killer fails, the pool goes on.
	_, err = killSelf.Map(ctx, p, []int{1, 2, -1, 4})
	if !errors.Is(err, multiproc.ErrWorkerDied) {
		t.Fatalf("Map with a dying item = %v", err)
	}
	if v, err := killSelf.Apply(ctx, p, 3); err != nil || v != 30 {
		t.Fatalf("pool after deaths: %v, %v", v, err)
	}
}

func TestPoolIdleWorkersKilled(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	pids := map[int]bool{}
	for range 20 {
		pid, err := whoAmI.Apply(ctx, p, 0)
		if err != nil {
			t.Fatal(err)
		}
		pids[pid] = true
	}
	for pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for pid := range pids {
		waitFor(t, 5*time.Second, "the workers to die", func() bool { return gone(pid) })
	}
	for range 4 {
		pid, err := whoAmI.Apply(ctx, p, 0)
		if err != nil {
			t.Fatalf("task after idle workers died: %v", err)
		}
		if pids[pid] {
			t.Fatal("a dead worker ran a task")
		}
	}
}

func TestPoolTaskTimeout(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 1, TaskTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err := sleeps.Apply(ctx, p, time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("task past TaskTimeout = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if v, err := double.Apply(ctx, p, 4); err != nil || v != 8 {
		t.Fatalf("pool after a timeout: %v, %v", v, err)
	}
}

func TestPoolMaxTasksPerChild(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2, MaxTasksPerChild: 2})
	count := map[int]int{}
	for range 20 {
		pid, err := whoAmI.Apply(ctx, p, 0)
		if err != nil {
			t.Fatal(err)
		}
		count[pid]++
	}
	if len(count) < 10 {
		t.Fatalf("20 tasks ran in %d workers; want at least 10", len(count))
	}
	for pid, n := range count {
		if n > 2 {
			t.Fatalf("worker %d ran %d tasks", pid, n)
		}
	}
}

func TestPoolInitializer(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	counter, _ := multiproc.NewValue[int64](0)
	p := newPool(t, multiproc.PoolOptions{Processes: 2, Initializer: &initRunner{Counter: counter}})
	if _, err := double.Map(ctx, p, []int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if counter.Load() != 2 {
		t.Fatalf("Initializer ran %d times for 2 workers", counter.Load())
	}
	_, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2, Initializer: &initRunner{Fail: true}})
	if err == nil || !strings.Contains(err.Error(), "init refused") {
		t.Fatalf("NewPool with a failing Initializer = %v", err)
	}
}

func TestPoolInitializerFailsInReplacement(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	counter, _ := multiproc.NewValue[int64](0)
	p := newPool(t, multiproc.PoolOptions{Processes: 1, MaxTasksPerChild: 1,
		Initializer: &initRunner{Counter: counter, FailAfter: 1}})
	if v, err := double.Apply(ctx, p, 2); err != nil || v != 4 {
		t.Fatal(v, err)
	}
	// The worker retired after one task; its replacement's Initializer fails.
	for i := range 3 {
		_, err := double.Apply(ctx, p, 3)
		if err == nil || !errors.Is(err, multiproc.ErrPoolClosed) || !strings.Contains(err.Error(), "init refused this time") {
			t.Fatalf("call %d after the Initializer failed: %v", i, err)
		}
	}
	// Join returns once no worker is alive or being started: a pool that
	// kept respawning would never get there.
	p.Close()
	if err := p.Join(ctx); err != nil {
		t.Fatalf("Join of a pool whose replacement failed: %v (a respawn storm?)", err)
	}
	if n := counter.Load(); n != 2 {
		t.Fatalf("the Initializer ran %d times: a respawn storm", n)
	}
}

func TestPoolCloseJoinTerminate(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Join(ctx); err == nil {
		t.Fatal("Join before Close succeeded")
	}
	queued := make([]*multiproc.AsyncResult[bool], 4)
	for i := range queued {
		queued[i] = sleeps.ApplyAsync(p, 50*time.Millisecond)
	}
	p.Close()
	if _, err := double.Apply(ctx, p, 1); !errors.Is(err, multiproc.ErrPoolClosed) {
		t.Fatalf("Apply after Close = %v", err)
	}
	if _, err := double.Map(ctx, p, []int{1}); !errors.Is(err, multiproc.ErrPoolClosed) {
		t.Fatalf("Map after Close = %v", err)
	}
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range queued {
		if _, err := r.Get(ctx); err != nil {
			t.Fatalf("queued task after Close: %v", err)
		}
	}

	p2, _ := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
	started, _ := multiproc.NewValue[int64](0)
	long := make([]*multiproc.AsyncResult[bool], 5)
	for i := range long {
		long[i] = startedSleep.ApplyAsync(p2, sleepJob{started, time.Minute})
	}
	// Terminate while both workers run a task and three wait.
	waitFor(t, 20*time.Second, "both workers to run a task", func() bool { return started.Load() == 2 })
	start := time.Now()
	p2.Terminate()
	for _, r := range long {
		if _, err := r.Get(ctx); !errors.Is(err, multiproc.ErrPoolClosed) {
			t.Fatalf("task after Terminate = %v", err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Terminate took %v", d)
	}
	if err := p2.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPoolContextCancel(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	args := make([]time.Duration, 40)
	for i := range args {
		args[i] = time.Minute
	}
	start := time.Now()
	_, err := sleeps.Map(short, p, args)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Map past its deadline = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Map did not return promptly")
	}
	// The abandoned work does not clog the pool.
	if v, err := double.Apply(ctx, p, 21); err != nil || v != 42 {
		t.Fatalf("Apply after an abandoned Map: %v, %v", v, err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := sleeps.Apply(short2, p, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply past its deadline = %v", err)
	}
}

func TestPoolTaskGetsSharedValue(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	counter, _ := multiproc.NewValue[int64](0)
	args := make([]counterJob, 100)
	for i := range args {
		args[i] = counterJob{Counter: counter, N: i}
	}
	if _, err := queueSum.Map(ctx, p, args); err != nil {
		t.Fatal(err)
	}
	if counter.Load() != 4950 {
		t.Fatalf("counter = %d", counter.Load())
	}
}

// sigintHelper runs in a helper process: a pool, its workers' pids on
// stdout, then a long Map under a context that SIGINT cancels.
func sigintHelper() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	for range 10 {
		pid, _ := whoAmI.Apply(ctx, p, 0)
		fmt.Println("worker", pid)
	}
	started, _ := multiproc.NewValue[int64](0)
	args := make([]sleepJob, 8)
	for i := range args {
		args[i] = sleepJob{started, time.Minute}
	}
	mapped := make(chan error)
	go func() {
		_, err := startedSleep.Map(ctx, p, args)
		mapped <- err
	}()
	// Tell the test to press Ctrl-C once both workers run a chunk.
	for started.Load() < 2 {
		select {
		case err := <-mapped:
			fmt.Println("map ended early:", err)
			return 1
		case <-time.After(time.Millisecond):
		}
	}
	fmt.Println("mapping")
	fmt.Println("map error:", <-mapped)
	p.Terminate()
	return 0
}

func TestPoolSIGINTDuringMap(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "MULTIPROC_TEST_SIGINT=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	workers := map[int]bool{}
	var lines []string
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if pid, ok := strings.CutPrefix(line, "worker "); ok {
			n, _ := strconv.Atoi(pid)
			workers[n] = true
		}
		if line == "mapping" {
			// Ctrl-C at a terminal: SIGINT to the whole foreground group.
			syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, strings.Join(lines, "\n"))
	}
	var errs []string
	for _, l := range lines {
		if strings.HasPrefix(l, "map error:") {
			errs = append(errs, l)
		}
	}
	if len(errs) != 1 || errs[0] != "map error: context canceled" {
		t.Fatalf("want one cancellation error, got %q", errs)
	}
	if len(workers) == 0 {
		t.Fatal("no worker pids")
	}
	for pid := range workers {
		waitFor(t, 5*time.Second, "the workers to be gone", func() bool { return gone(pid) })
	}
}

type queueTask struct {
	Out *multiproc.Queue[int] // shared with the parent: the worker puts into it
	Lk  *multiproc.Lock
	N   int
}

var putSquares = multiproc.Register("test.putSquares", func(ctx context.Context, a queueTask) (int, error) {
	a.Lk.Lock() // any shared object works in a running worker
	a.Lk.Unlock()
	return a.N, a.Out.Put(ctx, a.N*a.N)
})

func TestPoolTaskGetsQueue(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	q, _ := multiproc.NewQueue[int](0)
	lk, _ := multiproc.NewLock()
	var rs []*multiproc.AsyncResult[int]
	for i := range 50 {
		rs = append(rs, putSquares.ApplyAsync(p, queueTask{Out: q, Lk: lk, N: i}))
	}
	for _, r := range rs {
		if _, err := r.Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sum := 0
	for range 50 {
		v, err := q.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	if want := 49 * 50 * 99 / 6; sum != want || q.Len() != 0 {
		t.Fatalf("sum of squares from the workers = %d, want %d", sum, want)
	}
}

// TestPoolWorkersKilledUnderLoad kills workers at random while thousands
// of queued and prefetched tasks flow: every task ends (no hang), each
// either with its result or, at most once per kill, ErrWorkerDied.
func TestPoolWorkersKilledUnderLoad(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	const n = 3000
	rs := make([]*multiproc.AsyncResult[int], n)
	kills := 0
	for i := range rs {
		rs[i] = double.ApplyAsync(p, i)
		if i%300 == 150 {
			if pid, err := whoAmI.Apply(ctx, p, 0); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
				kills++
			}
		}
	}
	died := 0
	for i, r := range rs {
		v, err := r.Get(ctx)
		switch {
		case errors.Is(err, multiproc.ErrWorkerDied):
			died++
		case err != nil:
			t.Fatalf("task %d: %v", i, err)
		case v != 2*i:
			t.Fatalf("task %d = %d", i, v)
		}
	}
	if died > kills {
		t.Fatalf("%d tasks failed for %d kills", died, kills)
	}
	t.Logf("%d kills, %d tasks failed with ErrWorkerDied, %d succeeded", kills, died, n-died)
}

// TestPoolChurn mixes everything at once: Maps, Applies with deadlines
// that expire, tasks that kill their own worker, and a worker limit, from
// several goroutines. Every call must end, with a result or a clear error.
func TestPoolChurn(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 3, MaxTasksPerChild: 7, TaskTimeout: 2 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				switch (g + i) % 4 {
				case 0:
					args := []int{1, 2, 3, 4, 5, 6, 7, 8}
					if rs, err := double.Map(ctx, p, args); err != nil || rs[7] != 16 {
						errs <- fmt.Errorf("Map: %v %v", rs, err)
					}
				case 1:
					short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
					_, err := sleeps.Apply(short, p, time.Second)
					cancel()
					if !errors.Is(err, context.DeadlineExceeded) {
						errs <- fmt.Errorf("Apply past deadline: %v", err)
					}
				case 2:
					if _, err := killSelf.Apply(ctx, p, -1); !errors.Is(err, multiproc.ErrWorkerDied) {
						errs <- fmt.Errorf("self-killing task: %v", err)
					}
				case 3:
					if v, err := double.ApplyAsync(p, i).Get(ctx); err != nil || v != 2*i {
						errs <- fmt.Errorf("ApplyAsync: %v %v", v, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Afterwards the pool is healthy.
	if v, err := double.Apply(ctx, p, 21); err != nil || v != 42 {
		t.Fatal(v, err)
	}
}
