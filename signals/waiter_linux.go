//go:build linux

package signals

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrClosed is matched (with errors.Is) by the error of Waiter.Wait after
// Close.
var ErrClosed = errors.New("multiproc: signal waiter closed")

// wakeSignal picks the signal that wakes a Waiter's thread out of its
// signalfd read when its context ends or os/signal hands it a signal: the
// highest real-time signal the Waiter does not wait for (SIGRTMAX, 64,
// unless it does), or 0 if it waits for all of them. The Waiter keeps it
// blocked on its thread while it is open and sends it only to that
// thread, so the Go runtime never sees it and nothing else is disturbed: a
// real-time signal sent to the process by someone else is still taken by
// another thread (the runtime's handler, os/signal), and one the kernel
// lets the read take first is only a spurious wake-up. Real-time signals
// queue, so a wake-up is never lost to one already pending. (SIGURG, the
// runtime's preemption signal, would have to be unblocked between Waits,
// two more system calls a Wait; see Wait.)
func wakeSignal(sigs *unix.Sigset_t) syscall.Signal {
	for n := syscall.Signal(sigRTMax); n > sigRTMin; n-- {
		if !sigismember(sigs, n) {
			return n
		}
	}
	return 0
}

// Waiter is the fast way to wait for signals in Go: it takes them on one
// OS thread, blocked there and read from a signalfd(2) (as a C program
// takes them with sigwaitinfo(3)), instead of through the Go runtime's handler, the
// os/signal goroutine and a channel (see the package documentation for
// the difference; on a 2-CPU VM the round trip of a signal between two
// processes went from about 2× python3's to below it).
//
// How it works, and what that means for the caller:
//
//   - NewWaiter wires the calling goroutine to its OS thread
//     (runtime.LockOSThread) until Close, and blocks the Waiter's signals
//     on that thread, with one real-time signal of its own that wakes
//     Wait when its context ends (SIGRTMAX, or the highest real-time
//     signal the Waiter does not wait for; a Waiter cannot wait for all
//     of them). Wait and Close must be called from that goroutine (they
//     fail otherwise); the goroutine may do anything else in between,
//     except unblock those signals on its thread (pthread_sigmask(2) by
//     hand): a Wait would then miss what is sent to the thread.
//   - The fast path is a signal sent to that thread, with KillThread(pid,
//     w.Tid(), sig): tgkill(2). It stays pending on the thread until Wait
//     takes it, so unlike Pause a signal sent before Wait is not lost (a
//     standard signal sent twice before Wait is seen once; real-time
//     signals queue). Wait returns as soon as the kernel wakes the thread:
//     no other thread or goroutine takes part. os/signal never sees these
//     signals: other signal.Notify channels of the program do not receive
//     them.
//   - A signal sent to the process (kill(2), Kill, `kill PID` in a shell)
//     is still delivered the usual way, by the Go runtime, on another
//     thread: the Waiter registers its signals with signal.Notify, so Wait
//     returns those too, a little later (two more hand-overs: the
//     os/signal goroutine, and a goroutine of the Waiter that wakes its
//     thread), and other Notify channels of the program receive them as
//     well. One exception, from the kernel: a signal sent to the process
//     waits in the process's queue until the thread the kernel picked for
//     it runs, and a Wait reading at that moment may take it from the
//     queue first. Wait then returns it at once, and os/signal never sees
//     it: the program's other Notify channels (and other Waiters) miss
//     that one. A signal sent to the process reaches a Waiter in any case,
//     but not necessarily everyone else while a Wait waits. As with
//     Notify, while the Waiter is open such a signal does not have its
//     default effect (SIGTERM or SIGINT do not end the program); Close
//     gives it back (signal.Stop).
//   - Close takes and drops the signals still pending on the thread, then
//     unblocks them: a signal sent to the thread after Close is handled
//     as a signal sent to the process (os/signal, or the runtime's default:
//     SIGUSR1 is then ignored by a Go program, SIGTERM ends it).
//   - Children do not inherit a Waiter: a process started while one is
//     open (os/exec, multiproc) starts with the Go runtime's own signal
//     mask and handlers, and must make its own Waiter, and send its tid to
//     whoever signals it.
//   - Forking on the Waiter's goroutine (os/exec's Start, for one) keeps
//     the thread's signal mask: the runtime blocks every signal around the
//     fork and restores the mask it saved (checked with Go 1.26, and by
//     the tests). So Wait makes no system call but the read: no mask is
//     set on each Wait (a system call costs 1–4 µs on a VM, about a tenth
//     of a round trip between processes).
//
// Signals that cannot be waited for (NewWaiter refuses them): SIGKILL and
// SIGSTOP (cannot be caught); SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP and
// SIGSYS (raised by the faulting thread itself; the runtime turns them into
// panics); SIGURG and SIGPROF (the runtime's own); SIGRTMIN (34: a Go
// program cannot catch it); and the job-control signals SIGTSTP, SIGTTIN,
// SIGTTOU and SIGCONT (after signal.Notify and Stop, SIGTSTP no longer
// stops a Go program).
//
// Waiters on different goroutines all receive a signal sent to the
// process (but for the exception above); a signal sent to a thread
// reaches only a Waiter of that thread. A goroutine that ends without closing its Waiter takes the
// thread with it (the runtime ends a locked thread), but the Waiter's
// os/signal registration stays: close every Waiter.
type Waiter struct {
	pid, tid int
	sfd      int            // a signalfd for waitSet, read by Wait on the thread
	sigs     unix.Sigset_t  // the Waiter's signals
	wake     syscall.Signal // its wake-up signal (wakeSignal)
	waitSet  unix.Sigset_t  // sigs and wake: blocked on the thread until Close
	newly    unix.Sigset_t  // those of waitSet that NewWaiter blocked (were not blocked before)
	nums     []syscall.Signal

	// pending holds, one bit per signal number, the signals os/signal
	// delivered to the process and handed to this Waiter.
	pending atomic.Uint64
	notify  chan os.Signal
	stop    chan struct{} // closed by Close: ends the forwarder
	fwdDone chan struct{} // closed when the forwarder has ended
	closed  bool          // only the owner goroutine touches it

	// The context of the last Wait, and the end of its AfterFunc: a loop
	// of Waits with one context registers it once, not once a wait.
	watched     context.Context
	stopWatched func() bool

	// A context's wake-up runs on a goroutine of its own and may come at
	// any time, even as Close runs (stopWatched then reports it started):
	// it sends under wakeMu, and Close sets wakeOff under wakeMu before it
	// takes what is pending. So no wake-up reaches the thread after Close,
	// where a later Waiter on the same thread that waits for that signal
	// would take it for a real one.
	wakeMu  sync.Mutex
	wakeOff bool
}

