//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
)

// object is what a Value, Array, Lock, Semaphore, Event, Barrier and
// Condition hold of their shared segment in this process (and a
// JoinableQueue of the segment of its count). How their calls wait is in
// object_wait.go. base is the mapping's start,
// nil in a zero value and once closed: every method loads it first, and
// that one load is all a Load or Store pays for knowing it may go on.
// A goroutine that loaded base just before another closed the object may
// still touch the memory: Close leaves harmless private memory at that
// address (shm.Segment.Retire) until the object is garbage, when nobody can.
type object struct {
	base atomic.Pointer[byte]
	ref  *segRef // nil: zero value
}

// segRef owns one shared segment of this process: Close, and the GC
// cleanup that does Close's work for an object dropped without it.
type segRef struct {
	mu      sync.Mutex // guards closed, keepMap and seg's closing: Close and the cleanup against exportHandle
	seg     *shm.Segment
	closed  bool
	keepMap bool // Slice handed the memory out: never reuse the address

	// The calls that may wait (Lock's slow path, Acquire, Wait) hold
	// users for reading while they use the memory; Close ends them (done
	// for those queued at a gate, ctx for the one in the kernel) and
	// takes it for writing before it retires the mapping.
	users  sync.RWMutex
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
}

// placeholders counts retired mappings not yet unmapped: each is a kernel
// mapping of its own (a process has about 65530) until its object is
// garbage, so every so many of them ask for a collection.
var placeholders atomic.Int64

const placeholdersPerGC = 4096

// initObject makes o the holder of seg, its memory released when obj (the
// Value, Lock... that embeds o) is garbage if Close did not release it.
func initObject[O any](o *object, obj *O, seg *shm.Segment) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &segRef{seg: seg, done: make(chan struct{}), ctx: ctx, cancel: cancel}
	o.ref = r
	o.base.Store(&seg.Bytes()[0])
	runtime.AddCleanup(obj, (*segRef).release, r)
}

// release is the GC cleanup: obj is unreachable, so no goroutine can be
// touching the memory any more.
func (r *segRef) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		if !r.keepMap {
			placeholders.Add(-1)
			r.seg.Close() // the placeholder Retire left
		}
		return
	}
	r.closed = true
	r.cancel()
	if r.keepMap {
		r.seg.CloseFd() // a slice of the memory may still be in use
	} else {
		r.seg.Close()
	}
}

// mem returns the mapping, or panics with the error of a zero or closed
// object: for the methods whose signature has no error.
func (o *object) mem(k *kind) unsafe.Pointer {
	if p := o.base.Load(); p != nil {
		return unsafe.Pointer(p)
	}
	panic(o.useErr(k))
}

// useErr is the error of a call on a zero or closed object.
func (o *object) useErr(k *kind) error {
	if o.ref == nil {
		return k.zero
	}
	return k.closed
}

// dupFd is a duplicate of the segment's descriptor, for exportHandle,
// made holding mu so that Close cannot close the descriptor (whose number
// another file could then get) before it is duplicated.
func (o *object) dupFd(k *kind) (int, error) {
	r := o.ref
	if r == nil {
		return -1, k.zero
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return -1, errorf("%w: passing it to another process", k.closed)
	}
	fd, err := handle.Dup(r.seg.Fd())
	if err != nil {
		return -1, errorf("passing a shared object: %w", err)
	}
	return fd, nil
}

// close is Close: see the doc of each type's Close.
func (o *object) close(k *kind) error {
	r := o.ref
	if r == nil {
		return k.zero
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	o.base.Store(nil) // new calls fail from here on
	close(r.done)     // calls queued at a gate give up
	r.cancel()        // the call sleeping in the kernel wakes and gives up
	r.users.Lock()    // wait for them to leave
	defer r.users.Unlock()
	keep := r.keepMap
	if !keep && placeholders.Add(1)%placeholdersPerGC == 0 {
		go runtime.GC()
	}
	return r.seg.Retire(keep)
}

// importSeg opens the one segment a Desc of kind carries.
func importSeg(d handle.Desc, kind string) (*shm.Segment, error) {
	if d.Kind != kind || len(d.Fds) != 1 {
		handleCloseFds(d)
		return nil, errorf("a shared %s arrived where a %s was expected", d.Kind, kind)
	}
	seg, err := shm.Open(d.Fds[0])
	return seg, own(err)
}

// exportSeg describes o's segment for exportHandle.
func exportSeg(o *object, k *kind, name string) (handle.Desc, error) {
	fd, err := o.dupFd(k)
	if err != nil {
		return handle.Desc{}, err
	}
	return handle.Desc{Kind: name, Fds: []int{fd}}, nil
}

// Offsets of the words of a sync segment, each on its own cache line.
const (
	offWord0 = 0
	offWord1 = 64
)

// objError is an error with its own text that matches a sentinel.
type objError struct {
	msg string
	is  error
}

func (e *objError) Error() string { return e.msg }
func (e *objError) Unwrap() error { return e.is }

// kind names a shared type in its errors; each holds them made once.
type kind struct {
	zero, closed error
	unlocked     string // Unlock's panic when the lock was free
}

func newKind(name, ctor string) *kind {
	return &kind{
		zero:     &pkgError{"zero " + name + ": make it with " + ctor, ErrNotInitialized},
		closed:   &pkgError{"use of closed " + name, ErrClosed},
		unlocked: "multiproc: Unlock of unlocked " + name,
	}
}

var (
	kValue     = newKind("Value", "NewValue")
	kArray     = newKind("Array", "NewArray or ArrayOf")
	kLock      = newKind("Lock", "NewLock")
	kSemaphore = newKind("Semaphore", "NewSemaphore")
	kEvent     = newKind("Event", "NewEvent")
	kBarrier   = newKind("Barrier", "NewBarrier")
	kQueue     = newKind("Queue", "NewQueue")
	kJoinable  = newKind("JoinableQueue", "NewJoinableQueue")
	kCondition = newKind("Condition", "NewCondition")
)
