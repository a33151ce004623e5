package multiproc

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
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
type Pool struct {
	opts PoolOptions
	n    int
	init *task // the workers' setup task

	mu         sync.Mutex
	pending    []*poolTask // queued, oldest first
	idle       []*worker
	workers    map[*worker]struct{} // alive, busy or idle
	live       int                  // workers alive or being started
	closed     bool
	terminated bool
	broken     error         // an Initializer failed in a replacement worker
	exited     chan struct{} // closed when no worker is left after Close

	workerSeq atomic.Int64
}

// poolTask is one task of the queue: a function and its items (one for
// Apply, a chunk for Map), and where the results go.
type poolTask struct {
	ctx     context.Context
	t       *task
	deliver func(rs []itemResult, err error) // called exactly once
	msg     []byte                           // t encoded, once
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
		return nil, errorf("PoolOptions.Processes %d is negative", n)
	}
	if opts.MaxTasksPerChild < 0 || opts.TaskTimeout < 0 {
		return nil, errors.New("multiproc: PoolOptions.MaxTasksPerChild and TaskTimeout must not be negative")
	}
	p := &Pool{opts: opts, n: n, workers: map[*worker]struct{}{}, exited: make(chan struct{})}
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
			ws[i], errs[i] = p.startWorker()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		p.init.table.Close()
		for _, w := range ws {
			if w != nil {
				w.kill()
				w.c.reap()
			}
		}
		return nil, err
	}
	p.mu.Lock()
	p.live = n
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

// worker is one worker process. Its fields after c are guarded by Pool.mu,
// except sent, which only the goroutine dispatching to it touches.
type worker struct {
	c     *childProc
	name  string
	tally *shm.Segment  // word 0: tasks the worker has started
	sent  atomic.Uint32 // tasks assigned to it

	// Sends go out in the order tasks were assigned (the worker answers
	// in the order it receives), whichever goroutines dispatch them.
	sendMu   sync.Mutex
	sendCond sync.Cond
	sendNext uint32
	sendDone bool // the worker is gone: pending dispatches give up

	// inflight are the tasks sent to it, oldest (the one it runs) first:
	// more than one only for tasks nobody can cancel (ApplyAsync), which
	// wait in the worker's socket so that it never idles between them.
	inflight []*poolTask
	tickets  []uint32 // the send order of each inflight task
	tasks    int
	killFor  *poolTask // the task it was killed for, and why
	killWhy  error
	exiting  bool // sent MsgExit, or killed: takes no more tasks
	stopWait func() bool
	timer    *time.Timer
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
	c, err := spawnChild(context.Background(), name, true, true, &t, nil)
	if err != nil {
		tally.Close()
		return nil, err
	}
	w := &worker{c: c, name: name, tally: tally}
	w.sendCond.L = &w.sendMu
	runtime.AddCleanup(w, func(s *shm.Segment) { s.Close() }, tally)
	rs, err := w.recv()
	if err == nil && len(rs) == 1 && rs[0].status == resultOK {
		return w, nil
	}
	if err != nil {
		c.stopBroken(err)
	}
	w.kill()
	code := c.reap()
	if err == nil && len(rs) == 1 {
		return nil, errorf("pool Initializer failed in %s: %w", name, &RemoteError{Text: string(rs[0].data), Panic: rs[0].status == resultPanic})
	}
	return nil, errorf("pool worker %s died while starting: %w", name, &ExitError{Name: name, Pid: c.pid, ExitCode: code, Message: c.why})
}

// recv reads the worker's next result message.
func (w *worker) recv() ([]itemResult, error) {
	for {
		typ, payload, fds, err := w.c.ctl.Recv()
		unixCloseAll(fds)
		if err != nil {
			return nil, err
		}
		if typ == spawn.MsgResult {
			return parseResults(payload)
		}
	}
}

func (w *worker) kill() { w.c.cmd.Process.Kill() }

// started reports how many tasks the worker has started.
func (w *worker) started() uint32 {
	return atomic.LoadUint32(futex.Word(w.tally.Bytes(), 0))
}

// prefetch is how many tasks a worker may hold at once when none of them
// can be cancelled.
const prefetch = 4

// canQueue reports whether pt may be sent to w now: w is idle, or both
// w's tasks and pt are of the kind nobody cancels.
func canQueue(w *worker, pt *poolTask) bool {
	if len(w.inflight) == 0 {
		return true
	}
	if len(w.inflight) >= prefetch || pt.ctx.Done() != nil {
		return false
	}
	for _, q := range w.inflight {
		if q.ctx.Done() != nil {
			return false
		}
	}
	return true
}

