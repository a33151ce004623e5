//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package signals

import "syscall"

// This file holds the signal numbering shared by Linux on amd64 and arm64
// (the "generic" numbering, also used by 386, arm, riscv64, ppc64 and
// others). MIPS numbers its signals differently and is not supported.

// Default actions, spelled as in the Info.Default contract.
const (
	actTerm = "terminate"
	actCore = "core"
	actStop = "stop"
	actCont = "continue"
	actIgn  = "ignore"
)

// Real-time signal range as the C library (glibc, musl) and `kill -l` show
// it. The kernel's real-time signals start at 32, but the C library keeps
// 32 and 33 for itself (thread cancellation and setxid), so `kill -l`
// lists neither and calls 34 SIGRTMIN. Go's runtime reserves them too.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// standard lists signals 1..31 in number order, with the default actions
// of signal(7).
var standard = []Info{
	{syscall.SIGHUP, "SIGHUP", actTerm, "hangup: the controlling terminal closed or its session leader died; daemons use it to reload configuration"},
	{syscall.SIGINT, "SIGINT", actTerm, "interrupt from the keyboard (Ctrl-C)"},
	{syscall.SIGQUIT, "SIGQUIT", actCore, "quit from the keyboard (Ctrl-\\); ends the program with a core dump (a Go program prints all goroutine stacks)"},
	{syscall.SIGILL, "SIGILL", actCore, "illegal instruction"},
	{syscall.SIGTRAP, "SIGTRAP", actCore, "trace or breakpoint trap, used by debuggers"},
	{syscall.SIGABRT, "SIGABRT", actCore, "abort, as raised by abort(3); SIGIOT is a synonym"},
	{syscall.SIGBUS, "SIGBUS", actCore, "bus error: bad memory access, such as touching a truncated memory-mapped file"},
	{syscall.SIGFPE, "SIGFPE", actCore, "arithmetic error, such as integer division by zero"},
	{syscall.SIGKILL, "SIGKILL", actTerm, "kill: ends the process at once; it cannot be caught, blocked or ignored"},
	{syscall.SIGUSR1, "SIGUSR1", actTerm, "user-defined signal 1, free for the application to use"},
	{syscall.SIGSEGV, "SIGSEGV", actCore, "segmentation violation: invalid memory reference"},
	{syscall.SIGUSR2, "SIGUSR2", actTerm, "user-defined signal 2, free for the application to use"},
	{syscall.SIGPIPE, "SIGPIPE", actTerm, "broken pipe: write to a pipe or socket that nobody reads any more"},
	{syscall.SIGALRM, "SIGALRM", actTerm, "timer signal from alarm(2) or setitimer(ITIMER_REAL)"},
	{syscall.SIGTERM, "SIGTERM", actTerm, "termination request, the polite default of kill(1)"},
	{syscall.SIGSTKFLT, "SIGSTKFLT", actTerm, "stack fault on a coprocessor (unused by Linux)"},
	{syscall.SIGCHLD, "SIGCHLD", actIgn, "a child process stopped, continued or ended; SIGCLD is a synonym"},
	{syscall.SIGCONT, "SIGCONT", actCont, "continue the process if it is stopped"},
	{syscall.SIGSTOP, "SIGSTOP", actStop, "stop the process; it cannot be caught, blocked or ignored"},
	{syscall.SIGTSTP, "SIGTSTP", actStop, "stop typed at the terminal (Ctrl-Z)"},
	{syscall.SIGTTIN, "SIGTTIN", actStop, "a background process read from its terminal"},
	{syscall.SIGTTOU, "SIGTTOU", actStop, "a background process wrote to its terminal (when the terminal has tostop set)"},
	{syscall.SIGURG, "SIGURG", actIgn, "urgent (out-of-band) data on a socket; Go's runtime also uses it to preempt goroutines"},
	{syscall.SIGXCPU, "SIGXCPU", actCore, "CPU time limit (RLIMIT_CPU) exceeded"},
	{syscall.SIGXFSZ, "SIGXFSZ", actCore, "file size limit (RLIMIT_FSIZE) exceeded"},
	{syscall.SIGVTALRM, "SIGVTALRM", actTerm, "virtual timer expired: setitimer(ITIMER_VIRTUAL), counts user CPU time"},
	{syscall.SIGPROF, "SIGPROF", actTerm, "profiling timer expired: setitimer(ITIMER_PROF); Go's CPU profiler uses it"},
	{syscall.SIGWINCH, "SIGWINCH", actIgn, "the terminal window changed size"},
	{syscall.SIGIO, "SIGIO", actTerm, "I/O is now possible on a file descriptor set up with O_ASYNC; SIGPOLL is a synonym"},
	{syscall.SIGPWR, "SIGPWR", actTerm, "power failure (System V)"},
	{syscall.SIGSYS, "SIGSYS", actCore, "bad system call, such as one forbidden by a seccomp filter"},
}

// aliases are the synonyms of signal(7) that name a signal of the table.
var aliases = map[string]syscall.Signal{
	"IOT":  syscall.SIGABRT,
	"CLD":  syscall.SIGCHLD,
	"POLL": syscall.SIGIO,
}
