//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"sync/atomic"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/ring"
	"github.com/multiproc-go/multiproc/internal/wire"
)

// Queue is a first-in first-out queue of T shared between processes,
// Python's multiprocessing.Queue: any number of processes may Put and
// Get. Messages live in one shared-memory ring (a memfd), so a Put costs a
// copy, not a system call, unless a reader sleeps.
//
// A Put waits only when the queue holds maxsize messages; otherwise it
// stores the message and returns at once — the ring grows as needed, so
// a process can Put a 64 MiB message and exit before anyone reads it
// (Python's queue-join deadlock does not exist here). Messages from one
// producer arrive in the order it put them. A message whose Put returned
// is delivered exactly once while any process holds the queue; a process
// killed in the middle of a Put or Get does not wedge the queue (its
// half-written message is simply not there).
//
// Values are copied: T is encoded with the package's codec (the rules of
// Conn.Send). A *Queue reaches a child as a Func argument or an exported
// field of one (as Value does) and is the same queue there. A Queue may
// be used from many goroutines; blocked ones hold no extra OS threads.
//
// Only NewQueue makes a Queue: every method of a zero Queue fails with an
// error matching ErrNotInitialized (Len, Full and Empty, which return no
// error, panic with it: a zero Queue is a programming error), as every
// method but Close does with ErrClosed after Close — but Len, Full and
// Empty answer after Close as for an empty queue (0, false, true), as
// Python's qsize does not raise after close either. A Put of a message that cannot fit even in the largest
// ring fails with ErrTooLarge; a ring another process scribbled on, with
// ErrCorrupt.
//
// A Queue must not be copied after first use (go vet reports copies).
type Queue[T any] struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	r     *ring.Ring
	codec *wire.Codec[T]
	// One spare encoding buffer and value, taken and given back with an
	// atomic swap each: cheaper than a sync.Pool, and the value spares Put
	// and Get an allocation each (the codec keeps a *T it is given from
	// living on the stack). They travel together, as every atomic
	// read-modify-write is a fence that waits for the stores to the ring
	// before it. Goroutines that find the spare taken allocate.
	spare atomic.Pointer[queueSpare[T]]
}

// NewQueue makes a queue of at most maxsize messages (maxsize <= 0:
// bounded only by memory). It fails if T cannot be encoded.
func NewQueue[T any](maxsize int) (*Queue[T], error) {
	if err := checkCreate("NewQueue"); err != nil {
		return nil, err
	}
	codec, err := wire.NewCodec[T]()
	if err != nil {
		return nil, err
	}
	r, err := ring.Create(maxsize, 0)
	if err != nil {
		return nil, own(err)
	}
	return newQueue(r, codec), nil
}

func newQueue[T any](r *ring.Ring, codec *wire.Codec[T]) *Queue[T] {
	q := &Queue[T]{r: r, codec: codec}
	runtime.AddCleanup(q, func(r *ring.Ring) { r.Close() }, r)
	return q
}

// queueSpare is a Queue's spare encoding buffer and value.
type queueSpare[T any] struct {
	buf []byte
	v   T
}

// take returns the spare, or a new one if another goroutine has it.
func (q *Queue[T]) take() *queueSpare[T] {
	if s := q.spare.Swap(nil); s != nil {
		return s
	}
	return &queueSpare[T]{buf: make([]byte, 0, 256)}
}

// give zeroes s's value (so that it keeps nothing alive) and gives s back,
// unless its buffer grew large (a big message's buffer is not kept alive
// for the small ones).
func (q *Queue[T]) give(s *queueSpare[T]) {
	var zero T
	s.v = zero
	if cap(s.buf) <= 64<<10 {
		q.spare.CompareAndSwap(nil, s)
	}
}

// queueErr maps the ring's errors to the package's sentinels; size is
// the encoded message's (Put), or -1.
func queueErr(err error, full bool, size int) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ring.ErrClosed):
		return kQueue.closed
	case errors.Is(err, ring.ErrTooLarge):
		return errorf("%w: a %d-byte encoded message does not fit in a Queue", ErrTooLarge, size)
	case errors.Is(err, ring.ErrCorrupt):
		return errorf("%w: a Queue's ring", ErrCorrupt)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		if full {
			return errorf("%w: %w", ErrFull, err)
		}
		return errorf("%w: %w", ErrEmpty, err)
	}
	return own(err)
}

// Put adds v to the queue, waiting while it is full until ctx is done
// (then it returns an error matching both ErrFull and ctx.Err(), and v was
// not added).
func (q *Queue[T]) Put(ctx context.Context, v T) error {
	if ctx == nil {
		return errNilContext
	}
	return q.put(v, func(b []byte) error { return q.r.Put(ctx, b) })
}

// TryPut adds v if the queue is not full; ErrFull if it is.
func (q *Queue[T]) TryPut(v T) error {
	return q.put(v, func(b []byte) error { return q.r.TryPut(b) })
}

