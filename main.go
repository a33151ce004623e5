package multiproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/spawn"
	"golang.org/x/sys/unix"
)

var mainCalled atomic.Bool

// Main must be the first statement of the program's main function (and of
// TestMain in tests). In the parent it returns at once. In a child process
// — the same binary started again by this package — it runs the task the
// parent sent and exits; it never returns there, so nothing else of main
// runs in a child.
//
// Package initialisation (every init and package-level var) runs in each
// child before Main: keep it cheap and free of side effects. A program
// that forgets Main cannot start processes: Start fails with an error
// matching ErrNoMain instead, and the half-started child is killed.
func Main() {
	mainCalled.Store(true)
	if os.Getenv(spawn.EnvRole) != "child" {
		return
	}
	name := os.Getenv(spawn.EnvName)
	// A program the child starts with os/exec must not think it is a child.
	os.Unsetenv(spawn.EnvRole)
	os.Unsetenv(spawn.EnvName)
	os.Exit(childMain(name))
}

// inChildWithoutMain reports a re-executed child whose main did not call
// Main: it must never start processes of its own, or a forgotten Main
// would multiply without end.
func inChildWithoutMain() bool { return os.Getenv(spawn.EnvRole) == "child" }

// Message layout of a task (parent → child):
//
//	kind byte, flags byte, function name, process name, handle table, argument
const flagDaemon = 1

type task struct {
	kind    taskKind
	daemon  bool
	fn      string
	name    string
	entries []handle.Entry
	arg     []byte
}

func (t *task) append(b []byte) []byte {
	var flags byte
	if t.daemon {
		flags |= flagDaemon
	}
	b = append(b, byte(t.kind), flags)
	b = handle.AppendString(b, t.fn)
	b = handle.AppendString(b, t.name)
	b = handle.AppendEntries(b, t.entries)
	return handle.AppendBytes(b, t.arg)
}

func parseTask(b []byte, fds []int) (*task, error) {
	if len(b) < 2 {
		unixCloseAll(fds)
		return nil, errors.New("multiproc: short task message")
	}
	t := &task{kind: taskKind(b[0]), daemon: b[1]&flagDaemon != 0}
	r := handle.NewReader(b[2:])
	t.fn = r.String()
	t.name = r.String()
	if err := r.Err(); err != nil {
		unixCloseAll(fds)
		return nil, err
	}
	entries, rest, err := handle.ParseEntries(r.Rest(), fds)
	if err != nil {
		return nil, err
	}
	t.entries = entries
	r = handle.NewReader(rest)
	t.arg = r.Bytes()
	if err := r.Err(); err != nil {
		handle.CloseFds(entries)
		return nil, err
	}
	return t, nil
}

func unixCloseAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// Result statuses (child → parent): status byte, then the encoded result
// or the error text.
const (
	resultOK byte = iota
	resultErr
	resultPanic
)

// childMain is the whole life of a child: handshake, one task, result.
func childMain(name string) int {
	syscall.CloseOnExec(spawn.CtlFd)
	ctl, err := spawn.NewCtl(os.NewFile(spawn.CtlFd, "multiproc-ctl"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "multiproc: child %s: %v\n", name, err)
		return 1
	}
	if err := ctl.Send(spawn.MsgHello, spawn.Hello(), nil); err != nil {
		return 1
	}
	typ, payload, fds, err := ctl.Recv()
	if err != nil || typ != spawn.MsgTask {
		// The parent gave up on us (or is gone): nothing to run.
		unixCloseAll(fds)
		return 1
	}
	t, err := parseTask(payload, fds)
	if err != nil {
		fmt.Fprintf(os.Stderr, "multiproc: child %s: %v\n", name, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go lifeline(ctl, cancel, t.daemon)

	status, out := runTask(ctx, t)
	finishChildren()
	res := append([]byte{status}, out...)
	if err := ctl.Send(spawn.MsgResult, res, nil); err != nil && status == resultOK {
		return 1
	}
	if status != resultOK {
		return 1
	}
	return 0
}

// lifeline reads the control socket for the rest of the child's life:
// MsgCancel cancels the task's context, and EOF means the parent is gone —
// the context is cancelled, and a daemon child dies at once with its own
// daemon children.
func lifeline(ctl *spawn.Ctl, cancel context.CancelFunc, daemon bool) {
	for {
		typ, _, fds, err := ctl.Recv()
		unixCloseAll(fds)
		if err != nil {
			cancel()
			if daemon {
				killDaemonChildren()
				unix.Kill(os.Getpid(), unix.SIGKILL)
			}
			if err != io.EOF {
				return
			}
			return
		}
		if typ == spawn.MsgCancel {
			cancel()
		}
	}
}

// runTask runs t and returns the result status and payload; a panic is
// recovered into resultPanic, with its stack printed on stderr.
func runTask(ctx context.Context, t *task) (status byte, out []byte) {
	run, ok := lookup(t.kind, t.fn)
	if !ok {
		handle.CloseFds(t.entries)
		return resultErr, fmt.Appendf(nil, "multiproc: %q is not registered in the child (register it at package initialisation)", t.fn)
	}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "panic in multiproc child %s (%s): %v\n\n%s", t.name, t.fn, r, debug.Stack())
			status, out = resultPanic, fmt.Append(nil, r)
		}
	}()
	b, err := run(ctx, t.arg, t.entries)
	if err != nil {
		return resultErr, []byte(err.Error())
	}
	return resultOK, b
}

// children is every process this process started that has not been reaped.
var children struct {
	sync.Mutex
	set map[*Process]struct{}
}

func addChild(p *Process) {
	children.Lock()
	if children.set == nil {
		children.set = map[*Process]struct{}{}
	}
	children.set[p] = struct{}{}
	children.Unlock()
}

func removeChild(p *Process) {
	children.Lock()
	delete(children.set, p)
	children.Unlock()
}

func liveChildren() []*Process {
	children.Lock()
	defer children.Unlock()
	ps := make([]*Process, 0, len(children.set))
	for p := range children.set {
		ps = append(ps, p)
	}
	return ps
}

func killDaemonChildren() {
	for _, p := range liveChildren() {
		if p.Daemon {
			p.Kill()
		}
	}
}

// finishChildren is Python's rule for a child whose task returned: kill
// its daemon children, join the others.
func finishChildren() {
	killDaemonChildren()
	for _, p := range liveChildren() {
		p.Join(context.Background())
	}
}
