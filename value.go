//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
)

// Scalar is the element type of a Value or Array: a fixed-size number, as
// Python's ctypes codes ('i', 'd', ...) are.
type Scalar interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~int | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uint | ~uintptr | ~float32 | ~float64
}

// Layout of the segment behind a Value or Array: the lock word at offset
// 0 (the object's base, where xlock finds it) on its own cache line, then
// (Array) the length, then the data.
const (
	offLen  = 64
	offData = 128
)

// scalarMeta describes T for a receiving process to check.
func scalarMeta[T Scalar](n int) []byte {
	t := reflect.TypeFor[T]()
	b := []byte{byte(t.Kind()), byte(t.Size())}
	return fmt.Appendf(b, "%d", n)
}

func checkMeta[T Scalar](d handle.Desc, kind string) error {
	t := reflect.TypeFor[T]()
	if d.Kind != kind || len(d.Meta) < 2 || d.Meta[0] != byte(t.Kind()) || d.Meta[1] != byte(t.Size()) {
		handleCloseFds(d)
		return errorf("a shared %s arrived where a %s of %v was expected", d.Kind, kind, t)
	}
	if len(d.Fds) != 1 {
		handleCloseFds(d)
		return errorf("a shared %s arrived with %d descriptors", kind, len(d.Fds))
	}
	return nil
}

func handleCloseFds(d handle.Desc) { handle.CloseDescs([]handle.Desc{d}) }

// Value is one number in shared memory, Python's multiprocessing.Value.
// Every process that holds it sees the same number. Load, Store and Add are
// atomic; Lock and Unlock (a sync.Locker across processes) guard longer
// read-modify-write sequences, as Python's get_lock() does.
//
// A *Value reaches a child as a Func argument, or an exported field of one
// or of a Runner: there it is the same shared number, not a copy. It cannot
// be sent through a Conn or Queue. Close releases this process's hold on
// it; its memory is freed when the last process holding it closes it,
// drops it (the garbage collector closes it then) or exits.
//
// After Close, and on a zero Value, every method but Close fails: those
// with an error result return one matching ErrClosed (ErrNotInitialized
// for a zero Value), the others panic with that error.
//
// A Value must not be copied after first use (go vet reports copies).
type Value[T Scalar] struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	object
	mu xlock
}

// NewValue makes a shared number with initial value v.
func NewValue[T Scalar](v T) (*Value[T], error) {
	if err := checkCreate("NewValue"); err != nil {
		return nil, err
	}
	seg, err := shm.Create("value", offData+8)
	if err != nil {
		return nil, err
	}
	val := &Value[T]{}
	val.init(seg)
	val.Store(v)
	return val, nil
}

func (v *Value[T]) init(seg *shm.Segment) {
	initObject(&v.object, v, seg)
	v.mu.init()
}

// Load returns the number, atomically.
func (v *Value[T]) Load() T {
	x := loadAt[T](&v.object, kValue, offData)
	runtime.KeepAlive(v)
	return x
}

// Store sets the number, atomically.
func (v *Value[T]) Store(x T) {
	storeAt(&v.object, kValue, offData, x)
	runtime.KeepAlive(v)
}

// Add adds delta atomically (floats too) and returns the new value.
func (v *Value[T]) Add(delta T) T {
	x := addAt(&v.object, kValue, offData, delta)
	runtime.KeepAlive(v)
	return x
}

// Lock locks the Value's own cross-process lock. If a process died while
// holding it, Lock takes it over (after at most about 100 ms) rather than
// wait forever; the number may then hold a half-done update. Lock panics
// if the Value is closed, even while it waits: LockContext returns an
// error instead.
func (v *Value[T]) Lock() {
	v.mu.lockOrPanic(&v.object, kValue)
	runtime.KeepAlive(v)
}

// LockContext is Lock bounded by ctx: it returns ctx.Err() if ctx ends
// before the lock is taken (then it is not held), or an error matching
// ErrClosed if the Value is closed meanwhile in this process.
func (v *Value[T]) LockContext(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	err := v.mu.lock(ctx, &v.object, kValue)
	runtime.KeepAlive(v)
	return err
}

