package multiproc

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
	"github.com/multiproc-go/multiproc/internal/spawn"
)

// PoolOptions configure a Pool. The zero value is a pool of
// runtime.NumCPU() workers with no limits.
type PoolOptions struct {
	// Processes is the number of worker processes; 0 means runtime.NumCPU().
	Processes int
	// MaxTasksPerChild makes a worker exit and be replaced after that many
	// tasks; 0 means never. Each Apply or ApplyAsync is one task; Map sends
	// its input in chunks and each chunk is one task; IMap and
	// IMapUnordered send one task per item.
	MaxTasksPerChild int
	// TaskTimeout bounds each task; 0 means none. A task past it fails with
	// an error matching context.DeadlineExceeded, and its worker is killed
	// and replaced. For Map the bound is per chunk.
	TaskTimeout time.Duration
	// Initializer runs once in each new worker before its first task (its
	// type registered with RegisterRunner). If it fails, NewPool returns
	// its error; if it fails in a replacement worker later, the pool stops
	// and every pending and later call returns that error, once per call,
	// with no respawning.
	Initializer Runner
}

// Pool is a set of long-lived worker processes that run registered
// functions, Python's multiprocessing.Pool. Workers are started by NewPool
// and replaced when they die, reach MaxTasksPerChild, or overrun
// TaskTimeout. The parent knows which task each worker runs, so a worker
// that dies fails exactly its own task, with an error matching
// ErrWorkerDied, and nothing ever hangs.
//
// Lifecycle: Close refuses new work and lets queued work finish; Join,
// after Close, waits for the workers to exit; Terminate kills the workers
// at once and fails every pending task. A Pool's methods are safe for
// concurrent use. Workers are daemons in a process group of their own:
// they die with the parent, and the terminal's Ctrl-C reaches only the
// parent, which decides (a cancelled context stops the work).
type Pool struct {
	opts PoolOptions
	n    int
	init *task // the workers' setup task

	mu      sync.Mutex
	pending []*poolTask
	closed  bool
	broken  error // an Initializer failed in a replacement worker

	wake    chan struct{} // poked when pending grows
	closing chan struct{} // closed by Close or Terminate
	term    chan struct{} // closed by Terminate
	exited  chan struct{} // closed when every slot has returned
	slots   sync.WaitGroup

	workerSeq atomic.Int64
}

// poolTask is one task of the queue: a function and its items (one for
// Apply, a chunk for Map), and where the results go.
type poolTask struct {
	ctx     context.Context
	t       *task
	deliver func(rs []itemResult, err error) // called exactly once
}

// NewPool starts opts.Processes workers and returns once each has started
// and run the Initializer. If a worker cannot start or the Initializer
// fails, the workers are stopped and the error returned.
func NewPool(opts PoolOptions) (*Pool, error) {
	n := opts.Processes
	if n == 0 {
		n = runtime.NumCPU()
	}
	if n < 0 {
		return nil, fmt.Errorf("multiproc: PoolOptions.Processes %d is negative", n)
	}
	if opts.MaxTasksPerChild < 0 || opts.TaskTimeout < 0 {
		return nil, errors.New("multiproc: PoolOptions.MaxTasksPerChild and TaskTimeout must not be negative")
	}
	p := &Pool{
		opts:    opts,
		n:       n,
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		term:    make(chan struct{}),
		exited:  make(chan struct{}),
	}
	p.init = &task{kind: kindWorker, daemon: true, name: "PoolWorker"}
	if opts.Initializer != nil {
		proc := NewProcess(opts.Initializer)
		arg, entries, err := proc.encode()
		if err != nil {
			return nil, err
		}
		p.init.fn = proc.fn
		p.init.items = []taskItem{{entries, arg}}
	}
	// Start every worker at once; each slot then owns its worker.
	workers := make([]*worker, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			workers[i], errs[i] = p.startWorker()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, w := range workers {
			if w != nil {
				w.kill()
			}
		}
		return nil, err
	}
	for _, w := range workers {
		p.slots.Add(1)
		go p.slot(w)
	}
	go func() { p.slots.Wait(); close(p.exited) }()
	return p, nil
}

// worker is one worker process, as a slot sees it.
type worker struct {
	c       *childProc
	name    string
	tally   *shm.Segment      // word 0: tasks the worker has taken off its socket
	sent    uint32            // tasks sent to it
	results chan []itemResult // results, one message per task
	done    chan struct{}     // closed once reaped
	code    int
	tasks   int
}

