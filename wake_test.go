//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/internal/wait"
)

// childWake reports the wake-up latency a child knows without measuring
// it, and whether the variable that carried it is still in its
// environment (it must not be: it is the package's, not the program's).
var childWake = multiproc.Register("test.childWake", func(ctx context.Context, _ int) ([2]int64, error) {
	leaked := int64(0)
	if os.Getenv(wait.EnvWake) != "" {
		leaked = 1
	}
	return [2]int64{int64(wait.Typical()), leaked}, nil
})

// A child inherits the wake-up latency its parent measured, so that it
// does not spend its first milliseconds measuring it again.
func TestChildInheritsWakeLatency(t *testing.T) {
	w := wait.Typical()
	if w == 0 {
		t.Skip("one CPU: nothing measured")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := childWake.Call(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(got[0]) != w || got[1] != 0 {
		t.Fatalf("child: latency %v (parent %v), variable left in its environment: %v", time.Duration(got[0]), w, got[1] == 1)
	}
}
