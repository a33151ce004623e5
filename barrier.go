//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"errors"
	"runtime"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/gate"
	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shm"
)

// Barrier makes n parties — processes or goroutines — wait for each other,
// Python's multiprocessing.Barrier: each Wait blocks until n have called
// it, then all return and the barrier is ready for the next round. A
// waiter whose context ends breaks the barrier: it returns its context's
// error, and every other waiter, now and later, an error matching
// ErrBrokenBarrier, until Reset. So does Abort, and so does a waiter's
// process dying inside Wait (SIGKILL): the others see it within about
// 100 ms and return ErrBrokenBarrier rather than wait forever. It travels
// to children as Value does.
//
// Close releases this process's hold on it. After Close, and on a zero
// Barrier, every method but Close fails: Wait and passing it to another process return an
// error matching ErrClosed (ErrNotInitialized for a zero Barrier), the
// others panic with it. A Barrier must not be copied after first use
// (go vet reports copies).
type Barrier struct {
	_ noCopy
	object
	b    futex.Barrier
	gate gate.Gate
}

// Layout of a Barrier's segment: the state word, the party count, the
// generation a Reset ended, then one 8-byte slot per party (the
// generation and pid of each waiter of the round).
const (
	offBarrierReset = offWord1 + 8
	offBarrierPids  = 128
)

func barrierSize(n uint32) int { return offBarrierPids + 8*int(n) }

// NewBarrier makes a barrier for n parties (1 ≤ n ≤ 65535).
func NewBarrier(n int) (*Barrier, error) {
	if err := checkCreate("NewBarrier"); err != nil {
		return nil, err
	}
	if n < 1 || n > futex.MaxParties {
		return nil, errorf("NewBarrier(%d): parties must be in [1, %d]", n, futex.MaxParties)
	}
	seg, err := shm.Create("barrier", barrierSize(uint32(n)))
	if err != nil {
		return nil, own(err)
	}
	*futex.Word(seg.Bytes(), offWord1) = uint32(n)
	b := &Barrier{}
	b.init(seg, uint32(n))
	return b, nil
}

func (b *Barrier) init(seg *shm.Segment, n uint32) {
	initObject(&b.object, b, seg)
	mem := seg.Bytes()
	b.b = futex.Barrier{
		W:       futex.Word(mem, offWord0),
		Parties: n,
		Reset:   futex.Word(mem, offBarrierReset),
		Pids:    unsafe.Slice((*uint64)(unsafe.Pointer(&mem[offBarrierPids])), n),
	}
	b.gate = gate.New()
}

// Wait arrives at the barrier and blocks until all parties have arrived
// (nil), the barrier breaks (ErrBrokenBarrier), or ctx ends (its error; the
// barrier breaks for everyone). Closing the Barrier in this process ends
// a Wait as its context would, with an error matching ErrClosed.
func (b *Barrier) Wait(ctx context.Context) error {
	if ctx == nil {
		return errNilContext
	}
	defer runtime.KeepAlive(b)
	r, err := b.enter(kBarrier)
	if err != nil {
		return err
	}
	defer r.leave()
	gen, done, err := b.b.Arrive()
	if !done && err == nil {
		if ok, perr := b.b.Passed(gen); ok {
			err = perr
		} else {
			err = b.gated(ctx, kBarrier, r, b.gate,
				func(wctx context.Context) error { return b.b.Await(wctx, gen) },
				func(gerr error) error { return b.b.Break(gen, gerr) })
		}
	}
	if errors.Is(err, futex.ErrBroken) {
		return ErrBrokenBarrier
	}
	return err
}

// Abort breaks the barrier: every waiter, now and later, in every
// process, returns ErrBrokenBarrier until Reset (Python's abort).
func (b *Barrier) Abort() {
	b.mem(kBarrier)
	b.b.Abort()
	runtime.KeepAlive(b)
}

// Reset returns the barrier to its first state — whole, nobody arrived —
// for every process (Python's reset). The waiters of the round it ends,
// in every process, return ErrBrokenBarrier.
func (b *Barrier) Reset() {
	b.mem(kBarrier)
	b.b.ResetBarrier()
	runtime.KeepAlive(b)
}

// Parties returns the number of parties a round needs (Python's parties).
func (b *Barrier) Parties() int {
	b.mem(kBarrier)
	return int(b.b.Parties)
}

// Waiting returns the number of parties waiting in the current round, in
// every process (Python's n_waiting); 0 while the barrier is broken.
func (b *Barrier) Waiting() int {
	b.mem(kBarrier)
	n := b.b.Waiting()
	runtime.KeepAlive(b)
	return n
}

// Broken reports whether the barrier is broken.
func (b *Barrier) Broken() bool {
	b.mem(kBarrier)
	ok := b.b.Broken()
	runtime.KeepAlive(b)
	return ok
}

// Close releases this process's descriptor and mapping of the Barrier
// now; other processes keep theirs. Closing again does nothing and returns
// nil. A Wait blocked in this process returns an error matching
// ErrClosed, and the barrier breaks for the other parties, as when a
// waiter's context ends.
func (b *Barrier) Close() error { return b.close(kBarrier) }

// exportHandle is how a Barrier travels; called by the package.
func (b *Barrier) exportHandle() (handle.Desc, error) {
	return exportSeg(&b.object, kBarrier, "Barrier")
}

// importHandle makes b the Barrier described by d; called by the package.
func (b *Barrier) importHandle(d handle.Desc) error {
	seg, err := importSeg(d, "Barrier")
	if err != nil {
		return err
	}
	n := *futex.Word(seg.Bytes(), offWord1)
	if n < 1 || n > futex.MaxParties || seg.Size() < barrierSize(n) {
		seg.Close()
		return errorf("%w: a Barrier's segment holds %d parties", ErrCorrupt, n)
	}
	b.init(seg, n)
	return nil
}
