//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/spawn"
	"github.com/multiproc-go/multiproc/internal/wait"
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
	//
	// A replacement worker that dies while it starts (it was killed, or
	// the machine was short of processes or descriptors), as opposed to
	// an Initializer that reports failure, is started again after a
	// pause that doubles from 10 ms up to 1 s; only after 8 such failures
	// in a row, with no worker started in between for 2 s or more, does
	// the pool stop as above, with the last failure as the error.
	Initializer Runner
}

// Pool is a set of long-lived worker processes that run registered
// functions, Python's multiprocessing.Pool. Workers are started by NewPool
// and replaced when they die, reach MaxTasksPerChild, or overrun
// TaskTimeout. The parent knows which task each worker runs, so a worker
// that dies fails exactly its own task, with an error matching
// ErrWorkerDied, and nothing ever hangs; a task sent to a worker that died
// before taking it up waits for the replacement instead.
//
// Lifecycle: Close refuses new work and lets queued work finish; Join,
// after Close, waits for the workers to exit; Terminate kills the workers
// at once and fails every pending task. A Pool's methods are safe for
// concurrent use. Workers are daemons in a process group of their own:
// they die with the parent, and the terminal's Ctrl-C reaches only the
// parent, which decides (a cancelled context stops the work). A Pool that
// is never closed keeps its workers until the program exits.
//
// A Pool must not be copied after first use (go vet reports copies).
type Pool struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	opts PoolOptions
	n    int
	init *task // the workers' setup task

	mu      sync.Mutex  // guards pending through exited below
	pending []*poolTask // queued, oldest first
	idle    []*worker
	workers map[*worker]struct{} // alive, busy or idle
	// starting are the workers spawned but not yet through their
	// Initializer: Terminate kills them too.
	starting   map[*worker]struct{}
	live       int       // workers alive or being started
	startFails int       // replacement starts failed since a worker last started
	lastStart  time.Time // when a worker last started
	state      poolState
	broken     error         // with poolBroken: what every task gets
	exited     chan struct{} // closed when no worker is left once the pool stopped

	workerSeq atomic.Int64
	// The waiting policies of those who wait for results (pool_slots.go):
	// callers collecting their own, and the collector goroutines.
	resultSpin, collectSpin wait.Spinner
	// stop ends when the pool is terminated or done: a replacement being
	// started or waiting to retry gives up.
	stop context.Context
	halt context.CancelFunc
}

// errZeroPool is what every method of a Pool not made by NewPool returns.
var errZeroPool = errorf("%w: zero Pool: make it with NewPool", ErrNotInitialized)

// poolState is where a Pool is in its life; it only moves forward.
type poolState uint8

const (
	poolOpen       poolState = iota // takes tasks
	poolClosed                      // Close: queued tasks run, then the workers exit
	poolBroken                      // an Initializer failed in a replacement worker: no worker starts again
	poolTerminated                  // Terminate: the workers are killed and every task fails
)

