//go:build linux && (amd64 || arm64)

package fdwait

import (
	"context"
	"errors"
	"flag"
	"testing"
	"time"
)

var lostWakeupRounds = flag.Int("fdwait.lostwakeup", 0, "timed waits of TestNoLostWakeup (0: 200, 60 under -short)")

// TestNoLostWakeup: waits that end on their context, one after another,
// beside two waits that never end (readers of a descriptor that stays
// empty). Each timed wait must return soon after its context ends. The
// eventfd used to be one counter for every waiter: the ring meant for a
// waiter registering in Go's poller could be taken by another's drain, and
// the timed wait then slept there with no deadline, for good.
func TestNoLostWakeup(t *testing.T) {
	rounds := *lostWakeupRounds
	if rounds <= 0 {
		rounds = 200
		if testing.Short() {
			rounds = 60
		}
	}
	setThreadPark(t, time.Millisecond) // into Go's poller as the context ends
	a, _ := pair(t)
	bg, cancelBg := context.WithCancel(context.Background())
	defer cancelBg()
	for range 2 {
		go read(bg, a, nil)
	}
	for i := 0; i < rounds; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+i%3)*time.Millisecond)
		done := make(chan error, 1)
		go func() { _, err := read(ctx, a, nil); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("round %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a wait whose context ended did not return (lost wake-up)", i)
		}
		cancel()
	}
	// The readers end with their context too.
	cancelBg()
}
