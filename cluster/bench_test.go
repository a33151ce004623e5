package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc/cluster/internal/clusterbench"
)

// The cluster's benchmarks, beside the local Pool's:
//
//	cd cluster && go test -run '^$' -bench .
//
// `go run ./cmd/multiproc-cluster bench` (in cluster/) prints the same scenarios as a
// table, with Dask's figures where python3 has distributed.

// hostCmd runs the test binary as a cluster host of one worker (the
// host role of TestMain).
func hostCmd(url string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MPC_TEST_ROLE=host", "MPC_TEST_URL="+url, "MPC_TEST_OPTS=1,0,0")
	cmd.Stderr = os.Stderr
	return cmd
}

func each(b *testing.B, f func(b *testing.B, ctx context.Context, s clusterbench.Setup)) {
	for _, s := range []clusterbench.Setup{clusterbench.Local, clusterbench.Embedded, clusterbench.Hosts} {
		b.Run([...]string{"local", "embedded", "hosts"}[s], func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			f(b, ctx, s)
		})
	}
}

// BenchmarkMap: Map of 100 000 trivial tasks per op.
func BenchmarkMap(b *testing.B) {
	each(b, func(b *testing.B, ctx context.Context, s clusterbench.Setup) {
		e, closeFn, err := clusterbench.Open(ctx, s, hostCmd)
		if err != nil {
			b.Fatal(err)
		}
		defer closeFn()
		b.ResetTimer()
		var rate float64
		for b.Loop() {
			if rate, err = clusterbench.Map(ctx, e, 100_000); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(rate, "tasks/s")
	})
}

// BenchmarkApplyAsync: 10 000 ApplyAsync, then every Get, per op.
func BenchmarkApplyAsync(b *testing.B) {
	each(b, func(b *testing.B, ctx context.Context, s clusterbench.Setup) {
		e, closeFn, err := clusterbench.Open(ctx, s, hostCmd)
		if err != nil {
			b.Fatal(err)
		}
		defer closeFn()
		b.ResetTimer()
		var rate float64
		for b.Loop() {
			if rate, err = clusterbench.ApplyAsync(ctx, e, 10_000); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(rate, "tasks/s")
	})
}

// BenchmarkApply: one sequential Apply per op.
func BenchmarkApply(b *testing.B) {
	each(b, func(b *testing.B, ctx context.Context, s clusterbench.Setup) {
		e, closeFn, err := clusterbench.Open(ctx, s, hostCmd)
		if err != nil {
			b.Fatal(err)
		}
		defer closeFn()
		b.ResetTimer()
		for b.Loop() {
			if _, err := clusterbench.Apply(ctx, e, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
