//go:build linux && (amd64 || arm64)

package slot

import (
	"context"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/wait"
)

// Layout: a header of four words, each on its own cache line, then Count
// slots of slotBytes. A slot starts with four little-endian uint32 (the
// task's length and kind, the result's length and kind), then Payload
// bytes that hold the task and, once the worker has copied it out, the
// result.
const (
	offPosted     = 0
	offTaskBell   = 64
	offAnswered   = 128
	offResultBell = 192
	hdrSize       = 256

	slotBytes = 8 << 10
	slotHdr   = 16
)

const (
	// Count is the number of slots: the task of ticket t is in slot
	// t % Count, so at most Count tasks may be posted and not yet
	// collected at once.
	Count = 8
	// Payload is the most bytes of a task or a result a slot holds; a
	// larger one travels on the control channel.
	Payload = slotBytes - slotHdr
	// Size is the least mapping New takes.
	Size = hdrSize + Count*slotBytes
)

// What a slot says of its task or result.
const (
	kindInline = 1 // its bytes are in the slot
	kindSocket = 2 // its bytes come on the control channel, in ticket order
)

// ErrCorrupt reports a slot that holds a length or kind that no writer
// writes: the peer broke the protocol.
var ErrCorrupt = errors.New("corrupt task slot")

// recheck bounds every doorbell sleep: a safety net only, as no wake-up
// should ever be missed.
const recheck = 250 * time.Millisecond

// Slots is one worker's slots as one process maps them: the pool's and
// the worker's each have their own, over the same memory. Its methods say
// which side calls them; on each side, posts (answers) are made one at a
// time, in ticket order.
type Slots struct {
	mem                  []byte
	posted, answered     *uint32
	taskBell, resultBell futex.Bell
}

// New lays Slots over mem (at least Size bytes, 64-byte aligned), which
// both sides map; fresh memory (all zero) is an empty set of slots.
func New(mem []byte) (*Slots, error) {
	if len(mem) < Size {
		return nil, errors.New("task slots: mapping too small")
	}
	if uintptr(unsafe.Pointer(&mem[0]))%64 != 0 {
		return nil, errors.New("task slots: mapping not 64-byte aligned")
	}
	w := func(off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	return &Slots{
		mem:        mem[:Size],
		posted:     w(offPosted),
		answered:   w(offAnswered),
		taskBell:   futex.Bell{W: w(offTaskBell)},
		resultBell: futex.Bell{W: w(offResultBell)},
	}, nil
}

func (s *Slots) slot(ticket uint32) []byte {
	off := hdrSize + int(ticket%Count)*slotBytes
	return s.mem[off : off+slotBytes : off+slotBytes]
}

// Fits reports whether n bytes of task or result fit in a slot.
func Fits(n int) bool { return n <= Payload }

// Post is the pool's side: it puts the task of ticket in its slot, inline
// if task is not nil (len(task) <= Payload), or as "on the control
// channel" if it is nil (the caller sends it there, before or after), and
// publishes it with one atomic store, waking the worker if it sleeps.
func (s *Slots) Post(ticket uint32, task []byte) {
	b := s.slot(ticket)
	put(b, 0, task)
	atomic.StoreUint32(s.posted, ticket+1)
	s.taskBell.Wake()
}

// Answer is the worker's side: it puts the result of ticket in its slot,
// inline if res is not nil, or as "on the control channel" if it is nil
// (the caller has sent it there already), and publishes it with one
// atomic store, waking the pool if it sleeps. (Leaving a sleeping pool
// asleep while more tasks wait behind this one, to wake it once for
// several results, was tried: it made no difference that showed through
// a loaded machine's noise, and it would hold a quick task's result back
// behind a slow one queued after it.)
func (s *Slots) Answer(ticket uint32, res []byte) {
	b := s.slot(ticket)
	put(b, 8, res)
	atomic.StoreUint32(s.answered, ticket+1)
	s.resultBell.Wake()
}

// put writes a length and kind at b[at:] and the bytes of p, if any.
func put(b []byte, at int, p []byte) {
	if p == nil {
		binary.LittleEndian.PutUint32(b[at:], 0)
		binary.LittleEndian.PutUint32(b[at+4:], kindSocket)
		return
	}
	if len(p) > Payload {
		panic("slot: payload larger than a slot") // the callers check Fits
	}
	copy(b[slotHdr:], p)
	binary.LittleEndian.PutUint32(b[at:], uint32(len(p)))
	binary.LittleEndian.PutUint32(b[at+4:], kindInline)
}

// get reads what put wrote at b[at:], appending inline bytes to buf: it
// trusts nothing of what it reads.
func get(b []byte, at int, buf []byte) (data []byte, inline bool, err error) {
	n := binary.LittleEndian.Uint32(b[at:])
	switch binary.LittleEndian.Uint32(b[at+4:]) {
	case kindSocket:
		return nil, false, nil
	case kindInline:
		if n > Payload {
			return nil, false, ErrCorrupt
		}
		return append(buf, b[slotHdr:slotHdr+int(n)]...), true, nil
	}
	return nil, false, ErrCorrupt
}

// Posted is how many tasks the pool has posted (the worker's side).
func (s *Slots) Posted() uint32 { return atomic.LoadUint32(s.posted) }

// Answered is how many results the worker has published (the pool's
// side). A worker may write anything here: the pool checks it against
// what it posted.
func (s *Slots) Answered() uint32 { return atomic.LoadUint32(s.answered) }

// Task is the worker's side: the task of ticket, which must be posted
// (Posted() > ticket), appended to buf if it is inline; inline false
// means it comes on the control channel.
func (s *Slots) Task(ticket uint32, buf []byte) (data []byte, inline bool, err error) {
	return get(s.slot(ticket), 0, buf)
}

// Result is the pool's side: the result of ticket, which must be
// answered (Answered() > ticket), in a new slice if it is inline; inline
// false means it comes on the control channel.
func (s *Slots) Result(ticket uint32) (data []byte, inline bool, err error) {
	b := s.slot(ticket)
	n := binary.LittleEndian.Uint32(b[8:])
	if n > Payload {
		return nil, false, ErrCorrupt
	}
	return get(b, 8, make([]byte, 0, n))
}

// TaskBell is the bell the worker sleeps on for its next task.
func (s *Slots) TaskBell() futex.Bell { return s.taskBell }

// ResultBell is the bell the pool sleeps on for results.
func (s *Slots) ResultBell() futex.Bell { return s.resultBell }

// Await waits until ready reports true, or ctx ends (its error): it spins
// as sp says, then sleeps on bell, which whoever makes ready true rings
// (Post and Answer do; so must anything else ready looks at). Only one
// goroutine of a process may sleep on a bell at once (each pins a
// thread): the pool gates its waiters.
func Await(ctx context.Context, bell futex.Bell, sp *wait.Spinner, ready func() bool) error {
	if sp.Spin(ready) {
		return nil
	}
	t0 := time.Now()
	for {
		v := bell.Arm()
		if ready() {
			sp.Parked(time.Since(t0))
			return nil
		}
		if err := bell.Sleep(ctx, v, recheck); err != nil {
			return err
		}
	}
}

// ResultInline reports whether the result of ticket, which must be
// answered, is in its slot (the pool's side; a peek, for waiters).
func (s *Slots) ResultInline(ticket uint32) bool {
	return binary.LittleEndian.Uint32(s.slot(ticket)[12:]) == kindInline
}
