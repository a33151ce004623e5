//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

var connWakeupRounds = flag.Int("conn.wakeup", 0, "timed waits of TestConnNoLostWakeup (0: 30, 8 under -short)")

// TestConnNoLostWakeup: timed waits on a Conn beside waits that do not
// end must each return soon after their time is up. First two Recvs
// blocked on a Conn with no data and Polls of about 20 ms (when a wait
// moves to Go's poller) in a loop; then RecvContexts with short contexts
// beside a SendContext blocked on a full duplex Conn. A lost wake-up in
// internal/fdwait (one eventfd shared by every waiter) left such a timed
// wait in Go's poller for good; internal/fdwait's TestNoLostWakeup tries
// the same interleaving many more times, faster.
func TestConnNoLostWakeup(t *testing.T) {
	rounds := *connWakeupRounds
	if rounds <= 0 {
		rounds = 30
		if testing.Short() {
			rounds = 8
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bounded := func(what string, f func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not return (lost wake-up)", what)
		}
	}

	r, w, err := multiproc.Pipe(true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	recvs := make(chan error, 2)
	for range 2 {
		go func() { _, err := r.RecvBytesContext(ctx); recvs <- err }()
	}
	for i := 0; i < rounds; i++ {
		timeout := time.Duration(18+i%5) * time.Millisecond
		bounded("Poll", func() error {
			ok, err := r.Poll(timeout)
			if ok {
				return errors.New("Poll saw a message nobody sent")
			}
			return err
		})
	}
	r.Close()
	for range 2 {
		if err := <-recvs; !errors.Is(err, multiproc.ErrClosed) {
			t.Fatalf("Recv blocked during Close: %v", err)
		}
	}

	// A duplex Conn whose peer reads nothing: a send larger than the
	// socket's buffers waits, and RecvContexts time out beside it.
	a, b, err := multiproc.Pipe(true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sendDone := make(chan error, 1)
	go func() { sendDone <- a.SendBytesContext(ctx, make([]byte, 16<<20)) }()
	for i := 0; i < rounds; i++ {
		rctx, rcancel := context.WithTimeout(ctx, time.Duration(18+i%5)*time.Millisecond)
		bounded("RecvContext", func() error {
			var v int
			err := a.RecvContext(rctx, &v)
			if errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		})
		rcancel()
	}
	a.Close()
	if err := <-sendDone; !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("the send blocked during Close: %v", err)
	}
}
