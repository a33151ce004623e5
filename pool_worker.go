//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multiproc-go/multiproc/internal/gate"
	"github.com/multiproc-go/multiproc/internal/shm"
	"github.com/multiproc-go/multiproc/internal/slot"
	"github.com/multiproc-go/multiproc/internal/spawn"
)

// worker is one worker process. Its fields from tally on (tally is set
// nil, and seg closed, when the worker is gone) are guarded by Pool.mu
// (sent is also atomic, read by dispatch), except the send fields, which
// sendMu guards, and the collecting ones, which colMu guards.
type worker struct {
	c     *childProc
	name  string
	seg   *shm.Segment  // its tally, then its task slots
	tally *tally        // which of its tasks it started, or the pool withdrew
	sent  atomic.Uint32 // tasks assigned to it: the next one's ticket

	// slots are its task slots (internal/slot; see pool_slots.go): where
	// dispatch posts its tasks and collect finds its results. Only the
	// holder of waiter reads results from them, and only dispatch, under
	// sendMu before sendDone, posts: gone takes waiter and sets sendDone
	// for good before it unmaps them.
	slots *slot.Slots
	// waiter is held by the one goroutine that collects w's results and
	// sleeps on its result bell: a caller waiting for its own result
	// (Apply), or w's collector goroutine.
	waiter gate.Gate
	kick   chan struct{} // wakes w's collector goroutine (capacity 1)
	ended  chan struct{} // closed when w is gone: its collector returns
	dead   atomic.Bool   // its control channel ended: nothing more will be answered
	// sockRes are results that came on the control channel (too large
	// for a slot), in order, for the slots that say so; sockN counts them
	// for waiters that cannot take sockMu.
	sockMu  sync.Mutex
	sockRes [][]byte
	sockN   atomic.Int32
	// colMu is held while results are taken from the slots and their
	// tasks finished, in ticket order.
	colMu     sync.Mutex
	collected atomic.Uint32 // results taken (written under colMu)
	corrupt   error         // what the worker broke, once it did (under colMu)

	// Sends go out in the order tasks were assigned (the worker answers
	// in the order it receives), whichever goroutines dispatch them.
	sendMu   sync.Mutex
	sendCond sync.Cond
	sendNext uint32
	sendDone bool // the worker is gone: pending dispatches give up

	// inflight are the tasks sent to it, oldest (the one it runs) first:
	// more than one only for tasks nobody can cancel (ApplyAsync), which
	// wait in the worker's socket so that it never idles between them.
	inflight []inflight
	tasks    int
	killFor  *poolTask // the task it was killed for, and why
	killWhy  error
	exiting  bool // sent MsgExit, or killed: takes no more tasks
	timer    *time.Timer
}

