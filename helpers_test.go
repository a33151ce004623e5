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
