package multiproc_test

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestNoLeakedDescriptors runs a round of everything that opens
// descriptors — children, a pool, pipes, queues, shared memory — and
// checks that the process holds no more descriptors afterwards than
// before (shared objects are released when they become garbage).
func TestNoLeakedDescriptors(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	round := func() {
		for range 5 {
			if _, err := double.Call(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
		p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := double.Map(ctx, p, []int{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		killSelf.Apply(ctx, p, -1) // a worker dies and is replaced
		p.Close()
		if err := p.Join(ctx); err != nil {
			t.Fatal(err)
		}
		a, b, _ := multiproc.Pipe(true)
		a.SendBytes([]byte("x"))
		b.RecvBytes()
		a.Close()
		b.Close()
		q, _ := multiproc.NewQueue[int](0)
		q.Put(ctx, 1)
		q.Close()
		v, _ := multiproc.NewValue[int64](1)
		arr, _ := multiproc.NewArray[int32](10)
		if _, err := atomicAdds.Call(ctx, counterJob{Counter: v, N: 10, Inner: struct {
			Floats *multiproc.Array[float64]
			Deeper *deeper
		}{Floats: mustFloats(t)}}); err != nil {
			t.Fatal(err)
		}
		_ = arr
	}
	settle := func() int {
		for range 5 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		return openFds(t)
	}
	round() // the first round opens what stays for good (spare children's sockets, the poller)
	before := settle()
	for range 3 {
		round()
	}
	if after := settle(); after > before {
		t.Fatalf("%d descriptors open before, %d after three more rounds", before, after)
	}
}

func mustFloats(t *testing.T) *multiproc.Array[float64] {
	a, err := multiproc.NewArray[float64](1)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
