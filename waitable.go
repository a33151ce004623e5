//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multiproc-go/multiproc/internal/wait"
	"golang.org/x/sys/unix"
)

// Waitable is what Wait waits on: a *Conn (a message or EOF to read), a
// *Listener (a connection to accept) or a *Process (ended). Its methods
// are unexported: no other type can be one.
type Waitable interface {
	// waitReady reports, without waiting and without consuming anything,
	// whether the object is ready; err is a fault of the call itself
	// (an object Wait cannot wait on).
	waitReady() (ready bool, err error)
}

// Wait waits until at least one of objs is ready and returns the ready
// ones, as Python's multiprocessing.connection.wait: a *Conn with a
// message (or the end of the stream, or part of a message) to read, a
// *Listener with an authenticated connection for Accept, a *Process that
// has ended and been reaped. An object closed in this process (a Conn or
// Listener) is ready too: its next call reports the close.
//
// Wait consumes nothing: a ready Conn still holds its message, a ready
// Listener its connection. With several goroutines or processes reading
// the same Conn, another reader may take the message between Wait's
// return and this one's Recv, as with Python's wait: use RecvContext if
// that matters.
//
// Wait returns the very objects passed in, each once, in any order.
// It looks before it blocks: with ctx already done it still returns what is
// ready, and ctx.Err() only when nothing is. A *Process that was never
// started is an error matching ErrNotStarted, a nil object or a zero Conn
// or Listener one matching ErrNotInitialized, and a send-only Conn
// ErrSendOnly: Wait returns those at once.
//
// However many objects it waits on, a Wait holds at most one OS thread
// (one epoll_wait over the Conns' descriptors); Listeners and Processes
// cost no thread. Waits of different goroutines are independent. A Wait
// on the same Conns as an earlier one (a server's loop) reuses what that
// one set up: it costs about what a Wait on a single Conn does, however
// many it watches.
func Wait(ctx context.Context, objs ...Waitable) ([]Waitable, error) {
	if ctx == nil {
		return nil, errNilContext
	}
	w := waitSet{objs: objs}
	defer w.done()
	if !w.reuse() {
		if err := w.prepare(); err != nil {
			return nil, err
		}
	}
	if ready, err := w.scan(); ready != nil || err != nil {
		return ready, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(w.conns) > 0 {
		// A message often comes within microseconds: look again, as the
		// waiting policy says, before sleeping.
		var ready []Waitable
		var err error
		waitSpin.Spin(func() bool {
			ready, err = w.scan()
			return ready != nil || err != nil
		})
		if ready != nil || err != nil {
			return ready, err
		}
	}
	return w.block(ctx)
}

// waitSpin is Wait's waiting policy (internal/wait): how long a Wait looks
// again before it sleeps.
var waitSpin wait.Spinner

// waitSet is one call of Wait.
type waitSet struct {
	objs   []Waitable
	conns  []*Conn    // the Conns of objs that are open, as given (repeats included)
	others []Waitable // the other objects, without repeats
	ep     *epollSet  // the Conns' descriptors in an epoll set, once needed
	ready  []Waitable // scratch for look
}

// reuse takes a kept epoll set (spareSets) whose Conns are exactly objs,
// in order, and that found none of them closed or holding part of a
// message with nothing of the kind since (connEvents): objs were checked
// when the set was made, so they need no look one by one. A server that
// waits on the same thousand Conns in a loop pays for a look at each only
// when one of them changed in a way epoll does not report.
func (w *waitSet) reuse() bool {
	if len(w.objs) == 0 {
		return false
	}
	ev := connEvents.Load()
	spareSets.Lock()
	defer spareSets.Unlock()
	for i := len(spareSets.list) - 1; i >= 0; i-- {
		ep := spareSets.list[i]
		if !ep.cleanAt(ev) || len(ep.key) != len(w.objs) || !sameConns(ep.key, w.objs) {
			continue
		}
		spareSets.list = slices.Delete(spareSets.list, i, i+1)
		w.ep, w.conns = ep, ep.key
		return true
	}
	return false
}

// sameConns reports whether objs are the Conns of key, in order.
func sameConns(key []*Conn, objs []Waitable) bool {
	for i, o := range objs {
		if c, ok := o.(*Conn); !ok || c != key[i] {
			return false
		}
	}
	return true
}

func (w *waitSet) prepare() error {
	var seen map[Waitable]bool
	w.conns = make([]*Conn, 0, len(w.objs))
	for _, o := range w.objs {
		if isNilWaitable(o) {
			return errorf("%w: Wait on a nil object", ErrNotInitialized)
		}
		if _, err := o.waitReady(); err != nil {
			return err
		}
		if c, ok := o.(*Conn); ok && !c.fd.Closed() {
			w.conns = append(w.conns, c)
			continue
		}
		if len(w.others) == 8 && seen == nil {
			seen = make(map[Waitable]bool)
			for _, x := range w.others {
				seen[x] = true
			}
		}
		if seen != nil {
			if seen[o] {
				continue
			}
			seen[o] = true
		} else if slices.Contains(w.others, o) {
			continue
		}
		w.others = append(w.others, o)
	}
	return nil
}

func isNilWaitable(o Waitable) bool {
	switch v := o.(type) {
	case nil:
		return true
	case *Conn:
		return v == nil
	case *Listener:
		return v == nil
	case *Process:
		return v == nil
	}
	return false
}

// scan looks at every object once without waiting.
func (w *waitSet) scan() ([]Waitable, error) {
	return w.look(0)
}

// look waits up to msec (-1: until rung) for a Conn's descriptor — one
// epoll_wait, which reports only the ready ones, so a look costs about
// the same for 10 Conns or 10,000 — then gathers every ready object.
func (w *waitSet) look(msec int) ([]Waitable, error) {
	w.ready = w.ready[:0]
	if len(w.conns) > 0 {
		if w.ep == nil {
			ep, err := getEpollSet(w.conns)
			if err != nil {
				return nil, err
			}
			w.ep = ep
		}
		ep := w.ep
		n, err := ep.wait(msec)
		if err != nil {
			return nil, err
		}
		// Read after the wait: an event counted later rings this Wait (or
		// is seen by its next look), one counted before is seen here.
		ev := connEvents.Load()
		if ep.cleanAt(ev) {
			// Nothing held or closed since the last full look: epoll's
			// list is the whole answer, and this look costs what it
			// reports, not what the set watches.
			for _, e := range ep.events[:n] {
				if e.Fd != ringData && int(e.Fd) < len(ep.conns) {
					w.ready = append(w.ready, ep.conns[e.Fd])
				}
			}
		} else {
			clear(ep.polled)
			for _, e := range ep.events[:n] {
				if e.Fd != ringData && int(e.Fd) < len(ep.polled) {
					ep.polled[e.Fd] = true
				}
			}
			clean := true
			for i, c := range ep.conns {
				// The kernel's side came from epoll; what this process
				// holds (part of a message read, or the Conn closed) is
				// looked at here.
				held, closed := c.held.Load(), c.fd.Closed()
				if held || closed {
					clean = false
				}
				if ep.polled[i] || held || closed {
					w.ready = append(w.ready, c)
				}
			}
			ep.clean, ep.cleanEv = clean, ev
		}
	}
	for _, o := range w.others {
		ok, err := o.waitReady()
		if err != nil {
			return nil, err
		}
		if ok {
			w.ready = append(w.ready, o)
		}
	}
	if len(w.ready) == 0 {
		return nil, nil
	}
	return append([]Waitable(nil), w.ready...), nil
}

// done gives back what the call used.
func (w *waitSet) done() {
	if w.ep != nil {
		putEpollSet(w.ep)
		w.ep = nil
	}
}

// block sleeps until an object may be ready or ctx ends, and looks again
// each time it wakes.
func (w *waitSet) block(ctx context.Context) ([]Waitable, error) {
	var wr *waiter
	if w.ep != nil {
		wr = &w.ep.waiter
	} else {
		wr = &waiter{evfd: -1, ch: make(chan struct{}, 1)}
	}
	waiters.add(wr)
	defer waiters.remove(wr)
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, wr.wake)
		defer stop()
	}
	parkStart := time.Now()
	for {
		// Registered first, then looked: whatever happens after the look
		// rings the waiter, so the sleep below cannot miss it.
		if ready, err := w.scan(); ready != nil || err != nil {
			return ready, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if wr.evfd < 0 {
			<-wr.ch
			continue
		}
		ready, err := w.look(-1)
		if ready != nil || err != nil {
			waitSpin.Parked(time.Since(parkStart))
			return ready, err
		}
	}
}

