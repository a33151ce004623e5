//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"fmt"
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
	ErrClosed = newError("use of a closed object")
	// ErrPoolClosed: the Pool was closed or terminated and takes no new work.
	ErrPoolClosed = newError("pool is closed")
	// ErrWorkerDied: the pool worker running a task died before the task ended.
	ErrWorkerDied = newError("pool worker died")

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
	ErrNotStarted = newError("process not started")
	// ErrStarted: Start was called on a process that was already started.
	ErrStarted = newError("process already started")
	// ErrNotRegistered: the function or Runner type was not registered,
	// so a child could not find it.
	ErrNotRegistered = newError("not registered")
	// ErrReaped: a child process was reaped by someone else — a waitpid,
	// wait4 or os.Process.Wait outside multiproc — so its exit status is
	// lost. The library reaps every child it starts: never wait for one
	// yourself. Join returns it (wrapped, naming the process).
	ErrReaped = newError("the child was reaped by someone else (a waitpid outside multiproc): its exit status is lost")
	// ErrAuthentication: a socket's authentication handshake failed — the
	// two sides hold different authkeys, or the peer does not speak
	// Python's multiprocessing.connection handshake (Dial, Listener).
	ErrAuthentication = auth.ErrAuth
	// ErrBrokenBarrier: a Barrier was broken by a waiter whose context ended.
	ErrBrokenBarrier = newError("barrier is broken")
	// ErrShared: a shared object (a *Value, *Array, *Queue, *Conn,
	// *Lock, ...) was found where it cannot go: in a value sent with
	// Send or Put, in a function's result, or in a task for an Executor
	// that runs tasks on other machines (see Task.Shared). Shared objects
	// travel only as a Func argument or Runner (or a struct field of one)
	// to a process or a Pool on this machine.
	ErrShared = wire.ErrShareable
	// ErrNotInitialized: a method was called on the zero value of a type
	// that only its New function makes (Value, Array, Lock, Semaphore,
	// Event, Barrier, Queue), or on a zero Conn (made by Pipe, ConnFromFd,
	// ConnFromNet, Dial or Accept) or Listener (made by Listen). Methods
	// without an error result panic with an error matching it.
	ErrNotInitialized = newError("zero value: make it with its New function")
	// ErrTooLarge: a message cannot be stored (a Queue message larger than
	// the largest ring).
	ErrTooLarge = newError("message too large")
	// ErrCorrupt: shared memory holds what no operation of the package
	// writes (another process scribbled on it).
	ErrCorrupt = newError("shared memory is corrupt")
	// ErrMessageTooLarge: a Conn received a message longer than its limit
	// (Conn.SetMaxMessage). The message is left unread, and every later
	// receive returns this error until the limit is raised.
	ErrMessageTooLarge = wire.ErrFrameTooLarge
)

// errNilContext is returned by every call that takes a context and was
// given nil (as net/http's NewRequestWithContext does), instead of a
// nil-pointer panic deep inside.
var errNilContext = newError("nil Context (use context.Background() or context.TODO())")

// ExitError reports a child process that did not exit with status 0: it
// returned an error, panicked, called os.Exit with another code, or was
// ended by a signal. Join and Call return it (as *ExitError).
type ExitError struct {
	Name     string // the process's Name
	Pid      int    // its process id
	ExitCode int    // as ExitCode(): the exit status, or -N when ended by signal N
	Message  string // the child's error or panic text; "" when it died by a signal
}

// Error describes the failure; it starts with "multiproc:". The child's
// own text (Message) comes last, as it was.
func (e *ExitError) Error() string { return prefix + e.bare() }

