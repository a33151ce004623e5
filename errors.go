//go:build linux && (amd64 || arm64)

package multiproc

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/multiproc-go/multiproc/internal/auth"
	"github.com/multiproc-go/multiproc/internal/ring"
	"github.com/multiproc-go/multiproc/internal/spawn"
	"github.com/multiproc-go/multiproc/internal/wire"
)

// Sentinel errors. Match them with errors.Is: the errors the package
// returns wrap them with details (which process, which item).
var (
	// ErrFull: a Queue holds maxsize messages (TryPut, or a Put whose
	// context ended).
	ErrFull = ring.ErrFull
	// ErrEmpty: a Queue holds no message (TryGet, or a Get whose context ended).
	ErrEmpty = ring.ErrEmpty
	// ErrClosed: the object was closed in this process.
	ErrClosed = errors.New("multiproc: use of a closed object")
	// ErrPoolClosed: the Pool was closed or terminated and takes no new work.
	ErrPoolClosed = errors.New("multiproc: pool is closed")
	// ErrWorkerDied: the pool worker running a task died before the task ended.
	ErrWorkerDied = errors.New("multiproc: pool worker died")

	// ErrNoMain: the program did not call Main first thing in main (or in
	// TestMain), so its children cannot start. It is returned by Start in a
	// parent whose child provably ran without Main — it exited with a
	// status before it answered the start handshake, or did not answer in
	// time — and by every call that would start a process inside such a
	// child, which can never multiply. (A child killed by a signal before
	// it answered is an *ExitError with that signal instead.)
	ErrNoMain = spawn.ErrNoHello
	// ErrNotStarted: a Process method that needs a started process was
	// called before Start.
	ErrNotStarted = errors.New("multiproc: process not started")
	// ErrStarted: Start was called on a process that was already started.
	ErrStarted = errors.New("multiproc: process already started")
	// ErrNotRegistered: the function or Runner type was not registered,
	// so a child could not find it.
	ErrNotRegistered = errors.New("multiproc: not registered")
	// ErrReaped: a child process was reaped by someone else — a waitpid,
	// wait4 or os.Process.Wait outside multiproc — so its exit status is
	// lost. The library reaps every child it starts: never wait for one
	// yourself. Join returns it (wrapped, naming the process).
	ErrReaped = errors.New("multiproc: the child was reaped by someone else (a waitpid outside multiproc): its exit status is lost")
	// ErrAuthentication: a socket's authentication handshake failed — the
	// two sides hold different authkeys, or the peer does not speak
	// Python's multiprocessing.connection handshake (Dial, Listener).
	ErrAuthentication = auth.ErrAuth
	// ErrBrokenBarrier: a Barrier was broken by a waiter whose context ended.
	ErrBrokenBarrier = errors.New("multiproc: barrier is broken")
	// ErrShared: a shared object (a *Value, *Array, *Queue, *Conn,
	// *Lock, ...) was found where it cannot go: in a value sent with
	// Send or Put, in a function's result, or in a task for an Executor
	// that runs tasks on other machines (see Task.Shared). Shared objects
	// travel only as a Func argument or Runner (or a struct field of one)
	// to a process or a Pool on this machine.
	ErrShared = wire.ErrShareable
	// ErrNotInitialized: a method was called on the zero value of a type
	// that only its New function makes (Value, Array, Lock, Semaphore,
	// Event, Barrier, Queue). Methods without an error result panic with
	// an error matching it.
	ErrNotInitialized = errors.New("multiproc: zero value: make it with its New function")
	// ErrTooLarge: a message cannot be stored (a Queue message larger than
	// the largest ring).
	ErrTooLarge = errors.New("multiproc: message too large")
	// ErrCorrupt: shared memory holds what no operation of the package
	// writes (another process scribbled on it).
	ErrCorrupt = errors.New("multiproc: shared memory is corrupt")
	// ErrMessageTooLarge: a Conn received a message longer than its limit
	// (Conn.SetMaxMessage). The message is left unread, and every later
	// receive returns this error until the limit is raised.
	ErrMessageTooLarge = wire.ErrFrameTooLarge
)

// errNilContext is returned by every call that takes a context and was
// given nil (as net/http's NewRequestWithContext does), instead of a
// nil-pointer panic deep inside.
var errNilContext = errors.New("multiproc: nil Context (use context.Background() or context.TODO())")

// ExitError reports a child process that did not exit with status 0: it
// returned an error, panicked, called os.Exit with another code, or was
// ended by a signal. Join and Call return it (as *ExitError).
type ExitError struct {
	Name     string // the process's Name
	Pid      int    // its process id
	ExitCode int    // as ExitCode(): the exit status, or -N when ended by signal N
	Message  string // the child's error or panic text; "" when it died by a signal
}

// Error describes the failure; it starts with "multiproc:".
func (e *ExitError) Error() string {
	var how string
	if e.ExitCode < 0 {
		sig := syscall.Signal(-e.ExitCode)
		how = fmt.Sprintf("killed by signal %d (%v)", -e.ExitCode, sig)
	} else {
		how = fmt.Sprintf("exit status %d", e.ExitCode)
	}
	s := fmt.Sprintf("multiproc: process %s (pid %d) failed: %s", e.Name, e.Pid, how)
	if e.Message != "" {
		s += ": " + unprefixed(e.Message)
	}
	return s
}

// Signal returns the signal that ended the process, or 0 if it exited.
func (e *ExitError) Signal() syscall.Signal {
	if e.ExitCode < 0 {
		return syscall.Signal(-e.ExitCode)
	}
	return 0
}

// RemoteError is a function's error as it came back from a child process:
// only its text crosses the process boundary.
type RemoteError struct {
	Text  string // the error's text in the child
	Panic bool   // the function panicked; Text is the panic value
}

// Error returns the child's text after "multiproc: error in child: " (or
// "multiproc: panic in child: "), with no second "multiproc: " when the
// text was one of the package's errors in the child.
func (e *RemoteError) Error() string {
	if e.Panic {
		return "multiproc: panic in child: " + unprefixed(e.Text)
	}
	return "multiproc: error in child: " + unprefixed(e.Text)
}

// unprefixed is s without the "multiproc: " marks of errors it quotes, so
// that the message holding it starts with the only one.
func unprefixed(s string) string {
	return strings.ReplaceAll(s, "multiproc: ", "")
}

// onceErr is an error that wraps another and starts with "multiproc: "
// exactly once, however many the wrapped one's text holds.
type onceErr struct {
	msg string
	err error
}

func (e *onceErr) Error() string { return e.msg }
func (e *onceErr) Unwrap() error { return e.err }

// errorf is fmt.Errorf for the package's errors: the result reads
// "multiproc: " and the formatted text, in which the errors it wraps (with
// %w, which errors.Is and errors.As still see) lose their own "multiproc: ".
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &onceErr{"multiproc: " + unprefixed(err.Error()), err}
}
