//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"runtime"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/gate"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
)

// Event is a flag shared between processes, Python's multiprocessing.Event:
// Wait blocks until some process Sets it. It travels to children as Value
// does.
//
// Close releases this process's hold on it. After Close, and on a zero
// Event, every method but Close fails: Wait and passing it to another process return an
// error matching ErrClosed (ErrNotInitialized for a zero Event), the
// others panic with it.
//
// An Event must not be copied after first use (go vet reports copies).
type Event struct {
	noCopy noCopy // no copies after first use (go vet's copylocks)

	object
	e    futex.Event
	gate gate.Gate
}

// NewEvent makes an Event that is not set.
func NewEvent() (*Event, error) {
	if err := checkCreate("NewEvent"); err != nil {
		return nil, err
	}
	seg, err := shm.Create("event", 128)
	if err != nil {
		return nil, own(err)
	}
	e := &Event{}
	e.init(seg)
	return e, nil
}

func (e *Event) init(seg *shm.Segment) {
	initObject(&e.object, e, seg)
	e.e = futex.Event{W: futex.Word(seg.Bytes(), offWord0)}
	e.gate = gate.New()
}

// Set sets the flag and wakes every waiter in every process.
func (e *Event) Set() {
	e.mem(kEvent)
	e.e.Set()
	runtime.KeepAlive(e)
}

// Clear resets the flag.
func (e *Event) Clear() {
	e.mem(kEvent)
	e.e.Clear()
	runtime.KeepAlive(e)
}

// IsSet reports whether the flag is set.
func (e *Event) IsSet() bool {
	e.mem(kEvent)
	ok := e.e.IsSet()
	runtime.KeepAlive(e)
	return ok
}

// Wait blocks until the flag is set (nil), ctx is done (ctx.Err()) or the
// Event is closed in this process (an error matching ErrClosed).
func (e *Event) Wait(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	defer runtime.KeepAlive(e)
	if e.base.Load() == nil {
		return e.useErr(kEvent)
	}
	if e.e.IsSet() {
		return nil
	}
	// The waiters of this process share one kernel waiter; the others
	// find the flag set when it leaves.
	err := e.wait(ctx, kEvent, e.gate, e.e.Wait, nil)
	if err != nil && e.e.IsSet() {
		return nil
	}
	return err
}

// Close releases this process's descriptor and mapping of the Event now;
// other processes keep theirs. Closing again does nothing and returns
// nil. A Wait blocked in this process returns an error matching ErrClosed.
func (e *Event) Close() error { return e.close(kEvent) }

// exportHandle is how an Event travels; called by the package.
func (e *Event) exportHandle() (handle.Desc, error) { return exportSeg(&e.object, kEvent, "Event") }

// importHandle makes e the Event described by d; called by the package.
func (e *Event) importHandle(d handle.Desc) error {
	seg, err := importSeg(d, "Event")
	if err != nil {
		return err
	}
	e.init(seg)
	return nil
}
