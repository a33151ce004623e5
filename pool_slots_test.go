//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/internal/slot"
)

// sizedJob asks for a result of Out bytes made from Data.
type sizedJob struct {
	Data []byte
	Out  int
}

func sizedAnswer(j sizedJob) []byte {
	out := make([]byte, j.Out)
	for i := range out {
		out[i] = byte(i*31) ^ byte(len(j.Data))
		if len(j.Data) > 0 {
			out[i] ^= j.Data[i%len(j.Data)]
		}
	}
	return out
}

var sized = multiproc.Register("test.sized", func(ctx context.Context, j sizedJob) ([]byte, error) {
	return sizedAnswer(j), nil
})

func sizedJobOf(in, out int) sizedJob {
	j := sizedJob{Data: make([]byte, in), Out: out}
	for i := range j.Data {
		j.Data[i] = byte(i*7 + in)
	}
	return j
}

// Tasks and results of every size around a slot's (inline on one side,
// on the control channel on the other, both, neither), from callers that
// collect their own results (Apply) and from ApplyAsync at once, on two
// workers: every result is its own task's, whichever way each went.
func TestPoolSlotSizes(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	var sizes []int
	for n := slot.Payload - 200; n <= slot.Payload+40; n += 23 {
		sizes = append(sizes, n)
	}
	sizes = append(sizes, 0, 1, 100, 64<<10, 1<<20)
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(sizes))
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var async []*multiproc.AsyncResult[[]byte]
			var jobs []sizedJob
			for i, in := range sizes {
				out := sizes[(i+g*7)%len(sizes)]
				j := sizedJobOf(in, out)
				if (i+g)%2 == 0 {
					async = append(async, sized.ApplyAsync(p, j))
					jobs = append(jobs, j)
					continue
				}
				got, err := sized.Apply(ctx, p, j)
				if err != nil || !bytes.Equal(got, sizedAnswer(j)) {
					errs <- fmt.Errorf("Apply of %d bytes for %d: %d bytes, %v", in, out, len(got), err)
				}
			}
			for i, r := range async {
				got, err := r.Get(ctx)
				if err != nil || !bytes.Equal(got, sizedAnswer(jobs[i])) {
					errs <- fmt.Errorf("ApplyAsync of %d bytes for %d: %d bytes, %v", len(jobs[i].Data), jobs[i].Out, len(got), err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Tasks that carry descriptors (a shared Value) go on the control
// channel, between tasks in slots, in one worker's queue: they run in
// order, and each answer reaches its own caller.
func TestPoolSlotsBetweenSharedTasks(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 1})
	counter, err := multiproc.NewValue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	defer counter.Close()
	const n = 60
	var shared []*multiproc.AsyncResult[int64]
	var small []*multiproc.AsyncResult[int]
	for i := range n {
		if i%3 == 0 {
			shared = append(shared, queueSum.ApplyAsync(p, counterJob{Counter: counter, N: 1}))
		} else {
			small = append(small, double.ApplyAsync(p, i))
		}
	}
	// One worker runs them in order: the k-th shared task saw k+1.
	for k, r := range shared {
		if v, err := r.Get(ctx); err != nil || v != int64(k+1) {
			t.Fatalf("shared task %d = %v, %v", k, v, err)
		}
	}
	k := 0
	for i := range n {
		if i%3 == 0 {
			continue
		}
		if v, err := small[k].Get(ctx); err != nil || v != 2*i {
			t.Fatalf("task %d = %v, %v", i, v, err)
		}
		k++
	}
}

// Many goroutines call Apply at once, some with a ctx that can end (they
// wait in the pool's queue) and some without (they may queue in a busy
// worker's slots): a caller collects its own result, or, when another
// goroutine is collecting that worker's, gets it delivered; none hangs or
// gets another's result.
func TestPoolApplyManyCallers(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 2})
	per := 150
	if testing.Short() {
		per = 50
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				x := g*1000 + i
				c := context.Background()
				if g%2 == 1 {
					var cancel context.CancelFunc
					c, cancel = context.WithTimeout(ctx, time.Minute)
					defer cancel()
				}
				if v, err := double.Apply(c, p, x); err != nil || v != 2*x {
					errs <- fmt.Errorf("Apply(%d) = %v, %v", x, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A caller collecting its own result while its worker is killed under
// it: it gets ErrWorkerDied, and the tasks queued behind it in the
// slots run on the replacement or fail as started, never twice.
func TestPoolCollectorWorkerKilled(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 1})
	for round := range 2 {
		queued := make([]*multiproc.AsyncResult[int], 5)
		dying := killSelf.ApplyAsync(p, -1)
		for i := range queued {
			queued[i] = double.ApplyAsync(p, i)
		}
		if _, err := dying.Get(ctx); !errors.Is(err, multiproc.ErrWorkerDied) {
			t.Fatalf("round %d: the task that killed its worker = %v", round, err)
		}
		for i, r := range queued {
			if v, err := r.Get(ctx); err != nil || v != 2*i {
				t.Fatalf("round %d: task %d queued behind it = %v, %v", round, i, v, err)
			}
		}
		if _, err := killSelf.Apply(ctx, p, -1); !errors.Is(err, multiproc.ErrWorkerDied) {
			t.Fatalf("round %d: Apply of a task that kills its worker = %v", round, err)
		}
	}
}

// pidJob records its worker's pid in Pids[Slot], sets Started, then
// waits for its context (the worker is killed, or its parent dies).
type pidJob struct {
	Pids    *multiproc.Array[int64]
	Slot    int
	Started *multiproc.Event
}

var (
	pidWait = multiproc.Register("test.pidWait", func(ctx context.Context, j pidJob) (int, error) {
		j.Pids.Store(j.Slot, int64(os.Getpid()))
		j.Started.Set()
		<-ctx.Done()
		return 0, nil
	})
	// poolParent starts a Pool(2) in a child process: one worker runs a
	// task that never ends, the other idles asleep on its task slots'
	// bell; their pids go in Pids[0] and Pids[1]. Then it waits to be
	// killed.
	poolParent = multiproc.Register("test.poolParent", func(ctx context.Context, pids *multiproc.Array[int64]) (int, error) {
		p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
		if err != nil {
			return 0, err
		}
		started, err := multiproc.NewEvent()
		if err != nil {
			return 0, err
		}
		pidWait.ApplyAsync(p, pidJob{Pids: pids, Slot: 0, Started: started})
		// A ctx that can end keeps the task out of the busy worker.
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := started.Wait(c); err != nil {
			return 0, err
		}
		pid, err := whoAmI.Apply(c, p, 0)
		if err != nil {
			return 0, err
		}
		pids.Store(1, int64(pid))
		<-ctx.Done()
		return 0, nil
	})
)

// A pool's parent SIGKILLed: its workers die, the one running a task and
// the one asleep on its task slots' bell alike (daemons: the parent-death
// signal; the worker's channel reader also sees the end).
func TestPoolWorkersDieWithKilledParent(t *testing.T) {
	pids, err := multiproc.NewArray[int64](2)
	if err != nil {
		t.Fatal(err)
	}
	defer pids.Close()
	proc := poolParent.Process(pids)
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer proc.Join(testCtx(t, 10*time.Second))
	waitFor(t, 30*time.Second, "the pool's two workers in the child", func() bool { return pids.Load(1) != 0 })
	busy, idle := int(pids.Load(0)), int(pids.Load(1))
	if busy == idle || gone(busy) || gone(idle) {
		t.Fatalf("workers %d and %d", busy, idle)
	}
	proc.Kill()
	waitFor(t, 10*time.Second, "both workers to die with their parent", func() bool { return gone(busy) && gone(idle) })
}
