//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"errors"
	"iter"
	"reflect"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/spawn"
)

var (
	errNilExecutor = newError("nil Executor")
	errTooManyFds  = newError("a task carries too many shared objects' descriptors")
)

// isNil reports a nil Executor, or an interface holding a nil pointer.
func isNil(e Executor) bool {
	if e == nil {
		return true
	}
	v := reflect.ValueOf(e)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// resultValue decodes one item's result.
func resultValue[R any](r Result) (R, error) {
	var v R
	if r.Err != nil {
		return v, r.Err
	}
	err := decodeValue(r.Value, &v)
	return v, err
}

// newTask builds a task of f over args, each with its shared objects.
func (f *Func[A, R]) newTask(args []A) (*Task, error) {
	t := &Task{Func: f.name, Args: make([][]byte, len(args)), table: new(handle.Table)}
	for i := range args {
		arg, entries, err := encodeArg(&args[i], t.table)
		if err != nil {
			t.release()
			return nil, err
		}
		t.Args[i] = arg
		if entries != nil {
			if t.entries == nil {
				t.entries = make([][]handle.Entry, len(args))
			}
			t.entries[i] = entries
		}
	}
	if n := t.table.NumFds(); n > spawn.MaxFds {
		t.release()
		return nil, errorf("%w: %d, at most %d", errTooManyFds, n, spawn.MaxFds)
	}
	return t, nil
}

// newBatch builds a batch task: args as one encoded []A.
func (f *Func[A, R]) newBatch(args []A) (*Task, error) {
	b, err := encodeValue(&args)
	if err != nil {
		return nil, err
	}
	return &Task{Func: f.name, Args: [][]byte{b}, Batch: true}, nil
}

// submit hands t to e and calls done with its outcome once; t's
// descriptors are released after done.
func submit(ctx context.Context, e Executor, t *Task, done func([]Result, error)) {
	e.Submit(ctx, t, func(rs []Result, err error) {
		t.release()
		if err == nil && len(rs) != max(len(t.Args), 1) {
			err = errorf("an executor answered %d results for a task of %d items", len(rs), len(t.Args))
		}
		done(rs, err)
	})
}

// async submits f(arg) under a ctx of its own, derived from ctx, which
// the AsyncResult's Cancel ends.
// waited: the caller Gets the result at once (Apply).
func (f *Func[A, R]) async(ctx context.Context, e Executor, arg A, waited bool) *AsyncResult[R] {
	tc := newTaskCtx(ctx)
	tc.waited = waited
	ctx = tc
	r := newAsync[R](tc.cancel)
	r.tc = tc
	var zero R
	if isNil(e) {
		r.set(zero, errNilExecutor)
		return r
	}
	if err := ctx.Err(); err != nil {
		r.set(zero, err) // never dispatched: a task whose caller gave up must not run
		return r
	}
	t, err := f.newTask([]A{arg})
	if err != nil {
		r.set(zero, err)
		return r
	}
	submit(ctx, e, t, func(rs []Result, err error) {
		if err != nil {
			r.set(zero, err)
			return
		}
		r.set(resultValue[R](rs[0]))
	})
	return r
}

// ApplyAsync queues f(arg) on the executor and returns at once; Get the
// result from the AsyncResult, or Cancel the task. arg is encoded now:
// later changes to it do not reach the task, and shared objects in it
// (which only a Pool can pass) reach the worker as the same objects, even
// if the caller closes its own handles before the task starts.
func (f *Func[A, R]) ApplyAsync(e Executor, arg A) *AsyncResult[R] {
	return f.async(context.Background(), e, arg, false)
}

// Apply runs f(arg) on a worker of the executor and returns its result. If
// ctx is done already, the task is never sent; if ctx ends first, Apply
// returns ctx.Err() at once and the task is dropped (or, if it is
// running, stopped: a pool kills and replaces its worker).
func (f *Func[A, R]) Apply(ctx context.Context, e Executor, arg A) (R, error) {
	if ctx == nil {
		var zero R
		return zero, errNilContext
	}
	return f.async(ctx, e, arg, true).Get(ctx)
}

// chunkSize is Python's default for map: about len/(4×workers), rounded up.
func chunkSize(n, workers int) int {
	if workers < 1 {
		workers = 1
	}
	c, extra := n/(workers*4), n%(workers*4)
	if extra > 0 {
		c++
	}
	return max(c, 1)
}

// mapChunk is the outcome of one task of a Map: the items [start, start+n).
type mapChunk struct {
	start, n int
	batch    bool
	rs       []Result
	err      error
}

// taskLimiter is an Executor whose tasks should stay under a size (a
// remote one, whose messages have a maximum): Map splits a chunk whose
// encoded arguments exceed MaxTaskBytes() in halves, down to one item,
// which goes whatever its size. 0 or less: no limit.
type taskLimiter interface{ MaxTaskBytes() int }

// argBytes is the size of a task's encoded arguments.
func (t *Task) argBytes() int {
	n := 0
	for _, a := range t.Args {
		n += len(a)
	}
	return n
}

// chunks encodes args[start:end] as tasks of at most size items: batch
// tasks when A holds no shared objects; otherwise per-item tasks, split
// further where one would carry more descriptors than a message can, or
// more than limit bytes of arguments (when limit > 0).
func (f *Func[A, R]) chunks(args []A, start, end int, batch bool, limit int, emit func(t *Task, start, n int)) error {
	var t *Task
	var err error
	if batch {
		t, err = f.newBatch(args[start:end])
	} else {
		t, err = f.newTask(args[start:end])
	}
	over := err == nil && limit > 0 && end-start > 1 && t.argBytes() > limit
	if over || err != nil && !batch && end-start > 1 && errors.Is(err, errTooManyFds) {
		if over {
			t.release()
		}
		mid := start + (end-start)/2
		if err := f.chunks(args, start, mid, batch, limit, emit); err != nil {
			return err
		}
		return f.chunks(args, mid, end, batch, limit, emit)
	}
	if err != nil {
		return err
	}
	emit(t, start, end-start)
	return nil
}

// Map runs f on every element of args on the executor's workers and
// returns the results in input order. args is sent in chunks of about
// len(args)/(4×Workers()), like Python's map. If any item fails, Map
// returns the error of the first failing item in input order, naming its
// index. If ctx ends first, Map returns ctx.Err() promptly: queued chunks
// are dropped and running ones stopped.
func (f *Func[A, R]) Map(ctx context.Context, e Executor, args []A) ([]R, error) {
	if ctx == nil {
		return nil, errNilContext
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	collect, err := f.startMap(ctx, e, args)
	if err != nil {
		return nil, err
	}
	return collect()
}

// MapAsync is Map that returns at once, Python's map_async: Get the
// results, in input order, from the AsyncResult, or Cancel the whole map
// (queued chunks never run, running ones are stopped as Cancel says). args
// are encoded before MapAsync returns: later changes to them do not reach
// the tasks. An error Map would return comes from Get.
func (f *Func[A, R]) MapAsync(e Executor, args []A) *AsyncResult[[]R] {
	ctx := newTaskCtx(context.Background())
	ctx.cancelOnly = false // chunks wait in the pool's queue, as Map's
	r := newAsync[[]R](ctx.cancel)
	collect, err := f.startMap(ctx, e, args)
	if err != nil {
		r.set(nil, err)
		return r
	}
	go func() { r.set(collect()) }()
	return r
}

// startMap encodes args and submits their chunks under ctx, which the
// caller ends once it is done with the map; collect gathers the results.
func (f *Func[A, R]) startMap(ctx context.Context, e Executor, args []A) (collect func() ([]R, error), err error) {
	if isNil(e) {
		return nil, errNilExecutor
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size := chunkSize(len(args), e.Workers())
	limit := 0
	if l, ok := e.(taskLimiter); ok {
		limit = l.MaxTaskBytes()
	}
	// Arguments with no shared objects in them go as one []A per chunk.
	batch := !handle.MayHold(reflect.TypeFor[A]())
	var tasks []*Task
	var chunks []*mapChunk
	for start := 0; start < len(args); start += size {
		end := min(start+size, len(args))
		err := f.chunks(args, start, end, batch, limit, func(t *Task, start, n int) {
			tasks = append(tasks, t)
			chunks = append(chunks, &mapChunk{start: start, n: n, batch: batch})
		})
		if err != nil {
			for _, t := range tasks {
				t.release()
			}
			return nil, errorf("Map item in [%d, %d): %w", start, end, err)
		}
	}
	out := make(chan *mapChunk, len(chunks))
	for i, t := range tasks {
		c := chunks[i]
		submit(ctx, e, t, func(rs []Result, err error) {
			c.rs, c.err = rs, err
			out <- c
		})
	}
	return func() ([]R, error) { return collectMap[R](ctx, len(args), chunks, out) }, nil
}

// collectMap gathers the outcome of a map's chunks as they come on out.
func collectMap[R any](ctx context.Context, n int, chunks []*mapChunk, out <-chan *mapChunk) ([]R, error) {
	results := make([]R, n)
	firstErr, firstIdx := error(nil), n
	fail := func(i int, err error) {
		if i < firstIdx {
			firstErr, firstIdx = err, i
		}
	}
	for range chunks {
		var c *mapChunk
		select {
		case c = <-out:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err != nil {
			fail(c.start, c.err)
			continue
		}
		if c.batch {
			if c.rs[0].Err != nil {
				fail(c.start, c.rs[0].Err)
				continue
			}
			vals, errs, err := parseBatch[R](c.rs[0].Value, c.n)
			if err != nil {
				fail(c.start, err)
				continue
			}
			copy(results[c.start:], vals)
			for i, e := range errs {
				if e != nil {
					fail(c.start+i, e)
					break
				}
			}
			continue
		}
		for i, r := range c.rs {
			v, err := resultValue[R](r)
			if err != nil {
				fail(c.start+i, err)
			}
			results[c.start+i] = v
		}
	}
	if firstErr != nil {
		if errors.Is(firstErr, context.Canceled) && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errorf("Map item %d: %w", firstIdx, firstErr)
	}
	return results, nil
}

// imap is IMap and IMapUnordered: at most 2×Workers() items in flight, so
// an endless sequence works.
func (f *Func[A, R]) imap(ctx context.Context, e Executor, args iter.Seq[A], ordered bool) iter.Seq2[R, error] {
	if ctx == nil {
		return func(yield func(R, error) bool) {
			var zero R
			yield(zero, errNilContext)
		}
	}
	return func(yield func(R, error) bool) {
		var zero R
		if isNil(e) {
			yield(zero, errNilExecutor)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(zero, err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type res struct {
			seq int
			val R
			err error
		}
		window := 2 * max(e.Workers(), 1)
		done := make(chan res, window)
		next, stop := iter.Pull(args)
		defer stop()
		inFlight, sent, exhausted := 0, 0, false
		held := map[int]res{} // ordered: results that arrived early
		want := 0
		for {
			for !exhausted && inFlight < window {
				a, ok := next()
				if !ok {
					exhausted = true
					break
				}
				seq := sent
				sent++
				inFlight++
				t, err := f.newTask([]A{a})
				if err != nil {
					done <- res{seq: seq, err: err}
					continue
				}
				submit(ctx, e, t, func(rs []Result, err error) {
					r := res{seq: seq, err: err}
					if err == nil {
						r.val, r.err = resultValue[R](rs[0])
					}
					done <- r
				})
			}
			if inFlight == 0 {
				return
			}
			var r res
			select {
			case r = <-done:
			case <-ctx.Done():
				yield(zero, ctx.Err())
				return
			}
			inFlight--
			if !ordered {
				if !yield(r.val, r.err) {
					return
				}
				continue
			}
			held[r.seq] = r
			for {
				h, ok := held[want]
				if !ok {
					break
				}
				delete(held, want)
				want++
				if !yield(h.val, h.err) {
					return
				}
			}
		}
	}
}

// IMap runs f on each element of args on the executor and yields the
// results in input order as they become available, with each item's own
// error (iteration goes on after a failed item). At most 2×Workers()
// items are in flight, so args may be endless. Stopping the loop early,
// or ctx ending (one final ctx.Err() is yielded), drops the remaining
// work.
func (f *Func[A, R]) IMap(ctx context.Context, e Executor, args iter.Seq[A]) iter.Seq2[R, error] {
	return f.imap(ctx, e, args, true)
}

// IMapUnordered is IMap yielding results in the order they complete.
func (f *Func[A, R]) IMapUnordered(ctx context.Context, e Executor, args iter.Seq[A]) iter.Seq2[R, error] {
	return f.imap(ctx, e, args, false)
}
