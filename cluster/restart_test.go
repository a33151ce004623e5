package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A cluster on a NATS server of its own: the server stops, calls fail
// with a clear error within their context, and work again once it is
// back on the same port and store.
func TestServerRestart(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	ns := startNATS(t, 0, "")
	c := connect(t, ctx, Options{URL: ns.url(), Processes: 1, AckWait: testAckWait})
	if v, err := square.Apply(ctx, c, 7); err != nil || v != 49 {
		t.Fatalf("Apply = %d, %v", v, err)
	}
	// A task waiting when the server goes: it fails at once.
	waiting := slow.ApplyAsync(c, counted{N: 1, Ms: 60_000})
	start0 := time.Now()
	ns.stop()
	t.Logf("server stopped in %v", time.Since(start0))
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, err := waiting.Get(wctx)
	cancel()
	t.Logf("waiting call failed %v after the stop", time.Since(start0))
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("waiting call's error = %v, want ErrNotConnected", err)
	}
	// New calls fail within their context, with a clear error.
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	start := time.Now()
	_, err = square.Apply(actx, c, 3)
	cancel()
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("Apply with the server down = %v after %v", err, time.Since(start))
	}
	t.Logf("with the server down: %v", err)
	// Back on the same port, with its store: calls work again.
	ns = startNATS(t, ns.port, ns.dir)
	restarted := time.Now()
	waitFor(t, time.Minute, "calls to work again", func() bool {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		v, err := square.Apply(actx, c, 8)
		return err == nil && v == 64
	})
	t.Logf("calls work again %v after the restart", time.Since(restarted))
	xs := []int{1, 2, 3, 4, 5, 6, 7, 8, 9}
	got, err := square.Map(ctx, c, xs)
	if err != nil || len(got) != len(xs) || got[8] != 81 {
		t.Fatalf("Map after restart = %v, %v", got, err)
	}
	t.Log("done")
	t.Cleanup(func() { t.Log("cleanup start") })
}
