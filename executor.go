//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"

	"github.com/multiproc-go/multiproc/internal/handle"
)

// Executor runs the tasks of registered functions: *Pool on this machine,
// and other backends (the cluster module's *cluster.Cluster, on many
// machines) outside this package. Func's Apply, ApplyAsync, Map, IMap and
// IMapUnordered take an Executor, so the same call runs on any of them.
//
// An Executor carries tasks and results in encoded form: it needs no
// knowledge of the functions' types. A remote backend sends a Task's
// Func, Args and Batch to a host running the same binary, which hands
// them to a local Pool's Submit and sends back the Results.
type Executor interface {
	// Submit queues t and calls done exactly once, with one Result per
	// item (len(t.Args) of them, or one for a Batch task), or with an
	// error for the whole task: one matching ErrWorkerDied (the worker
	// process died running it), context.DeadlineExceeded (it ran past a
	// task timeout), ErrPoolClosed (the executor takes no more work), or
	// ctx.Err(). If ctx is done before the task starts, it never runs; if
	// ctx ends while it runs, it is stopped (a local worker is killed).
	// done may run on any goroutine, even before Submit returns, and
	// must not block. t and its Args must not be changed until done runs.
	Submit(ctx context.Context, t *Task, done func([]Result, error))
	// Workers is how many tasks the executor runs at once: Map sizes its
	// chunks and IMap its window from it.
	Workers() int
}

// Task is one unit of work for an Executor: the registered function Func
// run on each encoded argument of Args, in order, in one worker process.
// The Func methods build Tasks; an Executor that forwards them elsewhere
// builds them from what it received.
type Task struct {
	// Func is the name the function was registered under (Register).
	Func string
	// Args are the encoded arguments, one per item. A Batch task has one
	// element that holds every item.
	Args [][]byte
	// Batch marks a task whose Args[0] encodes all its items at once (a
	// Map chunk of arguments free of shared objects); its result is one
	// Result that holds every item's outcome.
	Batch bool

	entries [][]handle.Entry // per item: where its shared objects go
	table   *handle.Table    // the shared objects, with descriptors it owns
}

// Shared reports whether t carries shared objects (a *Value, *Array,
// *Queue, *Conn, *Lock, ...): their memory and descriptors exist only on
// this machine, so only a Pool can run such a task, and a remote executor
// must refuse it with an error.
func (t *Task) Shared() bool { return t.table.Len() > 0 }

// Result is one item's outcome: its encoded return value, or the error
// the function returned or the panic it raised in the worker.
type Result struct {
	// Value is the encoded return value, when Err is nil.
	Value []byte
	// Err is the function's own failure: a *RemoteError (its error text,
	// or a panic's).
	Err error
}

// release closes the descriptors a task built by this package holds.
func (t *Task) release() { t.table.Close() }
