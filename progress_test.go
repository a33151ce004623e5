//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// pingJob is one side of a ping-pong: N rounds through a pair of queues
// (In and Out) or through a Conn.
type pingJob struct {
	In, Out *multiproc.Queue[int]
	Conn    *multiproc.Conn
	N       int
	First   bool // sends first
}

// pingPong plays one side of N round trips; each message is the round's
// number, checked on arrival.
var pingPong = multiproc.Register("test.pingPong", playPingPong)

func playPingPong(ctx context.Context, j pingJob) (int, error) {
	for i := range j.N {
		if j.First {
			if err := send(ctx, j, i); err != nil {
				return i, err
			}
		}
		got, err := recv(ctx, j)
		if err != nil {
			return i, err
		}
		if got != i {
			return i, fmt.Errorf("round %d: got %d", i, got)
		}
		if !j.First {
			if err := send(ctx, j, i); err != nil {
				return i, err
			}
		}
	}
	return j.N, nil
}

func send(ctx context.Context, j pingJob, i int) error {
	if j.Conn != nil {
		return j.Conn.Send(i)
	}
	return j.Out.Put(ctx, i)
}

func recv(ctx context.Context, j pingJob) (int, error) {
	if j.Conn != nil {
		var i int
		err := j.Conn.Recv(&i)
		return i, err
	}
	return j.In.Get(ctx)
}

// Two ping-pong pairs at once keep the 2 CPUs of the test machines busy
// with four waiters: a pair of processes through Queues (the ring's
// waiting) and the test process with a child through a Pipe (Conn's). A
// waiting policy that spun regardless of the other side running would
// stall them (a pure spin on a shared CPU took 7 ms a round trip); each
// pair must still finish well within a generous deadline.
func TestTwoBusyPingPongPairsProgress(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	const n = 2000
	q1, err := multiproc.NewQueue[int](0)
	if err != nil {
		t.Fatal(err)
	}
	q2, err := multiproc.NewQueue[int](0)
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := multiproc.Pipe(true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ps := []*multiproc.Process{
		start(t, pingPong.Process(pingJob{In: q1, Out: q2, N: n, First: true})),
		start(t, pingPong.Process(pingJob{In: q2, Out: q1, N: n})),
		start(t, pingPong.Process(pingJob{Conn: b, N: n})),
	}
	b.Close()
	mine := make(chan error, 1)
	go func() {
		_, err := playPingPong(ctx, pingJob{Conn: a, N: n, First: true})
		mine <- err
	}()
	select {
	case err := <-mine:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the Pipe ping-pong made no progress")
	}
	joinAll(t, ctx, ps)
}
