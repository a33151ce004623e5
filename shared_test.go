//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/multiproc-go/multiproc"
)

type counterJob struct {
	Counter *multiproc.Value[int64]
	N       int
	Inner   struct {
		Floats *multiproc.Array[float64]
		Deeper *deeper
	}
}

type deeper struct{ Lock *multiproc.Lock }

var (
	// lockedIncrements adds 1 to the counter N times under its lock, with
	// a non-atomic read-modify-write: any lost update shows a broken lock.
	lockedIncrements = multiproc.Register("test.lockedIncrements", func(ctx context.Context, j counterJob) (int, error) {
		for range j.N {
			j.Counter.Lock()
			j.Counter.Store(j.Counter.Load() + 1)
			j.Counter.Unlock()
		}
		return j.N, nil
	})
	atomicAdds = multiproc.Register("test.atomicAdds", func(ctx context.Context, j counterJob) (int, error) {
		for range j.N {
			j.Counter.Add(1)
			j.Inner.Floats.Lock()
			s := j.Inner.Floats.Slice()
			s[0] += 0.5
			j.Inner.Floats.Unlock()
		}
		return j.N, nil
	})
	fillArray = multiproc.Register("test.fillArray", func(ctx context.Context, a *multiproc.Array[int32]) (int, error) {
		s := a.Slice()
		for i := range s {
			s[i] = int32(i * 3)
		}
		return len(s), nil
	})
	// holdLock takes the lock, says so through the event, then sleeps.
	holdLock = multiproc.Register("test.holdLock", func(ctx context.Context, j holdJob) (int, error) {
		j.Lock.Lock()
		j.Held.Set()
		<-ctx.Done()
		time.Sleep(time.Minute)
		return 0, nil
	})
	makesValue = multiproc.Register("test.makesValue", func(ctx context.Context, x int64) (*multiproc.Value[int64], error) {
		return multiproc.NewValue(x)
	})
	smallTypes = multiproc.Register("test.smallTypes", func(ctx context.Context, j smallJob) (int, error) {
		for range 1000 {
			j.I8.Add(1)
			j.U16.Add(3)
			j.F32.Add(0.25)
		}
		j.Bytes.Store(1, 200)
		return 0, nil
	})
)

type holdJob struct {
	Lock *multiproc.Lock
	Held *multiproc.Event
}

type smallJob struct {
	I8    *multiproc.Value[int8]
	U16   *multiproc.Value[uint16]
	F32   *multiproc.Value[float32]
	Bytes *multiproc.Array[uint8]
}

