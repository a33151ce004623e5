package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/multiproc-go/multiproc"
)

var incr = multiproc.Register("bench.incr", func(ctx context.Context, x int) (int, error) { return x + 1, nil })

// withPool runs f with a fresh, warmed-up Pool(2): its workers have
// started and run a task each before f's clock starts.
func withPool(ctx context.Context, f func(p *multiproc.Pool) (time.Duration, error)) (time.Duration, error) {
	p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
	if err != nil {
		return 0, err
	}
	defer func() {
		p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if p.Join(ctx) != nil {
			p.Terminate()
		}
	}()
	warm := make([]*multiproc.AsyncResult[int], 4)
	for i := range warm {
		warm[i] = incr.ApplyAsync(p, i)
	}
	for _, r := range warm {
		if _, err := r.Get(ctx); err != nil {
			return 0, err
		}
	}
	return f(p)
}

func measurePoolMap(ctx context.Context, n, batch int) (time.Duration, error) {
	args := make([]int, batch)
	for i := range args {
		args[i] = i
	}
	return withPool(ctx, func(p *multiproc.Pool) (time.Duration, error) {
		t0 := time.Now()
		for range n {
			rs, err := incr.Map(ctx, p, args)
			if err != nil {
				return 0, err
			}
			if len(rs) != batch || rs[batch-1] != batch {
				return 0, fmt.Errorf("Map returned %d results", len(rs))
			}
		}
		return time.Since(t0), nil
	})
}

func measurePoolApplyAsync(ctx context.Context, n, batch int) (time.Duration, error) {
	rs := make([]*multiproc.AsyncResult[int], batch)
	return withPool(ctx, func(p *multiproc.Pool) (time.Duration, error) {
		t0 := time.Now()
		for range n {
			for i := range rs {
				rs[i] = incr.ApplyAsync(p, i)
			}
			for i, r := range rs {
				x, err := r.Get(ctx)
				if err != nil {
					return 0, err
				}
				if x != i+1 {
					return 0, fmt.Errorf("task %d returned %d", i, x)
				}
			}
		}
		return time.Since(t0), nil
	})
}

func measurePoolApply(ctx context.Context, n, _ int) (time.Duration, error) {
	return withPool(ctx, func(p *multiproc.Pool) (time.Duration, error) {
		t0 := time.Now()
		for i := range n {
			x, err := incr.Apply(ctx, p, i)
			if err != nil {
				return 0, err
			}
			if x != i+1 {
				return 0, fmt.Errorf("task %d returned %d", i, x)
			}
		}
		return time.Since(t0), nil
	})
}
