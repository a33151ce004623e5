//go:build linux && (amd64 || arm64)

// Package fdwait waits on a non-blocking descriptor without Go's poller:
// it spins as the waiting policy (internal/wait) says, then parks the
// calling thread in poll(2) on the descriptor and on an eventfd of its own
// that Close, a context's end and a new deadline ring.
//
// Why not Go's poller: a descriptor registered with it makes every
// arrival of data wake the thread that Go's scheduler keeps blocked in
// epoll_wait whenever some goroutine waits in the poller — even when no
// goroutine waits on this descriptor, because the receiver caught the
// data spinning. On a 2-CPU VM that spurious wake-up costs more than the
// message: a pipe round trip measured 30–40 µs with a registered
// descriptor against 9–15 µs without (the same spinning receiver, with
// one goroutine of the process waiting on an unrelated pipe). A
// descriptor kept out of the poller pays only for the wake-ups its own
// waiters ask for, as in C or Python.
//
// The price: a waiter that parks holds its OS thread, in poll(2), as a
// blocking read does in C or Python; Go's runtime hands the thread's P to
// other goroutines meanwhile (the thread is in a system call). So that a
// program with many idle descriptors (a server's thousand clients) does
// not hold a thousand threads, a park that lasts longer than threadPark
// moves to Go's poller, through a duplicate of the descriptor registered
// for the rest of that wait only.
package fdwait

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multiproc-go/multiproc/internal/wait"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by every call on a closed FD, and by a wait that
// Close ended.
var ErrClosed = errors.New("use of a closed descriptor")

// FD owns a non-blocking descriptor that Go's poller does not know. It is
// safe for concurrent use: the descriptor number is never closed (and so
// never reused) while a call uses it, Close wakes every parked waiter, and
// an FD that becomes unreachable closes its descriptor.
type FD struct {
	fd int
	// state is 1 once closed, plus 2 for each call using fd: the last one
	// out after Close closes the descriptors.
	state atomic.Uint64

	rdl, wdl atomic.Int64 // read and write deadlines, unix ns; 0: none

	// mu guards parked and spare. A ring writes, holding mu, to the
	// eventfd of every parked waiter and ends its wait in Go's poller if
	// it is there: each waiter has its own eventfd, which only it drains,
	// so no waiter can take the ring meant for another (one eventfd shared
	// by all lost wake-ups: a drain by one waiter took the ring of another
	// that was just registering in Go's poller, which then slept there for
	// good).
	mu     sync.Mutex
	parked map[*waiter]struct{}
	spare  []int // eventfds of waits that ended, for the next ones
}

// waiter is one parked wait: the eventfd it polls (-1: none, the process
// is out of descriptors), and while it waits in Go's poller the duplicate
// registered there. Both fields are guarded by FD.mu.
type waiter struct {
	evfd int
	long *os.File
}

// maxSpare bounds the eventfds an FD keeps for later waits.
const maxSpare = 2

// threadPark is how long a waiter parks in poll(2), holding its thread,
// before it moves to Go's poller. Waits shorter than this are the ones a
// direct wake-up speeds up; longer ones (an idle peer) cost a registration
// (dup, epoll_ctl twice, close: microseconds) that they do not notice.
var threadPark atomic.Int64 // ns; a variable for tests

func init() { threadPark.Store(int64(20 * time.Millisecond)) }

// New makes an FD of fd, which must be non-blocking; the FD owns it.
func New(fd int) *FD {
	d := &FD{fd: fd}
	runtime.SetFinalizer(d, (*FD).Close)
	return d
}

func (d *FD) incref() bool {
	for {
		s := d.state.Load()
		if s&1 != 0 {
			return false
		}
		if d.state.CompareAndSwap(s, s+2) {
			return true
		}
	}
}

func (d *FD) decref() {
	if d.state.Add(^uint64(1)) == 1 { // closed, and the last user is out
		unix.Close(d.fd)
		d.mu.Lock()
		for _, w := range d.spare {
			unix.Close(w)
		}
		d.spare = nil
		d.mu.Unlock()
	}
}

// Closed reports whether Close was called.
func (d *FD) Closed() bool { return d.state.Load()&1 != 0 }

// Do runs f with the descriptor, which stays open until f returns; it
// returns ErrClosed without running f once the FD is closed.
func (d *FD) Do(f func(fd int)) error {
	if !d.incref() {
		return ErrClosed
	}
	defer d.decref()
	f(d.fd)
	return nil
}

// Close marks the FD closed, wakes its parked waiters, and closes the
// descriptor once the last call using it has returned. A second Close
// returns ErrClosed.
func (d *FD) Close() error {
	for {
		s := d.state.Load()
		if s&1 != 0 {
			return ErrClosed
		}
		if d.state.CompareAndSwap(s, s|1+2) {
			break
		}
	}
	runtime.SetFinalizer(d, nil)
	d.ring()
	d.decref()
	return nil
}

