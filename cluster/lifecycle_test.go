package cluster

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Connect and Close leave nothing behind: no goroutine of the server,
// the connections or the local host.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	// A first cluster warms up what lives for the whole process
	// (nats-server's and the pool's package-level helpers).
	c, err := Connect(ctx, Options{Processes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := square.Apply(ctx, c, 2); err != nil {
		t.Fatal(err)
	}
	c.Close()
	before := runtime.NumGoroutine()
	c, err = Connect(ctx, Options{Processes: 1, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := square.Apply(ctx, c, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With Token, the embedded server turns away whoever does not present it.
func TestToken(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	c := connect(t, ctx, Options{Processes: 1, Listen: "127.0.0.1:0", Token: "s3cret"})
	if _, err := Status(ctx, Options{URL: c.URL()}); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("Status without the token = %v, want an authorization error", err)
	}
	st, err := Status(ctx, Options{URL: c.URL(), Token: "s3cret"})
	if err != nil || st.Workers != 1 {
		t.Fatalf("Status with the token = %+v, %v", st, err)
	}
}

// Malformed tasks in the queue (anyone with access can publish) are
// dropped, never held for ever, and the host goes on working.
func TestMalformedTasksDropped(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	c := connect(t, ctx, Options{Processes: 1})
	for _, m := range []*nats.Msg{
		{Subject: c.s.tasks + "x.0.m1", Header: nats.Header{hdrMulti: []string{"1"}}, Data: []byte{0}}, // no members
		{Subject: c.s.tasks + "x.0.m2", Header: nats.Header{hdrMulti: []string{"1"}}, Data: []byte{9, 9}},
		{Subject: c.s.tasks + "x.0.3", Header: nats.Header{hdrFunc: []string{"cluster.square"}}, Data: []byte{200}},
		{Subject: c.s.tasks + "bad", Data: []byte("x")},
	} {
		if _, err := c.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the queue to be empty", func() bool {
		st, err := c.Stats(ctx)
		return err == nil && st.Queued == 0 && st.Running == 0
	})
	if v, err := square.Apply(ctx, c, 6); err != nil || v != 36 {
		t.Fatalf("Apply = %d, %v", v, err)
	}
}
