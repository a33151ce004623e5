//go:build linux && (amd64 || arm64)

package ring

import (
	"context"
	"time"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/gate"
)

// enter takes g, or fails with ctx's error or ErrClosed.
func (r *Ring) enter(ctx context.Context, g gate.Gate) error {
	if err := g.Enter(ctx, r.done); err != nil {
		if err == gate.ErrDone {
			return ErrClosed
		}
		return err
	}
	if r.closed.Load() {
		g.Leave()
		return ErrClosed
	}
	return nil
}

// The doorbells are futex.Bells (see its doc: the sleepers bit, and why
// waking all is safe).

// recheck bounds every doorbell sleep: a safety net only, as no wake-up
// should ever be missed.
const recheck = 250 * time.Millisecond

// await blocks until cond holds, ctx ends or the handle closes. The caller
// holds s.wait, so it is the only goroutine of this handle sleeping on s.
// It spins first as the side's waiting policy says: a consumer keeping up
// with a steady producer should rarely sleep (measured on 2 CPUs, a fixed
// 8 µs spin let it fall into a sleep/wake rhythm at half the throughput in
// about half the runs).
func (r *Ring) await(ctx context.Context, s *side, cond func() bool) (err error) {
	if s.spin.Spin(cond) {
		return nil
	}
	t0 := time.Now()
	defer func() {
		if err == nil {
			s.spin.Parked(time.Since(t0))
		}
	}()
	bell := futex.Bell{W: s.bell}
	for {
		v := bell.Arm()
		if r.closed.Load() {
			return ErrClosed
		}
		if cond() {
			return nil
		}
		if err := bell.Sleep(ctx, v, recheck); err != nil {
			return err
		}
	}
}

// wake wakes s's sleepers, if any; called after each commit.
func wake(s *side) { futex.Bell{W: s.bell}.Wake() }

// ringAll rings bell: every sleeper looks again (cancellation, Close).
func ringAll(bell *uint32) { futex.Bell{W: bell}.Ring() }