func TestValueArrayInProcess(t *testing.T) {
	v, err := multiproc.NewValue(1.5)
	if err != nil {
		t.Fatal(err)
	}
	if v.Add(2) != 3.5 || v.Load() != 3.5 {
		t.Fatalf("float Add: %v", v.Load())
	}
	v.Store(-1)
	if v.Load() != -1 {
		t.Fatal("Store")
	}
	i8, _ := multiproc.NewValue[int8](127)
	if i8.Add(1) != -128 {
		t.Fatal("int8 wraps as Go does")
	}
	a, err := multiproc.ArrayOf([]uint16{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	a.Store(1, 65535)
	if a.Len() != 3 || a.Load(0) != 1 || a.Load(1) != 65535 || a.Load(2) != 3 {
		t.Fatalf("Array = %v", a.Slice())
	}
	if _, err := multiproc.NewArray[int](-1); err == nil {
		t.Fatal("NewArray(-1) succeeded")
	}
	empty, err := multiproc.NewArray[float64](0)
	if err != nil || empty.Len() != 0 || len(empty.Slice()) != 0 {
		t.Fatal("empty array", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("out-of-range Load did not panic")
		}
	}()
	a.Load(3)
}

func TestLockedCounterAcrossProcesses(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	counter, err := multiproc.NewValue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	const procs, n = 4, 20000
	var ps []*multiproc.Process
	for range procs {
		ps = append(ps, start(t, lockedIncrements.Process(counterJob{Counter: counter, N: n})))
	}
	// The parent joins in too.
	for range n {
		counter.Lock()
		counter.Store(counter.Load() + 1)
		counter.Unlock()
	}
	joinAll(t, ctx, ps)
	if got := counter.Load(); got != (procs+1)*n {
		t.Fatalf("counter = %d, want %d: the lock let updates through", got, (procs+1)*n)
	}
}

func TestAtomicAddAndNestedHandles(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	counter, _ := multiproc.NewValue[int64](0)
	floats, _ := multiproc.NewArray[float64](4)
	lock, _ := multiproc.NewLock()
	j := counterJob{Counter: counter, N: 50000}
	j.Inner.Floats = floats
	j.Inner.Deeper = &deeper{Lock: lock}
	var ps []*multiproc.Process
	for range 2 {
		ps = append(ps, start(t, atomicAdds.Process(j)))
	}
	joinAll(t, ctx, ps)
	if counter.Load() != 100000 || floats.Load(0) != 50000 {
		t.Fatalf("counter %d floats[0] %v", counter.Load(), floats.Load(0))
	}
	// The caller's struct was not changed by the trip.
	if j.Inner.Deeper.Lock != lock || j.Counter != counter {
		t.Fatal("sending changed the argument")
	}
}

func TestArrayFilledByChild(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	a, _ := multiproc.NewArray[int32](1 << 20)
	n, err := fillArray.Call(ctx, a)
	if err != nil || n != 1<<20 {
		t.Fatal(n, err)
	}
	for _, i := range []int{0, 1, 12345, 1<<20 - 1} {
		if a.Load(i) != int32(i*3) {
			t.Fatalf("a[%d] = %d", i, a.Load(i))
		}
	}
}

func TestSmallScalarsAcrossProcesses(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	j := smallJob{}
	j.I8, _ = multiproc.NewValue[int8](0)
	j.U16, _ = multiproc.NewValue[uint16](0)
	j.F32, _ = multiproc.NewValue[float32](0)
	j.Bytes, _ = multiproc.NewArray[uint8](3)
	p1, p2 := smallTypes.Process(j), smallTypes.Process(j)
	p1.Start()
	p2.Start()
	if err := p1.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p2.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if j.I8.Load() != -48 { // 2000 increments wrap: 2000 mod 256 = 208 = int8(-48)
		t.Fatalf("int8 = %d", j.I8.Load())
	}
	if j.U16.Load() != 6000 || j.F32.Load() != 500 || j.Bytes.Load(1) != 200 || j.Bytes.Load(0) != 0 || j.Bytes.Load(2) != 0 {
		t.Fatalf("u16 %d f32 %v bytes %v", j.U16.Load(), j.F32.Load(), j.Bytes.Slice())
	}
}

func TestLockHolderKilled(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	lock, _ := multiproc.NewLock()
	held, _ := multiproc.NewEvent()
	p := holdLock.Process(holdJob{Lock: lock, Held: held})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := held.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if lock.TryLock() {
		t.Fatal("TryLock succeeded while a live child holds the lock")
	}
	p.Kill()
	done := make(chan struct{})
	go func() { lock.Lock(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Lock hung on a lock whose holder was SIGKILLed")
	}
	if lock.Takeovers() != 1 {
		t.Fatalf("Takeovers = %d", lock.Takeovers())
	}
	lock.Unlock()
	if !lock.TryLock() {
		t.Fatal("lock not free after Unlock")
	}
	lock.Unlock()
}

func TestValueInResultIsRefused(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	_, err := makesValue.Call(ctx, 1)
	var re *multiproc.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Text, "travel") {
		t.Fatalf("a Value returned as a result: %v", err)
	}
}

func TestManyLockWaitersFewThreads(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	lock, _ := multiproc.NewLock()
	held, _ := multiproc.NewEvent()
	p := holdLock.Process(holdJob{Lock: lock, Held: held})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := held.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	before := countThreads(t)
	done := make(chan struct{}, 200)
	for range 200 {
		go func() { lock.Lock(); lock.Unlock(); done <- struct{}{} }()
	}
	waitParked(t, ctx, "(*Lock).Lock", 200)
	if during := countThreads(t); during > before+20 {
		t.Fatalf("200 blocked Lock calls took %d OS threads (before: %d)", during-before, before)
	}
	p.Kill()
	for range 200 {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("waiters did not get the lock after its holder died")
		}
	}
}

// handoffJob carries one lock of each kind to a child that locks or
// unlocks them all.
type handoffJob struct {
	Lock  *multiproc.Lock
	Value *multiproc.Value[int64]
	Array *multiproc.Array[int32]
	Held  *multiproc.Event // set once a holder has locked all three
}

var (
	unlockAll = multiproc.Register("test.unlockAll", func(ctx context.Context, j handoffJob) (int, error) {
		j.Lock.Unlock()
		j.Value.Unlock()
		j.Array.Unlock()
		return 0, nil
	})
	// holdAll locks all three, says so, and holds them until killed.
	holdAll = multiproc.Register("test.holdAll", func(ctx context.Context, j handoffJob) (int, error) {
		j.Lock.Lock()
		j.Value.Lock()
		j.Array.Lock()
		j.Held.Set()
		<-ctx.Done()
		return 0, nil
	})
	keepAfterClose = multiproc.Register("test.keepAfterClose", func(ctx context.Context, j keepJob) (int64, error) {
		j.Started.Set()
		if err := j.Go.Wait(ctx); err != nil {
			return 0, err
		}
		return j.V.Add(1), nil
	})
)

type keepJob struct {
	V           *multiproc.Value[int64]
	Started, Go *multiproc.Event
}

func newHandoff(t *testing.T) handoffJob {
	t.Helper()
	var j handoffJob
	var err error
	if j.Lock, err = multiproc.NewLock(); err != nil {
		t.Fatal(err)
	}
	if j.Value, err = multiproc.NewValue[int64](0); err != nil {
		t.Fatal(err)
	}
	if j.Array, err = multiproc.NewArray[int32](4); err != nil {
		t.Fatal(err)
	}
	if j.Held, err = multiproc.NewEvent(); err != nil {
		t.Fatal(err)
	}
	return j
}

// lockAllWithin locks the three locks of j, failing the test if that
// does not happen before ctx ends.
func lockAllWithin(t *testing.T, ctx context.Context, j handoffJob, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		j.Lock.Lock()
		j.Value.Lock()
		j.Array.Lock()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("Lock hung %s", what)
	}
}

