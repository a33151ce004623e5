//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/gate"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
	"github.com/multiproc-go/multiproc/internal/wire"
)

// errTaskDone is TaskDone's error when every item put already had its
// TaskDone: Python's ValueError("task_done() called too many times").
var errTaskDone = newError("JoinableQueue.TaskDone called more times than items were put")

// JoinableQueue is a Queue whose consumers say when they have finished
// with each item, Python's multiprocessing.JoinableQueue: every Put (and
// TryPut) that succeeds adds one unfinished task, TaskDone removes one,
// and Join waits until none is left. The count of unfinished tasks lives
// in shared memory beside the ring, so producers, consumers and joiners
// in any process agree on it.
//
// A consumer that dies between Get and TaskDone (SIGKILL, a crash) leaves
// its item's task unfinished for good: Join then waits until its ctx
// ends and returns ctx's error, as Python's join hangs. A supervisor that
// knows the item was lost (it saw the consumer die) may call TaskDone in
// its stead; Join returns once the count reaches zero. Likewise, a
// producer killed inside Put, after counting its task and before its item
// was stored, leaves one task counted that no consumer will finish (the
// count goes up before the item is visible, so that a TaskDone can never
// find it short).
//
// It travels to children and pool tasks as Queue does (a Func argument,
// or an exported field of one) and is the same queue there, count
// included. Close closes this process's handles: its blocked Put, Get and
// Join return an error matching ErrClosed. A zero JoinableQueue fails
// with ErrNotInitialized (Len, Full and Empty panic with it). A
// JoinableQueue must not be copied after first use (go vet reports
// copies).
type JoinableQueue[T any] struct {
	_ noCopy
	q *Queue[T]
	object
	gate gate.Gate
}

// Words of the count segment: the unfinished tasks, the generation that
// TaskDone bumps each time the count reaches zero (Join sleeps on it), and
// how many joiners may sleep on it: a count that reaches zero with nobody
// joining costs no system call (a consumer that keeps up with its producer
// takes the count to zero at almost every item).
const (
	offUnfinished = offWord0
	offJoinGen    = offWord1
	offJoinSleep  = offWord1 + 4
)

// NewJoinableQueue makes a JoinableQueue of at most maxsize messages
// (maxsize <= 0: bounded only by memory), as NewQueue.
func NewJoinableQueue[T any](maxsize int) (*JoinableQueue[T], error) {
	if err := checkCreate("NewJoinableQueue"); err != nil {
		return nil, err
	}
	q, err := NewQueue[T](maxsize)
	if err != nil {
		return nil, err
	}
	seg, err := shm.Create("joinable", 128)
	if err != nil {
		q.Close()
		return nil, err
	}
	j := &JoinableQueue[T]{q: q}
	j.init(seg)
	return j, nil
}

func (j *JoinableQueue[T]) init(seg *shm.Segment) {
	initObject(&j.object, j, seg)
	j.gate = gate.New()
}

// joinWords are the words of a JoinableQueue's count segment.
type joinWords struct{ count, gen, sleep *uint32 }

// words returns the count segment's words, or the error of a zero or
// closed JoinableQueue.
func (j *JoinableQueue[T]) words() (joinWords, error) {
	if j == nil || j.q == nil {
		return joinWords{}, kJoinable.zero
	}
	p := j.base.Load()
	if p == nil {
		return joinWords{}, kJoinable.closed
	}
	mem := unsafe.Slice(p, 128)
	return joinWords{futex.Word(mem, offUnfinished), futex.Word(mem, offJoinGen), futex.Word(mem, offJoinSleep)}, nil
}

// zeroed bumps the generation when the count reached zero and wakes the
// joiners, if any may sleep (they count themselves before they look at
// the generation: seq-cst atomics make one side see the other).
func (w joinWords) zeroed() {
	atomic.AddUint32(w.gen, 1)
	if atomic.LoadUint32(w.sleep) != 0 {
		futex.WakeAll(w.gen)
	}
}

// Put adds v, waiting while the queue is full as Queue's Put; it counts
// one unfinished task once it succeeds.
func (j *JoinableQueue[T]) Put(ctx context.Context, v T) error {
	if ctx == nil {
		return errNilContext
	}
	return j.put(func() error { return j.q.Put(ctx, v) })
}

// TryPut adds v if the queue is not full (ErrFull if it is), as Queue's
// TryPut; it counts one unfinished task once it succeeds.
func (j *JoinableQueue[T]) TryPut(v T) error {
	return j.put(func() error { return j.q.TryPut(v) })
}

// put counts the task before the item is visible, so that a consumer's
// TaskDone can never find the count short, and takes it back if the
// item did not go in.
func (j *JoinableQueue[T]) put(store func() error) error {
	w, err := j.words()
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(j)
	for {
		c := atomic.LoadUint32(w.count)
		if c == 1<<32-1 {
			return errorf("%w: a JoinableQueue counts at most 2^32-1 unfinished tasks", ErrFull)
		}
		if atomic.CompareAndSwapUint32(w.count, c, c+1) {
			break
		}
	}
	if err := store(); err != nil {
		w.finish()
		return err
	}
	return nil
}

// finish takes one task off the count, which must be above zero, and
// wakes the joiners if it reached zero.
func (w joinWords) finish() {
	if atomic.AddUint32(w.count, ^uint32(0)) == 0 {
		w.zeroed()
	}
}

