// Package clusterbench measures the cluster against a local Pool and Dask:
// the scenarios behind `multiproc-cluster bench` and the module's Go
// benchmarks.
package clusterbench

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/cluster"
)

// Echo returns its argument: the large-payload scenario.
var Echo = multiproc.Register("clusterbench.echo", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })

// Incr is the trivial task every scenario runs.
var Incr = multiproc.Register("clusterbench.incr", func(_ context.Context, x int) (int, error) { return x + 1, nil })

// Setup is where the tasks run.
type Setup int

const (
	Local    Setup = iota // a multiproc.Pool of 2 workers
	Embedded              // cluster.Connect with no URL, 2 local workers
	Hosts                 // an embedded server on TCP loopback and 2 host processes of 1 worker each
)

// String names the setup as the bench's output does.
func (s Setup) String() string {
	return [...]string{"local Pool(2)", "cluster, embedded, 2 local workers", "cluster, 2 host processes over TCP loopback"}[s]
}

// Open starts a setup and warms it up; host starts a host process serving
// url (the same binary, re-run in a role that calls cluster.Serve with
// Processes 1). close stops everything.
func Open(ctx context.Context, s Setup, host func(url string) *exec.Cmd) (e multiproc.Executor, close func(), err error) {
	switch s {
	case Local:
		p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
		if err != nil {
			return nil, nil, err
		}
		e, close = p, func() { p.Terminate() }
	case Embedded:
		c, err := cluster.Connect(ctx, cluster.Options{Processes: 2})
		if err != nil {
			return nil, nil, err
		}
		e, close = c, func() { c.Close() }
	case Hosts:
		c, err := cluster.Connect(ctx, cluster.Options{Listen: "127.0.0.1:0", Processes: -1})
		if err != nil {
			return nil, nil, err
		}
		var cmds []*exec.Cmd
		close = func() {
			for _, cmd := range cmds {
				cmd.Process.Kill()
				cmd.Wait()
			}
			c.Close()
		}
		for range 2 {
			cmd := host(c.URL())
			if err := cmd.Start(); err != nil {
				close()
				return nil, nil, err
			}
			cmds = append(cmds, cmd)
		}
		for c.Workers() < 2 {
			if ctx.Err() != nil {
				close()
				return nil, nil, fmt.Errorf("multiproc: bench: hosts did not join: %w", ctx.Err())
			}
			time.Sleep(20 * time.Millisecond)
		}
		e = c
	}
	// Warm up: every worker has started and run tasks.
	for range 20 {
		if _, err := Incr.Apply(ctx, e, 1); err != nil {
			close()
			return nil, nil, err
		}
	}
	return e, close, nil
}

// Map runs Incr.Map over n items and returns the tasks per second.
func Map(ctx context.Context, e multiproc.Executor, n int) (float64, error) {
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i
	}
	t0 := time.Now()
	rs, err := Incr.Map(ctx, e, xs)
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if len(rs) != n || rs[n-1] != n {
		return 0, fmt.Errorf("multiproc: bench: Map returned %d results", len(rs))
	}
	return float64(n) / d.Seconds(), nil
}

// ApplyAsync queues n Incr tasks, then gets them all, and returns the
// tasks per second.
func ApplyAsync(ctx context.Context, e multiproc.Executor, n int) (float64, error) {
	rs := make([]*multiproc.AsyncResult[int], n)
	t0 := time.Now()
	for i := range rs {
		rs[i] = Incr.ApplyAsync(e, i)
	}
	for i, r := range rs {
		v, err := r.Get(ctx)
		if err != nil {
			return 0, err
		}
		if v != i+1 {
			return 0, fmt.Errorf("multiproc: bench: task %d returned %d", i, v)
		}
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// Apply runs n Incr tasks one after another and returns the mean latency.
func Apply(ctx context.Context, e multiproc.Executor, n int) (time.Duration, error) {
	t0 := time.Now()
	for i := range n {
		if _, err := Incr.Apply(ctx, e, i); err != nil {
			return 0, err
		}
	}
	return time.Since(t0) / time.Duration(n), nil
}

// MapLarge runs Echo.Map over 64 arguments of 1 MiB and returns how long
// it took (each result is checked).
func MapLarge(ctx context.Context, e multiproc.Executor) (time.Duration, error) {
	xs := make([][]byte, 64)
	for i := range xs {
		xs[i] = make([]byte, 1<<20)
		xs[i][0], xs[i][len(xs[i])-1] = byte(i), byte(i)
	}
	t0 := time.Now()
	rs, err := Echo.Map(ctx, e, xs)
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if len(rs) != len(xs) {
		return 0, fmt.Errorf("multiproc: bench: Map of 64 x 1 MiB returned %d results", len(rs))
	}
	for i, r := range rs {
		if len(r) != 1<<20 || r[0] != byte(i) || r[len(r)-1] != byte(i) {
			return 0, fmt.Errorf("multiproc: bench: Map of 64 x 1 MiB: result %d is not its argument", i)
		}
	}
	return d, nil
}
