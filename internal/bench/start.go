package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/multiproc-go/multiproc"
)

// Functions run in child processes are registered at package
// initialisation, so that a child (this program started again) knows them.
var (
	nop = multiproc.Register("bench.nop", func(ctx context.Context, x int) (int, error) { return x, nil })

	// coldStarts runs in a child that has never started a process: with
	// the spare turned off there, every Call is a full start of the
	// program. (Turning the spare off in the parent would race with its
	// background refill.)
	coldStarts = multiproc.Register("bench.cold-starts", func(ctx context.Context, n int) (time.Duration, error) {
		multiproc.SpareProcesses = false
		return measureStart(ctx, n, 1)
	})
)

// idlePause is the pause between two calls of start-idle: long enough for
// the spare child started after a Call to be ready for the next one.
const idlePause = 10 * time.Millisecond

func measureStart(ctx context.Context, n, _ int) (time.Duration, error) {
	t0 := time.Now()
	for i := range n {
		r, err := nop.Call(ctx, i)
		if err != nil {
			return 0, err
		}
		if r != i {
			return 0, fmt.Errorf("Call returned %d, want %d", r, i)
		}
	}
	return time.Since(t0), nil
}

func measureStartIdle(ctx context.Context, n, _ int) (time.Duration, error) {
	var total time.Duration
	for i := range n {
		select {
		case <-time.After(idlePause):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		t0 := time.Now()
		if _, err := nop.Call(ctx, i); err != nil {
			return 0, err
		}
		total += time.Since(t0)
	}
	return total, nil
}

func measureStartCold(ctx context.Context, n, _ int) (time.Duration, error) {
	return coldStarts.Call(ctx, n)
}
