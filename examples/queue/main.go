// Command queue is the lesson's message-queue demo: producers and
// consumers in separate processes share one Queue; a bounded queue makes
// fast producers wait; timeouts are context deadlines.
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
}