// waiter is one blocked Wait: whatever may have made one of its objects
// ready rings it (its eventfd, when it waits on descriptors; its channel
// otherwise).
type waiter struct {
	evfd int
	ch   chan struct{}
}

func (wr *waiter) wake() {
	if wr.evfd >= 0 {
		one := [8]byte{1}
		unix.Write(wr.evfd, one[:])
		return
	}
	select {
	case wr.ch <- struct{}{}:
	default:
	}
}

func (wr *waiter) drain() {
	var b [8]byte
	unix.Read(wr.evfd, b[:])
}

// epollSet is an epoll instance watching a list of Conns' descriptors for
// reading, and an eventfd that rings it. Making one costs a system call
// per Conn, so a few are kept between Waits (spareSets) for the same list
// of Conns: a server that calls Wait in a loop on the same Conns pays for
// it once. A kept set holds its Conns (they are not collected while it is
// kept) and two descriptors of its own.
type epollSet struct {
	epfd   int
	waiter waiter
	key    []*Conn // the Conns as a Wait gave them, repeats included
	conns  []*Conn // the Conns watched, each once; a Conn's events carry its index
	events []unix.EpollEvent
	polled []bool

	// clean says that a look at connEvents == cleanEv found none of conns
	// closed or holding part of a message.
	clean   bool
	cleanEv uint64
}

