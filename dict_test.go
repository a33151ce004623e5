//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/multiproc-go/multiproc"
)

type dictJob struct {
	D *multiproc.Dict[string, int64]
	N int
}

// dictIncrements adds 1 to d["n"] N times with Update.
var dictIncrements = multiproc.Register("test.dictIncrements", func(ctx context.Context, j dictJob) (int, error) {
	for range j.N {
		if _, err := j.D.Update("n", func(old int64, ok bool) int64 { return old + 1 }); err != nil {
			return 0, err
		}
	}
	return j.N, nil
})

func newDict[K comparable, V any](t *testing.T) *multiproc.Dict[K, V] {
	t.Helper()
	d, err := multiproc.NewDict[K, V]()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDictBasics(t *testing.T) {
	type point struct{ X, Y int }
	d := newDict[point, []string](t)
	if _, ok, err := d.Load(point{1, 2}); ok || err != nil {
		t.Fatalf("Load of a missing key: %v, %v", ok, err)
	}
	if err := d.Delete(point{9, 9}); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	for i := range 500 {
		if err := d.Store(point{i, -i}, []string{strconv.Itoa(i), "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 250 {
		if err := d.Delete(point{2 * i, -2 * i}); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.Len(); n != 250 {
		t.Fatalf("Len = %d, want 250", n)
	}
	v, ok, err := d.Load(point{7, -7})
	if err != nil || !ok || len(v) != 2 || v[0] != "7" {
		t.Fatalf("Load = %v, %v, %v", v, ok, err)
	}
	seen := map[point]bool{}
	for k, v := range d.All() {
		if k.X >= 1000 {
			continue // stored by this loop: may or may not be seen
		}
		if seen[k] || len(v) != 2 || k.X%2 != 1 || v[0] != strconv.Itoa(k.X) {
			t.Fatalf("All yielded %v=%v (seen before: %v)", k, v, seen[k])
		}
		seen[k] = true
		// The loop body may use the Dict, and growth during All is fine.
		d.Store(point{1000 + k.X, 0}, nil)
	}
	if len(seen) != 250 {
		t.Fatalf("All yielded %d entries, want 250", len(seen))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := d.Store(point{}, nil); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("Store after Close: %v", err)
	}
	var zero multiproc.Dict[int, int]
	if _, _, err := zero.Load(1); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Fatalf("Load on a zero Dict: %v", err)
	}
}

func TestDictUpdatePanic(t *testing.T) {
	d := newDict[string, int64](t)
	d.Store("a", 1)
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the fn's panic", r)
			}
		}()
		d.Update("a", func(old int64, ok bool) int64 { panic("boom") })
	}()
	// The lock was released: this would hang otherwise.
	if v, err := d.Update("a", func(old int64, ok bool) int64 { return old + 1 }); v != 2 || err != nil {
		t.Fatalf("Update after a panicking one = %d, %v; want 2", v, err)
	}
}

// TestDictUpdateAcrossProcesses: four processes Update one key; no
// increment is lost (Python's manager dict loses them without a lock).
func TestDictUpdateAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := newDict[string, int64](t)
	const procs, n = 4, 2000
	var ps []*multiproc.Process
	for range procs {
		ps = append(ps, start(t, dictIncrements.Process(dictJob{D: d, N: n})))
	}
	joinAll(t, ctx, ps)
	if v, ok, err := d.Load("n"); v != procs*n || !ok || err != nil {
		t.Fatalf("d[n] = %d, %v, %v; want %d", v, ok, err, procs*n)
	}
}

// TestDictInPool: a Dict passed to pool tasks is the same Dict.
func TestDictInPool(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Terminate()
	d := newDict[string, int64](t)
	if _, err := dictIncrements.Map(ctx, p, []dictJob{{D: d, N: 100}, {D: d, N: 200}, {D: d, N: 300}}); err != nil {
		t.Fatal(err)
	}
	if v, _, err := d.Load("n"); v != 600 || err != nil {
		t.Fatalf("d[n] = %d, %v; want 600", v, err)
	}
}

// churnVal's Pad is derived from A: a torn value shows.
type churnVal struct {
	A   int64
	Pad []byte
}

func mkChurn(a int64) churnVal {
	p := make([]byte, a%1500)
	for i := range p {
		p[i] = byte(a)
	}
	return churnVal{a, p}
}

func (v churnVal) ok() bool {
	if int64(len(v.Pad)) != v.A%1500 {
		return false
	}
	for _, b := range v.Pad {
		if b != byte(v.A) {
			return false
		}
	}
	return true
}

type churnJob struct {
	D     *multiproc.Dict[string, churnVal]
	Ready *multiproc.Event
	W     int
	Seed  uint64
}

// dictChurn stores, deletes and updates until killed: values of varied
// size, so that the table grows and compacts often. Its counter "wN" only
// grows.
var dictChurn = multiproc.Register("test.dictChurn", func(ctx context.Context, j churnJob) (int, error) {
	rng := rand.New(rand.NewPCG(j.Seed, uint64(os.Getpid())))
	me := "w" + strconv.Itoa(j.W)
	for i := 0; ; i++ {
		if i == 50 {
			j.Ready.Set()
		}
		k := "c" + strconv.Itoa(rng.IntN(64))
		var err error
		switch rng.IntN(4) {
		case 0:
			err = j.D.Store(k, mkChurn(rng.Int64N(1<<40)))
		case 1:
			err = j.D.Delete(k)
		case 2:
			_, err = j.D.Update(me, func(old churnVal, ok bool) churnVal { return mkChurn(old.A + 1) })
		case 3:
			_, err = j.D.Update(k, func(old churnVal, ok bool) churnVal { return mkChurn(old.A + 7) })
		}
		if err != nil {
			return i, err
		}
	}
})

