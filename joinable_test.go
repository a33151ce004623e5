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

type consumeJob struct {
	Q    *multiproc.JoinableQueue[int]
	Sum  *multiproc.Value[int64]
	Took *multiproc.Event // set once the first item is taken (killed consumer)
}

var (
	// joinConsume takes items until a negative one, with TaskDone for each
	// (the negative one too).
	joinConsume = multiproc.Register("test.joinConsume", func(ctx context.Context, j consumeJob) (int, error) {
		n := 0
		for {
			v, err := j.Q.Get(ctx)
			if err != nil {
				return n, err
			}
			if v >= 0 {
				j.Sum.Add(int64(v))
				n++
			}
			if err := j.Q.TaskDone(); err != nil {
				return n, err
			}
			if v < 0 {
				return n, nil
			}
		}
	})
	// takeAndHang takes one item and never finishes it.
	takeAndHang = multiproc.Register("test.joinTakeAndHang", func(ctx context.Context, j consumeJob) (int, error) {
		if _, err := j.Q.Get(ctx); err != nil {
			return 0, err
		}
		j.Took.Set()
		<-ctx.Done()
		return 0, nil
	})
	// taskDoneOnly calls TaskDone n times and returns the first error's text.
	taskDoneOnly = multiproc.Register("test.joinTaskDone", func(ctx context.Context, j consumeJob) (string, error) {
		if err := j.Q.TaskDone(); err != nil {
			return err.Error(), nil
		}
		return "", nil
	})
)

func newJoinable(t *testing.T, maxsize int) *multiproc.JoinableQueue[int] {
	t.Helper()
	q, err := multiproc.NewJoinableQueue[int](maxsize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// Producers in the parent (Put and TryPut), consumers in two children
// and in a pool worker: Join returns once every item had its TaskDone,
// whichever process did it.
func TestJoinableQueueAcrossProcesses(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	q := newJoinable(t, 0)
	sum, _ := multiproc.NewValue[int64](0)
	defer sum.Close()
	if err := q.Join(ctx); err != nil {
		t.Fatalf("Join on a fresh queue = %v", err)
	}
	pool, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Terminate()
	job := consumeJob{Q: q, Sum: sum}
	ps := []*multiproc.Process{start(t, joinConsume.Process(job)), start(t, joinConsume.Process(job))}
	res := joinConsume.ApplyAsync(pool, job)
	want := int64(0)
	for i := range 30 {
		if i%2 == 0 {
			err = q.Put(ctx, i)
		} else {
			err = q.TryPut(i) // TryPut counts toward Join too
		}
		if err != nil {
			t.Fatal(err)
		}
		want += int64(i)
	}
	for range 3 {
		if err := q.Put(ctx, -1); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sum.Load(); got != want {
		t.Fatalf("Join returned with the consumers' sum at %d, want %d", got, want)
	}
	if q.Unfinished() != 0 || !q.Empty() || q.Len() != 0 {
		t.Fatalf("after Join: %d unfinished, %d queued", q.Unfinished(), q.Len())
	}
	joinAll(t, ctx, ps)
	if _, err := res.Get(ctx); err != nil {
		t.Fatal(err)
	}
	// One TaskDone more than items put: an error, in any process.
	if err := q.TaskDone(); err == nil || !strings.Contains(err.Error(), "more times than items were put") {
		t.Fatalf("TaskDone past the count = %v", err)
	}
	if msg, err := taskDoneOnly.Call(ctx, job); err != nil || msg == "" {
		t.Fatalf("a child's TaskDone past the count: %q, %v", msg, err)
	}
	if q.Unfinished() != 0 {
		t.Fatalf("a refused TaskDone changed the count to %d", q.Unfinished())
	}
}

// A consumer SIGKILLed between Get and TaskDone leaves its task
// unfinished: Join waits until its ctx ends; a TaskDone in its stead
// lets Join return.
func TestJoinableQueueConsumerKilled(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	q := newJoinable(t, 2)
	took := newEvent(t)
	p := start(t, takeAndHang.Process(consumeJob{Q: q, Took: took}))
	if err := q.Put(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := took.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	p.Kill()
	p.Join(ctx) // killed: an error
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := q.Join(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Join with a lost task = %v, want its deadline", err)
	}
	if q.Unfinished() != 1 {
		t.Fatalf("Unfinished = %d, want 1", q.Unfinished())
	}
	joined := make(chan error, 1)
	go func() { joined <- q.Join(ctx) }()
	if err := q.TaskDone(); err != nil {
		t.Fatal(err)
	}
	if err := <-joined; err != nil {
		t.Fatalf("Join after the supervisor's TaskDone = %v", err)
	}
}

// Close wakes this process's Join; a zero JoinableQueue fails with
// ErrNotInitialized; a refused Put does not count.
func TestJoinableQueueCloseAndZero(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	q := newJoinable(t, 1)
	if err := q.Put(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := q.TryPut(2); !errors.Is(err, multiproc.ErrFull) {
		t.Fatalf("TryPut on a full queue = %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := q.Put(short, 3); !errors.Is(err, multiproc.ErrFull) {
		t.Fatalf("Put past its deadline on a full queue = %v", err)
	}
	if n := q.Unfinished(); n != 1 {
		t.Fatalf("refused Puts counted: %d unfinished, want 1", n)
	}
	joined := make(chan error, 1)
	go func() { joined <- q.Join(ctx) }()
	if err := parked.Wait(ctx, "(*JoinableQueue[...]).Join", 1); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-joined; !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("Join across Close = %v", err)
	}
	if err := q.TaskDone(); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("TaskDone after Close = %v", err)
	}
	if err := q.Join(ctx); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("Join after Close = %v", err)
	}

	var zero multiproc.JoinableQueue[int]
	if err := zero.Put(ctx, 1); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Fatalf("zero Put = %v", err)
	}
	if _, err := zero.Get(ctx); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Fatalf("zero Get = %v", err)
	}
	if err := zero.TaskDone(); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Fatalf("zero TaskDone = %v", err)
	}
	if err := zero.Join(ctx); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Fatalf("zero Join = %v", err)
	}
	if err := zero.Close(); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Fatalf("zero Close = %v", err)
	}
}
