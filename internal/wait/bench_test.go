//go:build linux && (amd64 || arm64)

package wait

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSpinReady is the cost of a wait whose condition already holds.
func BenchmarkSpinReady(b *testing.B) {
	var s Spinner
	for b.Loop() {
		s.Spin(func() bool { return true })
	}
}

// BenchmarkPingPong is a round trip between two goroutines that wait for
// each other's turn with a Spinner each, parking on a channel when the spin
// fails (the shape of every waiting site: spin, then park, then Parked).
// With GOMAXPROCS=1 it shows the no-spin path.
func BenchmarkPingPong(b *testing.B) {
	var turn atomic.Int64
	var parked [2]atomic.Bool
	bell := [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	var sp [2]Spinner
	wait := func(me int, want int64) {
		ready := func() bool { return turn.Load() == want }
		if sp[me].Spin(ready) {
			return
		}
		t0 := time.Now()
		for {
			parked[me].Store(true)
			if ready() {
				parked[me].Store(false)
				break
			}
			<-bell[me]
			if ready() {
				break
			}
		}
		sp[me].Parked(time.Since(t0))
	}
	pass := func(to int, v int64) {
		turn.Store(v)
		if parked[to].Swap(false) {
			select {
			case bell[to] <- struct{}{}:
			default:
			}
		}
	}
	n := int64(b.N)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(0); i < n; i++ {
			wait(1, 2*i+1)
			pass(0, 2*i+2)
		}
	}()
	b.ResetTimer()
	for i := int64(0); i < n; i++ {
		pass(1, 2*i+1)
		wait(0, 2*i+2)
	}
	<-done
	b.ReportMetric(float64(sp[0].Budget().Nanoseconds()), "budget-ns")
}
