//go:build linux && (amd64 || arm64)

package ring

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"testing"
	"time"
)

// Cross-process benchmarks: real processes (the test binary re-executed),
// 64-byte messages, a queue of at most benchMaxMsgs messages in a 1 MiB
// ring. The producers and consumers wait for a start byte on stdin, so that
// process start-up is not timed. RING_CPUPROFILE=path makes each child
// write a CPU profile to path.PID.

const (
	benchMsg     = 64
	benchMaxMsgs = 8192
)

func benchProfile() func() {
	path := os.Getenv("RING_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, _ := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
	pprof.StartCPUProfile(f)
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func benchStart() {
	var b [1]byte
	os.Stdin.Read(b[:])
}

func benchProduce(r *Ring) int {
	n := envInt("RING_N", 0)
	msg := make([]byte, benchMsg)
	ctx := context.Background()
	benchStart()
	defer benchProfile()()
	for i := range n {
		msg[0] = byte(i)
		if err := r.Put(ctx, msg); err != nil {
			fmt.Fprintln(os.Stderr, "bench put:", err)
			return 1
		}
	}
	return 0
}

// benchConsume gets messages until a 1-byte pill.
func benchConsume(r *Ring) int {
	ctx := context.Background()
	benchStart()
	defer benchProfile()()
	var buf []byte
	for {
		var err error
		if buf, err = r.Get(ctx, buf); err != nil {
			fmt.Fprintln(os.Stderr, "bench get:", err)
			return 1
		}
		if len(buf) == 1 {
			return 0
		}
	}
}

type benchChild struct {
	cmd   *exec.Cmd
	start *os.File
}

func spawnBench(b *testing.B, r *Ring, role string, n int) *benchChild {
	b.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, childGorace(), fmt.Sprintf("RING_N=%d", n))
	cmd.ExtraFiles = []*os.File{dupFile(b, r.Fd(), "queue")}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	pr, pw, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdin = pr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	pr.Close()
	cmd.ExtraFiles[0].Close()
	c := &benchChild{cmd: cmd, start: pw}
	b.Cleanup(func() {
		pw.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

func (c *benchChild) go_() { c.start.Write([]byte{1}) }

func (c *benchChild) wait(b *testing.B) {
	if err := c.cmd.Wait(); err != nil {
		b.Fatal(err)
	}
}

func benchRing(b *testing.B) *Ring {
	r, err := Create(benchMaxMsgs, 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

// BenchmarkProc1P1C: a producer process, the benchmark process consumes.
func BenchmarkProc1P1C(b *testing.B) {
	r := benchRing(b)
	p := spawnBench(b, r, "bench-produce", b.N)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	buf := make([]byte, 0, benchMsg)
	b.ResetTimer()
	start := time.Now()
	p.go_()
	for range b.N {
		var err error
		if buf, err = r.Get(ctx, buf); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	p.wait(b)
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
}

// BenchmarkProc2P2C: two producer and two consumer processes.
func BenchmarkProc2P2C(b *testing.B) {
	r := benchRing(b)
	var ps, cs []*benchChild
	for i := range 2 {
		ps = append(ps, spawnBench(b, r, "bench-produce", b.N/2+i*(b.N%2)))
		cs = append(cs, spawnBench(b, r, "bench-consume", 0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.ResetTimer()
	start := time.Now()
	for i := range 2 {
		cs[i].go_()
		ps[i].go_()
	}
	for _, p := range ps {
		p.wait(b)
	}
	for range cs {
		if err := r.Put(ctx, []byte{0}); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range cs {
		c.wait(b)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
}

// BenchmarkInProcess: one producer and one consumer goroutine (reference).
func BenchmarkInProcess(b *testing.B) {
	r := benchRing(b)
	ctx := context.Background()
	done := make(chan error, 1)
	b.ResetTimer()
	go func() {
		msg := make([]byte, benchMsg)
		for range b.N {
			if err := r.Put(ctx, msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	buf := make([]byte, 0, benchMsg)
	for range b.N {
		var err error
		if buf, err = r.Get(ctx, buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
