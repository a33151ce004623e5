//go:build linux && (amd64 || arm64)

package multiproc

import (
	"reflect"

	"github.com/multiproc-go/multiproc/internal/handle"
)

// shareable is implemented by the pointer of every type that travels to
// another process as the same object (its descriptors passed with
// SCM_RIGHTS) rather than as a copy: Value, Array, Lock, Semaphore,
// Event, Barrier, Condition, Conn, Queue and JoinableQueue. The methods are unexported so that
// they are no part of the public API; internal/handle reaches them
// through the hooks set below.
type shareable interface {
	// exportHandle describes the object for another process, with
	// duplicates of its fds (handle.Dup) that the caller owns: made while
	// the object is held, so that a Close racing the export yields the
	// object or ErrClosed, never a descriptor number reused by another
	// file.
	exportHandle() (handle.Desc, error)
	// importHandle makes the receiver, a fresh zero value, the object d
	// describes; it owns d.Fds from then on and closes them if it fails.
	importHandle(d handle.Desc) error
}

func init() {
	handle.SetHooks(reflect.TypeFor[shareable](),
		func(obj any) (handle.Desc, error) { return obj.(shareable).exportHandle() },
		func(obj any, d handle.Desc) error { return obj.(shareable).importHandle(d) })
}
