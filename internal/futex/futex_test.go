//go:build linux && (amd64 || arm64)

package futex

import (
	"context"
	"errors"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc/internal/parked"
)

func words(n int) []uint32 { return make([]uint32, n*16) } // one cache line apart

func TestMutexExcludes(t *testing.T) {
	w := words(1)
	m := Mutex{W: &w[0]}
	counter := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				m.Lock()
				counter++
				m.Unlock()
			}
		}()
	}
	wg.Wait()
	if counter != 8000 || m.Holder() != 0 {
		t.Fatalf("counter %d, holder %d", counter, m.Holder())
	}
}

// deadPid returns the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) uint32 {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return uint32(cmd.Process.Pid)
}

func TestMutexTakeoverFromDeadHolder(t *testing.T) {
	w := words(1)
	m := Mutex{W: &w[0]}
	dead := deadPid(t)
	if Alive(dead) {
		t.Skip("the pid was reused at once")
	}
	w[0] = dead // as if that process had died holding the lock
	done := make(chan bool, 1)
	go func() { done <- m.Lock() }()
	select {
	case recovered := <-done:
		if !recovered || m.Holder() != Pid() {
			t.Fatalf("recovered %v, holder %d", recovered, m.Holder())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Lock hung on a lock held by a dead process")
	}
	m.Unlock()
	w[0] = dead
	if !m.TryLock() {
		t.Fatal("TryLock did not take over from a dead holder")
	}
}

// TestMutexLockContext: the bounded Lock gives up at its context's end,
// passes on a wake-up it may have taken, and any goroutine may unlock.
func TestMutexLockContext(t *testing.T) {
	w := words(1)
	m := Mutex{W: &w[0]}
	if _, err := m.LockContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := m.LockContext(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LockContext on a held lock = %v", err)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	got := make(chan error, 1)
	go func() { _, err := m.LockContext(ctx); got <- err }()
	if err := parked.Wait(ctx, "futex.Mutex.LockContext", 1); err != nil {
		t.Fatal(err)
	}
	unlocked := make(chan bool)
	go func() { unlocked <- m.Unlock() }() // not the goroutine that locked
	if !<-unlocked {
		t.Fatal("Unlock of a held lock reported it free")
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if !m.Unlock() || m.Unlock() {
		t.Fatal("Unlock did not report a free lock")
	}
	if !m.TryFast() || m.TryFast() {
		t.Fatal("TryFast")
	}
}

func TestAlive(t *testing.T) {
	if !Alive(Pid()) || Alive(0) {
		t.Fatal("Alive of self or 0")
	}
	if dead := deadPid(t); Alive(dead) {
		t.Logf("pid %d reused already", dead)
	}
}

func TestSemaAndCancel(t *testing.T) {
	w := words(2)
	s := Sema{Count: &w[0], Waiters: &w[16]}
	s.Release()
	if !s.TryAcquire() || s.TryAcquire() {
		t.Fatal("one unit, two TryAcquires")
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	ctx, cancel := context.WithCancel(ctx2)
	// Cancel (then Release) once the Acquire sleeps in the kernel.
	go func() { parked.Wait(ctx, "futex.Sema.Acquire", 1); cancel() }()
	if err := s.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire on cancel = %v", err)
	}
	go func() { parked.Wait(ctx2, "futex.Sema.Acquire", 1); s.Release() }()
	if err := s.Acquire(ctx2); err != nil {
		t.Fatal(err)
	}
}

func TestEvent(t *testing.T) {
	w := words(1)
	e := Event{W: &w[0]}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := e.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on unset = %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	go func() { parked.Wait(ctx2, "futex.Event.Wait", 1); e.Set() }()
	if err := e.Wait(ctx2); err != nil || !e.IsSet() {
		t.Fatal(err)
	}
}

func TestBarrierRoundsAndBreak(t *testing.T) {
	w := words(1)
	b := Barrier{W: &w[0], Parties: 3}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				errs <- b.Wait(ctx)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	short, cancel2 := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel2()
	if err := b.Wait(short); !errors.Is(err, context.DeadlineExceeded) || !b.Broken() {
		t.Fatalf("lone Wait = %v, broken %v", err, b.Broken())
	}
	if err := b.Wait(ctx); !errors.Is(err, ErrBroken) {
		t.Fatalf("Wait on a broken barrier = %v", err)
	}
}

// TestAfterFuncStopWaits: once stop returns, f is over, even when stop
// races the cancellation that started it; a second stop returns at once.
func TestAfterFuncStopWaits(t *testing.T) {
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		var running, over atomic.Bool
		stop := AfterFunc(ctx, func() {
			running.Store(true)
			time.Sleep(time.Microsecond)
			over.Store(true)
		})
		go cancel()
		stop()
		if running.Load() && !over.Load() {
			t.Fatalf("round %d: stop returned while f ran", i)
		}
		stop()
		cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := false
	stop := AfterFunc(ctx, func() { ran = true })
	cancel()
	stop() // waits for f
	if !ran {
		t.Fatal("f did not run before stop returned after the cancellation")
	}
	stop()
}

func TestSemaMax(t *testing.T) {
	w := words(2)
	s := Sema{Count: &w[0], Waiters: &w[16]}
	w[0] = SemaMax - 1
	if !s.Release() {
		t.Fatal("Release below the maximum refused")
	}
	if s.Release() || w[0] != SemaMax {
		t.Fatalf("Release at the maximum: count %d", w[0])
	}
	w[0] = 1 << 31 // scribbled past it by another process
	if s.Release() || w[0] != 1<<31 {
		t.Fatalf("Release past the maximum: count %d", w[0])
	}
}

func TestBarrierAbortReset(t *testing.T) {
	w := words(2)
	b := Barrier{W: &w[0], Parties: 3, Reset: &w[1], Pids: make([]uint64, 3)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 3)
	wait := func(n int) {
		for range n {
			go func() { errs <- b.Wait(ctx) }()
		}
		for b.Waiting() != n {
			if ctx.Err() != nil {
				t.Fatalf("Waiting = %d, want %d", b.Waiting(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// Reset with two waiters blocked: both see a broken round, not a
	// passed one; the barrier is whole again after.
	wait(2)
	b.ResetBarrier()
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrBroken) {
			t.Fatalf("waiter across Reset = %v", err)
		}
	}
	if b.Broken() || b.Waiting() != 0 {
		t.Fatalf("after Reset: broken %v, waiting %d", b.Broken(), b.Waiting())
	}
	// A whole round passes after the Reset.
	wait(2)
	if err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Abort breaks the waiters and every later Wait until Reset.
	wait(1)
	b.Abort()
	if err := <-errs; !errors.Is(err, ErrBroken) {
		t.Fatalf("waiter across Abort = %v", err)
	}
	if err := b.Wait(ctx); !errors.Is(err, ErrBroken) {
		t.Fatalf("Wait after Abort = %v", err)
	}
	b.ResetBarrier()
	wait(2)
	if err := b.Wait(ctx); err != nil {
		t.Fatalf("a round after Abort and Reset: %v", err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