func (e *ExitError) bare() string {
	var how string
	if e.ExitCode < 0 {
		sig := syscall.Signal(-e.ExitCode)
		how = fmt.Sprintf("killed by signal %d (%v)", -e.ExitCode, sig)
	} else {
		how = fmt.Sprintf("exit status %d", e.ExitCode)
	}
	s := fmt.Sprintf("process %s (pid %d) failed: %s", e.Name, e.Pid, how)
	if e.Message != "" {
		s += ": " + e.Message
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

// BufferTooShortError is Python's multiprocessing.BufferTooShort: the
// buffer given to Conn.RecvBytesInto was shorter than the message. The
// message was received all the same, and Message holds it whole.
type BufferTooShortError struct {
	Message []byte // the message, received in a buffer of its own
	Len     int    // the length of the buffer that was too short
}

// Error says how long the message and the buffer were; it starts with
// "multiproc:".
func (e *BufferTooShortError) Error() string { return prefix + e.bare() }

func (e *BufferTooShortError) bare() string {
	return fmt.Sprintf("RecvBytesInto: the message of %d bytes is longer than the %d-byte buffer (it is in the error's Message)", len(e.Message), e.Len)
}

// RemoteError is a function's error as it came back from a child process:
// only its text crosses the process boundary.
type RemoteError struct {
	Text  string // the error's text in the child
	Panic bool   // the function panicked; Text is the panic value
}

// Error returns "multiproc: error in child: " (or "multiproc: panic in
// child: ") and the child's text exactly as it was.
func (e *RemoteError) Error() string { return prefix + e.bare() }

func (e *RemoteError) bare() string {
	if e.Panic {
		return "panic in child: " + e.Text
	}
	return "error in child: " + e.Text
}

// The package's errors say "multiproc: " once, at the start, as net/http's
// say "http: ". The internal packages' errors say nothing of the kind: the
// package adds the prefix where their errors leave it (errorf). An error
// of the package that another one quotes (through errorf) appears there
// without its own prefix: every such error knows its text without it
// (bare), so no text is ever cut. The text of a child's error
// (RemoteError.Text, ExitError.Message) is the child's, and is never
// changed.
const prefix = "multiproc: "

// ownError is an error made by this package: its text is prefix + bare().
type ownError interface {
	error
	bare() string
}

// pkgError is an error of the package: its text is prefix + msg, and it
// wraps err (a sentinel it matches, or what errorf formatted; nil for a
// sentinel itself).
type pkgError struct {
	msg string
	err error
}

func (e *pkgError) Error() string { return prefix + e.msg }
func (e *pkgError) Unwrap() error { return e.err }
func (e *pkgError) bare() string  { return e.msg }

// newError is errors.New for the package's errors: msg without the prefix.
func newError(msg string) error { return &pkgError{msg: msg} }

// quoted is one of the package's errors inside another's text: its bare
// text, and it unwraps to the error itself (errors.Is and As see it).
type quoted struct{ e ownError }

func (q quoted) Error() string { return q.e.bare() }
func (q quoted) Unwrap() error { return q.e }

// own is err as the package returns it: an error of an internal package
// (which says nothing of "multiproc: ") gets the prefix; the package's own
// errors, context's and nil are returned as they are.
func own(err error) error {
	if _, ok := err.(ownError); ok || err == nil || err == context.Canceled || err == context.DeadlineExceeded {
		return err
	}
	return errorf("%w", err)
}

// textOf is err's text as the package quotes it: without the prefix when
// err is one of the package's own errors.
func textOf(err error) string {
	if e, ok := err.(ownError); ok {
		return e.bare()
	}
	return err.Error()
}

// userError is an error that a user's function or Runner returned in a
// child: its text goes to the parent as it is.
type userError struct{ err error }

func (e userError) Error() string { return e.err.Error() }
func (e userError) Unwrap() error { return e.err }

// childText is the text of an error that a child sends its parent (who
// shows it in a RemoteError or ExitError, after its own prefix): a user's
// error's as it is, the package's own without its prefix.
func childText(err error) string {
	if u, ok := err.(userError); ok {
		return u.err.Error()
	}
	return textOf(err)
}

// errorf is fmt.Errorf for the package's errors: format is the text
// without the prefix, and errors of the package among args are formatted
// without theirs, so the result says "multiproc: " once. The errors it
// wraps (%w) stay visible to errors.Is and errors.As.
func errorf(format string, args ...any) error {
	a := make([]any, len(args))
	for i, x := range args {
		if e, ok := x.(ownError); ok { // as textOf
			x = quoted{e}
		}
		a[i] = x
	}
	err := fmt.Errorf(format, a...)
	return &pkgError{msg: err.Error(), err: err}
}
