//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/gate"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
	"github.com/multiproc-go/multiproc/internal/wait"
	"golang.org/x/sys/unix"
)

var errCondNotLocked = newError("Condition.Wait without holding the Condition's lock")

// Condition is a condition variable shared between processes, Python's
// multiprocessing.Condition: Wait releases the Condition's Lock, sleeps
// until some process Notifies, and takes the Lock again before it
// returns. It is built on a *Lock (NewCondition(nil) makes one of its
// own), and it is a sync.Locker itself.
//
// Wake-ups are never lost between processes: a Notify after a Wait
// released the lock reaches that waiter. Notify(n) wakes the n oldest
// waiters, in any process. A waiter whose process died (SIGKILL) while it
// waited neither swallows a Notify(1) nor holds up a NotifyAll: a
// notification it can no longer take passes to the next waiter within
// about 50 ms (Notify itself asks no process whether it is alive: that
// is a system call, which costs as much as a wake-up on some machines).
// A process killed while it holds the Condition's Lock does not
// hang the others: the Lock is taken over, as Lock's doc says. As with
// sync.Cond, a woken waiter should check its condition again in a loop:
// another process may have changed the state before it got the lock.
//
// The waiters of one Condition, in every process together, are at most
// 512 at a time (Wait beyond that returns an error). Wait knows the lock
// is held by this process (the lock word records the pid), not by which
// goroutine: Go's locks have no goroutine identity.
//
// It travels to children and pool tasks as Lock does, with its lock, and
// is the same condition there. Close releases this process's hold on it
// and wakes this process's waiters (their Wait returns an error matching
// ErrClosed, with the lock held again); it closes the Lock only if the
// Condition made it: a Lock passed to NewCondition stays the caller's.
// After Close, and on a zero Condition, every method but Close fails:
// those with an error result return one matching ErrClosed
// (ErrNotInitialized), the others panic with it. A Condition must not be
// copied after first use (go vet reports copies).
type Condition struct {
	_ noCopy
	object
	l       *Lock
	ownLock bool
	gate    gate.Gate
	spin    wait.Spinner
}

// Layout of a Condition's segment: a lock of its own guarding the waiter
// table (held for a few instructions, taken over from a dead holder as
// any Lock), the word waiters sleep on (bumped by each Notify that marks
// someone), the next ticket, the count of waiting slots, the count of
// waiters that may sleep in the kernel (a Notify whose waiter spins makes
// no system call), how many slots were ever used, then the slots.
const (
	offCondLock    = offWord0
	offCondSeq     = offWord1
	offCondTicket  = offWord1 + 4
	offCondWaiting = offWord1 + 8
	offCondSleep   = offWord1 + 12 // waiters that may sleep in the kernel on Seq
	offCondHigh    = offWord1 + 16 // slots ever used: Notify looks at no more
	offCondSlots   = 128
	condSlots      = 512
	condSlotSize   = 16 // pid, ticket, state, unused
	condSize       = offCondSlots + condSlots*condSlotSize
)

// Slot states.
const (
	slotFree     = 0
	slotWaiting  = 1
	slotNotified = 2
)

// condSlot is one waiter's entry in the shared table.
type condSlot struct{ pid, ticket, state, _ uint32 }

// NewCondition makes a Condition on l, or on a Lock of its own if l is
// nil. A closed or zero l is an error.
func NewCondition(l *Lock) (*Condition, error) {
	if err := checkCreate("NewCondition"); err != nil {
		return nil, err
	}
	own := l == nil
	if own {
		var err error
		if l, err = NewLock(); err != nil {
			return nil, err
		}
	} else if l.base.Load() == nil {
		return nil, errorf("NewCondition: %w", l.useErr(kLock))
	}
	seg, err := shm.Create("condition", condSize)
	if err != nil {
		if own {
			l.Close()
		}
		return nil, err
	}
	c := &Condition{l: l, ownLock: own}
	c.init(seg)
	return c, nil
}

func (c *Condition) init(seg *shm.Segment) {
	initObject(&c.object, c, seg)
	c.gate = gate.New()
}