// TestDictKill SIGKILLs writers at random points of their Stores,
// Deletes, Updates and growths, and checks after each round that the Dict
// is consistent: no torn value, the entries nobody touches all there, Len
// right, each writer's counter never going back. MULTIPROC_DICT_KILLS sets
// the number of rounds (each kills two writers); thousands take minutes
// (a dead holder costs the next locker up to 100 ms).
func TestDictKill(t *testing.T) {
	rounds := 3
	if s := os.Getenv("MULTIPROC_DICT_KILLS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	} else if testing.Short() {
		t.Skip("kills writer processes: skipped under -short (MULTIPROC_DICT_KILLS=N runs N rounds)")
	}
	d := newDict[string, churnVal](t)
	for i := range 20 {
		if err := d.Store("s"+strconv.Itoa(i), mkChurn(int64(i*97))); err != nil {
			t.Fatal(err)
		}
	}
	last := map[string]int64{}
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	for round := range rounds {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var ps []*multiproc.Process
		var evs []*multiproc.Event
		for w := range 2 {
			ev := newEvent(t)
			evs = append(evs, ev)
			ps = append(ps, start(t, dictChurn.Process(churnJob{D: d, Ready: ev, W: w, Seed: rng.Uint64()})))
		}
		for _, ev := range evs {
			if err := ev.Wait(ctx); err != nil {
				t.Fatalf("round %d: a writer never got going: %v", round, err)
			}
			ev.Close()
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond) // a random point
		for _, p := range ps {
			p.Kill()
		}
		for _, p := range ps {
			var ee *multiproc.ExitError
			if err := p.Join(ctx); !errors.As(err, &ee) || ee.ExitCode != -9 {
				t.Fatalf("round %d: writer ended with %v, want killed", round, err)
			}
		}
		cancel()
		n := 0
		for k, v := range d.All() {
			n++
			if !v.ok() {
				t.Fatalf("round %d: torn value at %s: A=%d, %d pad bytes", round, k, v.A, len(v.Pad))
			}
			if k[0] == 'w' {
				if v.A < last[k] {
					t.Fatalf("round %d: counter %s went back from %d to %d", round, k, last[k], v.A)
				}
				last[k] = v.A
			}
		}
		if l := d.Len(); l != n {
			t.Fatalf("round %d: Len = %d, All yielded %d", round, l, n)
		}
		for i := range 20 {
			v, ok, err := d.Load("s" + strconv.Itoa(i))
			if err != nil || !ok || v.A != int64(i*97) || !v.ok() {
				t.Fatalf("round %d: untouched entry s%d = %v, %v, %v", round, i, v.A, ok, err)
			}
		}
	}
	t.Logf("%d rounds, counters %v", rounds, last)
}

func ExampleDict() {
	d, err := multiproc.NewDict[string, int]()
	if err != nil {
		panic(err)
	}
	defer d.Close()
	d.Store("a", 1)
	v, _ := d.Update("a", func(old int, ok bool) int { return old + 1 })
	fmt.Println(v, d.Len())
	// Output: 2 1
}

// TestSharedByNameNotSent: a Dict, SharedMemory or ShareableList cannot go
// through a Conn (only as a process or task argument).
func TestSharedByNameNotSent(t *testing.T) {
	a, b, err := multiproc.Pipe(true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	d := newDict[int, int](t)
	m, err := multiproc.CreateSharedMemory(shmName(t, "send"), 8)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, v := range []any{d, m, struct{ M *multiproc.SharedMemory }{m}} {
		if err := a.Send(v); !errors.Is(err, multiproc.ErrShared) {
			t.Errorf("Send of %T: %v, want ErrShared", v, err)
		}
	}
}

// TestDictPaddedKey: keys whose memory has padding bytes (which the codec
// would copy as they are) find themselves, however the padding was left.
func TestDictPaddedKey(t *testing.T) {
	type padded struct {
		A int8
		B int64
		C [2]struct {
			D int16
			E int32
		}
	}
	d := newDict[padded, int](t)
	mk := func(i int) padded {
		var k padded
		b := unsafe.Slice((*byte)(unsafe.Pointer(&k)), unsafe.Sizeof(k))
		for j := range b {
			b[j] = byte(i*7 + j) // garbage in the padding too
		}
		k.A, k.B = int8(i), int64(i)
		k.C[0].D, k.C[0].E, k.C[1].D, k.C[1].E = 1, 2, 3, int32(i)
		return k
	}
	for i := range 50 {
		d.Store(mk(i), i)
	}
	for i := range 50 {
		k := mk(i)
		b := unsafe.Slice((*byte)(unsafe.Pointer(&k)), unsafe.Sizeof(k))
		b[1] ^= 0xff // padding after A
		if v, ok, err := d.Load(k); !ok || v != i || err != nil {
			t.Fatalf("key %d with other padding: %d, %v, %v", i, v, ok, err)
		}
	}
	if d.Len() != 50 {
		t.Fatalf("Len = %d, want 50", d.Len())
	}
}
