package multiproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
// the task and exits. Its stdout and stderr are the parent's; its stdin is
// /dev/null. It is reaped the moment it exits, whether or not anyone calls
// Join, so no zombie is ever left. A Process's methods are safe for
// concurrent use once Start has returned.
type Process struct {
	// Name is the process's name, for messages and ExitError. Set it
	// before Start; Start fills in "Process-N" if it is empty.
	Name string
	// Daemon, set before Start, makes the child die with its parent: when
	// the parent exits or is killed, even by SIGKILL, the child is killed
	// within about a millisecond. A child whose task returns kills its own
	// daemon children and waits for the others before it exits.
	Daemon bool

	kind   taskKind
	fn     string
	encode func(tab *handle.Table) ([]byte, []handle.Entry, error)

	mu      sync.Mutex
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
			return nil, nil, errors.New("multiproc: NewProcess with a nil Runner")
		}
		return p
	}
	regMu.RLock()
	name, ok := runnerName[reflectTypeOf(r)]
	regMu.RUnlock()
	p.fn = name
	p.encode = func(tab *handle.Table) ([]byte, []handle.Entry, error) {
		if !ok {
			return nil, nil, fmt.Errorf("%w: runner type %T (call RegisterRunner at package initialisation)", ErrNotRegistered, r)
		}
		return encodeRunner(r, tab)
	}
	return p
}

// Start starts the child and returns once it has answered the start
// handshake and received its task. A second Start fails with ErrStarted.
// If the child does not answer — most often because the program's main
// does not call Main first — Start kills it and returns an error matching
// ErrNoMain.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return ErrStarted
	}
	if p.encode == nil {
		return errors.New("multiproc: Process has nothing to run: make it with Func.Process or NewProcess")
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
	t := &task{kind: p.kind, daemon: p.Daemon, fn: p.fn, name: p.Name, items: []taskItem{{entries, arg}}, table: tab}
	c, err := spawnChild(p.Name, p.Daemon, false, t)
	if err != nil {
		return err
	}
	p.started = true
	p.pid = c.pid
	p.proc = c.cmd.Process
	p.done = make(chan struct{})
	p.settled = make(chan struct{})
	addChild(p)
	go p.watch(c)
	return nil
}

// childProc is a started child: its command, control channel and pidfd.
type childProc struct {
	cmd   *exec.Cmd
	ctl   *spawn.Ctl
	pid   int
	pidfd int // owned by reap
}

// spawnChild starts a child named name, completes the start handshake
// and sends it t. ownGroup puts it in a process group of its own, out of
// reach of the terminal's Ctrl-C (pool workers: the pool decides).
func spawnChild(name string, daemon, ownGroup bool, t *task) (*childProc, error) {
	if inChildWithoutMain() {
		return nil, fmt.Errorf("%w (this process is a child whose main never called Main)", ErrNoMain)
	}
	msg := t.append(nil)
	if !ownGroup {
		if c := takeSpare(); c != nil {
			if err := sendToSpare(c, t); err == nil {
				return c, nil
			}
			c.cmd.Process.Kill()
			c.reap()
		}
	}
	ctl, childEnd, err := spawn.Pair()
	if err != nil {
		return nil, err
	}
	c := &childProc{ctl: ctl}
	c.cmd = spawn.Command(name, childEnd, daemon, &c.pidfd)
	c.cmd.Stdout, c.cmd.Stderr = os.Stdout, os.Stderr
	if ownGroup {
		c.cmd.SysProcAttr.Setpgid = true
	}
	err = spawn.Start(c.cmd)
	childEnd.Close()
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("multiproc: starting %s: %w", name, err)
	}
	c.pid = c.cmd.Process.Pid
	fail := func(err error) (*childProc, error) {
		c.cmd.Process.Kill()
		c.reap()
		return nil, err
	}
	// A small task goes out before the hello comes back, saving a round
	// trip: the socket buffers it. A large one could fill the buffer and
	// block forever on a child that never reads (no Main), so it waits.
	early := len(msg) <= 32<<10
	send := func() error {
		if err := ctl.Send(spawn.MsgTask, msg, t.fds()); err != nil {
			return fmt.Errorf("multiproc: sending %s its task: %w", name, err)
		}
		return nil
	}
	if early {
		if err := send(); err != nil {
			return fail(err)
		}
	}
	if err := spawn.AwaitHello(ctl, c.pid); err != nil {
		return fail(fmt.Errorf("multiproc: starting %s: %w", name, err))
	}
	if !early {
		if err := send(); err != nil {
			return fail(err)
		}
	}
	return c, nil
}

// sendToSpare sends t to a spare with this process's stdout and stderr.
func sendToSpare(c *childProc, t *task) error {
	stdio, err := stdioFds()
	defer unixCloseAll(stdio)
	if err != nil {
		return err
	}
	st := *t
	st.stdio = true
	return c.ctl.Send(spawn.MsgTask, st.append(nil), append(stdio, t.fds()...))
}

// reap waits for the child to exit, reaps it, closes its control channel
// and returns its exit code (-N for signal N).
func (c *childProc) reap() int {
	spawn.WaitExit(c.pidfd)
	c.cmd.Wait()
	c.ctl.Close()
	st := c.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -int(ws.Signal())
	}
	return st.ExitCode()
}

// watch collects the child's result, then reaps it the moment it exits.
func (p *Process) watch(c *childProc) {
	typ, payload, fds, err := c.ctl.Recv()
	unixCloseAll(fds)
	if err == nil && typ == spawn.MsgResult {
		if rs, err := parseResults(payload); err == nil && len(rs) == 1 {
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
	}
	go refillSpare()
	p.code = c.reap()
	removeChild(p)
	if !p.gotRes {
		close(p.settled)
	}
	close(p.done)
}

// Join waits until the child has exited. It returns nil if it exited with
// status 0, an *ExitError if it failed (an error or panic in its task, a
// non-zero exit, a signal), or ctx.Err() if ctx ends first — the child
// then runs on, and Join may be called again. Join before Start returns
// ErrNotStarted at once.
func (p *Process) Join(ctx context.Context) error {
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
// Before that it returns 0, false.
func (p *Process) ExitCode() (code int, exited bool) {
	done, err := p.doneChan()
	if err != nil {
		return 0, false
	}
	select {
	case <-done:
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
		return fmt.Errorf("multiproc: signalling %s (pid %d): %w", p.Name, p.pid, err)
	}
	return nil
}
