// Command shared_value is the lesson's shared-memory demo: a Value and an
// Array that several processes update, with and without the lock.
//
//	go run ./examples/shared_value
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/multiproc-go/multiproc"
)

type task struct {
	Counter *multiproc.Value[int64]   // shared, not copied
	Squares *multiproc.Array[float64] // shared, not copied
	Index   int
	N       int
	Locked  bool
	Go      *multiproc.Event // all start counting together
}

var add = multiproc.Register("examples.add", func(ctx context.Context, t task) (int, error) {
	if err := t.Go.Wait(ctx); err != nil {
		return 0, err
	}
	for range t.N {
		if t.Locked {
			t.Counter.Lock() // the Value's own lock, as Python's get_lock()
			t.Counter.Store(t.Counter.Load() + 1)
			t.Counter.Unlock()
		} else {
			// Load then Store: two atomic steps, not one. Updates get lost.
			t.Counter.Store(t.Counter.Load() + 1)
		}
	}
	t.Squares.Store(t.Index, float64(t.Index*t.Index))
	return 0, nil
})

func main() {
	multiproc.Main()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, locked := range []bool{false, true} {
		counter, err := multiproc.NewValue[int64](0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		squares, _ := multiproc.NewArray[float64](4)
		start, _ := multiproc.NewEvent()
		var ps []*multiproc.Process
		for i := range 4 {
			p := add.Process(task{Counter: counter, Squares: squares, Index: i, N: 1000000, Locked: locked, Go: start})
			if err := p.Start(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			ps = append(ps, p)
		}
		start.Set()
		for _, p := range ps {
			p.Join(ctx)
		}
		fmt.Printf("locked=%-5v counter = %6d (4 processes x 1000000 increments) squares = %v\n",
			locked, counter.Load(), squares.Slice())
	}
	// Atomic Add needs no lock at all.
	total, _ := multiproc.NewValue(0.0)
	total.Add(1.5)
	fmt.Println("atomic float Add:", total.Add(1.0))
}
