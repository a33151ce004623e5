//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/multiproc-go/multiproc"
)

func countThreads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Skip("no Threads line")
	return 0
}

// start starts p, failing the test if it cannot, and returns it.
func start(t *testing.T, p *multiproc.Process) *multiproc.Process {
	t.Helper()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// joinAll joins every process, failing the test at the first that failed.
func joinAll(t *testing.T, ctx context.Context, ps []*multiproc.Process) {
	t.Helper()
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// quietStderr sends the standard error of the children started until the
// test ends (by Call, or a pool's workers, which take this process's
// os.Stderr at their start) to a file, so that an expected panic's stack
// does not read as a failure in the test output; a failing test shows it.
// It must not overlap other tests: it replaces os.Stderr.
func quietStderr(t *testing.T) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = f
	t.Cleanup(func() {
		os.Stderr = saved
		if t.Failed() {
			b, _ := os.ReadFile(f.Name())
			t.Logf("the children's stderr:\n%s", b)
		}
		f.Close()
	})
}

// newEvent makes an Event, failing the test if it cannot.
func newEvent(t *testing.T) *multiproc.Event {
	t.Helper()
	e, err := multiproc.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	return e
}
