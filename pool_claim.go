//go:build linux && (amd64 || arm64)

package multiproc

import (
	"sync/atomic"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/slot"
)

// tally is memory a pool and one of its workers share (the start of the
// segment the pool creates per worker, whose rest is the worker's task
// slots), in which they settle, task by task, whether
// the worker runs it or the pool has withdrawn it. Each task has a
// ticket, its place in the order the pool sent the worker's tasks (the
// worker counts the tasks it receives the same way), and the ticket's
// slot holds the outcome: startMark once the worker has started it,
// cancelMark once the pool has withdrawn it. Both sides set the slot by
// compare-and-swap from whatever an earlier ticket left there, so the
// first one wins and the other reads its outcome: a withdrawn task never
// runs, and a started one is never withdrawn (the pool kills its worker
// instead). If the worker dies, its slots tell the pool which of its
// tasks it started (they fail) and which it never did (they go back to
// the queue): a task is never run twice.
//
// A worker holds at most prefetch tasks, whose tickets are consecutive,
// so with tallySlots > prefetch slots the slot of a task in flight is
// never reused before the pool has its answer.
type tally [tallySlots]uint64

const tallySlots = 16

// tallySize is the size of a tally.
const tallySize = tallySlots * 8

// A worker's segment holds its tally at offset 0 and its task slots
// (internal/slot) at slotsOff: workerSegSize bytes in all.
const (
	slotsOff      = (tallySize + 63) &^ 63 // the slots' cache lines are their own
	workerSegSize = slotsOff + slot.Size
)

// tallyOf is the tally in the mapping b (at least tallySize bytes,
// 8-aligned).
func tallyOf(b []byte) *tally { return (*tally)(unsafe.Pointer(&b[0])) }

func (t *tally) slot(ticket uint32) *uint64 { return &t[ticket%tallySlots] }

func startMark(ticket uint32) uint64  { return (uint64(ticket) + 1) << 1 }
func cancelMark(ticket uint32) uint64 { return startMark(ticket) | 1 }

// claim is the worker's side: it records that it starts the task of
// ticket, or reports false if the pool has withdrawn it.
func (t *tally) claim(ticket uint32) bool {
	s := t.slot(ticket)
	for {
		v := atomic.LoadUint64(s)
		if v == cancelMark(ticket) {
			return false
		}
		if atomic.CompareAndSwapUint64(s, v, startMark(ticket)) {
			return true
		}
	}
}

// withdraw is the pool's side: it reports true if the worker will never
// run the task of ticket (now withdrawn), false if it has started it.
func (t *tally) withdraw(ticket uint32) bool {
	s := t.slot(ticket)
	for {
		v := atomic.LoadUint64(s)
		switch v {
		case startMark(ticket):
			return false
		case cancelMark(ticket):
			return true
		}
		if atomic.CompareAndSwapUint64(s, v, cancelMark(ticket)) {
			return true
		}
	}
}

// started reports whether the worker has started the task of ticket.
func (t *tally) started(ticket uint32) bool {
	return atomic.LoadUint64(t.slot(ticket)) == startMark(ticket)
}