// TryLock takes the Value's lock if it is free (or its holder died) and
// reports whether it did: Python's get_lock().acquire(False).
func (v *Value[T]) TryLock() bool {
	ok := v.mu.tryLock(&v.object, kValue)
	runtime.KeepAlive(v)
	return ok
}

// Unlock unlocks the Value's lock. Any process or goroutine may unlock
// it, not only the one that locked it. It panics if the lock is not held.
func (v *Value[T]) Unlock() {
	v.mu.unlock(&v.object, kValue)
	runtime.KeepAlive(v)
}

// Close releases this process's descriptor and mapping of the Value now;
// other processes keep theirs, and the number. Closing again does nothing
// and returns nil. A call blocked in Lock panics, one in LockContext
// returns an error matching ErrClosed. Close does not unlock: a lock this
// process holds stays held until some process Unlocks it or this process
// exits (and a waiter takes it over).
func (v *Value[T]) Close() error { return v.close(kValue) }

// exportHandle is how a Value travels to another process; it is called by
// the package, not by users.
func (v *Value[T]) exportHandle() (handle.Desc, error) {
	fd, err := v.dupFd(kValue)
	if err != nil {
		return handle.Desc{}, err
	}
	return handle.Desc{Kind: "Value", Meta: scalarMeta[T](1), Fds: []int{fd}}, nil
}

// importHandle makes v the Value described by d; called by the package.
func (v *Value[T]) importHandle(d handle.Desc) error {
	if err := checkMeta[T](d, "Value"); err != nil {
		return err
	}
	seg, err := shm.Open(d.Fds[0])
	if err != nil {
		return own(err)
	}
	if seg.Size() < offData+8 {
		seg.Close()
		return errorf("%w: a Value's segment is smaller than its header", ErrCorrupt)
	}
	v.init(seg)
	return nil
}

// String formats the current number.
func (v *Value[T]) String() string { return fmt.Sprint(v.Load()) }

// Array is a fixed-length array of numbers in shared memory, Python's
// multiprocessing.Array. Load and Store are atomic per element; Slice is a
// live view for bulk work, to be guarded by Lock/Unlock (or to be
// partitioned between processes) as the program needs. It travels to
// children as Value does, and is closed, and fails after Close (Len too),
// as Value does.
//
// An Array must not be copied after first use (go vet reports copies).
type Array[T Scalar] struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	object
	n  int
	mu xlock
}

// NewArray makes a shared array of n zeros. n < 0 is an error.
func NewArray[T Scalar](n int) (*Array[T], error) {
	if err := checkCreate("NewArray"); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, errorf("NewArray with negative length %d", n)
	}
	size := uint64(n) * uint64(sizeOf[T]())
	if size > 1<<46 {
		return nil, errorf("NewArray of %d elements is too large", n)
	}
	seg, err := shm.Create("array", offData+int(size))
	if err != nil {
		return nil, err
	}
	a := &Array[T]{}
	a.init(seg, n)
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&seg.Bytes()[offLen])), uint64(n))
	return a, nil
}

// ArrayOf makes a shared array holding a copy of vals.
func ArrayOf[T Scalar](vals []T) (*Array[T], error) {
	if err := checkCreate("ArrayOf"); err != nil {
		return nil, err
	}
	a, err := NewArray[T](len(vals))
	if err != nil {
		return nil, err
	}
	copy(a.view(), vals) // not Slice: nothing is handed out, nothing pinned
	return a, nil
}

func (a *Array[T]) init(seg *shm.Segment, n int) {
	initObject(&a.object, a, seg)
	a.n = n
	a.mu.init()
}

// view is the elements as a slice, for the package's own use.
func (a *Array[T]) view() []T {
	p := a.mem(kArray)
	if a.n == 0 {
		return []T{}
	}
	return unsafe.Slice((*T)(unsafe.Add(p, offData)), a.n)
}

// off is the offset of element i in the mapping; it panics if i is out
// of range.
func (a *Array[T]) off(i int) uintptr {
	if uint(i) >= uint(a.n) {
		a.mem(kArray) // a zero or closed Array says so first
		panic(fmt.Sprintf("multiproc: Array index %d out of range [0:%d]", i, a.n))
	}
	return offData + uintptr(i)*sizeOf[T]()
}

