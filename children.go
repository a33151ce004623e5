//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"slices"
	"sync"
)

// children is every process this process started that has not been reaped.
var children struct {
	sync.Mutex // guards set
	set        map[*Process]struct{}
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

// ActiveChildren returns the processes this process started (with
// Process.Start) that are still running, in the order of their pids,
// Python's multiprocessing.active_children. A child that has ended is not
// listed: it has already been reaped, as it is the moment it exits (unlike
// Python, the call has no reaping to do). Pool workers belong to their pool
// and are not listed.
func ActiveChildren() []*Process {
	ps := liveChildren()
	live := ps[:0]
	for _, p := range ps {
		if p.IsAlive() {
			live = append(live, p)
		}
	}
	slices.SortFunc(live, func(a, b *Process) int { return a.Pid() - b.Pid() })
	return live
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
