package multiproc

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
)

// Scalar is the element type of a Value or Array: a fixed-size number, as
// Python's ctypes codes ('i', 'd', ...) are.
type Scalar interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~int | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uint | ~uintptr | ~float32 | ~float64
}

// segRef owns one shared segment of this process. When the object holding
// it becomes garbage, the segment is unmapped and closed — unless its
// memory was handed out (Array.Slice), which must stay valid: then only
// the fd is closed.
type segRef struct {
	seg     *shm.Segment
	keepMap atomic.Bool
}

func newSegRef[O any](obj *O, seg *shm.Segment) *segRef {
	r := &segRef{seg: seg}
	runtime.AddCleanup(obj, func(r *segRef) {
		if r.keepMap.Load() {
			r.seg.CloseFd()
		} else {
			r.seg.Close()
		}
	}, r)
	return r
}

// xlock is a mutex across processes: a futex word in shared memory that
// holds its holder's pid, so a holder that dies is noticed and the lock
// taken over (never a silent deadlock). An in-process sync.Mutex in front
// of it keeps other goroutines of the same process waiting in the Go
// scheduler rather than each in the kernel on an OS thread of its own, and
// gives the race detector its happens-before edge.
type xlock struct {
	local     sync.Mutex
	m         futex.Mutex
	takeovers atomic.Int64
}

func (l *xlock) lock() {
	l.local.Lock()
	if l.m.Lock() {
		l.takeovers.Add(1)
	}
}

func (l *xlock) unlock() {
	l.m.Unlock()
	l.local.Unlock()
}

func (l *xlock) tryLock() bool {
	if !l.local.TryLock() {
		return false
	}
	if l.m.TryLock() {
		return true
	}
	l.local.Unlock()
	return false
}

// Layout of the segment behind a Value or Array: the lock word on its own
// cache line, then (Array) the length, then the data.
const (
	offLock = 0
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
		return fmt.Errorf("multiproc: a shared %s arrived where a %s of %v was expected", d.Kind, kind, t)
	}
	if len(d.Fds) != 1 {
		handleCloseFds(d)
		return fmt.Errorf("multiproc: a shared %s arrived with %d descriptors", kind, len(d.Fds))
	}
	return nil
}

func handleCloseFds(d handle.Desc) { handle.CloseDescs([]handle.Desc{d}) }

var errTravel = errors.New("multiproc: shared objects travel only inside a Func argument, a Runner or a pool task, not through Send, Put or a result")

// Value is one number in shared memory, Python's multiprocessing.Value.
// Every process that holds it sees the same number. Load, Store and Add are
// atomic; Lock and Unlock (a sync.Locker across processes) guard longer
// read-modify-write sequences, as Python's get_lock() does.
//
// A *Value reaches a child as a Func argument, or an exported field of one
// or of a Runner: there it is the same shared number, not a copy. It cannot
// be sent through a Conn or Queue. Its memory is freed when the last
// process holding it drops it.
type Value[T Scalar] struct {
	ref *segRef
	p   unsafe.Pointer
	mu  xlock
}

// NewValue makes a shared number with initial value v.
func NewValue[T Scalar](v T) (*Value[T], error) {
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
	v.ref = newSegRef(v, seg)
	mem := seg.Bytes()
	v.p = unsafe.Pointer(&mem[offData])
	v.mu.m = futex.Mutex{W: futex.Word(mem, offLock)}
}

// Load returns the number, atomically.
func (v *Value[T]) Load() T {
	x := atomicLoad[T](v.p)
	runtime.KeepAlive(v)
	return x
}

// Store sets the number, atomically.
func (v *Value[T]) Store(x T) {
	atomicStore(v.p, x)
	runtime.KeepAlive(v)
}

// Add adds delta atomically (floats too) and returns the new value.
func (v *Value[T]) Add(delta T) T {
	x := atomicAdd(v.p, delta)
	runtime.KeepAlive(v)
	return x
}

// Lock locks the Value's own cross-process lock. If a process died while
// holding it, Lock takes it over (after at most about 100 ms) rather than
// wait forever; the number may then hold a half-done update.
func (v *Value[T]) Lock() { v.mu.lock() }

// Unlock unlocks the Value's lock. Any process or goroutine may unlock it.
func (v *Value[T]) Unlock() {
	v.mu.unlock()
	runtime.KeepAlive(v)
}

// ExportHandle is how a Value travels to another process; it is called by
// the package, not by users.
func (v *Value[T]) ExportHandle() (handle.Desc, error) {
	return handle.Desc{Kind: "Value", Meta: scalarMeta[T](1), Fds: []int{v.ref.seg.Fd()}}, nil
}

// ImportHandle makes v the Value described by d; called by the package.
func (v *Value[T]) ImportHandle(d handle.Desc) error {
	if err := checkMeta[T](d, "Value"); err != nil {
		return err
	}
	seg, err := shm.Open(d.Fds[0])
	if err != nil {
		return err
	}
	if seg.Size() < offData+8 {
		seg.Close()
		return errors.New("multiproc: shared Value segment too small")
	}
	v.init(seg)
	return nil
}

