package multiproc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
	"github.com/multiproc-go/multiproc/internal/spawn"
	"golang.org/x/sys/unix"
)

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
//	kind byte, flags byte, function name, process name,
//	handle table (the distinct shared objects of every item),
//	item count, then per item: handle entries, argument
//
// A Process's task has one item; a pool chunk has several, run in order.
// The descriptors travel beside the message: a spare's stdio, the tally,
// then the table's, in order.
const (
	flagDaemon = 1 << iota
	flagStdio  // the first two fds are the stdout and stderr to use (a spare's)
	flagBatch  // one item: a []A run item by item, answered with one batch result
	flagTally  // the first fd (after stdio) is a pool worker's tally segment
)

type task struct {
	kind   taskKind
	daemon bool
	stdio  bool
	batch  bool
	tally  bool
	// tallyFd is sent first (after a spare's stdio) when tally is set.
	tallyFd int
	fn      string
	name    string
	items   []taskItem
	// table is the sender's: the shared objects the items carry, with
	// descriptors it owns until its owner closes it. imports is the
	// receiver's.
	table   *handle.Table
	imports *handle.Imports
}

type taskItem struct {
	entries []handle.Entry
	arg     []byte
}

func (t *task) append(b []byte) []byte {
	var flags byte
	if t.daemon {
		flags |= flagDaemon
	}
	if t.stdio {
		flags |= flagStdio
	}
	if t.batch {
		flags |= flagBatch
	}
	if t.tally {
		flags |= flagTally
	}
	b = append(b, byte(t.kind), flags)
	b = handle.AppendString(b, t.fn)
	b = handle.AppendString(b, t.name)
	b = handle.AppendTable(b, t.table)
	b = binary.AppendUvarint(b, uint64(len(t.items)))
	for _, it := range t.items {
		b = handle.AppendEntries(b, it.entries)
		b = handle.AppendBytes(b, it.arg)
	}
	return b
}

func (t *task) fds() []int {
	var fds []int
	if t.tally {
		fds = append(fds, t.tallyFd)
	}
	return append(fds, t.table.Fds()...)
}

func parseTask(b []byte, fds []int) (*task, error) {
	fail := func(err error) (*task, error) {
		unixCloseAll(fds)
		return nil, err
	}
	if len(b) < 2 {
		return fail(errors.New("multiproc: short task message"))
	}
	t := &task{kind: taskKind(b[0]), daemon: b[1]&flagDaemon != 0, stdio: b[1]&flagStdio != 0, batch: b[1]&flagBatch != 0, tally: b[1]&flagTally != 0}
	if t.stdio {
		if len(fds) < 2 {
			return fail(errors.New("multiproc: a task announced stdio without descriptors"))
		}
		// Take over the parent's stdout and stderr.
		for i, fd := range fds[:2] {
			unix.Dup3(fd, 1+i, 0)
			unix.Close(fd)
		}
		fds = fds[2:]
	}
	if t.tally {
		if len(fds) < 1 {
			return fail(errors.New("multiproc: a task announced a tally without its descriptor"))
		}
		seg, err := shm.Open(fds[0])
		fds = fds[1:]
		if err != nil {
			return fail(err)
		}
		child.tally.Store(futex.Word(seg.Bytes(), 0)) // mapped for the rest of the worker's life
	}
	r := handle.NewReader(b[2:])
	t.fn = r.String()
	t.name = r.String()
	descs, used := r.Table(fds)
	n := r.Uvarint()
	if err := r.Err(); err != nil {
		return fail(err)
	}
	if used != len(fds) {
		return fail(errors.New("multiproc: descriptors arrived that no handle claims"))
	}
	if n > uint64(len(r.Rest())) {
		return fail(errors.New("multiproc: corrupt task message"))
	}
	t.items = make([]taskItem, 0, n)
	for i := uint64(0); i < n; i++ {
		entries := r.Entries(len(descs))
		arg := r.Bytes()
		if err := r.Err(); err != nil {
			return fail(err)
		}
		t.items = append(t.items, taskItem{entries: entries, arg: arg})
	}
	t.imports = handle.NewImports(descs)
	return t, nil
}

func unixCloseAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// Result statuses (child → parent). A result message holds, per item of
// the task, a status byte and the encoded result or the error text.
const (
	resultOK byte = iota
	resultErr
	resultPanic
)

type itemResult struct {
	status byte
	data   []byte
}

func appendResults(b []byte, rs []itemResult) []byte {
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = append(b, r.status)
		b = handle.AppendBytes(b, r.data)
	}
	return b
}

func parseResults(b []byte) ([]itemResult, error) {
	r := handle.NewReader(b)
	n := r.Uvarint()
	if r.Err() != nil || n > uint64(len(b)) {
		return nil, errors.New("multiproc: corrupt result message")
	}
	rs := make([]itemResult, 0, n)
	for i := uint64(0); i < n; i++ {
		st := r.Bytes1()
		d := r.Bytes()
		if r.Err() != nil {
			return nil, errors.New("multiproc: corrupt result message")
		}
		rs = append(rs, itemResult{status: st, data: d})
	}
	return rs, nil
}

// child is the state of this process when it is a child.
var child struct {
	// tally counts the tasks a pool worker has started (its setup task
	// included), in memory its pool also maps: if the worker dies, the pool
	// knows whether it ever started the task it was last sent.
	tally atomic.Pointer[uint32]

	mu     sync.Mutex
	cancel context.CancelFunc // the running task's
	gone   bool               // the parent is gone
	daemon bool
}

