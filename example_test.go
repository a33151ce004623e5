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
