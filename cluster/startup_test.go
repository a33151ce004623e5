package cluster

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort is a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serveInProcess runs Serve in a goroutine until the test ends.
func serveInProcess(t *testing.T, o Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return within 30s of its ctx ending")
		}
	})
}

// Fault 3: startup in any order. A host that comes first waits for the
// head's queue (it cannot make one of its own, with other settings);
// a second and third client on the head's embedded server take its
// queue as it is; a client whose explicit settings differ is told so; the
// head restarted on the same port serves the host that waited.
func TestStartupAnyOrder(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	port := freePort(t)
	listen := "127.0.0.1:" + strconv.Itoa(port)
	url := "nats://" + listen
	// The host first: nothing listens yet.
	serveInProcess(t, Options{URL: url, Processes: 1, AckWait: testAckWait})
	head, err := Connect(ctx, Options{Listen: listen, Processes: -1, AckWait: testAckWait})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { head.Close() }()
	waitFor(t, time.Minute, "the host to join", func() bool { return head.Workers() == 1 })
	if v, err := square.Apply(ctx, head, 7); err != nil || v != 49 {
		t.Fatalf("head's Apply = %d, %v", v, err)
	}
	// More clients on the head's server, with the queue's settings.
	for i := range 2 {
		c := connect(t, ctx, Options{URL: url, Processes: -1})
		if c.opts.AckWait != testAckWait {
			t.Errorf("client %d took AckWait %v, want the queue's %v", i, c.opts.AckWait, testAckWait)
		}
		got, err := square.Map(ctx, c, []int{1, 2, 3})
		if err != nil || len(got) != 3 || got[2] != 9 {
			t.Fatalf("client %d's Map = %v, %v", i, got, err)
		}
	}
	if _, err := Connect(ctx, Options{URL: url, Processes: -1, AckWait: 5 * time.Second}); err == nil || !strings.Contains(err.Error(), "AckWait") {
		t.Fatalf("Connect with another AckWait = %v, want an error naming it", err)
	}
	// The head restarts on the same port: the host serves it again.
	head.Close()
	head, err = Connect(ctx, Options{Listen: listen, Processes: -1, AckWait: testAckWait})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the host to come back", func() bool {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		v, err := square.Apply(actx, head, 8)
		return err == nil && v == 64
	})
}

// Fault 5: one program per queue. A host of another build (another
// program under the same Name, or another version) never runs this
// build's tasks: with only such hosts, a call fails with ErrBuildMismatch
// naming the builds; once a host of this build joins, it answers every
// task, with the other one still there (a rolling upgrade).
func TestBuildMismatch(t *testing.T) {
	old := mismatchAfter
	mismatchAfter = 3 * time.Second
	t.Cleanup(func() { mismatchAfter = old })
	ctx := testCtx(t, 2*time.Minute)
	c := connect(t, ctx, Options{Listen: "127.0.0.1:0", Processes: -1, AckWait: testAckWait})
	startHost(t, c.URL(), 1, testAckWait, 0, envBuild+"=0ther0build")
	waitFor(t, time.Minute, "the other build's host", func() bool { _, others := c.builds(hostExpiry); return len(others) == 1 })
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err := square.Apply(actx, c, 3)
	cancel()
	if !errors.Is(err, ErrBuildMismatch) || !strings.Contains(err.Error(), "0ther0build") {
		t.Fatalf("Apply with only another build's host = %v, want ErrBuildMismatch naming it", err)
	}
	h := startHost(t, c.URL(), 1, testAckWait, 0)
	// This very host: one of an earlier test that reconnects to a port
	// reused here would go away.
	me := ":" + strconv.Itoa(h.cmd.Process.Pid)
	waitFor(t, time.Minute, "this build's host", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, hs := range c.hosts {
			if strings.HasSuffix(hs.Name, me) && hs.Build == fingerprint() {
				return true
			}
		}
		return false
	})
	xs := make([]int, 40)
	for i := range xs {
		xs[i] = i
	}
	got, err := square.Map(ctx, c, xs)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != i*i {
			t.Fatalf("Map[%d] = %d", i, v)
		}
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range st.Hosts {
		if h.Build == "0ther0build" && h.Done+h.Failed != 0 {
			t.Errorf("the other build's host ran tasks: %+v", h)
		}
	}
}
