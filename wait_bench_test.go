//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// waiterJob: a child receives N messages, from a Queue or a Conn, and
// returns the CPU time it used doing so (user + system, getrusage).
type waiterJob struct {
	Q    *multiproc.Queue[int]
	Conn *multiproc.Conn
	N    int
}

var waiter = multiproc.Register("test.waiter", func(ctx context.Context, j waiterJob) (time.Duration, error) {
	c0 := cpuTime()
	for i := range j.N {
		var got int
		var err error
		if j.Conn != nil {
			err = j.Conn.Recv(&got)
		} else {
			got, err = j.Q.Get(ctx)
		}
		if err != nil {
			return 0, err
		}
		if got != i {
			return 0, fmt.Errorf("message %d: got %d", i, got)
		}
	}
	return cpuTime() - c0, nil
})

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWaiterCPU is what waiting costs the waiter: a child receives
// b.N messages that the test process sends one every gap, and reports the
// CPU it used as cpu-s/Mmsg (CPU seconds per million messages). With no
// gap the waiter rarely waits; with gaps it waits every time, spinning
// first as the waiting policy says, then sleeping: a policy that spins
// for waits it cannot win shows here.
func BenchmarkWaiterCPU(b *testing.B) {
	for _, kind := range []string{"queue", "pipe"} {
		for _, gap := range []time.Duration{0, 20 * time.Microsecond, 200 * time.Microsecond, 2 * time.Millisecond} {
			b.Run(fmt.Sprintf("%s/gap=%v", kind, gap), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				j := waiterJob{N: b.N}
				var send func(i int) error
				if kind == "queue" {
					q, err := multiproc.NewQueue[int](0)
					if err != nil {
						b.Fatal(err)
					}
					j.Q = q
					send = func(i int) error { return q.Put(ctx, i) }
				} else {
					a, c, err := multiproc.Pipe(true)
					if err != nil {
						b.Fatal(err)
					}
					defer a.Close()
					j.Conn = c
					defer c.Close()
					send = func(i int) error { return a.Send(i) }
				}
				type result struct {
					used time.Duration
					err  error
				}
				done := make(chan result, 1)
				go func() {
					used, err := waiter.Call(ctx, j)
					done <- result{used, err}
				}()
				b.ResetTimer()
				for i := range b.N {
					if gap > 0 {
						// Wait by the clock, not by sleeping, which on Linux
						// takes 50 µs and more: a yield keeps the CPU free.
						for t0 := time.Now(); time.Since(t0) < gap; {
							syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
						}
					}
					if err := send(i); err != nil {
						b.Fatal(err)
					}
				}
				r := <-done // Call is bounded by ctx
				if r.err != nil {
					b.Fatal(r.err)
				}
				b.ReportMetric(r.used.Seconds()*1e6/float64(b.N), "cpu-s/Mmsg")
			})
		}
	}
}
