//go:build linux && (amd64 || arm64)

package multiproc

import (
	"errors"
	"strings"
	"testing"

	"github.com/multiproc-go/multiproc/internal/ring"
)

// TestQueueErrorsAreExported: the ring's failures reach users as the
// package's sentinels (a 64 GiB message, or a scribbled-on ring, cannot
// be made in a test), with "multiproc:" once.
func TestQueueErrorsAreExported(t *testing.T) {
	for _, c := range []struct {
		ring, want error
	}{
		{ring.ErrTooLarge, ErrTooLarge},
		{ring.ErrCorrupt, ErrCorrupt},
		{ring.ErrClosed, ErrClosed},
		{ring.ErrFull, ErrFull},
	} {
		err := queueErr(c.ring, true, 100)
		if !errors.Is(err, c.want) || strings.Count(err.Error(), "multiproc:") != 1 {
			t.Errorf("the ring's %q reaches users as %q", c.ring, err)
		}
	}
}