// wake makes parked waiters look again at their context, deadline and
// descriptor.
func (d *FD) wake() {
	if !d.incref() {
		return // closed: Close rang for good
	}
	d.ring()
	d.decref()
}

// ring writes to the eventfd of every parked waiter and ends the waits in
// Go's poller (whose waiters then look again, as after a ring); the caller
// holds a reference. Whoever rings has changed what waiters look at
// (closed bit, context, deadline) before: a waiter that parks after the
// ring has passed sees the change when it looks, after parking.
func (d *FD) ring() {
	one := [8]byte{1}
	d.mu.Lock()
	defer d.mu.Unlock()
	for w := range d.parked {
		if w.evfd >= 0 {
			unix.Write(w.evfd, one[:])
		}
		if w.long != nil {
			w.long.SetDeadline(aLongTimeAgo)
		}
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// newEventfd and dupFd make the descriptors of a wait; variables for tests
// that run out of descriptors.
var (
	newEventfd = func() (int, error) { return unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK) }
	dupFd      = func(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }
)

// noWake is the slice a wait polls in when it has no eventfd to be rung
// on: how late it may see a Close or a context's end.
const noWake = 10 * time.Millisecond

// longWaits counts the waits in Go's poller, for tests.
var longWaits atomic.Int64

// park registers a waiter with an eventfd of its own (a spare one, or a
// new one; -1 if the process is out of descriptors); the caller holds a
// reference, and calls unpark when its wait ends.
func (d *FD) park() *waiter {
	w := &waiter{evfd: -1}
	d.mu.Lock()
	if n := len(d.spare); n > 0 {
		w.evfd = d.spare[n-1]
		d.spare = d.spare[:n-1]
	}
	d.mu.Unlock()
	if w.evfd < 0 {
		if fd, err := newEventfd(); err == nil {
			w.evfd = fd
		}
	}
	d.mu.Lock()
	if d.parked == nil {
		d.parked = map[*waiter]struct{}{}
	}
	d.parked[w] = struct{}{}
	d.mu.Unlock()
	return w
}

// unpark ends w's registration; its eventfd, drained, is kept for a later
// wait (rings come only under mu to parked waiters, so none can reach it
// once it is unlisted).
func (d *FD) unpark(w *waiter) {
	d.mu.Lock()
	delete(d.parked, w)
	d.mu.Unlock()
	if w.evfd < 0 {
		return
	}
	take(w.evfd)
	d.mu.Lock()
	if len(d.spare) < maxSpare {
		d.spare = append(d.spare, w.evfd)
		w.evfd = -1
	}
	d.mu.Unlock()
	if w.evfd >= 0 {
		unix.Close(w.evfd)
	}
}

// SetReadDeadline makes waits for reading fail with
// os.ErrDeadlineExceeded once t has passed (the zero time: never),
// including one parked now.
func (d *FD) SetReadDeadline(t time.Time) { d.setDeadline(&d.rdl, t) }

// SetWriteDeadline is SetReadDeadline for waits for writing.
func (d *FD) SetWriteDeadline(t time.Time) { d.setDeadline(&d.wdl, t) }

func (d *FD) setDeadline(dl *atomic.Int64, t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = max(t.UnixNano(), 1)
	}
	dl.Store(ns)
	d.wake()
}

// Read calls try with the descriptor until it reports done: first as sp
// spins (sp may be nil: no spinning), then each time poll(2) says the
// descriptor is readable. It returns nil once try is done; ctx's error
// when ctx ends first; os.ErrDeadlineExceeded when the read deadline
// passes first; ErrClosed when the FD is closed. try must not block: it
// makes a non-blocking attempt and says whether it needs no more (data, an
// error other than EAGAIN, EOF).
func (d *FD) Read(ctx context.Context, sp *wait.Spinner, try func(fd int) bool) error {
	return d.wait(ctx, sp, unix.POLLIN, &d.rdl, try)
}

// Write is Read for writing: try runs when the descriptor is writable.
func (d *FD) Write(ctx context.Context, sp *wait.Spinner, try func(fd int) bool) error {
	return d.wait(ctx, sp, unix.POLLOUT, &d.wdl, try)
}

