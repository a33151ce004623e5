//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

type boundedJob struct {
	Sem     *multiproc.Semaphore
	Release int // Releases to do; the one past the bound panics
}

var (
	releaseBounded = multiproc.Register("test.releaseBounded", func(ctx context.Context, j boundedJob) (v int, err error) {
		defer func() {
			if r := recover(); r != nil {
				v, err = j.Sem.Value(), fmt.Errorf("panicked: %v", r)
			}
		}()
		for range j.Release {
			j.Sem.Release()
		}
		return j.Sem.Value(), nil
	})
	tryLockValue = multiproc.Register("test.tryLockValue", func(ctx context.Context, j struct {
		V *multiproc.Value[int64]
		A *multiproc.Array[int32]
	}) ([2]bool, error) {
		return [2]bool{j.V.TryLock(), j.A.TryLock()}, nil
	})
)

// The bound of a BoundedSemaphore lives in the shared memory: a child's
// Release past it panics there too, and leaves the count unchanged.
func TestBoundedSemaphoreAcrossProcesses(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	s, err := multiproc.NewBoundedSemaphore(2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Value() != 2 {
		t.Fatalf("Value = %d, want 2", s.Value())
	}
	if err := s.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Value() != 1 {
		t.Fatalf("Value after Acquire = %d, want 1", s.Value())
	}
	// In the child: one Release fits, the second is past the bound.
	v, err := releaseBounded.Call(ctx, boundedJob{Sem: s, Release: 2})
	if err == nil || !strings.Contains(err.Error(), "past its bound 2") {
		t.Fatalf("child's Release past the bound: %v, %v", v, err)
	}
	if s.Value() != 2 {
		t.Fatalf("Value after the child's Releases = %d, want 2", s.Value())
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Release past the bound did not panic")
			}
		}()
		s.Release()
	}()
	if s.Value() != 2 {
		t.Fatalf("a refused Release changed the count to %d", s.Value())
	}

	// An unbounded semaphore has no such limit.
	u, _ := multiproc.NewSemaphore(0)
	defer u.Close()
	if _, err := releaseBounded.Call(ctx, boundedJob{Sem: u, Release: 3}); err != nil {
		t.Fatal(err)
	}
	if u.Value() != 3 {
		t.Fatalf("unbounded Value = %d, want 3", u.Value())
	}
}

func TestBoundedSemaphoreZero(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	s, err := multiproc.NewBoundedSemaphore(0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.TryAcquire() || s.Value() != 0 {
		t.Fatal("a BoundedSemaphore(0) has a unit")
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := s.Acquire(short); err == nil {
		t.Fatal("Acquire on a BoundedSemaphore(0) succeeded")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Release on a BoundedSemaphore(0) did not panic")
			}
		}()
		s.Release()
	}()
	if _, err := multiproc.NewBoundedSemaphore(-1); err == nil {
		t.Fatal("NewBoundedSemaphore(-1) succeeded")
	}
	if _, err := multiproc.NewBoundedSemaphore(1<<31 + 1); err == nil {
		t.Fatal("NewBoundedSemaphore(2^31+1) succeeded")
	}
	var zero multiproc.Semaphore
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "zero Semaphore") {
				t.Fatalf("Value of a zero Semaphore: %v", r)
			}
		}()
		zero.Value()
	}()
}

// TryLock on a Value and an Array sees a lock held in another process.
func TestValueArrayTryLock(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	v, _ := multiproc.NewValue[int64](0)
	a, _ := multiproc.NewArray[int32](4)
	defer v.Close()
	defer a.Close()
	arg := struct {
		V *multiproc.Value[int64]
		A *multiproc.Array[int32]
	}{v, a}
	if !v.TryLock() || !a.TryLock() {
		t.Fatal("TryLock on free locks failed")
	}
	if v.TryLock() || a.TryLock() {
		t.Fatal("TryLock on held locks succeeded")
	}
	got, err := tryLockValue.Call(ctx, arg)
	if err != nil {
		t.Fatal(err)
	}
	if got != [2]bool{false, false} {
		t.Fatalf("child's TryLock on locks the parent holds = %v", got)
	}
	v.Unlock()
	a.Unlock()
	// The child takes both and exits holding them: a dead holder's lock
	// is taken over by TryLock.
	got, err = tryLockValue.Call(ctx, arg)
	if err != nil {
		t.Fatal(err)
	}
	if got != [2]bool{true, true} {
		t.Fatalf("child's TryLock on free locks = %v", got)
	}
	// Call returns with the result, maybe before the child is reaped:
	// poll until its pid is gone.
	for vok, aok := false, false; !vok || !aok; {
		vok = vok || v.TryLock()
		aok = aok || a.TryLock()
		if ctx.Err() != nil {
			t.Fatal("TryLock did not take over the locks of an exited holder")
		}
		time.Sleep(time.Millisecond)
	}
	v.Close()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("TryLock on a closed Value did not panic")
			}
		}()
		v.TryLock()
	}()
}
