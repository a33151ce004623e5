//go:build linux && (amd64 || arm64)

package fdwait

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// TestEventfdAtZero: with stdin closed, a wait's eventfd gets descriptor
// 0, which is a descriptor like any other: a cancellation rings it, and it
// is closed with the FD (it used to be taken for "none": never rung,
// never closed, and made again by every wait). Once the FD is closed,
// descriptor 0 is free for any open in this test binary, so the test
// looks for that eventfd (by its id in fdinfo), not for any descriptor 0.
// (On a kernel without the id this is looser: no eventfd at 0.)
func TestEventfdAtZero(t *testing.T) {
	saved, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		t.Skip("no stdin to set aside:", err)
	}
	t.Cleanup(func() { unix.Dup3(saved, 0, 0); unix.Close(saved) })
	a, _ := pair(t) // before stdin is closed: the pair must not get 0
	unix.Close(0)
	old := newEventfd
	t.Cleanup(func() { newEventfd = old })
	made := 0
	newEventfd = func() (int, error) {
		made++
		return old()
	}
	var id string
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := read(ctx, a, nil); done <- err }()
		waitWake(t, a)
		if i == 0 {
			if id = eventfdID(0); id == "" {
				t.Fatal("the eventfd did not get descriptor 0")
			}
		}
		cancel()
		if err := result(t, done); !errors.Is(err, context.Canceled) {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	if made != 1 {
		t.Errorf("%d eventfds made for 3 waits one after another, want 1", made)
	}
	a.Close()
	// The last user out closes the descriptors: that may be a
	// cancellation's wake-up still ringing when Close returns.
	for deadline := time.Now().Add(30 * time.Second); eventfdID(0) == id; {
		if time.Now().After(deadline) {
			t.Fatal("the eventfd at descriptor 0 outlived its FD")
		}
		time.Sleep(time.Millisecond)
	}
}

// eventfdID is the id the kernel gives the eventfd at fd (the
// "eventfd-id" line of its fdinfo, unique while it lives), or "" if fd is
// not an open eventfd. On a kernel without the id line any eventfd
// is "eventfd".
func eventfdID(fd int) string {
	info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return ""
	}
	id := ""
	for line := range strings.Lines(string(info)) {
		if v, ok := strings.CutPrefix(line, "eventfd-id:"); ok {
			return strings.TrimSpace(v)
		}
		if strings.HasPrefix(line, "eventfd-count:") {
			id = "eventfd"
		}
	}
	return id
}
