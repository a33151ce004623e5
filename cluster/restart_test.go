package cluster

import (
	"context"
	"errors"
	"log"
	"os"
	"strings"
	"sync"
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

// On a server of its own there is no head to ask: a cancelled queued
// task is purged by its client itself (nobody answers the purge
// request), and a host that joins later never runs it.
func TestExternalCancelPurges(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	ns := startNATS(t, 0, "")
	c := connect(t, ctx, Options{URL: ns.url(), AckWait: testAckWait})
	actx, cancel := context.WithCancel(ctx)
	r := make(chan error, 1)
	go func() {
		_, err := square.Apply(actx, c, 3)
		r <- err
	}()
	// No host yet, so no consumer: the stream's count is the queue's.
	stored := func() uint64 {
		info, err := c.st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	waitFor(t, 30*time.Second, "the task to be queued", func() bool { return stored() == 1 })
	cancel()
	if err := <-r; !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply = %v, want context.Canceled", err)
	}
	waitFor(t, 30*time.Second, "the queue to be purged", func() bool { return stored() == 0 })
}

// A host says in its log when its server goes away, and again when it
// is back; then it serves again.
func TestHostLogsReconnect(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	ns := startNATS(t, 0, "")
	c := connect(t, ctx, Options{URL: ns.url(), AckWait: testAckWait})
	var logged logLines
	log.SetOutput(&logged)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	hctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- Serve(hctx, Options{URL: ns.url(), Processes: 1}) }()
	t.Cleanup(func() {
		stop()
		<-served
	})
	waitFor(t, time.Minute, "the host to join", func() bool { return c.Workers() == 1 })
	if v, err := square.Apply(ctx, c, 4); err != nil || v != 16 {
		t.Fatalf("Apply = %d, %v", v, err)
	}
	ns.stop()
	waitFor(t, 30*time.Second, "the host to log the loss", func() bool { return logged.has("lost the NATS server " + ns.url()) })
	if logged.has("reconnected to " + ns.url()) {
		t.Fatal("the host logged a reconnection while the server was down")
	}
	ns = startNATS(t, ns.port, ns.dir)
	waitFor(t, 30*time.Second, "the host to log the reconnection", func() bool { return logged.has("reconnected to " + ns.url()) })
	waitFor(t, time.Minute, "the host to serve again", func() bool {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		v, err := square.Apply(actx, c, 5)
		return err == nil && v == 25
	})
}

// logLines is a log output that a test can search.
type logLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}