// TestUnlockInAnotherProcess: any process may release a lock another one
// took, as with Python's Lock, for Lock and for Value's and Array's locks.
func TestUnlockInAnotherProcess(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	j := newHandoff(t)

	// The parent locks, a child unlocks.
	j.Lock.Lock()
	j.Value.Lock()
	j.Array.Lock()
	if _, err := unlockAll.Call(ctx, j); err != nil {
		t.Fatalf("a child unlocking its parent's locks: %v", err)
	}
	lockAllWithin(t, ctx, j, "in the parent after a child unlocked")
	j.Lock.Unlock()
	j.Value.Unlock()
	j.Array.Unlock()

	// A live child locks, the parent unlocks.
	p := holdAll.Process(j)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := j.Held.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if j.Lock.TryLock() {
		t.Fatal("TryLock succeeded while a live child holds the lock")
	}
	j.Lock.Unlock()
	j.Value.Unlock()
	j.Array.Unlock()
	lockAllWithin(t, ctx, j, "in the parent after it unlocked a child's locks")
	if n := j.Lock.Takeovers(); n != 0 {
		t.Fatalf("Takeovers = %d: the lock was taken over, not released", n)
	}
	// And another goroutine than the locker may unlock, too.
	unlocked := make(chan struct{})
	go func() { j.Lock.Unlock(); close(unlocked) }()
	<-unlocked
	if !j.Lock.TryLock() {
		t.Fatal("lock not free after another goroutine unlocked it")
	}
	j.Lock.Unlock()
	mustPanicIs(t, "Unlock of an unlocked Lock", nil, j.Lock.Unlock)
}

// TestLockContext: the bounded form of Lock, Value.Lock and Array.Lock.
func TestLockContext(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	j := newHandoff(t)
	p := holdAll.Process(j)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := j.Held.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for name, lock := range map[string]func(context.Context) error{
		"Lock": j.Lock.LockContext, "Value": j.Value.LockContext, "Array": j.Array.LockContext,
	} {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := lock(short)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s.LockContext on a lock a live child holds = %v", name, err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		go cancel()
		if err := lock(cancelled); !errors.Is(err, context.Canceled) {
			t.Fatalf("%s.LockContext cancelled = %v", name, err)
		}
	}
	j.Lock.Unlock()
	j.Value.Unlock()
	j.Array.Unlock()
	for _, lock := range []func(context.Context) error{j.Lock.LockContext, j.Value.LockContext, j.Array.LockContext} {
		if err := lock(ctx); err != nil {
			t.Fatalf("LockContext on a free lock = %v", err)
		}
	}
}

