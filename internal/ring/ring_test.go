//go:build linux && (amd64 || arm64)

package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiproc-go/multiproc/internal/parked"

	"github.com/multiproc-go/multiproc/internal/futex"
)

func mkRing(t testing.TB, maxMsgs, ringBytes int) *Ring {
	t.Helper()
	r, err := Create(maxMsgs, ringBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// openAgain is another handle on r's queue, as another process has one
// (through a duplicate of its descriptor); closed when the test ends.
func openAgain(t testing.TB, r *Ring) *Ring {
	t.Helper()
	fd, err := unix.Dup(r.Fd())
	if err != nil {
		t.Fatal(err)
	}
	h, err := Open(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustGet(t testing.TB, ctx context.Context, r *Ring) []byte {
	t.Helper()
	b, err := r.Get(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFIFO(t *testing.T) {
	r := mkRing(t, 0, 0)
	ctx := testCtx(t, 10*time.Second)
	var buf []byte
	for i := range 1000 {
		buf = makeMsg(buf, 1, uint32(i), 8+i%50)
		if err := r.Put(ctx, buf); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.Len(); n != 1000 {
		t.Fatalf("Len = %d, want 1000", n)
	}
	dst := make([]byte, 0, 64)
	for i := range 1000 {
		var err error
		dst, err = r.Get(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		id, seq, ok := parseMsg(dst)
		if !ok || id != 1 || seq != uint32(i) || len(dst) != 8+i%50 {
			t.Fatalf("message %d: id %d seq %d ok %v len %d", i, id, seq, ok, len(dst))
		}
	}
	if n := r.Len(); n != 0 {
		t.Fatalf("Len = %d after draining", n)
	}
}

func TestGetReusesDst(t *testing.T) {
	r := mkRing(t, 0, 0)
	r.TryPut([]byte("hello"))
	dst := make([]byte, 3, 100)
	out, err := r.TryGet(dst)
	if err != nil || string(out) != "hello" || &out[0] != &dst[:1][0] {
		t.Fatalf("TryGet = %q, %v (reused: %v)", out, err, err == nil && &out[0] == &dst[:1][0])
	}
	r.TryPut(nil)
	out, err = r.TryGet(dst)
	if err != nil || len(out) != 0 {
		t.Fatalf("empty message: %q, %v", out, err)
	}
}

func TestTryAndLen(t *testing.T) {
	r := mkRing(t, 3, 0)
	if r.MaxMsgs() != 3 {
		t.Fatalf("MaxMsgs = %d", r.MaxMsgs())
	}
	if _, err := r.TryGet(nil); err != ErrEmpty {
		t.Fatalf("TryGet on empty: %v", err)
	}
	for i := range 3 {
		if err := r.TryPut([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if r.Len() != i+1 {
			t.Fatalf("Len = %d, want %d", r.Len(), i+1)
		}
	}
	if err := r.TryPut([]byte{9}); err != ErrFull {
		t.Fatalf("TryPut on full: %v", err)
	}
	if !r.Full() || r.Empty() {
		t.Fatal("Full/Empty wrong on a full queue")
	}
	for i := range 3 {
		b, err := r.TryGet(nil)
		if err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("TryGet %d = %v, %v", i, b, err)
		}
		if r.Len() != 2-i {
			t.Fatalf("Len = %d, want %d", r.Len(), 2-i)
		}
	}
	if _, err := r.TryGet(nil); err != ErrEmpty {
		t.Fatalf("TryGet on empty: %v", err)
	}
	if r.Full() || !r.Empty() {
		t.Fatal("Full/Empty wrong on an empty queue")
	}
}

func TestPutBlocksWhileFull(t *testing.T) {
	r := mkRing(t, 2, 0)
	ctx := testCtx(t, 10*time.Second)
	r.TryPut([]byte("a"))
	r.TryPut([]byte("b"))

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := r.Put(short, []byte("c"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put on a full queue past its deadline: %v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Put gave up after %v, want about 50ms", d)
	}
	canc, cancel2 := context.WithCancel(ctx)
	go func() { parked.Wait(ctx, "(*Ring).Put", 1); cancel2() }() // once it waits
	if err := r.Put(canc, []byte("c")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put on a full queue, cancelled: %v", err)
	}

	// A blocked Put completes as soon as a reader makes room.
	done := make(chan error, 1)
	go func() { done <- r.Put(ctx, []byte("c")) }()
	select {
	case err := <-done:
		t.Fatalf("Put returned %v while full", err)
	case <-time.After(30 * time.Millisecond):
	}
	if b := mustGet(t, ctx, r); string(b) != "a" {
		t.Fatalf("got %q", b)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"b", "c"} {
		if b := mustGet(t, ctx, r); string(b) != want {
			t.Fatalf("got %q, want %q", b, want)
		}
	}
}

func TestGetDeadline(t *testing.T) {
	r := mkRing(t, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Get(ctx, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get on empty past deadline: %v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Get gave up after %v, want about 50ms", d)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	wctx := testCtx(t, 10*time.Second)
	go func() { parked.Wait(wctx, "(*Ring).Get", 1); cancel2() }() // once it waits
	start = time.Now()
	if _, err := r.Get(ctx2, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancelled Get returned after %v", d)
	}
	// A ctx already done with a message present still gets nothing stuck.
	r.TryPut([]byte("x"))
	if b := mustGet(t, testCtx(t, 5*time.Second), r); string(b) != "x" {
		t.Fatalf("got %q", b)
	}
}

func TestClose(t *testing.T) {
	r, err := Create(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	r2 := openAgain(t, r) // a second handle, as another process would have
	ctx := testCtx(t, 10*time.Second)

	blocked := make(chan error, 1)
	go func() { _, err := r.Get(ctx, nil); blocked <- err }()
	waitParked(t, ctx, "(*Ring).Get", 1)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if err != ErrClosed {
			t.Fatalf("Get blocked during Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not release a blocked Get")
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := r.Put(ctx, []byte("x")); err != ErrClosed {
		t.Fatalf("Put after Close: %v", err)
	}
	if err := r.TryPut([]byte("x")); err != ErrClosed {
		t.Fatalf("TryPut after Close: %v", err)
	}
	if _, err := r.Get(ctx, nil); err != ErrClosed {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := r.TryGet(nil); err != ErrClosed {
		t.Fatalf("TryGet after Close: %v", err)
	}
	if r.Fd() != -1 || r.Len() != 0 {
		t.Fatalf("Fd %d Len %d after Close", r.Fd(), r.Len())
	}
	// The other handle still works.
	if err := r2.Put(ctx, []byte("still")); err != nil {
		t.Fatal(err)
	}
	if b := mustGet(t, ctx, r2); string(b) != "still" {
		t.Fatalf("got %q", b)
	}
}

func TestOpenRejects(t *testing.T) {
	if _, err := Open(-1); err == nil {
		t.Fatal("Open(-1) succeeded")
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	unix.Close(p[1])
	if _, err := Open(p[0]); err == nil {
		t.Fatal("Open(pipe) succeeded")
	}
	for _, size := range []int{100, 8192, 1 << 20} {
		fd, err := unix.MemfdCreate("garbage", unix.MFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		junk := bytes.Repeat([]byte{0x5a, 0xa5, 0x17}, size/3+1)[:size]
		if _, err := unix.Write(fd, junk); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(fd); err == nil {
			t.Fatalf("Open(%d bytes of garbage) succeeded", size)
		}
	}
	// A header that claims a layout larger than the file.
	r := mkRing(t, 0, 4096)
	fd, _ := unix.Dup(r.Fd())
	mem, _ := unix.Mmap(fd, 0, hdrSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	old := load64(word64(mem, offLayout))
	store64(word64(mem, offLayout), layoutWord(9, 30))
	if _, err := Open(fd); err == nil {
		t.Fatal("Open of a queue shorter than its layout succeeded")
	}
	store64(word64(mem, offLayout), old)
	unix.Munmap(mem)
}

func TestBigMessage(t *testing.T) {
	r := mkRing(t, 0, 1<<20)
	ctx := testCtx(t, 60*time.Second)
	r.TryPut([]byte("before"))
	big := bigMsg(64 << 20)
	if err := r.Put(ctx, big); err != nil {
		t.Fatal(err)
	}
	r.TryPut([]byte("after"))
	if r.Len() != 3 {
		t.Fatalf("Len = %d", r.Len())
	}
	if b := mustGet(t, ctx, r); string(b) != "before" {
		t.Fatalf("got %q", b)
	}
	if b := mustGet(t, ctx, r); !bytes.Equal(b, big) {
		t.Fatalf("64 MiB message differs (len %d)", len(b))
	}
	if b := mustGet(t, ctx, r); string(b) != "after" {
		t.Fatalf("got %q", b)
	}
	// Its pages went back to the kernel once it was consumed.
	var st unix.Stat_t
	unix.Fstat(r.Fd(), &st)
	if res := st.Blocks * 512; res > 8<<20 {
		t.Fatalf("%d MiB still resident in the segment after consuming", res>>20)
	}
}

// TestWrapAround keeps a small ring from growing (one message in at a time)
// while frames of every size cross its end.
func TestWrapAround(t *testing.T) {
	r := mkRing(t, 0, 4096)
	lw := load64(r.layout)
	var buf, dst []byte
	var err error
	for i := range 5000 {
		buf = makeMsg(buf, 2, uint32(i), 8+(i*37)%3000)
		if err = r.TryPut(buf); err != nil {
			t.Fatal(err)
		}
		if dst, err = r.TryGet(dst); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dst, buf) {
			t.Fatalf("message %d differs", i)
		}
	}
	if load64(r.layout) != lw {
		t.Fatal("the ring grew although it never held more than one message")
	}
}

// TestRandomSizes sends 0..100 KiB messages through a 64 KiB ring while a
// consumer reads: wrap-around and growth with data in flight.
func TestRandomSizes(t *testing.T) {
	r := mkRing(t, 0, 64<<10)
	ctx := testCtx(t, 60*time.Second)
	const n = 2000
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = msgSize(rng, 8, 100<<10)
	}
	errc := make(chan error, 1)
	go func() {
		var buf []byte
		for i := range n {
			buf = makeMsg(buf, 3, uint32(i), sizes[i])
			if err := r.Put(ctx, buf); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	var dst []byte
	for i := range n {
		var err error
		if dst, err = r.Get(ctx, dst); err != nil {
			t.Fatal(err)
		}
		id, seq, ok := parseMsg(dst)
		if !ok || id != 3 || seq != uint32(i) || len(dst) != sizes[i] {
			t.Fatalf("message %d: id %d seq %d ok %v len %d want %d", i, id, seq, ok, len(dst), sizes[i])
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Also zero-length messages (no test header).
	for range 10 {
		r.TryPut(nil)
	}
	for range 10 {
		if b, err := r.TryGet(dst); err != nil || len(b) != 0 {
			t.Fatalf("empty message: %d bytes, %v", len(b), err)
		}
	}
}

// TestGrowConcurrent: producers and consumers in goroutines of one process,
// through a 4 KiB ring that must grow several times while they run.
func TestGrowConcurrent(t *testing.T) {
	r := mkRing(t, 0, 4096)
	ctx := testCtx(t, 60*time.Second)
	const producers, consumers, per = 4, 3, 3000
	var wg sync.WaitGroup
	var perr atomic.Value
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 9))
			var buf []byte
			for i := range per {
				buf = makeMsg(buf, uint32(p), uint32(i), msgSize(rng, 8, 20000))
				if err := r.Put(ctx, buf); err != nil {
					perr.Store(err)
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	seen := make([][]bool, producers)
	for p := range seen {
		seen[p] = make([]bool, per)
	}
	var got atomic.Int64
	errs := make(chan error, consumers)
	for range consumers {
		go func() {
			last := make([]int, producers)
			for i := range last {
				last[i] = -1
			}
			var dst []byte
			for got.Load() < producers*per {
				var err error
				cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				dst, err = r.Get(cctx, dst)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				id, seq, ok := parseMsg(dst)
				if !ok || id >= producers {
					errs <- fmt.Errorf("bad message id %d seq %d", id, seq)
					return
				}
				if int(seq) <= last[id] {
					errs <- fmt.Errorf("producer %d: seq %d after %d", id, seq, last[id])
					return
				}
				last[id] = int(seq)
				mu.Lock()
				dup := seen[id][seq]
				seen[id][seq] = true
				mu.Unlock()
				if dup {
					errs <- fmt.Errorf("duplicate %d/%d", id, seq)
					return
				}
				got.Add(1)
			}
			errs <- nil
		}()
	}
	wg.Wait()
	if e := perr.Load(); e != nil {
		t.Fatal(e)
	}
	for range consumers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got.Load() != producers*per || r.Len() != 0 {
		t.Fatalf("got %d of %d, Len %d", got.Load(), producers*per, r.Len())
	}
	if capLog, _ := layoutCap(load64(r.layout)); capLog <= minCapLog {
		t.Fatal("the ring never grew")
	}
}

// TestManyWaitersFewThreads: 200 goroutines blocked in Get must not mean
// 200 OS threads; then all of them get a message.
func TestManyWaitersFewThreads(t *testing.T) {
	r := mkRing(t, 0, 0)
	ctx := testCtx(t, 20*time.Second)
	before := threads(t)
	const n = 200
	var wg sync.WaitGroup
	var got atomic.Int64
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := r.Get(ctx, nil)
			if err != nil {
				errs <- err
				return
			}
			if len(b) != 1 {
				errs <- fmt.Errorf("bad message %q", b)
			}
			got.Add(1)
		}()
	}
	waitParked(t, ctx, "(*Ring).Get", n)
	during := threads(t)
	t.Logf("threads: %d before, %d with %d goroutines in Get", before, during, n)
	if during-before >= 30 {
		t.Fatalf("%d goroutines in Get took %d more threads", n, during-before)
	}
	for i := range n {
		if err := r.Put(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got.Load() != n || r.Len() != 0 {
		t.Fatalf("got %d, Len %d", got.Load(), r.Len())
	}
	if after := threads(t); after-before >= 30 {
		t.Fatalf("%d more threads after the wake-ups", after-before)
	}
}

// TestManyPutWaitersFewThreads: the same on the producer side (full queue).
func TestManyPutWaitersFewThreads(t *testing.T) {
	r := mkRing(t, 1, 0)
	ctx := testCtx(t, 20*time.Second)
	r.TryPut([]byte{0})
	before := threads(t)
	const n = 100
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- r.Put(ctx, []byte{byte(i)}) }()
	}
	waitParked(t, ctx, "(*Ring).Put", n)
	if during := threads(t); during-before >= 30 {
		t.Fatalf("%d goroutines in Put took %d more threads", n, during-before)
	}
	for range n + 1 {
		mustGet(t, ctx, r)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestLenUnderLoad: Len never exceeds maxMsgs and never goes negative while
// producers and consumers run.
func TestLenUnderLoad(t *testing.T) {
	r := mkRing(t, 50, 4096)
	ctx := testCtx(t, 20*time.Second)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
				r.Put(c, []byte("0123456789"))
				cancel()
			}
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
				r.Get(c, nil)
				cancel()
			}
		}()
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := r.Len(); n < 0 || n > 50 {
			close(stop)
			t.Fatalf("Len = %d", n)
		}
	}
	close(stop)
	wg.Wait()
	n := r.Len()
	for range n {
		if _, err := r.TryGet(nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.TryGet(nil); err != ErrEmpty {
		t.Fatalf("after draining Len=%d messages: %v", n, err)
	}
}

// TestDeadSleeper: a consumer process killed while asleep in Get leaves the
// sleepers bit set; it costs the next producer one wake-up, then is gone.
func TestDeadSleeper(t *testing.T) {
	r := mkRing(t, 0, 0)
	ctx := testCtx(t, 20*time.Second)
	c := spawn(t, ctx, r, nil, "consume")
	for !(futex.Bell{W: r.cons.bell}).Sleepers() {
		if ctx.Err() != nil {
			t.Fatal("the child never slept")
		}
		time.Sleep(time.Millisecond)
	}
	c.kill(t)
	if !(futex.Bell{W: r.cons.bell}).Sleepers() {
		t.Fatal("sleepers bit vanished with its process")
	}
	r.TryPut([]byte("x"))
	if (futex.Bell{W: r.cons.bell}).Sleepers() {
		t.Fatal("sleepers bit still set after a Put")
	}
	if b, err := r.TryGet(nil); err != nil || string(b) != "x" {
		t.Fatalf("TryGet = %q, %v", b, err)
	}
}

// waitParked waits until n goroutines are blocked in frame, or fails
// the test at ctx's end.
func waitParked(t *testing.T, ctx context.Context, frame string, n int) {
	t.Helper()
	if err := parked.Wait(ctx, frame, n); err != nil {
		t.Fatal(err)
	}
}

// TestSeenWordsSeveralHandles: each handle reads the other side's word
// only when the copy it saw last says full or empty (side.seen), which is
// exact only while no other handle of its side has committed since. Two
// producer and two consumer handles on one queue (as four processes would
// have), in a random interleaving of TryPut and TryGet, must answer as a
// FIFO model does: ErrFull exactly when the queue holds maxMsgs, ErrEmpty
// exactly when it is empty, every message once and in order; with no
// limit, through wrap-arounds and growth.
func TestSeenWordsSeveralHandles(t *testing.T) {
	for _, c := range []struct {
		name     string
		maxMsgs  int
		maxBytes int
	}{{"limit 5", 5, 40}, {"no limit, growing", 0, 700}} {
		t.Run(c.name, func(t *testing.T) {
			r := mkRing(t, c.maxMsgs, 4096)
			hs := []*Ring{r, openAgain(t, r), openAgain(t, r), openAgain(t, r)}
			prods, conss := hs[:2], hs[2:]
			rng := rand.New(rand.NewPCG(1, 2))
			var model [][]byte
			seq := 0
			for i := range 20000 {
				if rng.IntN(2) == 0 {
					p := prods[rng.IntN(2)]
					msg := bytes.Repeat([]byte{byte(seq)}, 1+rng.IntN(c.maxBytes))
					msg = append(fmt.Appendf(nil, "%d:", seq), msg...)
					err := p.TryPut(msg)
					full := c.maxMsgs > 0 && len(model) == c.maxMsgs
					switch {
					case full && err != ErrFull:
						t.Fatalf("op %d: TryPut on a full queue: %v, want ErrFull", i, err)
					case !full && err != nil:
						t.Fatalf("op %d: TryPut with %d queued: %v", i, len(model), err)
					case err == nil:
						model = append(model, msg)
						seq++
					}
					continue
				}
				got, err := conss[rng.IntN(2)].TryGet(nil)
				if len(model) == 0 {
					if err != ErrEmpty {
						t.Fatalf("op %d: TryGet on an empty queue: %q, %v, want ErrEmpty", i, got, err)
					}
					continue
				}
				if err != nil || !bytes.Equal(got, model[0]) {
					t.Fatalf("op %d: TryGet: %.20q, %v, want %.20q", i, got, err, model[0])
				}
				model = model[1:]
			}
			if seq < 1000 {
				t.Fatalf("only %d messages went through", seq)
			}
		})
	}
}