// startWorker spawns a worker and waits for its Initializer's outcome.
func (p *Pool) startWorker() (*worker, error) {
	name := fmt.Sprintf("PoolWorker-%d", p.workerSeq.Add(1))
	tally, err := shm.Create("tally", 64)
	if err != nil {
		return nil, err
	}
	t := *p.init
	t.name = name
	t.tally, t.tallyFd = true, tally.Fd()
	c, err := spawnChild(name, true, true, &t)
	if err != nil {
		tally.Close()
		return nil, err
	}
	w := &worker{c: c, name: name, tally: tally, results: make(chan []itemResult, 1), done: make(chan struct{})}
	go w.read()
	runtime.AddCleanup(w, func(s *shm.Segment) { s.Close() }, tally)
	go func() { w.code = c.reap(); close(w.done) }()
	select {
	case rs, ok := <-w.results:
		if ok && len(rs) == 1 && rs[0].status == resultOK {
			return w, nil
		}
		w.kill()
		if ok && len(rs) == 1 {
			return nil, fmt.Errorf("multiproc: pool Initializer failed in %s: %w", name, &RemoteError{Text: string(rs[0].data), Panic: rs[0].status == resultPanic})
		}
		return nil, fmt.Errorf("multiproc: pool worker %s died while starting: %w", name, w.exitError())
	case <-w.done:
		return nil, fmt.Errorf("multiproc: pool worker %s died while starting: %w", name, w.exitError())
	}
}

// read forwards the worker's result messages until its control channel ends.
func (w *worker) read() {
	defer close(w.results)
	for {
		typ, payload, fds, err := w.c.ctl.Recv()
		unixCloseAll(fds)
		if err != nil {
			return
		}
		if typ != spawn.MsgResult {
			continue
		}
		rs, err := parseResults(payload)
		if err != nil {
			w.kill()
			return
		}
		w.results <- rs
	}
}

func (w *worker) kill() { w.c.cmd.Process.Kill() }

// sawLast reports whether the worker took the last task sent to it off
// its socket (its tally counts the setup task too).
func (w *worker) sawLast() bool {
	return atomic.LoadUint32(futex.Word(w.tally.Bytes(), 0)) >= w.sent
}

// exitError waits for the worker to be reaped and describes how it ended.
func (w *worker) exitError() error {
	<-w.done
	return &ExitError{Name: w.name, Pid: w.c.pid, ExitCode: w.code}
}

// stop asks an idle worker to exit, and kills it if it does not soon.
func (w *worker) stop() {
	w.c.ctl.Send(spawn.MsgExit, nil, nil)
	select {
	case <-w.done:
	case <-time.After(2 * time.Second):
		w.kill()
		<-w.done
	}
}

// slot runs one worker at a time: it takes tasks from the queue, and
// replaces its worker whenever the worker dies, overruns a task, reaches
// MaxTasksPerChild, or is given up on.
func (p *Pool) slot(w *worker) {
	defer p.slots.Done()
	for {
		if w == nil {
			if p.finished() {
				return
			}
			var err error
			w, err = p.startWorker()
			if err != nil {
				p.breakPool(err)
				return
			}
		}
		pt, ok := p.next(w)
		if !ok {
			// Closed and drained, or terminated, or the worker died idle.
			select {
			case <-w.done:
				if !p.finished() {
					w = nil // died while idle: replace it, silently
					continue
				}
				return
			default:
			}
			select {
			case <-p.term:
				w.kill()
				<-w.done
			default:
				w.stop()
			}
			return
		}
		if !p.run(w, pt) {
			w.kill()
			<-w.done
			w = nil
			continue
		}
		if w.tasks++; p.opts.MaxTasksPerChild > 0 && w.tasks >= p.opts.MaxTasksPerChild {
			w.stop()
			w = nil
		}
	}
}

// finished reports whether the slots should end: terminated, broken, or
// closed with nothing left to do.
func (p *Pool) finished() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.term:
		return true
	default:
	}
	return p.broken != nil || (p.closed && len(p.pending) == 0)
}

// next waits for a task for w. It returns false when the pool is done or
// terminated, or when w died while idle.
func (p *Pool) next(w *worker) (*poolTask, bool) {
	for {
		p.mu.Lock()
		for len(p.pending) > 0 {
			pt := p.pending[0]
			p.pending[0] = nil
			p.pending = p.pending[1:]
			if err := pt.ctx.Err(); err != nil {
				// Nobody waits for it any more: skip it.
				p.mu.Unlock()
				pt.deliver(nil, err)
				p.mu.Lock()
				continue
			}
			more := len(p.pending) > 0
			p.mu.Unlock()
			if more {
				p.poke()
			}
			return pt, true
		}
		done := p.closed || p.broken != nil
		p.mu.Unlock()
		if done {
			p.poke() // let the other slots see it too
			return nil, false
		}
		select {
		case <-p.wake:
		case <-p.closing:
		case <-w.done:
			return nil, false
		}
	}
}