// TestCloseValueAndArray: Close releases this process's hold, idempotently;
// every later call fails with ErrClosed; other processes keep the object.
func TestCloseValueAndArray(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	v, _ := multiproc.NewValue[int64](41)
	started, _ := multiproc.NewEvent()
	goOn, _ := multiproc.NewEvent()
	res := make(chan error, 1)
	var got int64
	go func() {
		var err error
		got, err = keepAfterClose.Call(ctx, keepJob{V: v, Started: started, Go: goOn})
		res <- err
	}()
	if err := started.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	goOn.Set()
	if err := <-res; err != nil || got != 42 {
		t.Fatalf("the child's Value after the parent closed its own: %d, %v", got, err)
	}
	closed := multiproc.ErrClosed
	mustPanicIs(t, "Value.Load", closed, func() { v.Load() })
	mustPanicIs(t, "Value.Store", closed, func() { v.Store(1) })
	mustPanicIs(t, "Value.Add", closed, func() { v.Add(1) })
	mustPanicIs(t, "Value.Lock", closed, v.Lock)
	mustPanicIs(t, "Value.Unlock", closed, v.Unlock)
	if err := v.LockContext(ctx); !errors.Is(err, closed) {
		t.Fatalf("LockContext after Close = %v", err)
	}
	if _, err := fillArray.Call(ctx, func() *multiproc.Array[int32] {
		a, _ := multiproc.NewArray[int32](1)
		a.Close()
		return a
	}()); !errors.Is(err, closed) {
		t.Fatalf("passing a closed Array to a child = %v", err)
	}

	a, _ := multiproc.ArrayOf([]int32{1, 2, 3})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if n := a.Len(); n != 3 { // a size query does not panic after Close
		t.Fatalf("Array.Len after Close = %d", n)
	}
	mustPanicIs(t, "Array.Load", closed, func() { a.Load(0) })
	mustPanicIs(t, "Array.Store", closed, func() { a.Store(0, 1) })
	mustPanicIs(t, "Array.Add", closed, func() { a.Add(0, 1) })
	mustPanicIs(t, "Array.Slice", closed, func() { a.Slice() })
	mustPanicIs(t, "Array.Lock", closed, a.Lock)
	mustPanicIs(t, "Array.Unlock", closed, a.Unlock)
	if err := a.LockContext(ctx); !errors.Is(err, closed) {
		t.Fatalf("Array.LockContext after Close = %v", err)
	}
}

// mapsOf counts the mappings of this process whose line contains s.
func mapsOf(t *testing.T, s string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc/self/maps")
	}
	return strings.Count(string(b), s)
}

// mappingInode returns the inode of the mapping named name that covers
// addr in /proc/self/maps, or 0 if there is none.
func mappingInode(t *testing.T, addr uintptr, name string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc/self/maps")
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.Contains(line, name) {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		l, err1 := strconv.ParseUint(lo, 16, 64)
		h, err2 := strconv.ParseUint(hi, 16, 64)
		ino, err3 := strconv.ParseUint(f[4], 10, 64)
		if err1 == nil && err2 == nil && err3 == nil && uint64(addr) >= l && uint64(addr) < h {
			return ino
		}
	}
	return 0
}

// hasFdOfInode reports whether a descriptor of this process is open on
// the file with inode ino.
func hasFdOfInode(t *testing.T, ino uint64) bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	for _, e := range ents {
		var st syscall.Stat_t
		if syscall.Stat("/proc/self/fd/"+e.Name(), &st) == nil && st.Ino == ino {
			return true
		}
	}
	return false
}

// TestDroppedArraysAreUnmapped: ArrayOf does not pin its memory; a
// dropped Array goes with the garbage collector, as NewArray's does.
func TestDroppedArraysAreUnmapped(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	const name = "multiproc:array"
	before := mapsOf(t, name)
	for range 64 {
		a, err := multiproc.ArrayOf(make([]int8, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		a.Store(1, 1)
	}
	for mapsOf(t, name) > before {
		runtime.GC()
		select {
		case <-ctx.Done():
			t.Fatalf("%d Array mappings before 64 ArrayOf, %d after they were dropped", before, mapsOf(t, name))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

var sink atomic.Int64

// TestSliceAfterClose: Close unmaps a sliced Array at once, and a view
// used after Close faults instead of reaching other memory.
func TestSliceAfterClose(t *testing.T) {
	const name = "multiproc:array"
	a, _ := multiproc.NewArray[int64](1 << 17) // 1 MiB
	s := a.Slice()
	s[7] = 7
	// This Array's own mapping and descriptor, found by the view's address
	// and the segment's inode: counting every Array's would also count
	// those that the collector frees meanwhile, of other tests.
	addr := uintptr(unsafe.Pointer(&s[7]))
	ino := mappingInode(t, addr, name)
	if ino == 0 || !hasFdOfInode(t, ino) {
		t.Fatalf("no mapping of %q at %#x, or no descriptor of its inode %d", name, addr, ino)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if mappingInode(t, addr, name) != 0 {
		t.Fatal("the Array's mapping is still there after Close")
	}
	if hasFdOfInode(t, ino) {
		t.Fatal("the Array's descriptor is still open after Close")
	}
	faulted := make(chan any, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() { faulted <- recover() }()
		sink.Store(s[7])
	}()
	if r := <-faulted; r == nil {
		t.Fatal("reading a view after Close did not fault")
	}
}