// startWorker spawns a worker and waits for its Initializer's outcome:
// the worker, or initErr if the Initializer itself failed (it reported an
// error or panicked: the user's code refused, which a retry would not
// change), or err if the worker could not start or died while starting
// (killed, out of descriptors, ...), which a retry may cure. While it
// starts, the worker is in p.starting, where Terminate finds and kills
// it; ctx ending (Terminate) stops the start handshake.
func (p *Pool) startWorker(ctx context.Context) (w *worker, initErr, err error) {
	name := fmt.Sprintf("PoolWorker-%d", p.workerSeq.Add(1))
	tally, err := shm.Create("poolworker", workerSegSize)
	if err != nil {
		return nil, nil, own(err)
	}
	t := *p.init
	t.name = name
	t.tally, t.tallyFd = true, tally.Fd()
	c, err := spawnChild(ctx, name, true, true, &t, nil)
	// The worker has its own descriptor of the tally now (or none): the
	// parent keeps only the mapping, unmapped when the worker is gone.
	tally.CloseFd()
	if err != nil {
		tally.Close()
		return nil, nil, err
	}
	slots, err := slot.New(tally.Bytes()[slotsOff:])
	if err != nil {
		c.cmd.Process.Kill()
		c.reap()
		tally.Close()
		return nil, nil, own(err)
	}
	w = &worker{c: c, name: name, seg: tally, tally: tallyOf(tally.Bytes()), slots: slots,
		waiter: gate.New(), kick: make(chan struct{}, 1), ended: make(chan struct{})}
	w.sendCond.L = &w.sendMu
	p.mu.Lock()
	if p.state == poolTerminated {
		p.mu.Unlock()
		w.kill()
		c.reap()
		tally.Close()
		return nil, nil, errorf("%w: terminated while %s started", ErrPoolClosed, name)
	}
	p.starting[w] = struct{}{}
	p.mu.Unlock()
	rs, err := w.recv()
	p.mu.Lock()
	delete(p.starting, w)
	p.mu.Unlock()
	if err == nil && len(rs) == 1 && rs[0].status == resultOK {
		return w, nil, nil
	}
	if err != nil {
		c.stopBroken(err)
	}
	w.kill()
	code := c.reap()
	tally.Close()
	if err == nil && len(rs) == 1 {
		return nil, errorf("pool Initializer failed in %s: %w", name, &RemoteError{Text: string(rs[0].data), Panic: rs[0].status == resultPanic}), nil
	}
	return nil, nil, errorf("pool worker %s died while starting: %w", name, &ExitError{Name: name, Pid: c.pid, ExitCode: code, Message: c.why})
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

// killWorker kills w for pt's sake, if w still runs pt.
func (p *Pool) killWorker(w *worker, pt *poolTask, why error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killLocked(w, pt, why)
}

// killLocked is killWorker with p.mu held.
func (p *Pool) killLocked(w *worker, pt *poolTask, why error) {
	if len(w.inflight) == 0 || w.inflight[0].pt != pt || w.killFor != nil {
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
}

// serve reads w's control channel until it ends: results too large for
// a slot, which it queues for collect, and the end, when w has exited
// (or broke its stream). Then it accounts for the worker's end. A worker
// whose control stream ends or breaks while it lives on (a task wrote to
// or closed its fd 3) can never answer again: it is killed, so that its
// task fails and a replacement takes over, rather than wedge the pool.
func (p *Pool) serve(w *worker) {
	go p.collector(w)
	for {
		typ, payload, fds, err := w.c.ctl.Recv()
		unixCloseAll(fds)
		if err != nil {
			w.c.stopBroken(err)
			break
		}
		if typ != spawn.MsgResult {
			continue
		}
		w.sockMu.Lock()
		over := len(w.sockRes) >= slot.Count // more than could be in flight
		if !over {
			w.sockRes = append(w.sockRes, payload)
			w.sockN.Add(1)
		}
		w.sockMu.Unlock()
		if over {
			w.c.stopBroken(errorf("%w: more results on the control channel than tasks in flight", spawn.ErrCorrupt))
			break
		}
		w.slots.ResultBell().Ring()
	}
	w.dead.Store(true)
	w.slots.ResultBell().Ring() // a waiter looks again, and finds w dead
	code := w.c.reap()
	w.colMu.Lock()
	if w.corrupt != nil && w.c.why == "" {
		w.c.why = "multiproc killed it: " + textOf(w.corrupt)
	}
	w.colMu.Unlock()
	p.gone(w, code)
}

// finish delivers the outcome of pt, w's first task, and gives w more
// work, or lets it go idle or retire.
func (p *Pool) finish(w *worker, pt *poolTask, rs []itemResult) {
	p.mu.Lock()
	w.disarm()
	if len(w.inflight) > 0 && w.inflight[0].pt == pt {
		if stop := w.inflight[0].stop; stop != nil {
			stop()
		}
		w.inflight[0] = inflight{}
		w.inflight = w.inflight[1:]
	}
	var err error
	if pt.withdrawn {
		err = pt.ctx.Err()
	} else {
		w.tasks++
	}
	if max := p.opts.MaxTasksPerChild; max > 0 && w.tasks+len(w.inflight) >= max {
		w.exiting = true
	}
	var sends, skipped []*poolTask
	if !w.exiting {
		sends, skipped = p.fillLocked(w)
		if len(w.inflight) == 0 {
			if p.state != poolOpen {
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
	if err != nil {
		pt.deliver(nil, err)
	} else {
		pt.deliver(rs, nil)
	}
	failSkipped(skipped)
	if exit {
		w.c.ctl.Send(spawn.MsgExit, nil, nil)
	}
	for _, next := range sends {
		p.dispatch(w, next, false)
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
	// Take the slots from whoever collects (it sees w dead and leaves),
	// for good, and take what w answered before it died: those tasks
	// are done.
	close(w.ended)
	w.waiter.Take()
	p.collect(w)
	p.mu.Lock()
	w.disarm()
	delete(p.workers, w)
	if i := slices.Index(p.idle, w); i >= 0 {
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
	}
	// The worker ran its tasks in order: answered ones are gone from
	// inflight; of the rest, the first it started (if any) died with it,
	// and those it never started go back to the head of the queue.
	var failed []*poolTask
	var fails []error
	var requeue []*poolTask
	for _, in := range w.inflight {
		pt := in.pt
		if in.stop != nil {
			in.stop()
		}
		switch {
		case w.killFor == pt:
			failed, fails = append(failed, pt), append(fails, w.killWhy)
		case pt.withdrawn:
			failed, fails = append(failed, pt), append(fails, pt.ctx.Err())
		case p.state == poolTerminated:
			failed, fails = append(failed, pt), append(fails, errorf("%w: terminated while %s ran", ErrPoolClosed, pt.t.fn))
		case p.state == poolBroken:
			// No worker will start again to take it.
			failed, fails = append(failed, pt), append(fails, p.broken)
		case !w.tally.started(in.ticket):
			requeue = append(requeue, pt)
		default:
			failed, fails = append(failed, pt), append(fails, errorf("%w: %w (running %s)", ErrWorkerDied, exitErr, pt.t.fn))
		}
	}
	w.inflight = nil
	// Nothing reads the tally any more: cancelTask and killLocked find no
	// task in inflight once it is cleared, under p.mu.
	w.tally = nil
	w.seg.Close()
	p.pending = append(requeue, p.pending...)
	p.live--
	replace := p.state == poolOpen || (p.state == poolClosed && len(p.pending) > 0)
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

// Replacement starts that fail (the worker dies or cannot be spawned)
// are retried after a pause that doubles from startBackoff up to
// maxStartBackoff; after maxStartFails failures in a row, with no worker
// started in between for startPatience or more, the pool breaks with the
// last one's error. (The time keeps a burst of kills, which can fail
// several replacements of a large pool at once, from breaking it.)
const (
	startBackoff    = 10 * time.Millisecond
	maxStartBackoff = time.Second
	maxStartFails   = 8
	startPatience   = 2 * time.Second
)

// replace starts a worker in place of one that is gone. A replacement
// whose Initializer fails breaks the pool at once; one that dies while it
// starts (it was killed, or the machine is short of processes or
// descriptors) is retried with backoff, as long as the pool still needs
// it.
func (p *Pool) replace() {
	var w *worker
	for attempt := 0; ; attempt++ {
		var initErr, err error
		w, initErr, err = p.startWorker(p.stop)
		if initErr != nil {
			p.breakPool(initErr)
			return
		}
		p.mu.Lock()
		if err == nil {
			p.startFails, p.lastStart = 0, time.Now()
			p.mu.Unlock()
			break
		}
		if p.state >= poolBroken || (p.state == poolClosed && len(p.pending) == 0) {
			// Nobody needs the worker any more.
			p.live--
			p.checkExitedLocked()
			p.mu.Unlock()
			return
		}
		p.startFails++
		fails := p.startFails
		giveUp := fails >= maxStartFails && time.Since(p.lastStart) >= startPatience
		p.mu.Unlock()
		if giveUp {
			p.breakPool(errorf("%d pool worker starts in a row failed, the last: %w", fails, err))
			return
		}
		select {
		case <-time.After(min(startBackoff<<attempt, maxStartBackoff)):
		case <-p.stop.Done():
		}
	}
	p.mu.Lock()
	if p.state >= poolBroken {
		p.live--
		p.mu.Unlock()
		w.kill()
		w.c.reap()
		w.seg.Close()
		p.mu.Lock()
		p.checkExitedLocked()
		p.mu.Unlock()
		return
	}
	p.workers[w] = struct{}{}
	sends, skipped := p.fillLocked(w)
	exit := false
	if len(sends) == 0 {
		if p.state != poolOpen {
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
		p.dispatch(w, next, false)
	}
}