func (p *Pool) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run sends pt to w and delivers its outcome. It returns false if w must
// be replaced: it died, overran TaskTimeout, or was abandoned mid-task.
func (p *Pool) run(w *worker, pt *poolTask) bool {
	if w.c.exited() {
		// It died while idle and its slot has not heard yet: the task
		// waits for the replacement.
		p.requeue(pt)
		return false
	}
	w.sent++
	if err := w.c.ctl.Send(spawn.MsgTask, pt.t.append(nil), pt.t.fds()); err != nil {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			// The worker is gone (or going) before it could take the task.
			p.requeue(pt)
			return false
		}
		// Refused before anything was written (too many descriptors).
		w.sent--
		pt.deliver(nil, err)
		return true
	}
	var timeout <-chan time.Time
	if d := p.opts.TaskTimeout; d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case rs, ok := <-w.results:
		if ok {
			if len(rs) != len(pt.t.items) {
				pt.deliver(nil, fmt.Errorf("multiproc: %s answered %d results for %d items", w.name, len(rs), len(pt.t.items)))
				return false
			}
			pt.deliver(rs, nil)
			return true
		}
		// The control socket closed: the worker is dying.
		<-w.done
		if !w.sawLast() {
			p.requeue(pt)
			return false
		}
		pt.deliver(nil, fmt.Errorf("%w: %w (running %s)", ErrWorkerDied, w.exitError(), pt.t.fn))
		return false
	case <-w.done:
		// A result may have come in just before the death.
		select {
		case rs, ok := <-w.results:
			if ok && len(rs) == len(pt.t.items) {
				pt.deliver(rs, nil)
				return false
			}
		default:
		}
		if !w.sawLast() {
			// It died before it took the task off its socket: the task
			// never started, and waits for the replacement.
			p.requeue(pt)
			return false
		}
		pt.deliver(nil, fmt.Errorf("%w: %w (running %s)", ErrWorkerDied, w.exitError(), pt.t.fn))
		return false
	case <-timeout:
		pt.deliver(nil, fmt.Errorf("multiproc: task %s ran past TaskTimeout %v; its worker %s (pid %d) was killed: %w",
			pt.t.fn, p.opts.TaskTimeout, w.name, w.c.pid, context.DeadlineExceeded))
		return false
	case <-pt.ctx.Done():
		// Nobody waits for the result: stop the work rather than let it
		// clog the pool.
		pt.deliver(nil, pt.ctx.Err())
		return false
	case <-p.term:
		pt.deliver(nil, fmt.Errorf("%w: terminated while %s ran", ErrPoolClosed, pt.t.fn))
		return false
	}
}

// submit queues a task, or fails it at once if the pool takes no work.
func (p *Pool) submit(pt *poolTask) {
	p.mu.Lock()
	if p.broken != nil {
		err := p.broken
		p.mu.Unlock()
		pt.deliver(nil, err)
		return
	}
	if p.closed {
		p.mu.Unlock()
		pt.deliver(nil, ErrPoolClosed)
		return
	}
	p.pending = append(p.pending, pt)
	p.mu.Unlock()
	p.poke()
}

// requeue puts a task that no worker has seen back at the head of the queue.
func (p *Pool) requeue(pt *poolTask) {
	p.mu.Lock()
	if p.broken != nil || p.isTerminated() {
		err := p.broken
		p.mu.Unlock()
		if err == nil {
			err = fmt.Errorf("%w: terminated", ErrPoolClosed)
		}
		pt.deliver(nil, err)
		return
	}
	p.pending = append([]*poolTask{pt}, p.pending...)
	p.mu.Unlock()
	p.poke()
}

func (p *Pool) isTerminated() bool {
	select {
	case <-p.term:
		return true
	default:
		return false
	}
}

// breakPool records a failed replacement worker: every pending and later
// task fails with err, and no worker is started again.
func (p *Pool) breakPool(err error) {
	p.mu.Lock()
	if p.broken == nil {
		p.broken = fmt.Errorf("%w: %w", ErrPoolClosed, err)
	}
	pending := p.pending
	p.pending = nil
	broken := p.broken
	p.mu.Unlock()
	for _, pt := range pending {
		pt.deliver(nil, broken)
	}
	p.poke()
}