// assignLocked adds pt to w's tasks, counted as sent; the caller holds
// p.mu and then calls dispatch.
func (p *Pool) assignLocked(w *worker, pt *poolTask) {
	w.inflight = append(w.inflight, pt)
	w.tickets = append(w.tickets, w.sent.Add(1)-1)
	if len(w.inflight) == 1 {
		p.watchHeadLocked(w)
	}
}

// watchHeadLocked arms the timeout and the context watch of the task w
// runs now (its first), which may be killed for either.
func (p *Pool) watchHeadLocked(w *worker) {
	if len(w.inflight) == 0 {
		return
	}
	pt := w.inflight[0]
	if d := p.opts.TaskTimeout; d > 0 {
		w.timer = time.AfterFunc(d, func() {
			p.killWorker(w, pt, errorf("task %s ran past TaskTimeout %v; its worker %s (pid %d) was killed: %w",
				pt.t.fn, d, w.name, w.c.pid, context.DeadlineExceeded))
		})
	}
	if pt.ctx.Done() != nil {
		// Nobody waits for the result any more: stop the work rather than
		// let it clog the pool.
		w.stopWait = context.AfterFunc(pt.ctx, func() { p.killWorker(w, pt, pt.ctx.Err()) })
	}
}

// dispatch sends w its task pt. It runs on whichever goroutine freed the
// worker or brought the task: no hand-off to a scheduler goroutine.
func (p *Pool) dispatch(w *worker, pt *poolTask) {
	p.mu.Lock()
	ticket, found := uint32(0), false
	for i, q := range w.inflight {
		if q == pt {
			ticket, found = w.tickets[i], true
		}
	}
	p.mu.Unlock()
	if !found {
		return // the worker is gone already; gone has requeued pt
	}
	if pt.msg == nil {
		pt.msg = pt.t.append(nil)
	}
	w.sendMu.Lock()
	for w.sendNext != ticket && !w.sendDone {
		w.sendCond.Wait()
	}
	if w.sendDone {
		w.sendMu.Unlock()
		return
	}
	err := w.c.ctl.Send(spawn.MsgTask, pt.msg, pt.t.fds())
	w.sendNext++
	w.sendCond.Broadcast()
	w.sendMu.Unlock()
	if errors.Is(err, spawn.ErrTooManyFds) {
		// Refused before anything was written: the worker never sees it.
		// Nothing after it may be in flight to it either, so retire the
		// worker; the task fails.
		p.mu.Lock()
		w.exiting = true
		p.mu.Unlock()
		w.kill()
		p.finishRefused(w, pt, err)
	}
	// Any other error means the worker is gone (EPIPE, or its socket
	// already closed): serve sees it, and the task, which it never
	// started, goes back to the queue.
}