// cleanAt reports whether none of ep's Conns is closed or holds part of a
// message, connEvents being ev.
func (ep *epollSet) cleanAt(ev uint64) bool { return ep.clean && ep.cleanEv == ev }

// connEvents counts what can make a Conn ready without epoll knowing: a
// Conn closed in this process, or part of a message left held in one (a
// receive cut short). Both are counted before they ring the blocked Waits
// (wakeWaiters). A set that found none of its Conns closed or holding
// anything while the count was ev need not look at them one by one while
// it still is.
var connEvents atomic.Uint64

// ringData marks the eventfd's events (a Conn's are its index).
const ringData = -1

func newEpollSet(key []*Conn) (*epollSet, error) {
	conns := key
	if len(key) > 1 {
		seen := make(map[*Conn]bool, len(key))
		conns = make([]*Conn, 0, len(key))
		for _, c := range key {
			if !seen[c] {
				seen[c] = true
				conns = append(conns, c)
			}
		}
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, errorf("Wait: epoll_create1: %w", err)
	}
	ep := &epollSet{epfd: epfd, waiter: waiter{evfd: -1}}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		ep.close()
		return nil, errorf("Wait: eventfd: %w", err)
	}
	ep.waiter.evfd = evfd
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: ringData}); err != nil {
		ep.close()
		return nil, errorf("Wait: epoll_ctl: %w", err)
	}
	for i, c := range conns {
		var cerr error
		err := c.fd.Do(func(fd int) {
			cerr = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)})
		})
		if err == nil && cerr != nil {
			ep.close()
			return nil, errorf("Wait: epoll_ctl: %w", cerr)
		}
		// A Conn closed meanwhile is not watched: Wait finds it closed.
	}
	ep.key, ep.conns = slices.Clone(key), conns
	ep.events = make([]unix.EpollEvent, len(conns)+1)
	ep.polled = make([]bool, len(conns))
	return ep, nil
}

// wait waits up to msec for readiness and returns how many of ep.events
// it filled: the Conns the kernel says are readable (or at their end), by
// index, and maybe the ring (ringData), which is taken.
func (ep *epollSet) wait(msec int) (int, error) {
	n, err := unix.EpollWait(ep.epfd, ep.events, msec)
	if err != nil && err != unix.EINTR {
		return 0, errorf("Wait: epoll_wait: %w", err)
	}
	n = max(n, 0)
	for _, e := range ep.events[:n] {
		if e.Fd == ringData {
			ep.waiter.drain()
		}
	}
	return n, nil
}