// Close stops the pool taking new tasks (their calls fail with
// ErrPoolClosed); queued tasks still run, then the workers exit. Calling
// it again does nothing.
func (p *Pool) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.closing)
	}
	p.mu.Unlock()
	p.poke()
	return nil
}

// Join waits until every worker has exited, after Close or Terminate (an
// error before), or until ctx ends (its error; the pool runs on).
func (p *Pool) Join(ctx context.Context) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if !closed {
		return errors.New("multiproc: Pool.Join before Close or Terminate")
	}
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Terminate kills the workers now: every queued and running task fails
// with an error matching ErrPoolClosed, and Terminate returns once the
// workers are reaped.
func (p *Pool) Terminate() error {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	select {
	case <-p.term:
	default:
		close(p.term)
	}
	if first {
		close(p.closing)
	}
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, pt := range pending {
		pt.deliver(nil, fmt.Errorf("%w: terminated", ErrPoolClosed))
	}
	p.poke()
	<-p.exited
	return nil
}

// workerMain is a pool worker's life in the child: run the Initializer,
// then one task after another until told to exit.
func workerMain(ctl *spawn.Ctl, setup *task, tasks <-chan *task, exit <-chan struct{}) int {
	rs := []itemResult{{resultOK, nil}}
	if setup.fn != "" && len(setup.items) == 1 {
		rs = runTask(&task{kind: kindRunner, fn: setup.fn, name: setup.name, items: setup.items})
	}
	if err := ctl.Send(spawn.MsgResult, appendResults(nil, rs), nil); err != nil || rs[0].status != resultOK {
		return 1
	}
	var buf []byte
	for {
		select {
		case t := <-tasks:
			rs := runTask(t)
			buf = appendResults(buf[:0], rs)
			if err := ctl.Send(spawn.MsgResult, buf, nil); err != nil {
				return 1
			}
		case <-exit:
			finishChildren()
			return 0
		case <-child.parentC:
			return 1
		}
	}
}

// AsyncResult is the pending result of ApplyAsync, Python's AsyncResult.
type AsyncResult[R any] struct {
	done chan struct{}
	val  R
	err  error
}

