// Package signals is the signals lesson of multiproc: the table of Unix
// signals with their default actions, and small Go versions of kill(2),
// alarm(2) and pause(2). It is written for Linux (amd64 and arm64).
//
// # How Go differs from C
//
// In C a signal that the program has not caught gets the default action of
// signal(7): SIGALRM, SIGUSR1 or SIGTERM end the process, SIGCHLD is
// ignored, SIGTSTP stops it, and so on. Table reports those default
// actions. A Go program is different, because the Go runtime installs its
// own handler for nearly every signal when the program starts. What the
// runtime then does with a signal nobody asked for (os/signal documents
// it; the cases marked "checked" were run on Linux with Go 1.26):
//
//   - SIGHUP, SIGINT and SIGTERM end the program, killed by that signal,
//     as in C (checked: a shell sees exit status 143 after SIGTERM).
//   - SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGSTKFLT and SIGSYS end the
//     program with a dump of all goroutine stacks.
//   - A SIGSEGV, SIGBUS or SIGFPE caused by the program's own code becomes
//     a run-time panic.
//   - SIGPIPE: a write to a broken pipe on file descriptor 1 or 2 ends the
//     program with SIGPIPE, as in C (checked: status 141); on any other
//     descriptor the write just fails with EPIPE and the program goes on
//     (checked: "write |1: broken pipe").
//   - SIGTSTP, SIGTTIN, SIGTTOU and SIGCONT keep the system default: stop,
//     or continue.
//   - SIGPROF is used by the runtime's CPU profiler; if the profiler is
//     off, the signal is dropped.
//   - SIGURG is sent by the runtime itself to preempt goroutines.
//   - Every other signal is caught and nothing happens. In particular
//     SIGALRM, SIGUSR1 and SIGUSR2 do not end a Go program, as they would
//     end a C program (checked: after setitimer fired SIGALRM, and after
//     kill(getpid(), SIGUSR1), the program went on and exited 0). The
//     same holds for the real-time signals, except SIGRTMIN (34), which
//     the runtime leaves at the default action, so that it kills the
//     program (checked) and cannot be caught.
//
// signal.Notify changes this: a signal that has been Notify'd to a channel
// is sent on the channel instead, and the default action above no longer
// happens; SIGINT or SIGTERM then no longer end the program. signal.Stop
// (once no channel wants the signal any more) goes back to the behaviour
// above, and signal.Ignore discards the signal. One exception was checked:
// after Notify and Stop of SIGTSTP, SIGTSTP no longer stops the program.
//
// Pause is built on signal.Notify, so while it waits the signals it
// listens for, SIGINT and SIGTERM included, are delivered to it instead of
// ending the program. Alarm's SIGALRM is harmless to a Go program unless
// something (Pause, or a Notify channel) waits for it.
//
// # The fast path: Waiter and KillThread
//
// A signal that goes through os/signal crosses three threads in the
// receiving program: the runtime's handler runs on whichever thread the
// kernel picked, wakes the thread of the os/signal goroutine, which sends
// on a channel and wakes the thread of the receiving goroutine. On a
// 2-CPU VM, where waking a thread on the other CPU costs tens of
// microseconds, that made a round trip between two processes about twice
// python3's. A Waiter does what a C program does with sigwaitinfo(3): its
// signals are blocked on one thread, the Waiter's goroutine is wired to
// that thread, and Wait reads them from a signalfd(2); KillThread sends a
// signal to that very thread (tgkill(2)), so the kernel wakes the waiting
// code and nothing else. Signals sent to the process the ordinary way
// still reach a Waiter, through os/signal. See Waiter for the limits.
package signals