// Len returns the number of elements, also after Close (it panics on a
// zero Array): the length is the handle's, no use of the memory.
func (a *Array[T]) Len() int {
	if a.ref == nil {
		panic(kArray.zero)
	}
	return a.n
}

// Load returns element i, atomically. It panics if i is out of range.
func (a *Array[T]) Load(i int) T {
	x := loadAt[T](&a.object, kArray, a.off(i))
	runtime.KeepAlive(a)
	return x
}

// Store sets element i, atomically. It panics if i is out of range.
func (a *Array[T]) Store(i int, x T) {
	storeAt(&a.object, kArray, a.off(i), x)
	runtime.KeepAlive(a)
}

// Add adds delta to element i atomically (floats too) and returns the new
// value. It panics if i is out of range.
func (a *Array[T]) Add(i int, delta T) T {
	x := addAt(&a.object, kArray, a.off(i), delta)
	runtime.KeepAlive(a)
	return x
}

// Slice returns the shared elements as a Go slice: writes through it are
// seen by every process (plain memory access — use Lock/Unlock, or give
// each process its own range).
//
// Once Slice was called, the memory stays mapped until Close, even after
// the Array itself is dropped: the garbage collector cannot see the view,
// so it then closes only the descriptor. Close gives the memory back at
// once; the view's address range stays reserved (address space, no
// memory) and inaccessible for the rest of the process's life, so a view
// used after Close faults — the program crashes with "unexpected fault
// address" at the access, unless the goroutine set debug.SetPanicOnFault —
// and never reads or writes memory the address was reused for. Copy out
// what must outlive Close.
func (a *Array[T]) Slice() []T {
	r := a.ref
	if r == nil {
		panic(kArray.zero)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		panic(kArray.closed)
	}
	r.keepMap = true
	return a.view()
}

// Lock locks the Array's cross-process lock (taken over, as Value's, when
// its holder died). It panics if the Array is closed, even while it
// waits: LockContext returns an error instead.
func (a *Array[T]) Lock() {
	a.mu.lockOrPanic(&a.object, kArray)
	runtime.KeepAlive(a)
}

// LockContext is Lock bounded by ctx, as Value's LockContext.
func (a *Array[T]) LockContext(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	err := a.mu.lock(ctx, &a.object, kArray)
	runtime.KeepAlive(a)
	return err
}

// TryLock takes the Array's lock if it is free (or its holder died) and
// reports whether it did, as Value's TryLock.
func (a *Array[T]) TryLock() bool {
	ok := a.mu.tryLock(&a.object, kArray)
	runtime.KeepAlive(a)
	return ok
}

// Unlock unlocks the Array's lock; any process or goroutine may. It
// panics if the lock is not held.
func (a *Array[T]) Unlock() {
	a.mu.unlock(&a.object, kArray)
	runtime.KeepAlive(a)
}

// Close releases this process's descriptor and mapping of the Array now,
// as Value's Close does; see Slice for what becomes of its views.
func (a *Array[T]) Close() error { return a.close(kArray) }

// exportHandle is how an Array travels to another process; called by the package.
func (a *Array[T]) exportHandle() (handle.Desc, error) {
	fd, err := a.dupFd(kArray)
	if err != nil {
		return handle.Desc{}, err
	}
	return handle.Desc{Kind: "Array", Meta: scalarMeta[T](a.n), Fds: []int{fd}}, nil
}

// importHandle makes a the Array described by d; called by the package.
func (a *Array[T]) importHandle(d handle.Desc) error {
	if err := checkMeta[T](d, "Array"); err != nil {
		return err
	}
	seg, err := shm.Open(d.Fds[0])
	if err != nil {
		return own(err)
	}
	n := int(atomic.LoadUint64((*uint64)(unsafe.Pointer(&seg.Bytes()[offLen]))))
	if n < 0 || offData+uint64(n)*uint64(sizeOf[T]()) > uint64(seg.Size()) {
		seg.Close()
		return errorf("%w: an Array's segment is smaller than its length", ErrCorrupt)
	}
	a.init(seg, n)
	return nil
}
