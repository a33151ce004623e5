//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/multiproc-go/multiproc/internal/slot"
	"github.com/multiproc-go/multiproc/internal/spawn"
	"golang.org/x/sys/unix"
)

// child is the state of this process when it is a child.
var child struct {
	// tally is where a pool worker claims each task before it starts it
	// (not its Initializer), in memory its pool also maps: the pool may
	// withdraw a task the worker has not started, and if the worker dies,
	// the pool knows which of the tasks it was sent it ever started.
	tally atomic.Pointer[tally]
	// slots are a pool worker's task slots (internal/slot), in the same
	// segment as its tally: where it finds its tasks and leaves its
	// results, small ones inline.
	slots atomic.Pointer[slot.Slots]

	mu     sync.Mutex         // guards cancel, gone and daemon
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
		fmt.Fprintln(os.Stderr, errorf("child %s: %w", name, err))
		return 1
	}
	if err := ctl.Send(spawn.MsgHello, spawn.Hello(), nil); err != nil {
		return 1
	}
	if name == "spare" {
		setProcName("multiproc spare") // until it takes a task and its name
	}
	t, ok := recvTask(ctl)
	if !ok {
		return 0 // the parent gave up on us (or is gone): nothing to run
	}
	// The child started with one P, which made its start cheaper; its task
	// gets the program's GOMAXPROCS (see spawn.EnvProcs).
	spawn.RestoreProcs()
	setProcName(t.name)
	processName.Store(&t.name)
	child.mu.Lock()
	child.daemon = t.daemon
	child.mu.Unlock()
	if !t.daemon {
		// A spare started with the parent-death signal armed; a non-daemon
		// process outlives its parent.
		unix.Prctl(unix.PR_SET_PDEATHSIG, 0, 0, 0, 0)
	}
	if t.daemon {
		// Arm the parent-death signal (a fresh daemon child has it from its
		// start, a spare from its idle days, which the non-daemon branch
		// above clears), then make sure the parent did not die before.
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
				fmt.Fprintln(os.Stderr, errorf("child: %w", err))
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

// lifeline reads the control socket while a Process's task runs (the
// parent sends nothing then): EOF means the parent is gone — the task's
// context is cancelled, and a daemon child dies at once with its own
// daemon children. A task the parent wants stopped is killed, never asked.
func lifeline(ctl *spawn.Ctl) {
	for {
		_, _, fds, err := ctl.Recv()
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
	}
}

// taskContext is the context a task runs under: cancelled when the
// parent is gone.
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
			rs[i] = itemResult{resultErr, fmt.Appendf(nil, "%q is not registered in the child (register it at package initialisation)", t.fn)}
			continue
		}
		rs[i] = runItem(ctx, t, run, it)
	}
	return rs
}

func runBatchItem(ctx context.Context, t *task) itemResult {
	run, ok := lookupBatch(t.fn)
	if !ok || len(t.items) != 1 {
		return itemResult{resultErr, fmt.Appendf(nil, "%q is not registered in the child (register it at package initialisation)", t.fn)}
	}
	b, err := run(ctx, t.items[0].arg)
	if err != nil {
		return itemResult{resultErr, []byte(childText(err))}
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
		return itemResult{resultErr, []byte(childText(err))}
	}
	return itemResult{resultOK, b}
}