// waitable reports why sig cannot be waited for, or "".
func waitable(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL, syscall.SIGSTOP:
		return "it cannot be caught"
	case syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS:
		return "it is raised by a fault of the thread itself"
	case syscall.SIGURG, syscall.SIGPROF:
		return "the Go runtime uses it"
	case syscall.Signal(sigRTMin):
		return "a Go program cannot catch it"
	case syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGCONT:
		return "it is a job-control signal"
	}
	if _, ok := byNumber[sig]; !ok {
		return "it is not a signal of this system"
	}
	return ""
}

func sigaddset(set *unix.Sigset_t, sig syscall.Signal) {
	set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
}

func sigismember(set *unix.Sigset_t, sig syscall.Signal) bool {
	return set.Val[(sig-1)/64]&(1<<((uint(sig)-1)%64)) != 0
}

// NewWaiter makes a Waiter for sigs (at least one) on the calling
// goroutine's thread; see Waiter. The caller must Close it, from the same
// goroutine. A signal that cannot be waited for gives an error that
// matches syscall.EINVAL.
func NewWaiter(sigs ...syscall.Signal) (*Waiter, error) {
	if len(sigs) == 0 {
		return nil, fmt.Errorf("multiproc: NewWaiter: no signal given: %w", syscall.EINVAL)
	}
	w := &Waiter{pid: os.Getpid()}
	osSigs := make([]os.Signal, 0, len(sigs))
	for _, s := range sigs {
		if why := waitable(s); why != "" {
			return nil, fmt.Errorf("multiproc: NewWaiter: %s cannot be waited for: %s: %w", sigName(s), why, syscall.EINVAL)
		}
		if sigismember(&w.sigs, s) {
			continue
		}
		sigaddset(&w.sigs, s)
		w.nums = append(w.nums, s)
		osSigs = append(osSigs, s)
	}
	w.waitSet = w.sigs
	if w.wake = wakeSignal(&w.sigs); w.wake == 0 {
		return nil, fmt.Errorf("multiproc: NewWaiter: a Waiter cannot wait for every real-time signal: it needs one to wake itself: %w", syscall.EINVAL)
	}
	sigaddset(&w.waitSet, w.wake)
	sfd, err := unix.Signalfd(-1, &w.waitSet, unix.SFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("multiproc: NewWaiter: signalfd: %w", err)
	}
	w.sfd = sfd

	runtime.LockOSThread()
	w.tid = unix.Gettid()
	var old unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &w.waitSet, &old); err != nil {
		unix.Close(w.sfd)
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("multiproc: NewWaiter: blocking the signals: %w", err)
	}
	for i := range w.newly.Val {
		w.newly.Val[i] = w.waitSet.Val[i] &^ old.Val[i]
	}

	// Signals sent to the process reach os/signal: hand them over.
	w.notify = make(chan os.Signal, len(osSigs)+1)
	w.stop = make(chan struct{})
	w.fwdDone = make(chan struct{})
	signal.Notify(w.notify, osSigs...)
	go w.forward()
	return w, nil
}

