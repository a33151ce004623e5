// Command queue is the lesson's message-queue demo: producers and
// consumers in separate processes share one Queue; a bounded queue makes
// fast producers wait; timeouts are context deadlines. Its second part is
// Python's JoinableQueue: workers call TaskDone for each job, and the
// producer's Join returns once every job is done, with no polling.
//
//	go run ./examples/queue
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/multiproc-go/multiproc"
)

type order struct {
	Producer int
	Seq      int
	Item     string
}

type work struct {
	Orders *multiproc.Queue[order] // shared, not copied
	ID     int
	N      int
}

var producer = multiproc.Register("examples.producer", func(ctx context.Context, w work) (int, error) {
	for i := range w.N {
		// Blocks while the queue holds maxsize messages.
		if err := w.Orders.Put(ctx, order{Producer: w.ID, Seq: i, Item: fmt.Sprintf("item-%d-%d", w.ID, i)}); err != nil {
			return i, err
		}
	}
	return w.N, nil
})

var consumer = multiproc.Register("examples.consumer", func(ctx context.Context, w work) (int, error) {
	n := 0
	for {
		// A deadline instead of Python's get(timeout=...).
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		o, err := w.Orders.Get(c)
		cancel()
		if errors.Is(err, multiproc.ErrEmpty) {
			return n, nil // nothing for a while: the producers are done
		}
		if err != nil {
			return n, err
		}
		n++
		if o.Seq == 0 {
			fmt.Printf("  consumer %d (pid %d) got the first order of producer %d: %s\n", w.ID, os.Getpid(), o.Producer, o.Item)
		}
	}
})

// jobs is the JoinableQueue part: a job is a number to square; a
// negative one tells a worker to stop.
type jobs struct {
	Jobs    *multiproc.JoinableQueue[int]
	Results *multiproc.Value[int64] // the sum of the squares
}

var worker = multiproc.Register("examples.worker", func(ctx context.Context, j jobs) (int, error) {
	n := 0
	for {
		x, err := j.Jobs.Get(ctx) // blocks until a job comes: no timeout to guess
		if err != nil {
			return n, err
		}
		if x >= 0 {
			j.Results.Add(int64(x * x))
			n++
		}
		// Python's task_done(): this job is finished, in whichever
		// process took it.
		if err := j.Jobs.TaskDone(); err != nil {
			return n, err
		}
		if x < 0 {
			return n, nil
		}
	}
})

func joinable(ctx context.Context) error {
	q, err := multiproc.NewJoinableQueue[int](50)
	if err != nil {
		return err
	}
	defer q.Close()
	sum, err := multiproc.NewValue[int64](0)
	if err != nil {
		return err
	}
	defer sum.Close()
	var workers []*multiproc.Process
	for range 3 {
		w := worker.Process(jobs{Jobs: q, Results: sum})
		if err := w.Start(); err != nil {
			return err
		}
		workers = append(workers, w)
	}
	want := int64(0)
	for i := range 1000 {
		if err := q.Put(ctx, i); err != nil {
			return err
		}
		want += int64(i * i)
	}
	// Python's join(): returns once every job put had its TaskDone.
	if err := q.Join(ctx); err != nil {
		return err
	}
	fmt.Printf("JoinableQueue: 1000 jobs done by 3 workers, sum of squares %d (want %d)\n", sum.Load(), want)
	for range workers {
		if err := q.Put(ctx, -1); err != nil { // one stop job per worker
			return err
		}
	}
	for _, w := range workers {
		if err := w.Join(ctx); err != nil {
			return err
		}
	}
	return q.Join(ctx) // the stop jobs were done too: nothing unfinished
}

func main() {
	multiproc.Main()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := multiproc.NewQueue[order](100) // at most 100 messages waiting
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	start := time.Now()
	var producers, consumers []*multiproc.Process
	for i := range 3 {
		p := producer.Process(work{Orders: q, ID: i, N: 20000})
		p.Start()
		producers = append(producers, p)
	}
	for i := range 2 {
		c := consumer.Process(work{Orders: q, ID: i})
		c.Start()
		consumers = append(consumers, c)
	}
	for _, p := range producers {
		if err := p.Join(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Printf("3 producers put 60000 orders; %d left in the queue now\n", q.Len())
	for _, c := range consumers {
		c.Join(ctx)
	}
	fmt.Printf("consumers drained it: empty=%v, %v in all\n", q.Empty(), time.Since(start).Round(time.Millisecond))

	// The parent uses the same queue directly.
	q.Put(ctx, order{Item: "from the parent"})
	o, _ := q.TryGet()
	fmt.Println("TryGet:", o.Item)
	if _, err := q.TryGet(); errors.Is(err, multiproc.ErrEmpty) {
		fmt.Println("TryGet on an empty queue:", err)
	}

	if err := joinable(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
