//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
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

// fdList names this process's open descriptors and what each is, for a
// test's error message.
func fdList(t *testing.T) string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, " %s=%s", e.Name(), l)
	}
	return b.String()
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
	// settle collects garbage until the count of descriptors stops
	// falling (the cleanups that close them run after a collection).
	settle := func() int {
		n := openFds(t)
		for same := 0; same < 3; {
			runtime.GC()
			select {
			case <-ctx.Done():
				t.Fatal("descriptors did not settle")
			case <-time.After(10 * time.Millisecond):
			}
			if m := openFds(t); m < n {
				n, same = m, 0
			} else {
				same++
			}
		}
		return n
	}
	round() // the first round opens what stays for good (spare children's sockets, the poller)
	before := settle()
	for range 3 {
		round()
	}
	// Wait for the count to come back down, with a deadline.
	for openFds(t) > before {
		runtime.GC()
		select {
		case <-ctx.Done():
			t.Fatalf("%d descriptors open before, %d after three more rounds", before, openFds(t))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func mustFloats(t *testing.T) *multiproc.Array[float64] {
	a, err := multiproc.NewArray[float64](1)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fdLoop makes and drops (Close true: closes) N of each shared object
// under a limit of 64 descriptors: as many as a process can hold at once
// would be exhausted after a few dozen if either leaked.
var fdLoop = multiproc.Register("test.fdLoop", func(ctx context.Context, j fdLoopJob) (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = 64
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	for i := range j.N {
		var cs []interface{ Close() error }
		v, err := multiproc.NewValue[int64](1)
		if err != nil {
			ents, _ := os.ReadDir("/proc/self/fd")
			return i, fmt.Errorf("%d fds: %w", len(ents), err)
		}
		a, err := multiproc.ArrayOf([]int32{1, 2, 3})
		if err != nil {
			return i, err
		}
		a.Slice()[0]++
		l, err := multiproc.NewLock()
		if err != nil {
			return i, err
		}
		s, err := multiproc.NewSemaphore(1)
		if err != nil {
			return i, err
		}
		e, err := multiproc.NewEvent()
		if err != nil {
			return i, err
		}
		b, err := multiproc.NewBarrier(1)
		if err != nil {
			return i, err
		}
		q, err := multiproc.NewQueue[int](0)
		if err != nil {
			return i, err
		}
		cs = append(cs, v, a, l, s, e, b, q)
		if j.Close {
			for _, c := range cs {
				if err := c.Close(); err != nil {
					return i, err
				}
			}
		}
	}
	return j.N, nil
})

type fdLoopJob struct {
	N     int
	Close bool
}

// TestCreateAndCloseUnderLowFdLimit: Close gives each object's descriptor
// back at once; dropped ones are given back by the garbage collector,
// which a descriptor shortage now calls in.
func TestCreateAndCloseUnderLowFdLimit(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	for _, close := range []bool{true, false} {
		if n, err := fdLoop.Call(ctx, fdLoopJob{N: 1000, Close: close}); err != nil {
			t.Fatalf("Close %v: failed after %d rounds of 7 objects under a limit of 64 descriptors: %v", close, n, err)
		}
	}
}
