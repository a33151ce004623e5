package cluster

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/nats-io/nats.go/jetstream"
)

var echo = multiproc.Register("cluster.echo", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })

// blobsLeft waits until the payload store holds no object: every call
// cleaned up after itself.
func blobsLeft(t *testing.T, ctx context.Context, c *Cluster) {
	t.Helper()
	obs, err := c.js.ObjectStore(ctx, bucketName(c.s))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the payload store to be empty", func() bool {
		_, err := obs.List(ctx)
		return errors.Is(err, jetstream.ErrNoObjectsFound)
	})
}

// Fault 4: payloads as large as a Pool's. A Map of large items is sent
// in chunks sized by bytes as well as by count, so that each travels as
// a message (max payload lowered to 256 KiB here so that the test stays
// cheap; `multiproc-cluster bench` runs 64 x 1 MiB on the embedded
// server's 8 MiB): chunks of 2 by count (320 KiB) go one item each. An
// item beyond the max payload, and its result, go through the payload
// store, which is empty afterwards.
func TestLargeMap(t *testing.T) {
	lowerMaxPayload(t)
	ctx := testCtx(t, 2*time.Minute)
	c := connect(t, ctx, Options{Processes: 1})
	xs := make([][]byte, 8) // chunks of 2 by count (4 per worker)
	for i := range xs {
		xs[i] = bytes.Repeat([]byte{byte(i)}, 160<<10)
	}
	xs[7] = bytes.Repeat([]byte{7}, 300<<10) // beyond 256 KiB
	got, err := echo.Map(ctx, c, xs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(xs) {
		t.Fatalf("Map returned %d results, want %d", len(got), len(xs))
	}
	for i := range got {
		if !bytes.Equal(got[i], xs[i]) {
			t.Fatalf("Map[%d]: %d bytes, not the argument back", i, len(got[i]))
		}
	}
	if st, err := c.Stats(ctx); err != nil || st.Submitted != uint64(len(xs)) {
		t.Fatalf("Stats = %+v, %v: want %d tasks of one item (chunks sized by bytes)", st, err, len(xs))
	}
	blobsLeft(t, ctx, c)
}

// lowerMaxPayload makes the embedded servers of the test accept
// messages of 256 KiB at most.
func lowerMaxPayload(t *testing.T) {
	old := maxPayload
	maxPayload = 256 << 10
	t.Cleanup(func() { maxPayload = old })
}

// An argument and a result beyond the max payload (1 MiB, against 256
// KiB), to a host in another process over TCP; MPC_TEST_HUGE=1 makes
// them 256 MiB against the default 8 MiB (about 2 minutes on a loaded
// 2-core machine: too slow for every run).
func TestHugeApply(t *testing.T) {
	ctx := testCtx(t, 5*time.Minute)
	size := 1 << 20
	if os.Getenv("MPC_TEST_HUGE") == "1" && !testing.Short() {
		size = 256 << 20
	} else {
		lowerMaxPayload(t)
	}
	c, _ := remote(t, ctx, 1, 0)
	x := make([]byte, size)
	for i := range x {
		x[i] = byte(i * 7)
	}
	start := time.Now()
	got, err := echo.Apply(ctx, c, x)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d MiB there and back in %v", size>>20, time.Since(start))
	if !bytes.Equal(got, x) {
		t.Fatalf("Apply returned %d bytes, not its argument", len(got))
	}
	blobsLeft(t, ctx, c)
}
