//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"testing"

	"github.com/multiproc-go/multiproc"
)

// A Put and a Get of a small value allocate nothing but what Get returns
// (the spare buffer and value of the Queue serve them): the message path
// stays off the garbage collector.
func TestQueuePutGetAllocs(t *testing.T) {
	q, err := multiproc.NewQueue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if err := q.Put(ctx, 42); err != nil {
			t.Fatal(err)
		}
		if v, err := q.Get(ctx); err != nil || v != 42 {
			t.Fatalf("got %d, %v", v, err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per Put and Get of an int64", allocs)
	}
}