// GobEncode refuses: a Value is shared, never copied into a message.
func (v *Value[T]) GobEncode() ([]byte, error) { return nil, errTravel }

// GobDecode refuses, as GobEncode does.
func (v *Value[T]) GobDecode([]byte) error { return errTravel }

// MarshalBinary refuses, as GobEncode does.
func (v *Value[T]) MarshalBinary() ([]byte, error) { return nil, errTravel }

// UnmarshalBinary refuses, as GobEncode does.
func (v *Value[T]) UnmarshalBinary([]byte) error { return errTravel }

// String formats the current number.
func (v *Value[T]) String() string { return fmt.Sprint(v.Load()) }

// Array is a fixed-length array of numbers in shared memory, Python's
// multiprocessing.Array. Load and Store are atomic per element; Slice is a
// live view for bulk work, to be guarded by Lock/Unlock (or to be
// partitioned between processes) as the program needs. It travels to
// children as Value does.
type Array[T Scalar] struct {
	ref  *segRef
	data unsafe.Pointer
	n    int
	mu   xlock
}

// NewArray makes a shared array of n zeros. n < 0 is an error.
func NewArray[T Scalar](n int) (*Array[T], error) {
	if n < 0 {
		return nil, fmt.Errorf("multiproc: NewArray with negative length %d", n)
	}
	size := uint64(n) * uint64(sizeOf[T]())
	if size > 1<<46 {
		return nil, fmt.Errorf("multiproc: NewArray of %d elements is too large", n)
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
	a, err := NewArray[T](len(vals))
	if err != nil {
		return nil, err
	}
	copy(a.Slice(), vals)
	return a, nil
}

func (a *Array[T]) init(seg *shm.Segment, n int) {
	a.ref = newSegRef(a, seg)
	mem := seg.Bytes()
	a.data = unsafe.Pointer(&mem[offData])
	a.n = n
	a.mu.m = futex.Mutex{W: futex.Word(mem, offLock)}
}

func (a *Array[T]) at(i int) unsafe.Pointer {
	if uint(i) >= uint(a.n) {
		panic(fmt.Sprintf("multiproc: Array index %d out of range [0:%d]", i, a.n))
	}
	return unsafe.Add(a.data, uintptr(i)*sizeOf[T]())
}

// Len returns the number of elements.
func (a *Array[T]) Len() int { return a.n }

// Load returns element i, atomically. It panics if i is out of range.
func (a *Array[T]) Load(i int) T {
	x := atomicLoad[T](a.at(i))
	runtime.KeepAlive(a)
	return x
}

// Store sets element i, atomically. It panics if i is out of range.
func (a *Array[T]) Store(i int, x T) {
	atomicStore(a.at(i), x)
	runtime.KeepAlive(a)
}

// Add adds delta to element i atomically (floats too) and returns the new
// value. It panics if i is out of range.
func (a *Array[T]) Add(i int, delta T) T {
	x := atomicAdd(a.at(i), delta)
	runtime.KeepAlive(a)
	return x
}

// Slice returns the shared elements as a Go slice: writes through it are
// seen by every process (plain memory access — use Lock/Unlock, or give
// each process its own range). The memory stays mapped for the rest of
// this process's life, even after the Array itself is dropped.
func (a *Array[T]) Slice() []T {
	a.ref.keepMap.Store(true)
	if a.n == 0 {
		return []T{}
	}
	return unsafe.Slice((*T)(a.data), a.n)
}

// Lock locks the Array's cross-process lock (taken over, as Value's, when
// its holder died).
func (a *Array[T]) Lock() { a.mu.lock() }

// Unlock unlocks the Array's lock.
func (a *Array[T]) Unlock() {
	a.mu.unlock()
	runtime.KeepAlive(a)
}

// ExportHandle is how an Array travels to another process; called by the package.
func (a *Array[T]) ExportHandle() (handle.Desc, error) {
	return handle.Desc{Kind: "Array", Meta: scalarMeta[T](a.n), Fds: []int{a.ref.seg.Fd()}}, nil
}

// ImportHandle makes a the Array described by d; called by the package.
func (a *Array[T]) ImportHandle(d handle.Desc) error {
	if err := checkMeta[T](d, "Array"); err != nil {
		return err
	}
	seg, err := shm.Open(d.Fds[0])
	if err != nil {
		return err
	}
	n := int(atomic.LoadUint64((*uint64)(unsafe.Pointer(&seg.Bytes()[offLen]))))
	if n < 0 || offData+uint64(n)*uint64(sizeOf[T]()) > uint64(seg.Size()) {
		seg.Close()
		return errors.New("multiproc: shared Array segment smaller than its length")
	}
	a.init(seg, n)
	return nil
}

// GobEncode refuses: an Array is shared, never copied into a message.
func (a *Array[T]) GobEncode() ([]byte, error) { return nil, errTravel }

// GobDecode refuses, as GobEncode does.
func (a *Array[T]) GobDecode([]byte) error { return errTravel }

// MarshalBinary refuses, as GobEncode does.
func (a *Array[T]) MarshalBinary() ([]byte, error) { return nil, errTravel }

// UnmarshalBinary refuses, as GobEncode does.
func (a *Array[T]) UnmarshalBinary([]byte) error { return errTravel }