// words of the mapping at p.
func condWord(p unsafe.Pointer, off uintptr) *uint32 { return (*uint32)(unsafe.Add(p, off)) }

func condSlotAt(p unsafe.Pointer, i int) *condSlot {
	return (*condSlot)(unsafe.Add(p, offCondSlots+i*condSlotSize))
}

// lock returns the Lock, or the error of a zero or closed Condition.
func (c *Condition) lock() (*Lock, error) {
	if c.ref == nil {
		return nil, kCondition.zero
	}
	if c.base.Load() == nil {
		return nil, kCondition.closed
	}
	return c.l, nil
}

func (c *Condition) lockOrPanic() *Lock {
	l, err := c.lock()
	if err != nil {
		panic(err)
	}
	return l
}

// Lock takes the Condition's lock, as Lock.Lock.
func (c *Condition) Lock() { c.lockOrPanic().Lock() }

// TryLock takes the Condition's lock if it is free, as Lock.TryLock.
func (c *Condition) TryLock() bool { return c.lockOrPanic().TryLock() }

// LockContext takes the Condition's lock, as Lock.LockContext.
func (c *Condition) LockContext(ctx context.Context) error {
	l, err := c.lock()
	if err != nil {
		return err
	}
	return l.LockContext(ctx)
}

// Unlock releases the Condition's lock, as Lock.Unlock.
func (c *Condition) Unlock() { c.lockOrPanic().Unlock() }

// ilock takes the Condition's own table lock at p (taking it over from a
// dead holder); iunlock releases it.
func ilock(p unsafe.Pointer) futex.Mutex {
	m := futex.Mutex{W: condWord(p, offCondLock)}
	m.Lock()
	return m
}

// Wait releases the lock, waits until a Notify picks this waiter, and
// takes the lock again before it returns nil. The lock must be held by
// this process (an error otherwise, the lock untouched). If ctx ends
// first, Wait returns ctx's error — with the lock held again, as on every
// return after the lock was released — unless a Notify picked it
// meanwhile (then nil: the wake-up is not lost). Close of the Condition
// in this process ends Wait with an error matching ErrClosed, the lock
// held again. Only if the lock itself cannot be taken again (it was
// closed in this process) does Wait return without it, with that error.
func (c *Condition) Wait(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	defer runtime.KeepAlive(c)
	l, err := c.lock()
	if err != nil {
		return err
	}
	r, err := c.enter(kCondition)
	if err != nil {
		return err
	}
	lp := l.base.Load()
	if lp == nil {
		r.leave()
		return l.useErr(kLock)
	}
	if (futex.Mutex{W: (*uint32)(unsafe.Pointer(lp))}).Holder() != futex.Pid() {
		r.leave()
		return errCondNotLocked
	}
	p := unsafe.Pointer(c.base.Load())
	slot, err := c.register(p)
	if err != nil {
		r.leave()
		return err
	}
	l.Unlock()

	seq, sleep := condWord(p, offCondSeq), condWord(p, offCondSleep)
	notified := func() bool { return atomic.LoadUint32(&slot.state) == slotNotified }
	if !c.spin.Spin(notified) {
		t0 := time.Now()
		checked := t0
		for !notified() {
			if time.Since(checked) >= condOrphanCheck {
				checked = time.Now()
				c.redeliver(p)
				continue
			}
			// One goroutine of this process sleeps in the kernel; it
			// leaves the gate at every Notify, so that the one picked
			// (maybe queued at the gate) gets to look.
			err = c.gated(ctx, kCondition, r, c.gate, func(wctx context.Context) error {
				// Counted as a sleeper before seq is read: a Notify that
				// bumps seq after this read sees the count and wakes.
				atomic.AddUint32(sleep, 1)
				defer atomic.AddUint32(sleep, ^uint32(0))
				s := atomic.LoadUint32(seq)
				if notified() {
					return nil
				}
				return futex.WaitFor(wctx, seq, s, condOrphanCheck)
			}, nil)
			if err != nil {
				break
			}
		}
		if err == nil {
			c.spin.Parked(time.Since(t0))
		}
	}
	if c.unregister(p, slot) {
		err = nil // picked while giving up: the wake-up is this waiter's
	}
	r.leave() // before taking the lock: Close waits for r, maybe under the lock
	if lerr := l.mu.lock(context.Background(), &l.object, kLock); lerr != nil {
		return lerr
	}
	return err
}

