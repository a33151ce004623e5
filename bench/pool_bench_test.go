package bench

import (
	"context"
	"os"
	"testing"

	"github.com/multiproc-go/multiproc"
)

func TestMain(m *testing.M) {
	multiproc.Main()
	os.Exit(m.Run())
}

var incr = multiproc.Register("bench.incr", func(ctx context.Context, x int) (int, error) { return x + 1, nil })

func BenchmarkPoolMap200k(b *testing.B) {
	p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Terminate()
	args := make([]int, 200000)
	ctx := context.Background()
	for b.Loop() {
		if _, err := incr.Map(ctx, p, args); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(args))/b.Elapsed().Seconds(), "tasks/s")
}

func BenchmarkPoolApplyAsync10k(b *testing.B) {
	p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Terminate()
	ctx := context.Background()
	rs := make([]*multiproc.AsyncResult[int], 10000)
	for b.Loop() {
		for i := range rs {
			rs[i] = incr.ApplyAsync(p, i)
		}
		for _, r := range rs {
			if _, err := r.Get(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(rs))/b.Elapsed().Seconds(), "tasks/s")
}

func BenchmarkPoolApply(b *testing.B) {
	p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Terminate()
	ctx := context.Background()
	for b.Loop() {
		if _, err := incr.Apply(ctx, p, 1); err != nil {
			b.Fatal(err)
		}
	}
}