// forward runs until Close: it records each signal os/signal delivers and
// wakes the Waiter's thread.
func (w *Waiter) forward() {
	defer close(w.fwdDone)
	for {
		select {
		case s := <-w.notify:
			n := s.(syscall.Signal)
			w.pending.Or(1 << (uint(n) - 1))
			unix.Tgkill(w.pid, w.tid, w.wake) // the thread may be gone with its goroutine: nothing to wake then
		case <-w.stop:
			return
		}
	}
}

// Tid returns the id of the Waiter's thread: what another process passes
// to KillThread, with this process's pid, to reach Wait by the fast path.
func (w *Waiter) Tid() int { return w.tid }

func (w *Waiter) checkOwner(what string) error {
	if unix.Gettid() != w.tid {
		return fmt.Errorf("multiproc: Waiter.%s called from another goroutine than the one that made the Waiter: %w", what, syscall.EINVAL)
	}
	return nil
}

// takePending removes and returns the lowest signal os/signal handed over,
// or 0.
func (w *Waiter) takePending() syscall.Signal {
	for {
		p := w.pending.Load()
		if p == 0 {
			return 0
		}
		low := p & -p
		if w.pending.CompareAndSwap(p, p&^low) {
			return syscall.Signal(bits.TrailingZeros64(low) + 1)
		}
	}
}

