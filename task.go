//go:build linux && (amd64 || arm64)

package multiproc

import (
	"encoding/binary"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
	"github.com/multiproc-go/multiproc/internal/slot"
	"golang.org/x/sys/unix"
)

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
	flagTally  // the first fd (after stdio) is a pool worker's segment: its tally and task slots
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
		return fail(newError("short task message"))
	}
	t := &task{kind: taskKind(b[0]), daemon: b[1]&flagDaemon != 0, stdio: b[1]&flagStdio != 0, batch: b[1]&flagBatch != 0, tally: b[1]&flagTally != 0}
	if t.stdio {
		if len(fds) < 2 {
			return fail(newError("a task announced stdio without descriptors"))
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
			return fail(newError("a task announced a tally without its descriptor"))
		}
		seg, err := shm.Open(fds[0])
		fds = fds[1:]
		if err != nil {
			return fail(err)
		}
		if seg.Size() < workerSegSize {
			seg.Close()
			return fail(newError("a pool worker's segment is too small"))
		}
		slots, err := slot.New(seg.Bytes()[slotsOff:])
		if err != nil {
			seg.Close()
			return fail(err)
		}
		// Mapped for the rest of the worker's life.
		child.tally.Store(tallyOf(seg.Bytes()))
		child.slots.Store(slots)
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
		return fail(newError("descriptors arrived that no handle claims"))
	}
	if n > uint64(len(r.Rest())) {
		return fail(newError("corrupt task message"))
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
		return nil, newError("corrupt result message")
	}
	rs := make([]itemResult, 0, n)
	for i := uint64(0); i < n; i++ {
		st := r.Bytes1()
		d := r.Bytes()
		if r.Err() != nil {
			return nil, newError("corrupt result message")
		}
		rs = append(rs, itemResult{status: st, data: d})
	}
	return rs, nil
}
