//go:build linux && (amd64 || arm64)

package multiproc

import (
	"github.com/multiproc-go/multiproc/internal/spawn"
)

// workerMain is a pool worker's life in the child: run the Initializer,
// then one task after another until told to exit.
func workerMain(ctl *spawn.Ctl, setup *task) int {
	rs := []itemResult{{resultOK, nil}}
	if setup.fn != "" && len(setup.items) == 1 {
		rs = runTask(&task{kind: kindRunner, fn: setup.fn, name: setup.name, items: setup.items, imports: setup.imports})
	}
	if err := ctl.Send(spawn.MsgResult, appendResults(nil, rs), nil); err != nil || rs[0].status != resultOK {
		return 1
	}
	var buf []byte
	for ticket := uint32(0); ; ticket++ {
		t, ok := recvTask(ctl)
		if !ok {
			finishChildren()
			return 0
		}
		if tl := child.tally.Load(); tl != nil && !tl.claim(ticket) {
			// Withdrawn by the pool (cancelled): answered with no results.
			t.imports.Close()
			if err := ctl.Send(spawn.MsgResult, appendResults(buf[:0], nil), nil); err != nil {
				return 1
			}
			continue
		}
		// Claimed: the pool may no longer withdraw or rerun it.
		rs := runTask(t)
		buf = appendResults(buf[:0], rs)
		if err := ctl.Send(spawn.MsgResult, buf, nil); err != nil {
			return 1
		}
	}
}
