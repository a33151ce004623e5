//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/multiproc-go/multiproc/internal/slot"
	"github.com/multiproc-go/multiproc/internal/spawn"
	"github.com/multiproc-go/multiproc/internal/wait"
	"golang.org/x/sys/unix"
)

// workerMain is a pool worker's life in the child: run the Initializer,
// then one task after another, as the pool posts them in the worker's
// task slots (internal/slot), until told to exit. A task or result too
// large for a slot, or a task with descriptors, travels on the control
// channel, its slot saying so; MsgExit and the end of the channel (the
// parent is gone) come on the channel, which a goroutine of its own reads.
func workerMain(ctl *spawn.Ctl, setup *task) int {
	rs := []itemResult{{resultOK, nil}}
	if setup.fn != "" && len(setup.items) == 1 {
		rs = runTask(&task{kind: kindRunner, fn: setup.fn, name: setup.name, items: setup.items, imports: setup.imports})
	}
	if err := ctl.Send(spawn.MsgResult, appendResults(nil, rs), nil); err != nil || rs[0].status != resultOK {
		return 1
	}
	slots := child.slots.Load()
	if slots == nil {
		fmt.Fprintln(os.Stderr, errorf("pool worker %s: started without its task slots", setup.name))
		return 1
	}
	// The channel's reader: tasks that came on it, in order, and the end.
	var exit atomic.Bool
	onChannel := make(chan *task, slot.Count)
	go func() {
		defer close(onChannel)
		for {
			t, ok := recvTask(ctl)
			if !ok {
				exit.Store(true)
				slots.TaskBell().Ring()
				return
			}
			onChannel <- t
		}
	}()
	var spin wait.Spinner
	var in, out []byte
	for ticket := uint32(0); ; ticket++ {
		posted := func() bool { return slots.Posted() != ticket || exit.Load() }
		slot.Await(context.Background(), slots.TaskBell(), &spin, posted)
		if slots.Posted() == ticket {
			finishChildren() // told to exit, or the parent is gone
			return 0
		}
		data, inline, err := slots.Task(ticket, in[:0])
		var t *task
		switch {
		case err != nil:
		case inline:
			in = data
			t, err = parseTask(data, nil)
		default:
			var ok bool
			if t, ok = <-onChannel; !ok {
				finishChildren()
				return 0
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, errorf("pool worker %s: %w", setup.name, err))
			unix.Kill(os.Getpid(), unix.SIGKILL)
		}
		rs = nil // withdrawn by the pool (cancelled): answered with no results
		if tl := child.tally.Load(); tl == nil || tl.claim(ticket) {
			// Claimed: the pool may no longer withdraw or rerun it.
			rs = runTask(t)
		} else {
			t.imports.Close()
		}
		out = appendResults(out[:0], rs)
		if slot.Fits(len(out)) {
			slots.Answer(ticket, out)
			continue
		}
		// Too large for the slot: on the channel first, then the slot
		// says so.
		if err := ctl.Send(spawn.MsgResult, out, nil); err != nil {
			return 1
		}
		slots.Answer(ticket, nil)
	}
}
