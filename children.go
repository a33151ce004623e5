//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
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