// register takes a free slot for this waiter, reclaiming the slots of
// dead processes when the table is full.
func (c *Condition) register(p unsafe.Pointer) (*condSlot, error) {
	m := ilock(p)
	defer m.Unlock()
	for pass := 0; pass < 2; pass++ {
		for i := range condSlots {
			s := condSlotAt(p, i)
			if atomic.LoadUint32(&s.state) != slotFree {
				if pass == 1 && s.pid != futex.Pid() && unix.Kill(int(s.pid), 0) == unix.ESRCH {
					c.free(p, s)
				} else {
					continue
				}
			}
			if high := condWord(p, offCondHigh); atomic.LoadUint32(high) <= uint32(i) {
				atomic.StoreUint32(high, uint32(i+1))
			}
			t := condWord(p, offCondTicket)
			s.pid = futex.Pid()
			s.ticket = atomic.AddUint32(t, 1)
			atomic.StoreUint32(&s.state, slotWaiting)
			atomic.AddUint32(condWord(p, offCondWaiting), 1)
			return s, nil
		}
	}
	return nil, errorf("Condition.Wait: %d waiters already wait on this Condition", condSlots)
}

// free empties slot s; the table lock is held.
func (c *Condition) free(p unsafe.Pointer, s *condSlot) {
	if atomic.LoadUint32(&s.state) == slotWaiting {
		atomic.AddUint32(condWord(p, offCondWaiting), ^uint32(0))
	}
	atomic.StoreUint32(&s.state, slotFree)
}

// unregister frees this waiter's slot and reports whether a Notify had
// picked it.
func (c *Condition) unregister(p unsafe.Pointer, s *condSlot) bool {
	m := ilock(p)
	defer m.Unlock()
	picked := atomic.LoadUint32(&s.state) == slotNotified
	c.free(p, s)
	return picked
}

// Notify wakes the n oldest waiters (all there are, if fewer), in any
// process. It may be called without holding the lock, as sync.Cond's
// Signal; a waiter that starts waiting after it is not woken by it.
// A notification that picked a waiter whose process died passes to the
// next waiter within about 50 ms.
func (c *Condition) Notify(n int) {
	c.notify(n)
}

// NotifyAll wakes every waiter, in every process.
func (c *Condition) NotifyAll() { c.notify(condSlots) }

func (c *Condition) notify(n int) {
	defer runtime.KeepAlive(c)
	if _, err := c.lock(); err != nil {
		panic(err)
	}
	if n <= 0 {
		return
	}
	r, err := c.enter(kCondition)
	if err != nil {
		panic(err)
	}
	defer r.leave()
	p := unsafe.Pointer(c.base.Load())
	if atomic.LoadUint32(condWord(p, offCondWaiting)) == 0 {
		return
	}
	m := ilock(p)
	picked := c.pick(p, n)
	m.Unlock()
	if picked > 0 && atomic.LoadUint32(condWord(p, offCondSleep)) != 0 {
		futex.WakeAll(condWord(p, offCondSeq))
	}
}

