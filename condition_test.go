//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/internal/parked"
)

type condJob struct {
	C      *multiproc.Condition
	V      *multiproc.Value[int64]
	Rounds int
	Held   *multiproc.Event
}

var (
	// condPong waits for each odd value of V and answers with the next
	// even one: a ping-pong that hangs if a wake-up is lost.
	condPong = multiproc.Register("test.condPong", func(ctx context.Context, j condJob) (int, error) {
		j.C.Lock()
		defer j.C.Unlock()
		for i := range j.Rounds {
			for j.V.Load() != int64(2*i+1) {
				if err := j.C.Wait(ctx); err != nil {
					return i, err
				}
			}
			j.V.Store(int64(2*i + 2))
			j.C.Notify(1)
		}
		return j.Rounds, nil
	})
	// condWaitOnce waits for one Notify and returns 1 (0 if ctx ended).
	condWaitOnce = multiproc.Register("test.condWaitOnce", func(ctx context.Context, j condJob) (int, error) {
		if err := j.C.LockContext(ctx); err != nil {
			return 0, err
		}
		err := j.C.Wait(ctx)
		j.C.Unlock()
		if err != nil {
			return 0, err
		}
		return 1, nil
	})
	// condHold takes the lock and keeps it until killed.
	condHold = multiproc.Register("test.condHold", func(ctx context.Context, j condJob) (int, error) {
		j.C.Lock()
		j.Held.Set()
		<-ctx.Done()
		return 0, nil
	})
)

// condTurn is participant Me of a ring of Of: it waits until V counts to
// its turn (V % Of == Me), adds one and wakes every waiter, Rounds times.
// With more participants than CPUs most of them sleep in the kernel at
// each turn.
type condTurnJob struct {
	C              *multiproc.Condition
	V              *multiproc.Value[int64]
	Me, Of, Rounds int
}

var condTurn = multiproc.Register("test.condTurn", func(ctx context.Context, j condTurnJob) (int, error) {
	return j.Rounds, takeTurns(ctx, j)
})

func takeTurns(ctx context.Context, j condTurnJob) error {
	if err := j.C.LockContext(ctx); err != nil {
		return err
	}
	defer j.C.Unlock()
	for r := range j.Rounds {
		for j.V.Load()%int64(j.Of) != int64(j.Me) {
			if err := j.C.Wait(ctx); err != nil {
				return fmt.Errorf("participant %d, round %d (V=%d): %w", j.Me, r, j.V.Load(), err)
			}
		}
		j.V.Store(j.V.Load() + 1)
		j.C.NotifyAll()
	}
	return nil
}