// NewPool starts opts.Processes workers and returns once each has started
// and run the Initializer. If a worker cannot start or the Initializer
// fails, the workers are stopped and the error returned.
func NewPool(opts PoolOptions) (*Pool, error) {
	n := opts.Processes
	if n == 0 {
		n = runtime.NumCPU()
	}
	if n < 0 {
		return nil, errorf("PoolOptions.Processes %d is negative", n)
	}
	if opts.MaxTasksPerChild < 0 || opts.TaskTimeout < 0 {
		return nil, newError("PoolOptions.MaxTasksPerChild and TaskTimeout must not be negative")
	}
	p := &Pool{opts: opts, n: n, workers: map[*worker]struct{}{}, starting: map[*worker]struct{}{}, exited: make(chan struct{})}
	p.stop, p.halt = context.WithCancel(context.Background())
	p.init = &task{kind: kindWorker, daemon: true, name: "PoolWorker"}
	if opts.Initializer != nil {
		proc := NewProcess(opts.Initializer)
		// The table keeps the Initializer's shared objects for every
		// worker the pool will start; it is closed when the pool is done.
		tab := new(handle.Table)
		arg, entries, err := proc.encode(tab)
		if err != nil {
			tab.Close()
			return nil, err
		}
		p.init.fn = proc.fn
		p.init.items = []taskItem{{entries, arg}}
		p.init.table = tab
	}
	// Start every worker at once.
	ws := make([]*worker, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var initErr error
			ws[i], initErr, errs[i] = p.startWorker(p.stop)
			if initErr != nil {
				errs[i] = initErr
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		p.init.table.Close()
		p.halt()
		for _, w := range ws {
			if w != nil {
				w.kill()
				w.c.reap()
				w.seg.Close()
			}
		}
		return nil, err
	}
	p.mu.Lock()
	p.live = n
	p.lastStart = time.Now()
	for _, w := range ws {
		p.workers[w] = struct{}{}
		p.idle = append(p.idle, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		go p.serve(w)
	}
	return p, nil
}

func (p *Pool) checkExitedLocked() {
	if p.live == 0 && p.state != poolOpen {
		select {
		case <-p.exited:
		default:
			close(p.exited)
			p.init.table.Close()
			p.halt()
		}
	}
}

// Submit queues t on the pool: it is the Pool's side of Executor (the
// Func methods call it; another Executor may forward tasks to it). done
// is called exactly once, on any goroutine, possibly before Submit
// returns. A task whose ctx is done before a worker starts it never
// runs (done gets ctx.Err()); one whose ctx ends while it runs is
// stopped: its worker is killed and replaced.
func (p *Pool) Submit(ctx context.Context, t *Task, done func([]Result, error)) {
	if ctx == nil {
		done(nil, errNilContext)
		return
	}
	if p == nil {
		done(nil, newError("nil Pool"))
		return
	}
	if p.n == 0 {
		done(nil, errZeroPool)
		return
	}
	if err := ctx.Err(); err != nil {
		done(nil, err)
		return
	}
	if t == nil || t.Func == "" || (t.Batch && len(t.Args) != 1) || len(t.Args) == 0 {
		done(nil, newError("Pool.Submit of an empty or malformed Task"))
		return
	}
	msg := &task{kind: kindFunc, batch: t.Batch, fn: t.Func, name: t.Func, items: make([]taskItem, len(t.Args)), table: t.table}
	for i, a := range t.Args {
		msg.items[i].arg = a
		if t.entries != nil {
			msg.items[i].entries = t.entries[i]
		}
	}
	// A task whose only end is a Cancel may wait in a busy worker's
	// socket: the tally withdraws it if it is cancelled there.
	prefetch := ctx.Done() == nil
	tc, _ := ctx.(*taskCtx)
	if tc != nil && tc.cancelOnly {
		prefetch = true
	}
	p.submit(&poolTask{ctx: ctx, t: msg, prefetch: prefetch, waited: tc != nil && tc.waited, deliver: func(rs []itemResult, err error) {
		if err != nil {
			done(nil, err)
			return
		}
		out := make([]Result, len(rs))
		for i, r := range rs {
			if r.status == resultOK {
				out[i].Value = r.data
			} else {
				out[i].Err = &RemoteError{Text: string(r.data), Panic: r.status == resultPanic}
			}
		}
		done(out, nil)
	}})
}

// Workers is the number of worker processes (PoolOptions.Processes): the
// Pool's side of Executor.
func (p *Pool) Workers() int {
	if p == nil {
		return 0
	}
	return p.n
}

// breakPool records a replacement worker that cannot be had (its
// Initializer failed, or starts failed maxStartFails times in a row):
// every pending and later task fails with err, and no worker is started
// again. The caller is the replacement's goroutine, whose slot in live it
// gives up.
func (p *Pool) breakPool(err error) {
	p.mu.Lock()
	if p.state < poolBroken {
		p.state, p.broken = poolBroken, errorf("%w: %w", ErrPoolClosed, err)
	}
	pending := p.pending
	p.pending = nil
	broken := p.broken
	p.live--
	idle := p.retireIdleLocked()
	p.checkExitedLocked()
	p.mu.Unlock()
	for _, pt := range pending {
		pt.deliver(nil, broken)
	}
	sendExit(idle)
}

// retireIdleLocked takes the idle workers, which have nothing left to
// do, out of service; the caller sends them MsgExit after unlocking.
func (p *Pool) retireIdleLocked() []*worker {
	idle := p.idle
	p.idle = nil
	for _, w := range idle {
		w.exiting = true
	}
	return idle
}

func sendExit(ws []*worker) {
	for _, w := range ws {
		w.c.ctl.Send(spawn.MsgExit, nil, nil)
	}
}

// Close stops the pool taking new tasks (their calls fail with
// ErrPoolClosed); queued tasks still run, then the workers exit. Calling
// it again does nothing.
func (p *Pool) Close() error {
	if p.n == 0 {
		return errZeroPool
	}
	p.mu.Lock()
	if p.state == poolOpen {
		p.state = poolClosed
	}
	idle := p.retireIdleLocked()
	p.checkExitedLocked()
	p.mu.Unlock()
	sendExit(idle)
	return nil
}

// Join waits until every worker has exited, after Close or Terminate (an
// error before), or until ctx ends (its error; the pool runs on).
func (p *Pool) Join(ctx context.Context) error {
	if p.n == 0 {
		return errZeroPool
	}
	if ctx == nil {
		return errNilContext
	}
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	if state == poolOpen {
		return newError("Pool.Join before Close or Terminate")
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
	if p.n == 0 {
		return errZeroPool
	}
	p.mu.Lock()
	p.state = poolTerminated
	pending := p.pending
	p.pending = nil
	p.idle = nil
	for w := range p.workers {
		w.exiting = true
		w.kill()
	}
	// Workers still starting (a replacement whose Initializer runs) are
	// killed too; a replacement about to start, or waiting to retry,
	// sees stop end and gives up.
	for w := range p.starting {
		w.kill()
	}
	p.halt()
	p.checkExitedLocked()
	p.mu.Unlock()
	for _, pt := range pending {
		pt.deliver(nil, errorf("%w: terminated", ErrPoolClosed))
	}
	<-p.exited
	return nil
}