// pick marks the n oldest waiting slots notified (all there are, if
// fewer), bumps the word they sleep on if it marked any, and returns how
// many it marked; the table lock is held. It asks no process whether it
// is alive (a system call each, the price of a whole wake-up on some
// machines): a notification that a dead waiter can never take is passed
// on later by redeliver.
func (c *Condition) pick(p unsafe.Pointer, n int) int {
	next := atomic.LoadUint32(condWord(p, offCondTicket))
	high := int(min(atomic.LoadUint32(condWord(p, offCondHigh)), condSlots))
	picked := 0
	for picked < n {
		// The oldest waiting slot: the largest age next-ticket (tickets
		// wrap; ages do not, with at most condSlots live).
		var oldest *condSlot
		var age uint32
		for i := range high {
			s := condSlotAt(p, i)
			if atomic.LoadUint32(&s.state) != slotWaiting {
				continue
			}
			if a := next - s.ticket; oldest == nil || a > age {
				oldest, age = s, a
			}
		}
		if oldest == nil {
			break
		}
		atomic.AddUint32(condWord(p, offCondWaiting), ^uint32(0))
		atomic.StoreUint32(&oldest.state, slotNotified)
		picked++
	}
	if picked > 0 {
		atomic.AddUint32(condWord(p, offCondSeq), 1)
	}
	return picked
}

// condOrphanCheck is how often a waiter that sleeps looks for
// notifications that went to waiters whose process died (SIGKILL) before
// they took them: it frees those slots and passes each notification on
// to the oldest waiter left, so that a dead waiter delays a Notify(1) by
// about this much but never swallows it.
const condOrphanCheck = 50 * time.Millisecond

// redeliver passes on the notifications of dead waiters (see
// condOrphanCheck). The system calls that ask whether a process is alive
// are made only for slots notified and not yet taken: rarely any.
func (c *Condition) redeliver(p unsafe.Pointer) {
	m := ilock(p)
	high := int(min(atomic.LoadUint32(condWord(p, offCondHigh)), condSlots))
	orphans := 0
	for i := range high {
		s := condSlotAt(p, i)
		if atomic.LoadUint32(&s.state) == slotNotified && s.pid != futex.Pid() && !futex.Alive(s.pid) {
			c.free(p, s)
			orphans++
		}
	}
	picked := 0
	if orphans > 0 {
		picked = c.pick(p, orphans)
	}
	m.Unlock()
	if picked > 0 {
		futex.WakeAll(condWord(p, offCondSeq))
	}
}

// Close releases this process's hold on the Condition (and on its Lock if
// NewCondition made it): this process's waiters return an error matching
// ErrClosed, with the lock held again. Closing again does nothing and
// returns nil. A Lock passed to NewCondition is never closed.
func (c *Condition) Close() error {
	err := c.close(kCondition)
	if err == nil && c.ownLock {
		err = c.l.Close()
	}
	return err
}

// exportHandle is how a Condition travels: its segment and its Lock's.
// Called by the package.
func (c *Condition) exportHandle() (handle.Desc, error) {
	l, err := c.lock()
	if err != nil {
		return handle.Desc{}, err
	}
	cd, err := exportSeg(&c.object, kCondition, "Condition")
	if err != nil {
		return handle.Desc{}, err
	}
	ld, err := l.exportHandle()
	if err != nil {
		handleCloseFds(cd) // the export's duplicates are ours
		return handle.Desc{}, err
	}
	return handle.Desc{Kind: "Condition", Fds: []int{cd.Fds[0], ld.Fds[0]}}, nil
}

// importHandle makes c the Condition described by d, with a handle of its
// own on the Lock (closed with c). Called by the package.
func (c *Condition) importHandle(d handle.Desc) error {
	if d.Kind != "Condition" || len(d.Fds) != 2 {
		handleCloseFds(d)
		return errorf("a shared %s arrived where a Condition was expected", d.Kind)
	}
	seg, err := shm.Open(d.Fds[0])
	if err != nil {
		handleCloseFds(handle.Desc{Fds: d.Fds[1:]})
		return err
	}
	if seg.Size() < condSize {
		seg.Close()
		handleCloseFds(handle.Desc{Fds: d.Fds[1:]})
		return errorf("%w: a Condition's segment", ErrCorrupt)
	}
	l := new(Lock)
	if err := l.importHandle(handle.Desc{Kind: "Lock", Fds: d.Fds[1:]}); err != nil {
		seg.Close()
		return err
	}
	c.l, c.ownLock = l, true
	c.init(seg)
	return nil
}