func (ep *epollSet) close() {
	if ep.waiter.evfd >= 0 {
		unix.Close(ep.waiter.evfd)
	}
	unix.Close(ep.epfd)
}

// usable reports whether ep still watches exactly the Conns of key, none
// closed (a closed Conn's descriptor may be gone from the set).
func (ep *epollSet) usable(key []*Conn) bool {
	if !slices.Equal(ep.key, key) {
		return false
	}
	for _, c := range ep.conns {
		if c.fd.Closed() {
			return false
		}
	}
	return true
}

// spareSets are the epoll sets kept for the next Waits, the most recently
// used last.
var spareSets struct {
	sync.Mutex
	list []*epollSet
}

const maxSpareSets = 4

func getEpollSet(key []*Conn) (*epollSet, error) {
	spareSets.Lock()
	for i, ep := range spareSets.list {
		if ep.usable(key) {
			spareSets.list = slices.Delete(spareSets.list, i, i+1)
			spareSets.Unlock()
			return ep, nil
		}
	}
	spareSets.Unlock()
	return newEpollSet(key)
}

func putEpollSet(ep *epollSet) {
	if !ep.cleanAt(connEvents.Load()) {
		for _, c := range ep.conns {
			if c.fd.Closed() {
				ep.close()
				return
			}
		}
	}
	// A ring after the last look stays: the next Wait on the set takes it
	// at its first look, which costs less than a read here every time.
	spareSets.Lock()
	spareSets.list = append(spareSets.list, ep)
	var old *epollSet
	if len(spareSets.list) > maxSpareSets {
		old = spareSets.list[0]
		spareSets.list = slices.Delete(spareSets.list, 0, 1)
	}
	spareSets.Unlock()
	if old != nil {
		old.close()
	}
}

// waiters is every blocked Wait of this process. An event that may make a
// Listener or Process ready, or a Conn closed, rings them all (wakeWaiters):
// they look again. Such events are rare next to messages, and with no
// Wait blocked the ring costs one atomic load.
var waiters waiterSet

type waiterSet struct {
	n   atomic.Int32
	mu  sync.Mutex
	set map[*waiter]struct{} // guarded by mu
}

func (s *waiterSet) add(wr *waiter) {
	s.mu.Lock()
	if s.set == nil {
		s.set = map[*waiter]struct{}{}
	}
	s.set[wr] = struct{}{}
	s.n.Add(1)
	s.mu.Unlock()
}

func (s *waiterSet) remove(wr *waiter) {
	s.mu.Lock()
	delete(s.set, wr)
	s.n.Add(-1)
	s.mu.Unlock()
}

// wakeWaiters rings every blocked Wait.
func wakeWaiters() {
	if waiters.n.Load() == 0 {
		return
	}
	waiters.mu.Lock()
	for wr := range waiters.set {
		wr.wake()
	}
	waiters.mu.Unlock()
}

// Conn: readable, at the end of its stream, part of a message held, or
// closed here.

func (c *Conn) waitReady() (bool, error) {
	if c == nil || c.fd == nil {
		return false, errZeroConnWait
	}
	if !c.readable {
		return false, ErrSendOnly
	}
	// The kernel's side (a message or the end to read) is asked of epoll,
	// for every Conn of a Wait at once (waitSet.look).
	return c.held.Load() || c.fd.Closed(), nil
}

var errZeroConnWait = errorf("%w: Wait on a zero Conn", ErrNotInitialized)

// Listener: a connection authenticated and offered to Accept, or the
// Listener closed or stopped on an error.

func (l *Listener) waitReady() (bool, error) {
	if l == nil || l.ln == nil {
		return false, errorf("%w: Wait on a zero Listener", ErrNotInitialized)
	}
	if l.offered.Load() > 0 {
		return true, nil
	}
	select {
	case <-l.closed:
		return true, nil
	case <-l.dead:
		return true, nil
	default:
	}
	return false, nil
}

// Process: ended and reaped.

func (p *Process) waitReady() (bool, error) {
	done, err := p.doneChan()
	if err != nil {
		return false, err
	}
	select {
	case <-done:
		return true, nil
	default:
		return false, nil
	}
}