func newCondition(t *testing.T, l *multiproc.Lock) *multiproc.Condition {
	t.Helper()
	c, err := multiproc.NewCondition(l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A ping-pong of 200 rounds between two processes: each side waits for
// the other's value and notifies one. A lost wake-up hangs it until the
// deadline.
func TestConditionPingPongAcrossProcesses(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCondition(t, nil)
	v, _ := multiproc.NewValue[int64](0)
	defer v.Close()
	const rounds = 200
	p := start(t, condPong.Process(condJob{C: c, V: v, Rounds: rounds}))
	c.Lock()
	for i := range rounds {
		v.Store(int64(2*i + 1))
		c.Notify(1)
		for v.Load() != int64(2*i+2) {
			if err := c.Wait(ctx); err != nil {
				c.Unlock()
				t.Fatalf("round %d: %v", i, err)
			}
		}
	}
	c.Unlock()
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

// Four processes take turns on one Condition, 300 turns each: each wakes
// all the others at every turn and most of them sleep in the kernel in
// between; the lock keeps every turn whole (V ends at exactly 4×300). A
// wake-up lost between processes would only slow the ring down: every
// kernel wait looks again after 50 ms (internal/futex's cancelCheck).
func TestConditionTurnsAcrossProcesses(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	c := newCondition(t, nil)
	v, err := multiproc.NewValue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	const of, rounds = 4, 300
	var ps []*multiproc.Process
	for me := 1; me < of; me++ {
		ps = append(ps, start(t, condTurn.Process(condTurnJob{C: c, V: v, Me: me, Of: of, Rounds: rounds})))
	}
	if err := takeTurns(ctx, condTurnJob{C: c, V: v, Me: 0, Of: of, Rounds: rounds}); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.Load(); got != of*rounds {
		t.Fatalf("V = %d after the ring; want %d", got, of*rounds)
	}
}

// A waiter whose process was SIGKILLed while it waited does not swallow
// a Notify(1): the live waiter behind it gets it. NotifyAll skips it too.
func TestConditionDeadWaiterAndNotify(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	l, _ := multiproc.NewLock()
	defer l.Close()
	c := newCondition(t, l)
	j := condJob{C: c}
	dead := start(t, condWaitOnce.Process(j))
	if err := waitInWait(ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	dead.Kill()
	dead.Join(ctx)

	live := start(t, condWaitOnce.Process(j))
	if err := waitInWait(ctx, c, 2); err != nil {
		t.Fatal(err)
	}
	c.Notify(1)
	if err := live.Join(ctx); err != nil {
		t.Fatalf("the live waiter behind a dead one: %v (Notify(1) swallowed?)", err)
	}

	// NotifyAll with a dead waiter and a live one: the live one wakes.
	dead2 := start(t, condWaitOnce.Process(j))
	if err := waitInWait(ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	dead2.Kill()
	dead2.Join(ctx)
	live2 := start(t, condWaitOnce.Process(j))
	if err := waitInWait(ctx, c, 2); err != nil {
		t.Fatal(err)
	}
	c.NotifyAll()
	if err := live2.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitInWait returns once n waiters are registered in c, in any process.
func waitInWait(ctx context.Context, c *multiproc.Condition, n int) error {
	for multiproc.CondWaiting(c) < n {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%d waiters, want %d: %w", multiproc.CondWaiting(c), n, err)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// A process SIGKILLed while it holds the Condition's lock does not hang
// the others: the lock is taken over.
func TestConditionLockHolderKilled(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCondition(t, nil)
	held := newEvent(t)
	p := start(t, condHold.Process(condJob{C: c, Held: held}))
	if err := held.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if c.TryLock() {
		t.Fatal("TryLock while a live child holds the lock")
	}
	p.Kill()
	if err := c.LockContext(ctx); err != nil {
		t.Fatalf("LockContext after the holder was killed: %v", err)
	}
	// The taken-over lock works for Wait: a bounded Wait returns its
	// deadline with the lock held again.
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := c.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past its deadline = %v", err)
	}
	if c.TryLock() {
		t.Fatal("Wait returned on its deadline without the lock held again")
	}
	c.Unlock()
}

// Wait without the lock is an error; Close wakes this process's waiters
// and leaves a Lock the caller passed open; a zero Condition fails.
func TestConditionMisuseCloseAndZero(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	l, _ := multiproc.NewLock()
	defer l.Close()
	c, err := multiproc.NewCondition(l)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err == nil {
		t.Fatal("Wait without the lock succeeded")
	}
	c.Notify(1) // without the lock: allowed, wakes nobody
	c.NotifyAll()
	waited := make(chan error, 2)
	for range 2 {
		go func() {
			c.Lock()
			err := c.Wait(ctx)
			l.Unlock() // held again, even across Close; the Condition is closed: through l
			waited <- err
		}()
	}
	if err := parked.Wait(ctx, "(*Condition).Wait", 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-waited; !errors.Is(err, multiproc.ErrClosed) {
			t.Fatalf("Wait across Close = %v", err)
		}
	}
	// The caller's Lock is still open and free.
	if !l.TryLock() {
		t.Fatal("the caller's Lock is not free after Close")
	}
	l.Unlock()
	if err := c.LockContext(ctx); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("LockContext after Close = %v", err)
	}
	if err := c.Wait(ctx); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("Wait after Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}

	var zero multiproc.Condition
	if err := zero.Wait(ctx); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Fatalf("zero Wait = %v", err)
	}
	if err := zero.LockContext(ctx); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Fatalf("zero LockContext = %v", err)
	}
	if err := zero.Close(); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Fatalf("zero Close = %v", err)
	}
	closed, _ := multiproc.NewLock()
	closed.Close()
	if _, err := multiproc.NewCondition(closed); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("NewCondition on a closed Lock = %v", err)
	}
}

// A Condition reaches a pool task as the same condition: the task waits
// there, the parent's Notify wakes it.
func TestConditionInPoolTask(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCondition(t, nil)
	pool := newPool(t, multiproc.PoolOptions{Processes: 1})
	res := condWaitOnce.ApplyAsync(pool, condJob{C: c})
	if err := waitInWait(ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	c.Notify(1)
	if v, err := res.Get(ctx); err != nil || v != 1 {
		t.Fatalf("the pool task's Wait: %d, %v", v, err)
	}
}

type tokenJob struct {
	C          *multiproc.Condition
	Tokens     *multiproc.Value[int64] // put by the parent, one per Notify(1)
	Taken      *multiproc.Value[int64]
	Goroutines int
	Total      int64
}

// takeTokens runs j.Goroutines consumers, each taking tokens one at a
// time under the Condition's lock until j.Total were taken in all.
func takeTokens(ctx context.Context, j tokenJob) error {
	errs := make(chan error, j.Goroutines)
	for range j.Goroutines {
		go func() {
			j.C.Lock()
			defer j.C.Unlock()
			for j.Taken.Load() < j.Total {
				if j.Tokens.Load() == 0 {
					if err := j.C.Wait(ctx); err != nil {
						errs <- err
						return
					}
					continue
				}
				j.Tokens.Add(-1)
				if j.Taken.Add(1) == j.Total {
					j.C.NotifyAll() // the others end their loop
				}
			}
			errs <- nil
		}()
	}
	for range j.Goroutines {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

var condTakeTokens = multiproc.Register("test.condTakeTokens", func(ctx context.Context, j tokenJob) (int, error) {
	return 0, takeTokens(ctx, j)
})

// Tokens handed out one at a time with Notify(1) to consumers in two
// processes, several goroutines in each (some queued at this process's
// gate while one sleeps in the kernel): every token is taken. A lost
// wake-up leaves a token with every consumer asleep, until the deadline.
func TestConditionNotifyOneManyGoroutines(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := newCondition(t, nil)
	tokens, _ := multiproc.NewValue[int64](0)
	taken, _ := multiproc.NewValue[int64](0)
	defer tokens.Close()
	defer taken.Close()
	const total = 300
	j := tokenJob{C: c, Tokens: tokens, Taken: taken, Goroutines: 3, Total: total}
	p := start(t, condTakeTokens.Process(j))
	local := make(chan error, 1)
	go func() { local <- takeTokens(ctx, j) }()
	for range total {
		c.Lock()
		tokens.Add(1)
		c.Notify(1)
		c.Unlock()
	}
	if err := <-local; err != nil {
		t.Fatalf("%v with %d of %d tokens taken", err, taken.Load(), total)
	}
	if err := p.Join(ctx); err != nil {
		t.Fatalf("%v with %d of %d tokens taken", err, taken.Load(), total)
	}
	if taken.Load() != total || tokens.Load() != 0 {
		t.Fatalf("%d tokens taken, %d left", taken.Load(), tokens.Load())
	}
}
