//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/multiproc-go/multiproc/internal/slot"
	"github.com/multiproc-go/multiproc/internal/spawn"
)

// inflight is a task sent (or being sent) to a worker, and its place in
// the order of the worker's sends, which is the order it runs them in.
type inflight struct {
	pt     *poolTask
	ticket uint32
	stop   func() bool // stops the watch on pt.ctx (nil: none)
}

// poolTask is one task of the queue: a function and its items (one for
// Apply, a chunk for Map), and where the results go.
type poolTask struct {
	ctx     context.Context
	t       *task
	deliver func(rs []itemResult, err error) // called exactly once
	msg     []byte                           // t encoded, once
	// prefetch: pt may wait in a busy worker's socket (ApplyAsync: its
	// only deadline is a Cancel, and the worker never idles between
	// such tasks). Other tasks with a ctx that can end wait in the queue,
	// for whichever worker frees first.
	prefetch bool
	// withdrawn (guarded by Pool.mu): its ctx ended before its worker
	// started it, and the tally says the worker never will; the worker
	// answers it with no results.
	withdrawn bool
	// waited: its caller waits for the result at once (Apply), through
	// its taskCtx: if submit gives it to a worker at once, the caller
	// collects the result itself (awaitResult).
	waited bool
}

// prefetch is how many tasks a worker may hold at once when all of them
// may be prefetched.
const prefetch = slot.Count

// canQueue reports whether pt may be sent to w now: w is idle, or both
// w's tasks and pt may be prefetched.
func canQueue(w *worker, pt *poolTask) bool {
	if len(w.inflight) == 0 {
		return true
	}
	if len(w.inflight) >= prefetch || !pt.prefetch {
		return false
	}
	for _, q := range w.inflight {
		if !q.pt.prefetch {
			return false
		}
	}
	return true
}

// assignLocked adds pt to w's tasks, counted as sent; the caller holds
// p.mu and then calls dispatch.
func (p *Pool) assignLocked(w *worker, pt *poolTask) {
	in := inflight{pt: pt, ticket: w.sent.Add(1) - 1}
	// When nobody waits for the result any more, withdraw the task, or
	// stop the work rather than let it clog the pool. An AsyncResult's
	// Cancel runs cancelTask before it returns; other ctxs, soon after
	// they end.
	if tc, ok := pt.ctx.(*taskCtx); ok {
		in.stop = tc.onCancel(func() { p.cancelTask(w, pt) })
	} else if pt.ctx.Done() != nil {
		in.stop = context.AfterFunc(pt.ctx, func() { p.cancelTask(w, pt) })
	}
	w.inflight = append(w.inflight, in)
	if len(w.inflight) == 1 {
		p.watchHeadLocked(w)
	} else if pt.ctx.Err() != nil {
		p.cancelLocked(w, pt) // ended before onCancel: nothing will call it
	}
}

// cancelTask stops pt, one of w's tasks, whose ctx has ended: it is
// withdrawn if w has not started it, or else w is killed once pt is the
// task it runs.
func (p *Pool) cancelTask(w *worker, pt *poolTask) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cancelLocked(w, pt)
}

// cancelLocked is cancelTask with p.mu held.
func (p *Pool) cancelLocked(w *worker, pt *poolTask) {
	i := slices.IndexFunc(w.inflight, func(in inflight) bool { return in.pt == pt })
	if i < 0 || pt.withdrawn {
		return
	}
	if w.tally.withdraw(w.inflight[i].ticket) {
		pt.withdrawn = true
		return
	}
	if i == 0 {
		p.killLocked(w, pt, pt.ctx.Err())
	}
	// Otherwise w started pt after the task before it, whose answer is
	// on its way: watchHeadLocked kills w when it comes.
}

// watchHeadLocked arms the timeout of the task w runs now (its first),
// which may be killed for it, and kills w if that task's ctx has ended
// and w has started it.
func (p *Pool) watchHeadLocked(w *worker) {
	if len(w.inflight) == 0 {
		return
	}
	pt := w.inflight[0].pt
	if pt.withdrawn {
		return // answered at once, never run
	}
	if pt.ctx.Err() != nil {
		if w.tally.withdraw(w.inflight[0].ticket) {
			pt.withdrawn = true
		} else {
			p.killLocked(w, pt, pt.ctx.Err())
		}
		return
	}
	if d := p.opts.TaskTimeout; d > 0 {
		w.timer = time.AfterFunc(d, func() {
			p.killWorker(w, pt, errorf("task %s ran past TaskTimeout %v; its worker %s (pid %d) was killed: %w",
				pt.t.fn, d, w.name, w.c.pid, context.DeadlineExceeded))
		})
	}
}

// dispatch sends w its task pt: in its slot, or on the control channel
// if it is too large or carries descriptors. It runs on whichever
// goroutine freed the worker or brought the task: no hand-off to a
// scheduler goroutine. Unless the caller collects the result itself
// (mine), w's collector goroutine is kicked.
func (p *Pool) dispatch(w *worker, pt *poolTask, mine bool) {
	p.mu.Lock()
	ticket, found := uint32(0), false
	for _, q := range w.inflight {
		if q.pt == pt {
			ticket, found = q.ticket, true
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
	var err error
	if fds := pt.t.fds(); len(fds) == 0 && slot.Fits(len(pt.msg)) {
		w.slots.Post(ticket, pt.msg)
	} else if err = w.c.ctl.Send(spawn.MsgTask, pt.msg, fds); err == nil {
		w.slots.Post(ticket, nil) // the worker takes it from the channel
	}
	w.sendNext++
	w.sendCond.Broadcast()
	w.sendMu.Unlock()
	if !mine {
		w.kickCollector()
	}
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

// dispatchNow is dispatch from submit, on the caller's goroutine: a
// caller who waits for the result at once collects it itself.
func (p *Pool) dispatchNow(w *worker, pt *poolTask) {
	if pt.waited {
		pt.ctx.(*taskCtx).setHelp(func(ctx context.Context, ready func() bool) {
			p.awaitResult(ctx, w, ready)
		})
	}
	p.dispatch(w, pt, pt.waited)
}

// finishRefused fails a task the worker never received.
func (p *Pool) finishRefused(w *worker, pt *poolTask, err error) {
	p.mu.Lock()
	for i, q := range w.inflight {
		if q.pt == pt {
			if q.stop != nil {
				q.stop()
			}
			w.inflight = append(w.inflight[:i], w.inflight[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	pt.deliver(nil, err)
}

func pendingItems(pt *poolTask) int {
	if pt == nil {
		return 0
	}
	return len(pt.t.items)
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

// submit gives a task to an idle worker at once, or queues it; it fails
// the task at once if the pool takes no work.
func (p *Pool) submit(pt *poolTask) {
	p.mu.Lock()
	if p.state != poolOpen {
		err := ErrPoolClosed
		if p.state == poolBroken {
			err = p.broken
		}
		p.mu.Unlock()
		pt.deliver(nil, err)
		return
	}
	if len(p.pending) == 0 {
		if n := len(p.idle); n > 0 {
			w := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.assignLocked(w, pt)
			p.mu.Unlock()
			p.dispatchNow(w, pt)
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
			p.dispatchNow(best, pt)
			return
		}
	}
	p.pending = append(p.pending, pt)
	p.mu.Unlock()
}
