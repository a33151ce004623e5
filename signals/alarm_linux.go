//go:build linux

package signals

import (
	"context"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxAlarm caps Alarm's duration so that the seconds fit a 32-bit time_t.
const maxAlarm = math.MaxInt32 * time.Second // about 68 years

// Alarm arms the process's one alarm clock: d from now the kernel sends
// SIGALRM to the process, once. It is setitimer(2) with ITIMER_REAL, so,
// unlike alarm(2), it has microsecond precision (d is rounded up to a whole
// microsecond, so a tiny positive d still arms the alarm).
//
// There is one alarm per process, shared by all goroutines: a new call
// replaces the alarm that was pending. Alarm returns the time that was
// left of the replaced alarm, or 0 if none was pending. Alarm(0) cancels
// the pending alarm and returns what was left of it. A negative d is
// treated as 0 (cancel). A d above about 68 years is capped. Children
// started with os/exec do not inherit the alarm (fork(2) clears it).
//
// What happens when the alarm goes off depends on the Go runtime, not on
// the SIGALRM default action of signal(7) ("terminate"), and was checked
// on Linux with Go 1.26:
//
//   - If nothing in the program listens for SIGALRM, the runtime's own
//     handler catches the signal and does nothing: the program carries on
//     as if no alarm had been set (a C program would be killed).
//   - If the program called signal.Notify(c, syscall.SIGALRM), the signal
//     is sent on c. After signal.Stop(c) (and no other Notify for it),
//     SIGALRM is again caught and dropped.
//   - If a Pause call is waiting, Pause returns syscall.SIGALRM (as do
//     other Notify channels for SIGALRM, if any).
//
// Blocking system calls are not interrupted by the alarm: the runtime
// installs its handlers with SA_RESTART. Use a context with a deadline to
// bound an operation instead; Alarm is for lessons about signals.
//
// Alarm panics if setitimer(2) fails, which happens only when the system
// forbids the call (for example a seccomp filter).
func Alarm(d time.Duration) (previous time.Duration) {
	if d < 0 {
		d = 0
	}
	if d > maxAlarm {
		d = maxAlarm
	}
	// NsecToTimeval rounds up to the microsecond.
	it := unix.Itimerval{Value: unix.NsecToTimeval(d.Nanoseconds())}
	old, err := unix.Setitimer(unix.ItimerReal, it)
	if err != nil {
		panic("multiproc: setitimer(ITIMER_REAL): " + err.Error())
	}
	return time.Duration(old.Value.Nano())
}

// pauseSignals returns the signals Pause listens for: see Pause.
func pauseSignals() []os.Signal {
	sigs := make([]os.Signal, 0, len(table))
	for _, in := range table {
		switch in.Signal {
		case syscall.SIGKILL, syscall.SIGSTOP, // cannot be caught
			syscall.SIGPROF,          // consumed by the runtime, never sent to Notify channels
			syscall.Signal(sigRTMin): // not catchable in Go: the runtime leaves it to the C library
			continue
		}
		switch in.Default {
		case actIgn, actStop, actCont:
			continue
		}
		if signal.Ignored(in.Signal) {
			continue
		}
		sigs = append(sigs, in.Signal)
	}
	return sigs
}

// Pause waits until the process receives a signal, and returns it (a
// syscall.Signal), or returns ctx.Err() when ctx ends first. A ctx that
// has already ended gives ctx.Err() at once.
//
// Pause listens for every signal whose default action (Info.Default) is
// "terminate" or "core", that is SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP,
// SIGABRT, SIGBUS, SIGFPE, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM,
// SIGTERM, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGIO, SIGPWR, SIGSYS
// and SIGRTMIN+1 to SIGRTMAX, except:
//
//   - signals the program ignores (signal.Ignored reports true, for
//     example after signal.Ignore, or SIGHUP under nohup), so that Pause
//     never un-ignores them, like C's pause(2), which an ignored signal
//     does not wake;
//   - SIGPROF, which the Go runtime consumes itself;
//   - SIGRTMIN (34), which a Go program cannot catch at all.
//
// Pause does not wake for SIGKILL and SIGSTOP (they cannot be caught), for
// signals whose default action is "ignore" (SIGCHLD, which a program with
// children gets often; SIGURG, which the Go runtime sends itself to
// preempt goroutines; SIGWINCH), nor for the job-control signals SIGTSTP,
// SIGTTIN, SIGTTOU and SIGCONT: once os/signal has caught one of those,
// signal.Stop does not give it back its default action (checked with Go
// 1.26: after Notify and Stop, SIGTSTP no longer stops the program), so
// Pause leaves them alone and Ctrl-Z keeps working.
//
// Pause uses signal.Notify with a private channel and removes it with
// signal.Stop before it returns, so it leaves signal handling as it found
// it: other Notify registrations of the program still receive their
// signals, also while Pause waits. Caveats:
//
//   - While Pause waits, a signal that would otherwise end the program
//     (SIGINT, SIGTERM, SIGHUP, a SIGPIPE from writing to a closed stdout)
//     is delivered to Pause instead, which returns it: as with a C handler,
//     the program is not ended and must act on the returned signal itself.
//   - A write to a broken pipe or socket by any goroutine raises SIGPIPE,
//     so it wakes a waiting Pause.
//   - As with C's pause(2), a signal that arrived before Pause was called
//     is not seen; neither is one that arrives in the instant after the
//     first one, while Pause is returning.
//   - Concurrent Pause calls each receive the signal.
//   - A signal sent to a Waiter's thread (KillThread) reaches only that
//     Waiter, never Pause; one sent to the process reaches both.
func Pause(ctx context.Context) (os.Signal, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, pauseSignals()...)
	defer signal.Stop(c)
	select {
	case s := <-c:
		return s, nil
	case <-ctx.Done():
		select {
		case s := <-c: // a signal that came together with the end of ctx wins
			return s, nil
		default:
			return nil, ctx.Err()
		}
	}
}