// WriteAll writes all of p with write (a non-blocking write(2) or
// sendmsg(2) of the descriptor), waiting as Write does while the
// descriptor is full, and says how many bytes went out.
func (d *FD) WriteAll(ctx context.Context, sp *wait.Spinner, p []byte, write func(fd int, b []byte) (int, error)) (int, error) {
	done := 0
	for done < len(p) {
		var n int
		var werr error
		err := d.Write(ctx, sp, func(fd int) bool {
			n, werr = write(fd, p[done:])
			return werr != unix.EAGAIN && werr != unix.EINTR
		})
		if err == nil {
			err = werr
		}
		done += max(n, 0)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (d *FD) wait(ctx context.Context, sp *wait.Spinner, events int16, dl *atomic.Int64, try func(int) bool) error {
	if !d.incref() {
		return ErrClosed
	}
	defer d.decref()
	if err := check(ctx, dl); err != nil {
		return err
	}
	fd := d.fd
	if sp != nil {
		if sp.Spin(func() bool { return try(fd) }) {
			return nil
		}
	} else if try(fd) {
		return nil
	}
	// Without an eventfd (the process is out of descriptors) the wait
	// polls in slices of noWake, so that a ring is seen that late at
	// worst; without a duplicate for Go's poller it stays in poll(2).
	w := d.park()
	defer d.unpark(w)
	wfd := w.evfd
	stayInPoll := false
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, d.wake)
		defer stop()
	}
	pfd := [2]unix.PollFd{{Fd: int32(fd), Events: events}, {Fd: int32(wfd), Events: unix.POLLIN}}
	parkStart := time.Now()
	for {
		// Close sets the closed bit before it rings, and a context ends
		// before its AfterFunc rings: this waiter is parked (listed) now,
		// so a ring either comes after it was listed, and its eventfd
		// holds it, or came before, and this look sees why.
		if d.Closed() {
			return ErrClosed
		}
		if err := check(ctx, dl); err != nil {
			return err
		}
		t0 := time.Now()
		left := time.Duration(threadPark.Load()) - t0.Sub(parkStart)
		if left <= 0 && !stayInPoll && wfd >= 0 {
			if err := d.waitLong(w, fd, events, dl); err != nil {
				stayInPoll = true // no descriptor for a duplicate: poll on
				continue
			}
			take(wfd) // the ring, if one ended the wait: the loop looks why
			if try(fd) {
				return nil // no feedback: this wait was not the policy's business
			}
			continue
		}
		timeout := -1
		if !stayInPoll && wfd >= 0 {
			timeout = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		if wfd < 0 {
			timeout = int(noWake / time.Millisecond)
		}
		if t := dl.Load(); t != 0 {
			ms := max(int((t-t0.UnixNano()+999_999)/1e6), 0)
			if timeout < 0 || ms < timeout {
				timeout = ms
			}
		}
		pfd[0].Revents, pfd[1].Revents = 0, 0
		n := 2
		if wfd < 0 {
			n = 1
		}
		if _, err := unix.Poll(pfd[:n], timeout); err != nil && err != unix.EINTR {
			return err
		}
		if pfd[1].Revents != 0 {
			take(wfd) // this waiter's own ring: the loop looks why
		}
		if pfd[0].Revents != 0 && try(fd) {
			if sp != nil {
				sp.Parked(time.Since(parkStart))
			}
			return nil
		}
	}
}

// waitLong waits in Go's poller until fd may be ready for events, or a
// ring (Close, a context's end, a deadline set) or the deadline dl
// interrupts the wait: it returns nil then too, and the caller looks
// again. The caller holds a reference and has parked w.
func (d *FD) waitLong(w *waiter, fd int, events int16, dl *atomic.Int64) error {
	dup, err := dupFd(fd)
	if err != nil {
		return err
	}
	// The duplicate shares fd's non-blocking open file, so os.NewFile
	// registers it with Go's poller; closing it unregisters it.
	f := os.NewFile(uintptr(dup), "multiproc-wait")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if t := dl.Load(); t != 0 {
		f.SetDeadline(time.Unix(0, t))
	}
	d.mu.Lock()
	w.long = f
	d.mu.Unlock()
	longWaits.Add(1)
	defer longWaits.Add(-1)
	defer func() {
		d.mu.Lock()
		w.long = nil
		d.mu.Unlock()
	}()
	// A ring that came before f was listed has left w's eventfd readable
	// (nobody else drains it); one after sets f's deadline.
	if d.Closed() || Ready(w.evfd, unix.POLLIN) {
		return nil
	}
	wait := func(fd uintptr) bool { return Ready(int(fd), events) }
	if events == unix.POLLOUT {
		err = rc.Write(wait)
	} else {
		err = rc.Read(wait)
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return nil
}

// take takes the ring of the eventfd w, if any.
func take(w int) {
	var b [8]byte
	unix.Read(w, b[:])
}

// Ready asks the kernel, without waiting, whether fd is ready for events
// (POLLIN, POLLOUT), or has an error or hang-up to report.
func Ready(fd int, events int16) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		n, err := unix.Poll(p, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// check is the error of a wait whose context ended or deadline passed.
func check(ctx context.Context, dl *atomic.Int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t := dl.Load(); t != 0 && time.Now().UnixNano() >= t {
		return os.ErrDeadlineExceeded
	}
	return nil
}