// Get waits for the result: the function's value, its error (a
// *RemoteError), an error matching ErrWorkerDied, context.DeadlineExceeded
// (TaskTimeout) or ErrPoolClosed — or ctx.Err() if ctx ends first, in
// which case the task goes on and Get may be called again.
func (r *AsyncResult[R]) Get(ctx context.Context) (R, error) {
	select {
	case <-r.done:
		return r.val, r.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// Ready reports whether the result has arrived.
func (r *AsyncResult[R]) Ready() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Done returns a channel closed once the result has arrived.
func (r *AsyncResult[R]) Done() <-chan struct{} { return r.done }

// itemValue decodes one item's result.
func itemValue[R any](r itemResult) (R, error) {
	var v R
	switch r.status {
	case resultOK:
		err := decodeValue(r.data, &v)
		return v, err
	default:
		return v, &RemoteError{Text: string(r.data), Panic: r.status == resultPanic}
	}
}

// newTask builds a pool task of f over args, or returns the encoding error.
func (f *Func[A, R]) newTask(args []A) (*task, error) {
	t := &task{kind: kindFunc, fn: f.name, name: f.name, items: make([]taskItem, len(args))}
	for i := range args {
		arg, entries, err := encodeArg(&args[i])
		if err != nil {
			return nil, err
		}
		t.items[i] = taskItem{entries, arg}
	}
	return t, nil
}

// newBatch builds a batch task: args as one encoded []A.
func (f *Func[A, R]) newBatch(args []A) (*task, error) {
	b, err := encodeValue(&args)
	if err != nil {
		return nil, err
	}
	return &task{kind: kindFunc, batch: true, fn: f.name, name: f.name, items: []taskItem{{nil, b}}}, nil
}

func (f *Func[A, R]) async(ctx context.Context, p *Pool, arg A) *AsyncResult[R] {
	r := &AsyncResult[R]{done: make(chan struct{})}
	if p == nil {
		r.err = errors.New("multiproc: nil Pool")
		close(r.done)
		return r
	}
	t, err := f.newTask([]A{arg})
	if err != nil {
		r.err = err
		close(r.done)
		return r
	}
	p.submit(&poolTask{ctx: ctx, t: t, deliver: func(rs []itemResult, err error) {
		if err == nil {
			r.val, r.err = itemValue[R](rs[0])
		} else {
			r.err = err
		}
		close(r.done)
	}})
	return r
}

// ApplyAsync queues f(arg) on the pool and returns at once; Get the
// result from the AsyncResult. arg is encoded now, and shared objects in
// it reach the worker as the same objects.
func (f *Func[A, R]) ApplyAsync(p *Pool, arg A) *AsyncResult[R] {
	return f.async(context.Background(), p, arg)
}

// Apply runs f(arg) on a pool worker and returns its result. If ctx ends
// first, Apply returns ctx.Err() at once and the task is dropped (or, if
// it is running, its worker is killed and replaced).
func (f *Func[A, R]) Apply(ctx context.Context, p *Pool, arg A) (R, error) {
	return f.async(ctx, p, arg).Get(ctx)
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

// Map runs f on every element of args on the pool's workers and returns
// the results in input order. args is sent in chunks of about
// len(args)/(4×Processes), like Python's map. If any item fails, Map
// returns the error of the first failing item in input order, naming its
// index. If ctx ends first, Map returns ctx.Err() promptly: queued chunks
// are dropped and running ones have their workers replaced.
func (f *Func[A, R]) Map(ctx context.Context, p *Pool, args []A) ([]R, error) {
	if p == nil {
		return nil, errors.New("multiproc: nil Pool")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	size := chunkSize(len(args), p.n)
	type chunk struct {
		start int
		rs    []itemResult
		err   error
	}
	nchunks := (len(args) + size - 1) / size
	out := make(chan chunk, nchunks)
	// Arguments with no shared objects in them go as one []A per chunk.
	batch := !handle.MayHold(reflect.TypeFor[A]())
	for start := 0; start < len(args); start += size {
		end := min(start+size, len(args))
		var t *task
		var err error
		if batch {
			t, err = f.newBatch(args[start:end])
		} else {
			t, err = f.newTask(args[start:end])
		}
		if err != nil {
			return nil, fmt.Errorf("multiproc: Map item in [%d, %d): %w", start, end, err)
		}
		p.submit(&poolTask{ctx: ctx, t: t, deliver: func(rs []itemResult, err error) {
			out <- chunk{start, rs, err}
		}})
	}
	results := make([]R, len(args))
	firstErr, firstIdx := error(nil), len(args)
	fail := func(i int, err error) {
		if i < firstIdx {
			firstErr, firstIdx = err, i
		}
	}
	for range nchunks {
		var c chunk
		select {
		case c = <-out:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err != nil {
			fail(c.start, c.err)
			continue
		}
		if batch {
			n := min(size, len(args)-c.start)
			if c.rs[0].status != resultOK {
				fail(c.start, &RemoteError{Text: string(c.rs[0].data)})
				continue
			}
			vals, errs, err := parseBatch[R](c.rs[0].data, n)
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
			v, err := itemValue[R](r)
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
		return nil, fmt.Errorf("multiproc: Map item %d: %w", firstIdx, firstErr)
	}
	return results, nil
}

// imap is IMap and IMapUnordered: at most 2×Processes items in flight, so
// an endless sequence works.
func (f *Func[A, R]) imap(ctx context.Context, p *Pool, args iter.Seq[A], ordered bool) iter.Seq2[R, error] {
	return func(yield func(R, error) bool) {
		if p == nil {
			var zero R
			yield(zero, errors.New("multiproc: nil Pool"))
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type res struct {
			seq int
			val R
			err error
		}
		window := 2 * p.n
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
				p.submit(&poolTask{ctx: ctx, t: t, deliver: func(rs []itemResult, err error) {
					r := res{seq: seq, err: err}
					if err == nil {
						r.val, r.err = itemValue[R](rs[0])
					}
					done <- r
				}})
			}
			if inFlight == 0 {
				return
			}
			var r res
			select {
			case r = <-done:
			case <-ctx.Done():
				var zero R
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

// IMap runs f on each element of args on the pool and yields the results
// in input order as they become available, with each item's own error
// (iteration goes on after a failed item). At most 2×Processes items are
// in flight, so args may be endless. Stopping the loop early, or ctx
// ending (one final ctx.Err() is yielded), drops the remaining work.
func (f *Func[A, R]) IMap(ctx context.Context, p *Pool, args iter.Seq[A]) iter.Seq2[R, error] {
	return f.imap(ctx, p, args, true)
}

// IMapUnordered is IMap yielding results in the order they complete.
func (f *Func[A, R]) IMapUnordered(ctx context.Context, p *Pool, args iter.Seq[A]) iter.Seq2[R, error] {
	return f.imap(ctx, p, args, false)
}
