//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/spawn"
	"golang.org/x/sys/unix"
)

// Process is a child process that runs one registered function or Runner,
// Python's multiprocessing.Process. Make it with Func.Process or
// NewProcess, set Name and Daemon, then Start it once.
//
// The child is this same program started again (Go cannot fork); it runs
// the task and exits. Its stdout and stderr are the parent's unless Stdout
// and Stderr say otherwise; its stdin is /dev/null. In ps, its name
// (comm) is the Process's Name and its command line the program's, marked:
//
//	/path/to/program [multiproc]
//
// A Process's methods are safe for concurrent use once Start has returned.
//
// The library reaps its children: each child is reaped the moment it
// exits, whether or not anyone calls Join, so no zombie is ever left.
// Never wait for a child yourself (waitpid, wait4, os.FindProcess+Wait,
// Python's os.waitpid translated): a child reaped by someone else has lost
// its exit status, and Join returns an error matching ErrReaped.
//
// A Process must not be copied after first use (go vet reports copies).
type Process struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	// Name is the process's name, for messages and ExitError. Set it
	// before Start; Start fills in "Process-N" if it is empty.
	Name string
	// Daemon, set before Start, makes the child die with its parent: when
	// the parent exits or is killed, even by SIGKILL, the child is killed
	// within about a millisecond. A child whose task returns kills its own
	// daemon children and waits for the others before it exits.
	Daemon bool
	// Stdout and Stderr, set before Start, receive the child's standard
	// output and error. nil means this process's own (os.Stdout and
	// os.Stderr as they are at Start), as after a fork. An *os.File is
	// handed to the child itself; any other io.Writer gets the output
	// through a pipe that a goroutine of this process copies, and Join
	// returns once the copy is complete (at most a second after the child
	// exits, if a process the child started holds the pipe open). A task's
	// panic stack goes to Stderr.
	Stdout, Stderr io.Writer

	kind   taskKind
	fn     string
	encode func(tab *handle.Table) ([]byte, []handle.Entry, error)

	mu      sync.Mutex // guards started, pid and proc
	started bool
	pid     int
	proc    *os.Process
	done    chan struct{} // closed once the child is reaped
	settled chan struct{} // closed once the result arrived or the child is reaped

	// Set before done is closed, read after.
	code   int
	result []byte // the encoded result, when status is resultOK
	status byte
	msg    string
	gotRes bool
	lost   bool // reaped by someone else: the status is unknown
}

var processCount atomic.Int64

// Process returns a new, unstarted Process that runs f(ctx, arg) in a
// child. The function's result is discarded; its error, or a panic, makes
// the process exit with code 1 and Join return an *ExitError carrying the
// text. arg is encoded when Start is called.
func (f *Func[A, R]) Process(arg A) *Process {
	return &Process{
		kind:   kindFunc,
		fn:     f.name,
		encode: func(tab *handle.Table) ([]byte, []handle.Entry, error) { return encodeArg(&arg, tab) },
	}
}

// NewProcess returns a new, unstarted Process that runs r.Run in a child.
// r's concrete type must be registered with RegisterRunner (Start fails
// with an error matching ErrNotRegistered otherwise); its exported fields
// are copied to the child when Start is called.
func NewProcess(r Runner) *Process {
	p := &Process{kind: kindRunner}
	if r == nil {
		p.encode = func(*handle.Table) ([]byte, []handle.Entry, error) {
			return nil, nil, newError("NewProcess with a nil Runner")
		}
		return p
	}
	regMu.RLock()
	name, ok := runnerName[reflectTypeOf(r)]
	regMu.RUnlock()
	p.fn = name
	p.encode = func(tab *handle.Table) ([]byte, []handle.Entry, error) {
		if !ok {
			return nil, nil, errorf("%w: runner type %T (call RegisterRunner at package initialisation)", ErrNotRegistered, r)
		}
		return encodeRunner(r, tab)
	}
	return p
}

// Start starts the child and returns once it has answered the start
// handshake and received its task. A second Start fails with ErrStarted.
// Start is StartContext with no deadline of its own: it waits at most
// 10 s (for a slow, loaded machine; a healthy child answers in
// milliseconds) for the child's answer; StartContext sets a bound of
// one's own. If the child does not answer —
// most often because the program's main does not call Main first — Start
// kills it and returns an error matching ErrNoMain; a child that dies by a
// signal before it answers is an *ExitError with that signal.
func (p *Process) Start() error { return p.StartContext(context.Background()) }

