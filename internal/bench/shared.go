package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/multiproc-go/multiproc"
)

// counterArg is the task of one of the two processes of value-lock and
// value-add. Both wait at Start, count N times, and wait at Start again:
// the parent, the third party, times from the first release to the second.
type counterArg struct {
	V      *multiproc.Value[int64]
	Start  *multiproc.Barrier
	N      int
	Atomic bool
}

var (
	counter = multiproc.Register("bench.counter", func(ctx context.Context, a counterArg) (int, error) {
		if err := a.Start.Wait(ctx); err != nil {
			return 0, err
		}
		v := a.V
		if a.Atomic {
			for range a.N {
				v.Add(1)
			}
		} else {
			for range a.N {
				v.Lock()
				v.Store(v.Load() + 1)
				v.Unlock()
			}
		}
		return 0, a.Start.Wait(ctx)
	})

	fill = multiproc.Register("bench.fill", func(ctx context.Context, a *multiproc.Array[float64]) (int, error) {
		s := a.Slice()
		for i := range s {
			s[i] = float64(i)
		}
		return len(s), nil
	})
)

func measureValueLock(ctx context.Context, n, _ int) (time.Duration, error) {
	return measureCounter(ctx, n, false)
}

func measureValueAdd(ctx context.Context, n, _ int) (time.Duration, error) {
	return measureCounter(ctx, n, true)
}

func measureValueLockE2E(ctx context.Context, n, _ int) (time.Duration, error) {
	return endToEnd(func() (time.Duration, error) { return measureCounter(ctx, n, false) })
}

// measureCounter: n increments in all, n/2 by each of 2 processes.
func measureCounter(ctx context.Context, n int, atomic bool) (time.Duration, error) {
	n = max(2, n/2*2)
	v, err := multiproc.NewValue[int64](0)
	if err != nil {
		return 0, err
	}
	start, err := multiproc.NewBarrier(3)
	if err != nil {
		return 0, err
	}
	var ps []*multiproc.Process
	for range 2 {
		ps = append(ps, counter.Process(counterArg{V: v, Start: start, N: n / 2, Atomic: atomic}))
	}
	d, err := timeBetween(ctx, start, ps)
	if err != nil {
		return 0, err
	}
	if got := v.Load(); got != int64(n) {
		return 0, fmt.Errorf("the counter is %d after %d increments", got, n)
	}
	return d, nil
}

// measureArrayFill: n times, a child fills an Array of batch float64.
func measureArrayFill(ctx context.Context, n, size int) (time.Duration, error) {
	var total time.Duration
	for range n {
		a, err := multiproc.NewArray[float64](size)
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		got, err := fill.Call(ctx, a)
		if err != nil {
			return 0, err
		}
		total += time.Since(t0)
		if got != size || a.Load(size-1) != float64(size-1) {
			return 0, fmt.Errorf("the child filled %d of %d elements", got, size)
		}
	}
	return total, nil
}
