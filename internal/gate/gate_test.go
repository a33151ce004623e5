//go:build linux && (amd64 || arm64)

package gate

import (
	"context"
	"errors"
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