// StartContext is Start bounded by ctx as well: if ctx ends before the
// child has answered, the child is killed and reaped and StartContext
// returns ctx.Err(). Once it has returned nil, ctx no longer matters: the
// child runs on.
func (p *Process) StartContext(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return ErrStarted
	}
	if p.encode == nil {
		return newError("Process has nothing to run: make it with Func.Process or NewProcess")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tab := new(handle.Table)
	defer tab.Close() // the child has its own copies once spawnChild returns
	arg, entries, err := p.encode(tab)
	if err != nil {
		return err
	}
	if p.Name == "" {
		p.Name = fmt.Sprintf("Process-%d", processCount.Add(1))
	}
	stdio, err := newStdio(p.Stdout, p.Stderr)
	if err != nil {
		return err
	}
	t := &task{kind: p.kind, daemon: p.Daemon, fn: p.fn, name: p.Name, items: []taskItem{{entries, arg}}, table: tab}
	c, err := spawnChild(ctx, p.Name, p.Daemon, false, t, stdio)
	stdio.started()
	if err != nil {
		stdio.wait()
		return err
	}
	p.started = true
	p.pid = c.pid
	p.proc = c.cmd.Process
	if p.done == nil { // Done may have made it before Start
		p.done = make(chan struct{})
	}
	p.settled = make(chan struct{})
	addChild(p)
	go p.watch(c, stdio)
	return nil
}

// watch collects the child's result, then reaps it the moment it exits.
func (p *Process) watch(c *childProc, stdio *childStdio) {
	typ, payload, fds, err := c.ctl.Recv()
	unixCloseAll(fds)
	if err == nil {
		if typ != spawn.MsgResult {
			err = errorf("%w: message type %d where the result was due", spawn.ErrCorrupt, typ)
		} else if rs, perr := parseResults(payload); perr != nil {
			err = perr
		} else if len(rs) != 1 {
			err = errorf("%w: %d results for one task", spawn.ErrCorrupt, len(rs))
		} else {
			p.gotRes = true
			p.status = rs[0].status
			if p.status == resultOK {
				p.result = rs[0].data
			} else {
				p.msg = string(rs[0].data)
			}
		}
	}
	if p.gotRes {
		close(p.settled)
	} else {
		c.stopBroken(err)
	}
	go refillSpare()
	p.code = c.reap()
	p.lost = c.lost
	if !p.gotRes && c.why != "" {
		p.msg = c.why
	}
	stdio.wait()
	removeChild(p)
	if !p.gotRes {
		close(p.settled)
	}
	close(p.done)
	wakeWaiters()
}

// Done returns a channel that is closed once the process has ended and
// been reaped, Python's Process.sentinel: select on it beside other
// channels, or pass the Process to Wait. Before Start the channel is not
// closed (Start, if it succeeds, closes the same channel when the child
// ends); a Process whose Start failed never closes it.
func (p *Process) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		p.done = make(chan struct{})
	}
	return p.done
}

// Join waits until the child has exited. It returns nil if it exited with
// status 0, an *ExitError if it failed (an error or panic in its task, a
// non-zero exit, a signal), or ctx.Err() if ctx ends first — the child
// then runs on, and Join may be called again. Join before Start returns
// ErrNotStarted at once.
func (p *Process) Join(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	done, err := p.doneChan()
	if err != nil {
		return err
	}
	select {
	case <-done:
		return p.exitErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Process) doneChan() (chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		return nil, ErrNotStarted
	}
	return p.done, nil
}

func (p *Process) exitErr() error {
	if p.lost {
		return errorf("%w: process %s (pid %d)", ErrReaped, p.Name, p.pid)
	}
	if p.code == 0 {
		return nil
	}
	return &ExitError{Name: p.Name, Pid: p.pid, ExitCode: p.code, Message: p.msg}
}

// Pid returns the child's process id, or 0 before Start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// IsAlive reports whether the child has been started and has not yet exited.
func (p *Process) IsAlive() bool {
	done, err := p.doneChan()
	if err != nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// ExitCode returns the child's exit code and true once it has exited, as
// Python's exitcode: its exit status (0 success; 1 when its task returned
// an error or panicked; N for os.Exit(N)), or -N when signal N ended it.
// Before that it returns 0, false; so it does, like Python's None, for a
// child someone else reaped (see ErrReaped).
func (p *Process) ExitCode() (code int, exited bool) {
	done, err := p.doneChan()
	if err != nil {
		return 0, false
	}
	select {
	case <-done:
		if p.lost {
			return 0, false
		}
		return p.code, true
	default:
		return 0, false
	}
}

// Terminate sends SIGTERM. The child has the signal's default action, as in
// Python: it ends at once with exit code -15, whatever it is doing (unless
// its task chose to catch SIGTERM with signal.Notify).
func (p *Process) Terminate() error { return p.Signal(syscall.SIGTERM) }

// Kill sends SIGKILL: the child ends at once with exit code -9.
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// Signal sends sig to the child. It returns ErrNotStarted before Start and
// nil once the child has exited (there is nothing left to signal; the pid
// may already belong to another process, so none is sent).
func (p *Process) Signal(sig os.Signal) error {
	p.mu.Lock()
	started, proc, done := p.started, p.proc, p.done
	p.mu.Unlock()
	if !started {
		return ErrNotStarted
	}
	select {
	case <-done:
		return nil
	default:
	}
	// os.Process signals through its pidfd: it cannot hit a reused pid.
	if err := proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, unix.ESRCH) {
		return errorf("signalling %s (pid %d): %w", p.Name, p.pid, err)
	}
	return nil
}
