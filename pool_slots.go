//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"

	"github.com/multiproc-go/multiproc/internal/slot"
	"github.com/multiproc-go/multiproc/internal/spawn"
)

// How results come back from a worker (internal/slot has the slots'
// design and crash argument).
//
// dispatch posts each task in the worker's slot for its ticket; the
// worker leaves the result there (or, too large, on the control channel,
// which serve reads and queues in sockRes) and rings the result bell if
// someone sleeps on it. Results are taken in ticket order by collect, on
// the goroutine of whoever holds the worker's waiter gate:
//
//   - the caller of a task that waits for it at once (Apply): it posts
//     its task and collects its own result itself, spinning and then
//     sleeping on the bell, with no other goroutine or thread of the
//     parent in between;
//   - otherwise the worker's collector goroutine, kicked by dispatch,
//     which collects as long as the worker has tasks in flight.
//
// The parent never learns of a worker's death from the slots: serve does,
// from the control channel's end; it marks the worker dead and rings the
// bell, so that whoever waits looks again and leaves. gone then takes
// the gate for good, collects what the worker answered before it died,
// and fails or requeues the rest as the tally says.

// collect takes, in ticket order, every result w has answered and
// finishes its task. The caller holds w.waiter (the slots are mapped). A
// worker that answers more than it was sent, or a result that does not
// parse or match its task, is killed (the pool's answer to a worker that
// broke the protocol): its tasks then fail as those of a dead worker.
func (p *Pool) collect(w *worker) {
	w.colMu.Lock()
	defer w.colMu.Unlock()
	for w.corrupt == nil {
		next := w.collected.Load()
		answered := w.slots.Answered()
		if answered == next {
			return
		}
		p.mu.Lock()
		var pt *poolTask
		inStep := len(w.inflight) > 0 && w.inflight[0].ticket == next && answered-next <= uint32(len(w.inflight))
		if inStep {
			pt = w.inflight[0].pt
		}
		p.mu.Unlock()
		if !inStep {
			w.breakProtocol(errorf("%w: %d results answered, %d taken, %d tasks in flight", spawn.ErrCorrupt, answered, next, len(w.inflight)))
			return
		}
		data, inline, err := w.slots.Result(next)
		if err != nil {
			w.breakProtocol(err)
			return
		}
		if !inline {
			w.sockMu.Lock()
			if len(w.sockRes) == 0 {
				w.sockMu.Unlock()
				return // on its way: serve rings the bell when it comes
			}
			data = w.sockRes[0]
			w.sockRes[0] = nil
			w.sockRes = w.sockRes[1:]
			w.sockN.Add(-1)
			w.sockMu.Unlock()
		}
		rs, err := parseResults(data)
		if err != nil {
			w.breakProtocol(err)
			return
		}
		p.mu.Lock()
		// A withdrawn task is answered with no results.
		ok := len(rs) == len(pt.t.items) || len(rs) == 0 && pt.withdrawn
		p.mu.Unlock()
		if !ok {
			w.breakProtocol(errorf("%w: %d results where %d were due", spawn.ErrCorrupt, len(rs), len(pt.t.items)))
			return
		}
		w.collected.Store(next + 1)
		p.finish(w, pt, rs)
	}
}

// breakProtocol records what w broke and kills it. The caller holds colMu.
func (w *worker) breakProtocol(err error) {
	w.corrupt = err
	w.kill()
}

// collectable reports whether collect has something to take, or w is
// dead: what a waiter for w's results waits for.
func (w *worker) collectable() bool {
	if w.dead.Load() {
		return true
	}
	next := w.collected.Load()
	if w.slots.Answered() == next {
		return false
	}
	return w.slots.ResultInline(next) || w.sockN.Load() > 0
}

// awaitResult is how the caller of a task that waits for its result at
// once (Apply) gets it from w: it takes w's waiter gate and collects w's
// results itself until ready (its own result is in), on its own
// goroutine. It returns at once if another goroutine holds the gate (the
// caller then waits for the delivery), and when ctx ends or w dies (gone
// delivers then).
func (p *Pool) awaitResult(ctx context.Context, w *worker, ready func() bool) {
	if ready() || !w.waiter.TryEnter() {
		return
	}
	defer p.leaveWaiter(w)
	for {
		p.collect(w)
		if ready() || w.dead.Load() || ctx.Err() != nil {
			return
		}
		if slot.Await(ctx, w.slots.ResultBell(), &p.resultSpin, w.collectable) != nil {
			return
		}
	}
}

// leaveWaiter gives up w's waiter gate; if w still has tasks in flight,
// its collector goroutine takes over (unless w is dead: gone has them).
func (p *Pool) leaveWaiter(w *worker) {
	w.waiter.Leave()
	p.mu.Lock()
	n := len(w.inflight)
	p.mu.Unlock()
	if n > 0 && !w.dead.Load() {
		w.kickCollector()
	}
}

func (w *worker) kickCollector() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// collector collects w's results whenever it is kicked and nobody else
// does, as long as w has tasks in flight; it returns once w is gone.
func (p *Pool) collector(w *worker) {
	for {
		select {
		case <-w.kick:
		case <-w.ended:
			return
		}
		if w.waiter.Enter(context.Background(), w.ended) != nil {
			return
		}
		for {
			p.collect(w)
			p.mu.Lock()
			n := len(w.inflight)
			p.mu.Unlock()
			if n == 0 || w.dead.Load() {
				break
			}
			slot.Await(context.Background(), w.slots.ResultBell(), &p.collectSpin, w.collectable)
		}
		p.leaveWaiter(w) // a task may have come as it left: kicked again
	}
}