// childMain is the whole life of a child: handshake, then one task (a
// Process) or a stream of them (a pool worker).
func childMain(name string) int {
	ppid := os.Getppid()
	syscall.CloseOnExec(spawn.CtlFd)
	ctl, err := spawn.NewCtl(spawn.CtlFd)
	if err != nil {
		fmt.Fprintf(os.Stderr, "multiproc: child %s: %v\n", name, err)
		return 1
	}
	if err := ctl.Send(spawn.MsgHello, spawn.Hello(), nil); err != nil {
		return 1
	}
	t, ok := recvTask(ctl)
	if !ok {
		return 0 // the parent gave up on us (or is gone): nothing to run
	}
	child.mu.Lock()
	child.daemon = t.daemon
	child.mu.Unlock()
	if t.daemon {
		// A spare was started before anyone knew it would be a daemon: arm
		// the parent-death signal now, then make sure the parent did not
		// die before that.
		unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
		if os.Getppid() != ppid {
			return 1
		}
	}
	if t.kind == kindWorker {
		// A pool worker reads its tasks itself; the parent's death kills
		// it (it is a daemon), and the parent kills rather than cancels.
		return workerMain(ctl, t)
	}
	go lifeline(ctl)
	rs := runTask(t)
	finishChildren()
	if err := ctl.Send(spawn.MsgResult, appendResults(nil, rs), nil); err != nil && rs[0].status == resultOK {
		return 1
	}
	if rs[0].status != resultOK {
		return 1
	}
	return 0
}

// recvTask reads the next task; false at MsgExit or when the parent is gone.
func recvTask(ctl *spawn.Ctl) (*task, bool) {
	for {
		typ, payload, fds, err := ctl.Recv()
		if err != nil {
			return nil, false
		}
		switch typ {
		case spawn.MsgTask:
			t, err := parseTask(payload, fds)
			if err != nil {
				fmt.Fprintf(os.Stderr, "multiproc: child: %v\n", err)
				unix.Kill(os.Getpid(), unix.SIGKILL)
			}
			return t, true
		case spawn.MsgExit:
			unixCloseAll(fds)
			return nil, false
		default:
			unixCloseAll(fds)
		}
	}
}

// lifeline reads the control socket while a Process's task runs:
// MsgCancel cancels the task's context, and EOF means the parent is gone —
// the context is cancelled, and a daemon child dies at once with its own
// daemon children.
func lifeline(ctl *spawn.Ctl) {
	for {
		typ, _, fds, err := ctl.Recv()
		unixCloseAll(fds)
		if err != nil {
			child.mu.Lock()
			child.gone = true
			if child.cancel != nil {
				child.cancel()
			}
			daemon := child.daemon
			child.mu.Unlock()
			if daemon {
				killDaemonChildren()
				unix.Kill(os.Getpid(), unix.SIGKILL)
			}
			return
		}
		if typ == spawn.MsgCancel {
			child.mu.Lock()
			if child.cancel != nil {
				child.cancel()
			}
			child.mu.Unlock()
		}
	}
}

// taskContext is the context a task runs under: cancelled by MsgCancel
// or when the parent is gone.
func taskContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	child.mu.Lock()
	if child.gone {
		cancel()
	}
	child.cancel = cancel
	child.mu.Unlock()
	return ctx, cancel
}

// runTask runs every item of t in order.
func runTask(t *task) []itemResult {
	ctx, cancel := taskContext()
	defer cancel()
	defer t.imports.Close() // the descriptors of objects no item took
	if t.batch {
		return []itemResult{runBatchItem(ctx, t)}
	}
	rs := make([]itemResult, len(t.items))
	run, ok := lookup(t.kind, t.fn)
	for i, it := range t.items {
		if !ok {
			rs[i] = itemResult{resultErr, fmt.Appendf(nil, "multiproc: %q is not registered in the child (register it at package initialisation)", t.fn)}
			continue
		}
		rs[i] = runItem(ctx, t, run, it)
	}
	return rs
}

func runBatchItem(ctx context.Context, t *task) itemResult {
	run, ok := lookupBatch(t.fn)
	if !ok || len(t.items) != 1 {
		return itemResult{resultErr, fmt.Appendf(nil, "multiproc: %q is not registered in the child (register it at package initialisation)", t.fn)}
	}
	b, err := run(ctx, t.items[0].arg)
	if err != nil {
		return itemResult{resultErr, []byte(err.Error())}
	}
	return itemResult{resultOK, b}
}

// printPanic reports a recovered panic and its stack on stderr.
func printPanic(r any) {
	fmt.Fprintf(os.Stderr, "panic in multiproc child: %v\n\n%s", r, debug.Stack())
}

// runItem runs one call; a panic is recovered into resultPanic, with its
// stack printed on stderr.
func runItem(ctx context.Context, t *task, run runFn, it taskItem) (res itemResult) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "panic in multiproc child %s (%s): %v\n\n%s", t.name, t.fn, r, debug.Stack())
			res = itemResult{resultPanic, fmt.Append(nil, r)}
		}
	}()
	b, err := run(ctx, it.arg, it.entries, t.imports)
	if err != nil {
		return itemResult{resultErr, []byte(err.Error())}
	}
	return itemResult{resultOK, b}
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