// put encodes v and stores it with store. v is encoded from the Queue's
// spare value: the codec takes a *T, which would move a local to the heap.
func (q *Queue[T]) put(v T, store func([]byte) error) error {
	if q == nil || q.r == nil {
		return kQueue.zero
	}
	s := q.take()
	s.v = v
	out, err := q.codec.Append(s.buf[:0], &s.v)
	if err != nil {
		q.give(s)
		return err
	}
	s.buf = out
	err = store(out)
	q.give(s)
	runtime.KeepAlive(q)
	return queueErr(err, true, len(out))
}

// Get removes and returns the oldest message, waiting while the queue is
// empty until ctx is done (then it returns an error matching both ErrEmpty
// and ctx.Err()).
func (q *Queue[T]) Get(ctx context.Context) (T, error) {
	if ctx == nil {
		var zero T
		return zero, errNilContext
	}
	return q.get(func(dst []byte) ([]byte, error) { return q.r.Get(ctx, dst) })
}

// TryGet removes and returns the oldest message if there is one; ErrEmpty
// if not.
func (q *Queue[T]) TryGet() (T, error) {
	return q.get(func(dst []byte) ([]byte, error) { return q.r.TryGet(dst) })
}

// get takes one message with take and decodes it.
func (q *Queue[T]) get(take func(dst []byte) ([]byte, error)) (T, error) {
	var v T
	if q == nil || q.r == nil {
		return v, kQueue.zero
	}
	s := q.take()
	msg, err := take(s.buf[:0])
	runtime.KeepAlive(q)
	if err != nil {
		q.give(s)
		return v, queueErr(err, false, -1)
	}
	s.buf = msg
	err = q.codec.Decode(msg, &s.v)
	v = s.v
	q.give(s)
	return v, err
}

// Len returns the number of messages in the queue, exactly, as of the call
// (Python's qsize). Other processes may change it at once. After Close it
// returns 0 (it panics on a zero Queue).
func (q *Queue[T]) Len() int {
	if q == nil || q.r == nil {
		panic(kQueue.zero)
	}
	n := q.r.Len() // 0 once closed
	runtime.KeepAlive(q)
	return n
}

// Full reports whether the queue holds maxsize messages; false after
// Close.
func (q *Queue[T]) Full() bool {
	if q == nil || q.r == nil {
		panic(kQueue.zero)
	}
	ok := q.r.Full() // false once closed
	runtime.KeepAlive(q)
	return ok
}

// Empty reports whether the queue holds no message; true after Close.
func (q *Queue[T]) Empty() bool {
	if q == nil || q.r == nil {
		panic(kQueue.zero)
	}
	ok := q.r.Empty() // true once closed
	runtime.KeepAlive(q)
	return ok
}

// Close closes this process's handle: its blocked calls return and later
// calls fail with ErrClosed. Other processes' handles, and the messages,
// are not affected; the memory is freed when the last holder closes or
// exits. Closing again does nothing and returns nil; on a zero Queue,
// Close returns an error matching ErrNotInitialized.
func (q *Queue[T]) Close() error {
	if q == nil || q.r == nil {
		return kQueue.zero
	}
	return q.r.Close()
}

// exportHandle is how a Queue travels to another process; called by the package.
func (q *Queue[T]) exportHandle() (handle.Desc, error) {
	if q == nil || q.r == nil {
		return handle.Desc{}, kQueue.zero
	}
	var fd int
	err := q.r.WithFd(func(f int) (err error) { fd, err = handle.Dup(f); return err })
	if errors.Is(err, ring.ErrClosed) {
		return handle.Desc{}, errorf("%w: passing a closed Queue", ErrClosed)
	}
	if err != nil {
		return handle.Desc{}, errorf("passing a Queue: %w", err)
	}
	return handle.Desc{Kind: "Queue", Meta: []byte(wire.TypeName(reflect.TypeFor[T]())), Fds: []int{fd}}, nil
}

// importHandle makes q the Queue described by d; called by the package.
func (q *Queue[T]) importHandle(d handle.Desc) error {
	want := wire.TypeName(reflect.TypeFor[T]())
	if d.Kind != "Queue" || len(d.Fds) != 1 || string(d.Meta) != want {
		handleCloseFds(d)
		return errorf("a shared %s of %s arrived where a Queue of %s was expected", d.Kind, d.Meta, want)
	}
	codec, err := wire.NewCodec[T]()
	if err != nil {
		handleCloseFds(d)
		return err
	}
	r, err := ring.Open(d.Fds[0])
	if err != nil {
		return queueErr(err, false, 0)
	}
	q.r, q.codec = r, codec
	runtime.AddCleanup(q, func(r *ring.Ring) { r.Close() }, r)
	return nil
}
