//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

var byteSum = multiproc.Register("test.byteSum", func(_ context.Context, b []byte) (int, error) {
	n := 0
	for _, c := range b {
		n += int(c)
	}
	return n, nil
})

// limited is a forwarder whose tasks should stay under limit bytes (as a
// remote executor's messages must): it records each task's size.
type limited struct {
	forwarder
	limit int
	mu    sync.Mutex
	sizes [][2]int // per task: items, argument bytes
}

func (l *limited) MaxTaskBytes() int { return l.limit }

func (l *limited) Submit(ctx context.Context, t *multiproc.Task, done func([]multiproc.Result, error)) {
	n := 0
	for _, a := range t.Args {
		n += len(a)
	}
	l.mu.Lock()
	l.sizes = append(l.sizes, [2]int{len(t.Args), n})
	l.mu.Unlock()
	l.forwarder.Submit(ctx, t, done)
}

// Map sizes its chunks by bytes too, for an executor that says how large
// a task may be: 16 items of 10 KiB on one worker (chunks of 4 by count,
// 40 KiB) under a 25 KiB limit go in chunks of 2; an item beyond the
// limit goes alone; every result comes back in order.
func TestMapChunksByBytes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l := &limited{forwarder: forwarder{pool: newPool(t, multiproc.PoolOptions{Processes: 1})}, limit: 25 << 10}
	xs := make([][]byte, 16)
	for i := range xs {
		xs[i] = bytes.Repeat([]byte{byte(i)}, 10<<10)
	}
	xs[5] = bytes.Repeat([]byte{5}, 30<<10) // alone beyond the limit
	got, err := byteSum.Map(ctx, l, xs)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if want := len(xs[i]) * i; v != want {
			t.Fatalf("Map[%d] = %d, want %d", i, v, want)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Batch tasks (these arguments hold no shared objects) carry their
	// items as one argument: sizes tell the chunks apart.
	over := 0
	for _, s := range l.sizes {
		if s[1] > l.limit {
			over++
			if s[1] > 31<<10 {
				t.Fatalf("a task carried %d bytes, more than the limit %d, and more than the large item alone: %v", s[1], l.limit, l.sizes)
			}
		}
	}
	if over != 1 || len(l.sizes) < 8 {
		t.Fatalf("tasks (items, bytes) = %v: want 8 or more, only the large item's beyond %d bytes", l.sizes, l.limit)
	}
}