// Wait waits until one of the Waiter's signals arrives, sent to its
// thread (KillThread) or to the process, and returns it (a
// syscall.Signal); or returns ctx.Err() once ctx ends, at once if it has
// already ended. After Close it returns an error matching ErrClosed. It
// must be called from the goroutine that made the Waiter.
func (w *Waiter) Wait(ctx context.Context) (os.Signal, error) {
	if err := w.checkOwner("Wait"); err != nil {
		return nil, err
	}
	if w.closed {
		return nil, ErrClosed
	}
	// The signals and the wake-up signal stay blocked on this thread from
	// NewWaiter to Close, so a wake-up sent at any time stays pending until
	// the signalfd read takes it: none is lost.
	w.watch(ctx)
	var info [128]byte // struct signalfd_siginfo
	for {
		if s := w.takePending(); s != 0 {
			return s, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A read of the signalfd, not rt_sigtimedwait: rt_sigtimedwait
		// unblocks the signals while it sleeps, so the kernel would also
		// pick this thread for signals sent to the process, which
		// os/signal would then never see (the signalfd read can still take
		// one from the process's queue before the thread the kernel picked
		// does: see Waiter). The context's end, deadline included, comes
		// as the AfterFunc's wake-up: no kernel timer is armed on every
		// wait (that cost about 2 µs a wait on a VM).
		_, err := unix.Read(w.sfd, info[:])
		if err == unix.EINTR {
			continue // a handler ran on this thread: look again
		}
		if err != nil {
			return nil, fmt.Errorf("multiproc: Waiter.Wait: reading the signalfd: %w", err)
		}
		if s := syscall.Signal(*(*uint32)(unsafe.Pointer(&info[0]))); s != w.wake { // ssi_signo
			return s, nil
		}
		// The wake-up: ctx ended, or os/signal handed a signal over.
	}
}

// watch arranges for the end of ctx to wake the thread out of Wait. The
// registration stays for the next Waits with the same ctx; one for an
// earlier ctx may still wake a later Wait, which then just looks again.
func (w *Waiter) watch(ctx context.Context) {
	if ctx.Done() == nil {
		return // never ends
	}
	if w.watched != nil && reflect.TypeOf(ctx).Comparable() && ctx == w.watched {
		return
	}
	w.unwatch()
	w.watched = ctx
	w.stopWatched = context.AfterFunc(ctx, func() {
		w.wakeMu.Lock()
		defer w.wakeMu.Unlock()
		if !w.wakeOff {
			unix.Tgkill(w.pid, w.tid, w.wake)
		}
	})
}

func (w *Waiter) unwatch() {
	if w.stopWatched != nil {
		w.stopWatched()
	}
	w.watched, w.stopWatched = nil, nil
}

// Close ends the Waiter: it stops taking signals sent to the process
// (signal.Stop), drops the signals still pending on its thread, unblocks
// on the thread the signals it blocked, and unwires the goroutine from the
// thread (runtime.UnlockOSThread). It must be called from the goroutine
// that made the Waiter; a second Close does nothing and returns nil.
func (w *Waiter) Close() error {
	if err := w.checkOwner("Close"); err != nil {
		return err
	}
	if w.closed {
		return nil
	}
	w.closed = true
	w.unwatch()
	w.wakeMu.Lock()
	w.wakeOff = true // a context's wake-up sent from now on would outlive the Waiter
	w.wakeMu.Unlock()
	signal.Stop(w.notify)
	close(w.stop)
	<-w.fwdDone
	// Take what is pending on the thread, so that unblocking does not hand
	// it to the runtime's default action (a pending SIGTERM would end the
	// program). Block first, in case the caller unblocked them.
	unix.PthreadSigmask(unix.SIG_BLOCK, &w.waitSet, nil)
	var info [128]byte
	var zero unix.Timespec
	for {
		_, _, errno := unix.Syscall6(unix.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(&w.waitSet)),
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&zero)), 8, 0, 0)
		if errno != 0 && errno != unix.EINTR {
			break // EAGAIN: nothing left
		}
	}
	unix.PthreadSigmask(unix.SIG_UNBLOCK, &w.newly, nil)
	unix.Close(w.sfd)
	runtime.UnlockOSThread()
	return nil
}

// KillThread sends sig to the thread tid of the process pid, with
// tgkill(2): the fast path to a Waiter (its Tid). Both ids must be from 1
// to MaxPid (an error matching ErrBadPid otherwise, and nothing is sent).
// A thread that has ended, or that is not a thread of pid, gives an error
// matching syscall.ESRCH: a thread id is never taken for another process's.
// sig 0 only checks that the thread exists and may be signalled.
func KillThread(pid, tid int, sig syscall.Signal) error {
	if err := checkPid("process", pid); err != nil {
		return err
	}
	if err := checkPid("thread", tid); err != nil {
		return err
	}
	if err := unix.Tgkill(pid, tid, sig); err != nil {
		return fmt.Errorf("multiproc: kill thread %d of pid %d with %s: %w", tid, pid, sigName(sig), err)
	}
	return nil
}
