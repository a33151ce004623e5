// Command pool is the lesson's process pool demo: apply_async and get,
// apply, map, imap, close and join — plus what Python's pool cannot do: a
// worker that dies fails only its own task, and a task that runs too long
// is stopped.
//
//	go run ./examples/pool
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc"
)

var (
	square = multiproc.Register("examples.square", func(ctx context.Context, x int) (int, error) {
		return x * x, nil
	})
	slowPid = multiproc.Register("examples.slowPid", func(ctx context.Context, d time.Duration) (int, error) {
		time.Sleep(d)
		return os.Getpid(), nil
	})
	crash = multiproc.Register("examples.crash", func(ctx context.Context, _ int) (int, error) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL) // as the OOM killer would
		time.Sleep(time.Second)
		return 0, nil
	})
)

func main() {
	multiproc.Main()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pool:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 3, TaskTimeout: 2 * time.Second})
	if err != nil {
		return err
	}

	// apply_async + get: 6 tasks over 3 workers.
	var rs []*multiproc.AsyncResult[int]
	for range 6 {
		rs = append(rs, slowPid.ApplyAsync(pool, 100*time.Millisecond))
	}
	for i, r := range rs {
		pid, err := r.Get(ctx)
		fmt.Printf("apply_async task %d ran in worker pid %d (err %v)\n", i, pid, err)
	}

	// apply: one call, waits for the result.
	n, err := square.Apply(ctx, pool, 12)
	fmt.Println("apply square(12) =", n, err)

	// map: results in input order.
	squares, err := square.Map(ctx, pool, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	fmt.Println("map square(1..10) =", squares, err)

	// imap: streaming, in order.
	fmt.Print("imap square(1..5) =")
	for v, err := range square.IMap(ctx, pool, slices.Values([]int{1, 2, 3, 4, 5})) {
		if err != nil {
			return err
		}
		fmt.Print(" ", v)
	}
	fmt.Println()

	// A crashing task fails alone; its worker is replaced.
	_, err = crash.Apply(ctx, pool, 0)
	fmt.Println("crashing task:", err, "| ErrWorkerDied:", errors.Is(err, multiproc.ErrWorkerDied))

	// A task past TaskTimeout is stopped; its worker is replaced.
	_, err = slowPid.Apply(ctx, pool, time.Hour)
	fmt.Println("endless task:", errors.Is(err, context.DeadlineExceeded), err)

	n, err = square.Apply(ctx, pool, 3)
	fmt.Println("the pool still works: square(3) =", n, err)

	// close + join.
	pool.Close()
	if err := pool.Join(ctx); err != nil {
		return err
	}
	fmt.Println("pool closed and joined")
	return nil
}
