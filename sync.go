//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"sync/atomic"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/gate"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
	"github.com/multiproc-go/multiproc/internal/wait"
)

func importSeg(d handle.Desc, kind string) (*shm.Segment, error) {
	if d.Kind != kind || len(d.Fds) != 1 {
		handleCloseFds(d)
		return nil, errorf("a shared %s arrived where a %s was expected", d.Kind, kind)
	}
	seg, err := shm.Open(d.Fds[0])
	return seg, own(err)
}

// exportSeg describes o's segment for exportHandle.
func exportSeg(o *object, k *kind, name string) (handle.Desc, error) {
	fd, err := o.fd(k)
	if err != nil {
		return handle.Desc{}, err
	}
	return handle.Desc{Kind: name, Fds: []int{fd}}, nil
}

// Offsets of the words of a sync segment, each on its own cache line.
const (
	offWord0 = 0
	offWord1 = 64
)

// xlock is the mutex of a Lock, Value or Array: a futex word in shared
// memory (at the start of its object's segment) that holds its holder's
// pid, so a holder that dies is noticed and the lock taken over (never a
// silent deadlock). The word is the whole state: any process may unlock,
// as the word records who locked, not who may unlock. A gate in front of
// the wait lets one goroutine of this process sleep in the kernel and
// keeps the others in the Go scheduler, holding no OS thread; it is held
// only while waiting, never while the lock is held, so a release by
// another process leaves nothing behind in this one.
type xlock struct {
	gate      gate.Gate
	spin      wait.Spinner // how this process's waiter spins before it sleeps
	takeovers atomic.Int64
}

func (l *xlock) init() { l.gate = gate.New() }

func (l *xlock) lock(ctx context.Context, o *object, k *kind) error {
	p := o.base.Load()
	if p == nil {
		return o.useErr(k)
	}
	m := futex.Mutex{W: (*uint32)(unsafe.Pointer(p)), Spin: &l.spin}
	if m.TryFast() {
		return nil
	}
	r, err := o.enter(k)
	if err != nil {
		return err
	}
	defer r.leave()
	if err := l.gate.Enter(ctx, r.done); err != nil {
		return o.waitErr(k, ctx, err)
	}
	defer l.gate.Leave()
	wctx, stop := r.waitCtx(ctx)
	recovered, err := m.LockContext(wctx)
	stop()
	if err != nil {
		return o.waitErr(k, ctx, err)
	}
	if recovered {
		l.takeovers.Add(1)
	}
	return nil
}

// lockOrPanic is Lock for the methods without an error result: one call,
// whose fast path is a compare-and-swap.
func (l *xlock) lockOrPanic(o *object, k *kind) {
	if p := o.base.Load(); p != nil && (futex.Mutex{W: (*uint32)(unsafe.Pointer(p))}).TryFast() {
		return
	}
	if err := l.lock(context.Background(), o, k); err != nil {
		panic(err)
	}
}

func (l *xlock) unlock(o *object, k *kind) {
	if !(futex.Mutex{W: (*uint32)(o.mem(k))}).Unlock() {
		panic(k.unlocked)
	}
}

func (l *xlock) tryLock(o *object, k *kind) bool {
	return futex.Mutex{W: (*uint32)(o.mem(k))}.TryLock()
}
