//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/multiproc-go/multiproc"
)

// Functions that run in child processes are registered at package
// initialisation, in a package-level var.
var square = multiproc.Register("example.square", func(ctx context.Context, x int) (int, error) {
	return x * x, nil
})

var countTo = multiproc.Register("example.countTo", func(ctx context.Context, a countArg) (int, error) {
	for range a.N {
		a.Total.Add(1)
	}
	return a.N, nil
})

type countArg struct {
	Total *multiproc.Value[int64] // shared with the parent, not copied
	N     int
}

// Call runs a function once in a fresh child process and returns its result.
func ExampleFunc_Call() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := square.Call(ctx, 7)
	fmt.Println(n, err)
	// Output: 49 <nil>
}

// Process is Python's Process: set fields, Start, Join.
func ExampleFunc_Process() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := square.Process(3)
	p.Name = "squarer"
	if err := p.Start(); err != nil {
		fmt.Println(err)
		return
	}
	err := p.Join(ctx)
	code, exited := p.ExitCode()
	fmt.Println(err, code, exited)
	// Output: <nil> 0 true
}

// A child's error comes back through Join as an *ExitError.
func ExampleExitError() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := fail.Process("disk full")
	p.Name = "writer"
	p.Start()
	var ee *multiproc.ExitError
	if errors.As(p.Join(ctx), &ee) {
		fmt.Println(ee.Name, ee.ExitCode, ee.Message)
	}
	// Output: writer 1 disk full
}

// A Value passed to children is the same number in every process.
func ExampleNewValue() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	total, err := multiproc.NewValue[int64](0)
	if err != nil {
		fmt.Println(err)
		return
	}
	var ps []*multiproc.Process
	for range 3 {
		p := countTo.Process(countArg{Total: total, N: 1000})
		p.Start()
		ps = append(ps, p)
	}
	for _, p := range ps {
		p.Join(ctx)
	}
	fmt.Println(total.Load())
	// Output: 3000
}

// An Array is a fixed-length block of shared numbers.
func ExampleArrayOf() {
	a, _ := multiproc.ArrayOf([]float64{1, 2, 3})
	a.Lock()
	s := a.Slice()
	s[0] += 10
	a.Unlock()
	fmt.Println(a.Len(), a.Load(0), s)
	// Output: 3 11 [11 2 3]
}

var shout = multiproc.Register("example.shout", func(ctx context.Context, c *multiproc.Conn) (int, error) {
	b, err := c.RecvBytes()
	if err != nil {
		return 0, err
	}
	return 0, c.SendBytes(append(b, '!'))
})

// A duplex Pipe between the parent and a child.
func ExamplePipe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mine, theirs, err := multiproc.Pipe(true)
	if err != nil {
		fmt.Println(err)
		return
	}
	p := shout.Process(theirs)
	p.Start()
	theirs.Close() // the child holds its own copy
	mine.SendBytes([]byte("hello"))
	b, _ := mine.RecvBytes()
	fmt.Println(string(b), p.Join(ctx))
	// Output: hello! <nil>
}

var enqueue = multiproc.Register("example.enqueue", func(ctx context.Context, q *multiproc.Queue[string]) (int, error) {
	for _, s := range []string{"a", "b", "c"} {
		if err := q.Put(ctx, s); err != nil {
			return 0, err
		}
	}
	return 3, nil
})

// A Queue filled by a child and drained by the parent.
func ExampleNewQueue() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := multiproc.NewQueue[string](10)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := enqueue.Call(ctx, q); err != nil {
		fmt.Println(err)
		return
	}
	for !q.Empty() {
		s, _ := q.Get(ctx)
		fmt.Print(s, " ")
	}
	fmt.Println(q.Len())
	// Output: a b c 0
}

// A Pool runs registered functions in long-lived worker processes.
func ExampleNewPool() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pool, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	squares, err := square.Map(ctx, pool, []int{1, 2, 3, 4})
	fmt.Println(squares, err)
	r := square.ApplyAsync(pool, 12)
	fmt.Println(r.Get(ctx))
	pool.Close()
	fmt.Println(pool.Join(ctx))
	// Output:
	// [1 4 9 16] <nil>
	// 144 <nil>
	// <nil>
}

// A Semaphore bounds how many holders, in any process, are inside at once.
func ExampleNewSemaphore() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sem, _ := multiproc.NewSemaphore(1)
	fmt.Println(sem.Acquire(ctx), sem.TryAcquire())
	sem.Release()
	fmt.Println(sem.TryAcquire())
	// Output:
	// <nil> false
	// true
}
