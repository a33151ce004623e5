// Package parked lets tests wait until goroutines are blocked in a given
// function — an observed condition, where a sleep would only hope for it.
// It reads every goroutine's stack (runtime.Stack), so it is for tests.
package parked

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"
)

// Count returns how many goroutines have a frame whose text contains
// frame (e.g. "(*Lock).Lock") and are not running or runnable: parked in
// the scheduler or blocked in a system call.
func Count(frame string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	got := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		if strings.Contains(g, frame) && !strings.Contains(head, "[running") && !strings.Contains(head, "[runnable") {
			got++
		}
	}
	return got
}

// Wait polls until at least n goroutines are parked in frame (nil), or
// ctx ends (an error saying how many were).
func Wait(ctx context.Context, frame string, n int) error {
	for {
		got := Count(frame)
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d goroutines parked in %s, want %d: %w", got, frame, n, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
