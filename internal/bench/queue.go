package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/multiproc-go/multiproc"
)

// queueArg is the task of one producer or consumer of queue-1p1c and
// queue-2p2c. Each waits at Start, puts or gets N messages, and waits at
// Start again; the parent times from the first release to the second.
type queueArg struct {
	Q      *multiproc.Queue[int64]
	Start  *multiproc.Barrier
	N      int
	Offset int64 // a producer puts Offset, Offset+1, ...
}

var (
	producer = multiproc.Register("bench.producer", func(ctx context.Context, a queueArg) (int64, error) {
		if err := a.Start.Wait(ctx); err != nil {
			return 0, err
		}
		for i := range a.N {
			if err := a.Q.Put(ctx, a.Offset+int64(i)); err != nil {
				return 0, err
			}
		}
		return 0, a.Start.Wait(ctx)
	})
	consumer = multiproc.Register("bench.consumer", func(ctx context.Context, a queueArg) (int64, error) {
		if err := a.Start.Wait(ctx); err != nil {
			return 0, err
		}
		var sum int64
		for range a.N {
			x, err := a.Q.Get(ctx)
			if err != nil {
				return 0, err
			}
			sum += x
		}
		return sum, a.Start.Wait(ctx)
	})
)

func measureQueue1P1C(ctx context.Context, n, _ int) (time.Duration, error) {
	return measureQueue(ctx, n, 1)
}

func measureQueue2P2C(ctx context.Context, n, _ int) (time.Duration, error) {
	return measureQueue(ctx, n, 2)
}

func measureQueue1P1CE2E(ctx context.Context, n, _ int) (time.Duration, error) {
	return endToEnd(func() (time.Duration, error) { return measureQueue(ctx, n, 1) })
}

func measureQueue2P2CE2E(ctx context.Context, n, _ int) (time.Duration, error) {
	return endToEnd(func() (time.Duration, error) { return measureQueue(ctx, n, 2) })
}

// measureQueue: k producers put n messages in all through an unbounded
// Queue[int64], k consumers get them.
func measureQueue(ctx context.Context, n, k int) (time.Duration, error) {
	n = max(k, n/k*k)
	q, err := multiproc.NewQueue[int64](0)
	if err != nil {
		return 0, err
	}
	defer q.Close()
	start, err := multiproc.NewBarrier(2*k + 1)
	if err != nil {
		return 0, err
	}
	var ps []*multiproc.Process
	for i := range k {
		ps = append(ps,
			producer.Process(queueArg{Q: q, Start: start, N: n / k, Offset: int64(i * (n / k))}),
			consumer.Process(queueArg{Q: q, Start: start, N: n / k}))
	}
	d, err := timeBetween(ctx, start, ps)
	if err != nil {
		return 0, err
	}
	if l := q.Len(); l != 0 {
		return 0, fmt.Errorf("%d messages left in the queue", l)
	}
	return d, nil
}

// joinArg is the producer or consumer of joinable-queue: the producer
// puts N items and Joins, the consumer Gets each and calls TaskDone.
type joinArg struct {
	Q     *multiproc.JoinableQueue[int64]
	Start *multiproc.Barrier
	N     int
}

var (
	joinProducer = multiproc.Register("bench.joinProducer", func(ctx context.Context, a joinArg) (int64, error) {
		if err := a.Start.Wait(ctx); err != nil {
			return 0, err
		}
		for i := range a.N {
			if err := a.Q.Put(ctx, int64(i)); err != nil {
				return 0, err
			}
		}
		if err := a.Q.Join(ctx); err != nil {
			return 0, err
		}
		return 0, a.Start.Wait(ctx)
	})
	joinConsumer = multiproc.Register("bench.joinConsumer", func(ctx context.Context, a joinArg) (int64, error) {
		if err := a.Start.Wait(ctx); err != nil {
			return 0, err
		}
		for range a.N {
			if _, err := a.Q.Get(ctx); err != nil {
				return 0, err
			}
			if err := a.Q.TaskDone(); err != nil {
				return 0, err
			}
		}
		return 0, a.Start.Wait(ctx)
	})
)

// measureJoinable: one producer puts n items through an unbounded
// JoinableQueue[int64] and Joins; one consumer Gets and TaskDones each.
func measureJoinable(ctx context.Context, n, _ int) (time.Duration, error) {
	q, err := multiproc.NewJoinableQueue[int64](0)
	if err != nil {
		return 0, err
	}
	defer q.Close()
	start, err := multiproc.NewBarrier(3)
	if err != nil {
		return 0, err
	}
	ps := []*multiproc.Process{
		joinProducer.Process(joinArg{Q: q, Start: start, N: n}),
		joinConsumer.Process(joinArg{Q: q, Start: start, N: n}),
	}
	d, err := timeBetween(ctx, start, ps)
	if err != nil {
		return 0, err
	}
	if u := q.Unfinished(); u != 0 {
		return 0, fmt.Errorf("%d tasks unfinished after Join", u)
	}
	return d, nil
}
