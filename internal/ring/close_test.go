//go:build linux && (amd64 || arm64)

package ring

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc/internal/futex"
)

var cancelCloseRounds = flag.Int("ring.cancelclose", 0, "rounds of TestCancelWhileClose (0: 300, 30 under -short)")

// TestCancelWhileClose is the ordinary shutdown pattern: cancel the
// consumers, close the queue. A Get parked in the doorbell sleep is
// cancelled while Close runs: the cancellation's wake-up (a context
// AfterFunc that bumps the bell in the shared mapping) must be over before
// Close unmaps it. It used not to be: within about a thousand rounds the
// process died with "unexpected fault address" in ringAll.
func TestCancelWhileClose(t *testing.T) {
	rounds := *cancelCloseRounds
	if rounds <= 0 {
		rounds = 300
		if testing.Short() {
			rounds = 30
		}
	}
	deadline := testCtx(t, 60*time.Second)
	for i := 0; i < rounds; i++ {
		r, err := Create(0, 4096)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(deadline)
		got := make(chan error, 1)
		go func() { _, err := r.Get(ctx, nil); got <- err }()
		// Parked: the sleepers bit is set just before the futex sleep.
		for !(futex.Bell{W: r.cons.bell}).Sleepers() {
			if deadline.Err() != nil {
				t.Fatal("Get never parked")
			}
			time.Sleep(10 * time.Microsecond)
		}
		closed := make(chan error, 1)
		go func() { closed <- r.Close() }()
		cancel()
		if err := <-closed; err != nil {
			t.Fatalf("round %d: Close: %v", i, err)
		}
		select {
		case err := <-got:
			if err != ErrClosed && err != context.Canceled {
				t.Fatalf("round %d: Get = %v, want ErrClosed or Canceled", i, err)
			}
		case <-deadline.Done():
			t.Fatalf("round %d: Get still blocked after Close", i)
		}
	}
}
