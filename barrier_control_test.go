//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

func TestBarrierAbortAndReset(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	b, err := multiproc.NewBarrier(3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Parties() != 3 || b.Waiting() != 0 {
		t.Fatalf("Parties %d, Waiting %d", b.Parties(), b.Waiting())
	}
	// A child waits; Abort breaks it, and every later Wait, in every
	// process, until Reset.
	r1, err := waitBarrier.Call(ctx, nil) // warm the start path; a nil Barrier fails
	if err == nil {
		t.Fatalf("a nil Barrier's Wait returned %d, nil", r1)
	}
	res := make(chan int, 2)
	errs := make(chan error, 2)
	call := func() {
		v, err := waitBarrier.Call(ctx, b)
		res <- v
		errs <- err
	}
	go call()
	waitFor(t, 20*time.Second, "the child waits at the barrier", func() bool { return b.Waiting() == 1 })
	b.Abort()
	if v, err := <-res, <-errs; err != nil || v != 1 {
		t.Fatalf("child's Wait on an aborted barrier: %d, %v (want broken)", v, err)
	}
	if err := b.Wait(ctx); !errors.Is(err, multiproc.ErrBrokenBarrier) {
		t.Fatalf("Wait after Abort = %v", err)
	}
	if v, err := waitBarrier.Call(ctx, b); err != nil || v != 1 {
		t.Fatalf("a later child's Wait after Abort: %d, %v", v, err)
	}
	if !b.Broken() || b.Waiting() != 0 {
		t.Fatalf("after Abort: Broken %v, Waiting %d", b.Broken(), b.Waiting())
	}
	b.Reset()
	if b.Broken() || b.Waiting() != 0 {
		t.Fatalf("after Reset: Broken %v, Waiting %d", b.Broken(), b.Waiting())
	}

	// Reset with a waiter blocked breaks that waiter, and only it.
	go call()
	waitFor(t, 20*time.Second, "the child waits at the barrier", func() bool { return b.Waiting() == 1 })
	b.Reset()
	if v, err := <-res, <-errs; err != nil || v != 1 {
		t.Fatalf("child's Wait across a Reset: %d, %v (want broken)", v, err)
	}
	if b.Broken() {
		t.Fatal("Reset left the barrier broken")
	}

	// A whole round after the Reset passes.
	go call()
	go call()
	waitFor(t, 20*time.Second, "two children wait at the barrier", func() bool { return b.Waiting() == 2 })
	if err := b.Wait(ctx); err != nil {
		t.Fatalf("third party's Wait after Reset = %v", err)
	}
	for range 2 {
		if v, err := <-res, <-errs; err != nil || v != 0 {
			t.Fatalf("child's Wait in a whole round: %d, %v", v, err)
		}
	}
}

// A process SIGKILLed inside Wait breaks the barrier for the others:
// they return ErrBrokenBarrier instead of waiting forever.
func TestBarrierWaiterKilled(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	b, err := multiproc.NewBarrier(3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := start(t, waitBarrier.Process(b))
	waitFor(t, 20*time.Second, "the child waits at the barrier", func() bool { return b.Waiting() == 1 })
	p.Kill()
	p.Join(ctx) // an error: it was killed
	if err := b.Wait(ctx); !errors.Is(err, multiproc.ErrBrokenBarrier) {
		t.Fatalf("Wait beside a killed waiter = %v", err)
	}
	b.Reset()
	// The dead waiter's slot does not break the next round.
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	waitFor(t, 20*time.Second, "a waiter at the barrier", func() bool { return b.Waiting() == 1 })
	// Past the liveness checks of about 100 ms: the second party's Wait
	// ends by its deadline, not by a break the dead slot caused.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := b.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a round of 2 of 3 parties: %v (want its deadline)", err)
	}
	if err := <-done; !errors.Is(err, multiproc.ErrBrokenBarrier) {
		t.Fatalf("the first party, when the second gave up: %v", err)
	}
}
