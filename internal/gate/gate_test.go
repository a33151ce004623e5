//go:build linux && (amd64 || arm64)

package gate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g := New()
	if err := g.Enter(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Held: a second Enter waits until its context ends, or done closes.
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if err := g.Enter(short, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enter on a held gate = %v", err)
	}
	done := make(chan struct{})
	close(done)
	if err := g.Enter(ctx, done); err != ErrDone {
		t.Fatalf("Enter with done closed = %v", err)
	}
	entered := make(chan error)
	go func() { entered <- g.Enter(ctx, nil) }()
	g.Leave()
	if err := <-entered; err != nil {
		t.Fatal(err)
	}
	g.Leave()
	g.Take()
	if err := g.Enter(short, nil); err == nil {
		t.Fatal("Enter on a taken gate succeeded")
	}
}

// Many goroutines entering, some giving up at random moments (a context
// ending, done closing) while the gate is handed over: never two inside,
// never a gate left held with nobody inside.
func TestGateStress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := New()
	var inside atomic.Int32
	var entered atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 2000 {
				c, stop := context.WithTimeout(ctx, time.Duration((i*j)%7)*time.Microsecond)
				err := g.Enter(c, nil)
				stop()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("%d goroutines inside", n)
				}
				entered.Add(1)
				inside.Add(-1)
				g.Leave()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("stress run did not finish")
	}
	// Free at the end: an Enter that cannot wait succeeds.
	short, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if err := g.Enter(short, nil); err != nil {
		t.Fatalf("the gate was left held: %v (%d entries)", err, entered.Load())
	}
	if len(g.s.waiters) != 0 {
		t.Fatalf("%d waiters left", len(g.s.waiters))
	}
}
