package bench

import (
	"context"
	"testing"
	"time"
)

// benchmark runs b.N operations of a scenario at full size. ns/op is the
// time of the operations alone (setup such as starting the child processes
// is left out); the scenario's own figure is reported beside it.
func benchmark(b *testing.B, name string) {
	s, ok := Lookup(name)
	if !ok {
		b.Fatalf("no scenario %q", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, err := s.Measure(ctx, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(s.Figure(b.N, d), s.Unit)
}

func BenchmarkStart(b *testing.B)          { benchmark(b, "start") }
func BenchmarkStartIdle(b *testing.B)      { benchmark(b, "start-idle") }
func BenchmarkStartCold(b *testing.B)      { benchmark(b, "start-cold") }
func BenchmarkPipeRTBytes(b *testing.B)    { benchmark(b, "pipe-rt-bytes") }
func BenchmarkPipeRTStruct(b *testing.B)   { benchmark(b, "pipe-rt-struct") }
func BenchmarkPipe1MiB(b *testing.B)       { benchmark(b, "pipe-1mib") }
func BenchmarkQueue1P1C(b *testing.B)      { benchmark(b, "queue-1p1c") }
func BenchmarkQueue2P2C(b *testing.B)      { benchmark(b, "queue-2p2c") }
func BenchmarkValueLock(b *testing.B)      { benchmark(b, "value-lock") }
func BenchmarkValueAdd(b *testing.B)       { benchmark(b, "value-add") }
func BenchmarkArrayFill(b *testing.B)      { benchmark(b, "array-fill") }
func BenchmarkPoolMap(b *testing.B)        { benchmark(b, "pool-map") }
func BenchmarkPoolApplyAsync(b *testing.B) { benchmark(b, "pool-apply-async") }
func BenchmarkPoolApply(b *testing.B)      { benchmark(b, "pool-apply") }
func BenchmarkSignalRT(b *testing.B)       { benchmark(b, "signal-rt") }
func BenchmarkPickleDict10(b *testing.B)   { benchmark(b, "pickle-dict10") }