// finishRefused fails a task the worker never received.
func (p *Pool) finishRefused(w *worker, pt *poolTask, err error) {
	p.mu.Lock()
	for i, q := range w.inflight {
		if q == pt {
			w.inflight = append(w.inflight[:i], w.inflight[i+1:]...)
			w.tickets = append(w.tickets[:i], w.tickets[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	pt.deliver(nil, err)
}

// killWorker kills w for pt's sake, if w still runs pt.
func (p *Pool) killWorker(w *worker, pt *poolTask, why error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(w.inflight) == 0 || w.inflight[0] != pt || w.killFor != nil {
		return
	}
	w.killFor, w.killWhy, w.exiting = pt, why, true
	w.kill()
}

func (w *worker) disarm() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if w.stopWait != nil {
		w.stopWait()
		w.stopWait = nil
	}
}

// serve reads w's results until it exits, delivering each and giving the
// worker its next task; then it accounts for the worker's end. A worker
// whose control stream ends or breaks while it lives on (a task wrote to
// or closed its fd 3) can never answer again: it is killed, so that its
// task fails and a replacement takes over, rather than wedge the pool.
func (p *Pool) serve(w *worker) {
	for {
		rs, err := w.recv()
		if err != nil {
			w.c.stopBroken(err)
			break
		}
		p.mu.Lock()
		var pt *poolTask
		if len(w.inflight) > 0 {
			pt = w.inflight[0]
		}
		p.mu.Unlock()
		if pt == nil || len(rs) != len(pt.t.items) {
			// Out of step: replace it.
			w.c.stopBroken(errorf("%w: %d results where %d were due", spawn.ErrCorrupt, len(rs), pendingItems(pt)))
			break
		}
		p.finish(w, pt, rs, nil)
	}
	p.gone(w, w.c.reap())
}

func pendingItems(pt *poolTask) int {
	if pt == nil {
		return 0
	}
	return len(pt.t.items)
}

// finish delivers the outcome of pt, w's first task, and gives w more
// work, or lets it go idle or retire.
func (p *Pool) finish(w *worker, pt *poolTask, rs []itemResult, err error) {
	p.mu.Lock()
	w.disarm()
	if len(w.inflight) > 0 && w.inflight[0] == pt {
		w.inflight[0] = nil
		w.inflight = w.inflight[1:]
		w.tickets = w.tickets[1:]
	}
	if err == nil {
		w.tasks++
	}
	if max := p.opts.MaxTasksPerChild; max > 0 && w.tasks+len(w.inflight) >= max {
		w.exiting = true
	}
	var sends, skipped []*poolTask
	if !w.exiting {
		sends, skipped = p.fillLocked(w)
		if len(w.inflight) == 0 {
			if p.closed {
				w.exiting = true
			} else {
				p.idle = append(p.idle, w)
			}
		}
	}
	// A retiring worker exits once its last task is answered (one that
	// was killed is dying anyway).
	exit := w.exiting && len(w.inflight) == 0 && w.killFor == nil
	p.watchHeadLocked(w)
	p.mu.Unlock()
	pt.deliver(rs, err)
	failSkipped(skipped)
	if exit {
		w.c.ctl.Send(spawn.MsgExit, nil, nil)
	}
	for _, next := range sends {
		p.dispatch(w, next)
	}
}

// fillLocked gives w queued tasks, as many as it may hold, and returns
// them for dispatch (and the abandoned ones it skipped).
func (p *Pool) fillLocked(w *worker) (sends, skipped []*poolTask) {
	for len(p.pending) > 0 {
		pt := p.pending[0]
		if pt.ctx.Err() != nil {
			p.pending[0] = nil
			p.pending = p.pending[1:]
			skipped = append(skipped, pt)
			continue
		}
		if !canQueue(w, pt) {
			break
		}
		if max := p.opts.MaxTasksPerChild; max > 0 && w.tasks+len(w.inflight) >= max {
			break
		}
		p.pending[0] = nil
		p.pending = p.pending[1:]
		p.assignLocked(w, pt)
		sends = append(sends, pt)
	}
	return sends, skipped
}

func failSkipped(skipped []*poolTask) {
	for _, pt := range skipped {
		pt.deliver(nil, pt.ctx.Err())
	}
}

// gone accounts for a worker that has exited: its task, if any, fails or
// goes back to the queue, and a replacement starts if there is work left
// to do.
func (p *Pool) gone(w *worker, code int) {
	exitErr := &ExitError{Name: w.name, Pid: w.c.pid, ExitCode: code, Message: w.c.why}
	w.sendMu.Lock()
	w.sendDone = true
	w.sendCond.Broadcast()
	w.sendMu.Unlock()
	p.mu.Lock()
	w.disarm()
	delete(p.workers, w)
	if i := slices.Index(p.idle, w); i >= 0 {
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
	}
	// The worker ran its tasks in order: answered ones are gone from
	// inflight; of the rest, the first it started (if any) died with it,
	// and those it never started go back to the head of the queue.
	started := w.started()
	var failed []*poolTask
	var fails []error
	var requeue []*poolTask
	for i, pt := range w.inflight {
		switch {
		case w.killFor == pt:
			failed, fails = append(failed, pt), append(fails, w.killWhy)
		case p.terminated:
			failed, fails = append(failed, pt), append(fails, errorf("%w: terminated while %s ran", ErrPoolClosed, pt.t.fn))
		case p.broken != nil:
			// No worker will start again to take it.
			failed, fails = append(failed, pt), append(fails, p.broken)
		case w.tickets[i] >= started:
			requeue = append(requeue, pt)
		default:
			failed, fails = append(failed, pt), append(fails, errorf("%w: %w (running %s)", ErrWorkerDied, exitErr, pt.t.fn))
		}
	}
	w.inflight, w.tickets = nil, nil
	p.pending = append(requeue, p.pending...)
	p.live--
	replace := !p.terminated && p.broken == nil && (!p.closed || len(p.pending) > 0)
	if replace {
		p.live++
	}
	p.checkExitedLocked()
	p.mu.Unlock()
	for i, pt := range failed {
		pt.deliver(nil, fails[i])
	}
	if replace {
		go p.replace()
	}
}

// replace starts a worker in place of one that is gone.
func (p *Pool) replace() {
	w, err := p.startWorker()
	if err != nil {
		p.breakPool(err)
		return
	}
	p.mu.Lock()
	if p.terminated || p.broken != nil {
		p.live--
		p.mu.Unlock()
		w.kill()
		w.c.reap()
		p.mu.Lock()
		p.checkExitedLocked()
		p.mu.Unlock()
		return
	}
	p.workers[w] = struct{}{}
	sends, skipped := p.fillLocked(w)
	exit := false
	if len(sends) == 0 {
		if p.closed {
			w.exiting, exit = true, true
		} else {
			p.idle = append(p.idle, w)
		}
	}
	p.mu.Unlock()
	failSkipped(skipped)
	go p.serve(w)
	if exit {
		w.c.ctl.Send(spawn.MsgExit, nil, nil)
	}
	for _, next := range sends {
		p.dispatch(w, next)
	}
}

func (p *Pool) checkExitedLocked() {
	if p.live == 0 && (p.closed || p.broken != nil) {
		select {
		case <-p.exited:
		default:
			close(p.exited)
			p.init.table.Close()
		}
	}
}

// Submit queues t on the pool: it is the Pool's side of Executor (the
// Func methods call it; another Executor may forward tasks to it). done
// is called exactly once, on any goroutine, possibly before Submit
// returns. A task whose ctx is done before a worker takes it never runs.
func (p *Pool) Submit(ctx context.Context, t *Task, done func([]Result, error)) {
	if p == nil {
		done(nil, errors.New("multiproc: nil Pool"))
		return
	}
	if err := ctx.Err(); err != nil {
		done(nil, err)
		return
	}
	if t == nil || t.Func == "" || (t.Batch && len(t.Args) != 1) || len(t.Args) == 0 {
		done(nil, errors.New("multiproc: Pool.Submit of an empty or malformed Task"))
		return
	}
	msg := &task{kind: kindFunc, batch: t.Batch, fn: t.Func, name: t.Func, items: make([]taskItem, len(t.Args)), table: t.table}
	for i, a := range t.Args {
		msg.items[i].arg = a
		if t.entries != nil {
			msg.items[i].entries = t.entries[i]
		}
	}
	p.submit(&poolTask{ctx: ctx, t: msg, deliver: func(rs []itemResult, err error) {
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

// submit gives a task to an idle worker at once, or queues it; it fails
// the task at once if the pool takes no work.
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
	if len(p.pending) == 0 {
		if n := len(p.idle); n > 0 {
			w := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.assignLocked(w, pt)
			p.mu.Unlock()
			p.dispatch(w, pt)
			return
		}
		// A busy worker may take it in advance if nothing in it can be
		// cancelled: the one holding the fewest.
		var best *worker
		for w := range p.workers {
			if !w.exiting && canQueue(w, pt) && (best == nil || len(w.inflight) < len(best.inflight)) &&
				(p.opts.MaxTasksPerChild == 0 || w.tasks+len(w.inflight) < p.opts.MaxTasksPerChild) {
				best = w
			}
		}
		if best != nil {
			p.assignLocked(best, pt)
			p.mu.Unlock()
			p.dispatch(best, pt)
			return
		}
	}
	p.pending = append(p.pending, pt)
	p.mu.Unlock()
}

// breakPool records a failed replacement worker: every pending and later
// task fails with err, and no worker is started again.
func (p *Pool) breakPool(err error) {
	p.mu.Lock()
	if p.broken == nil {
		p.broken = errorf("%w: %w", ErrPoolClosed, err)
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
	p.mu.Lock()
	p.closed = true
	idle := p.retireIdleLocked()
	p.checkExitedLocked()
	p.mu.Unlock()
	sendExit(idle)
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
	p.closed, p.terminated = true, true
	pending := p.pending
	p.pending = nil
	p.idle = nil
	for w := range p.workers {
		w.exiting = true
		w.kill()
	}
	p.checkExitedLocked()
	p.mu.Unlock()
	for _, pt := range pending {
		pt.deliver(nil, errorf("%w: terminated", ErrPoolClosed))
	}
	<-p.exited
	return nil
}

// workerMain is a pool worker's life in the child: run the Initializer,
// then one task after another until told to exit.
func workerMain(ctl *spawn.Ctl, setup *task) int {
	rs := []itemResult{{resultOK, nil}}
	if setup.fn != "" && len(setup.items) == 1 {
		rs = runTask(&task{kind: kindRunner, fn: setup.fn, name: setup.name, items: setup.items, imports: setup.imports})
	}
	if err := ctl.Send(spawn.MsgResult, appendResults(nil, rs), nil); err != nil || rs[0].status != resultOK {
		return 1
	}
	var buf []byte
	for {
		t, ok := recvTask(ctl)
		if !ok {
			finishChildren()
			return 0
		}
		if w := child.tally.Load(); w != nil {
			atomic.AddUint32(w, 1) // started: the pool may no longer rerun it
		}
		rs := runTask(t)
		buf = appendResults(buf[:0], rs)
		if err := ctl.Send(spawn.MsgResult, buf, nil); err != nil {
			return 1
		}
	}
}