// Get removes and returns the oldest item, as Queue's Get. The item's
// task stays unfinished until some process calls TaskDone.
func (j *JoinableQueue[T]) Get(ctx context.Context) (T, error) {
	if j == nil || j.q == nil {
		var zero T
		return zero, kJoinable.zero
	}
	return j.q.Get(ctx)
}

// TryGet removes and returns the oldest item if there is one (ErrEmpty if
// not), as Queue's TryGet.
func (j *JoinableQueue[T]) TryGet() (T, error) {
	if j == nil || j.q == nil {
		var zero T
		return zero, kJoinable.zero
	}
	return j.q.TryGet()
}

// TaskDone says that one item taken with Get is finished, in whichever
// process took it. It returns an error, changing nothing, when every item
// put already had its TaskDone (Python's ValueError).
func (j *JoinableQueue[T]) TaskDone() error {
	w, err := j.words()
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(j)
	for {
		c := atomic.LoadUint32(w.count)
		if c == 0 {
			return errTaskDone
		}
		if atomic.CompareAndSwapUint32(w.count, c, c-1) {
			if c == 1 {
				w.zeroed()
			}
			return nil
		}
	}
}

// Join waits until every item put has had its TaskDone (nil at once if
// none is unfinished), ctx ends (ctx's error), or the JoinableQueue is
// closed in this process (an error matching ErrClosed). A task whose
// consumer died before TaskDone is never finished: see the type's doc.
func (j *JoinableQueue[T]) Join(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	w, err := j.words()
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(j)
	g := atomic.LoadUint32(w.gen)
	if atomic.LoadUint32(w.count) == 0 {
		return nil
	}
	// Every joiner of this process waits for the same thing: the one
	// through the gate sleeps; the next finds the generation moved on.
	return j.wait(ctx, kJoinable, j.gate, func(wctx context.Context) error {
		atomic.AddUint32(w.sleep, 1)
		defer atomic.AddUint32(w.sleep, ^uint32(0))
		for atomic.LoadUint32(w.gen) == g && atomic.LoadUint32(w.count) != 0 {
			if err := futex.WaitCtx(wctx, w.gen, g); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

// Unfinished returns the number of items put that have not had their
// TaskDone yet, in every process, as of the call (Python keeps it private;
// it helps a supervisor see what Join waits for).
func (j *JoinableQueue[T]) Unfinished() int {
	w, err := j.words()
	if err != nil {
		panic(err)
	}
	n := int(atomic.LoadUint32(w.count))
	runtime.KeepAlive(j)
	return n
}

// Len returns the number of items in the queue, as Queue's Len.
func (j *JoinableQueue[T]) Len() int { return j.queue().Len() }

// Full reports whether the queue holds maxsize items, as Queue's Full.
func (j *JoinableQueue[T]) Full() bool { return j.queue().Full() }

// Empty reports whether the queue holds no item, as Queue's Empty.
func (j *JoinableQueue[T]) Empty() bool { return j.queue().Empty() }

func (j *JoinableQueue[T]) queue() *Queue[T] {
	if j == nil || j.q == nil {
		panic(kJoinable.zero)
	}
	return j.q
}

// Close closes this process's handles of the queue and of its count: its
// blocked Put, Get and Join return an error matching ErrClosed, later
// calls fail with it. Other processes' handles, the items and the count
// are not affected. Closing again does nothing and returns nil.
func (j *JoinableQueue[T]) Close() error {
	if j == nil || j.q == nil {
		return kJoinable.zero
	}
	return errors.Join(j.q.Close(), j.close(kJoinable))
}

// exportHandle is how a JoinableQueue travels: the ring's descriptor and
// the count's. Called by the package.
func (j *JoinableQueue[T]) exportHandle() (handle.Desc, error) {
	if j == nil || j.q == nil {
		return handle.Desc{}, kJoinable.zero
	}
	qd, err := j.q.exportHandle()
	if err != nil {
		return handle.Desc{}, err
	}
	cd, err := exportSeg(&j.object, kJoinable, "JoinableQueue")
	if err != nil {
		handleCloseFds(qd) // the export's duplicates are ours
		return handle.Desc{}, err
	}
	return handle.Desc{Kind: "JoinableQueue", Meta: qd.Meta, Fds: []int{qd.Fds[0], cd.Fds[0]}}, nil
}

// importHandle makes j the JoinableQueue described by d; called by the package.
func (j *JoinableQueue[T]) importHandle(d handle.Desc) error {
	want := wire.TypeName(reflect.TypeFor[T]())
	if d.Kind != "JoinableQueue" || len(d.Fds) != 2 || string(d.Meta) != want {
		handleCloseFds(d)
		return errorf("a shared %s of %s arrived where a JoinableQueue of %s was expected", d.Kind, d.Meta, want)
	}
	seg, err := shm.Open(d.Fds[1])
	if err != nil {
		handleCloseFds(handle.Desc{Fds: d.Fds[:1]})
		return err
	}
	if seg.Size() < 128 {
		seg.Close()
		handleCloseFds(handle.Desc{Fds: d.Fds[:1]})
		return errorf("%w: a JoinableQueue's count segment", ErrCorrupt)
	}
	q := new(Queue[T])
	if err := q.importHandle(handle.Desc{Kind: "Queue", Meta: d.Meta, Fds: d.Fds[:1]}); err != nil {
		seg.Close()
		return err
	}
	j.q = q
	j.init(seg)
	return nil
}
