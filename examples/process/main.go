// Command process is the lesson's Process demo: start child processes that
// run a Go function, watch their pids and names, join them, read their exit
// codes, and terminate one that would run too long.
//
//	go run ./examples/process
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/multiproc-go/multiproc"
)

type job struct {
	Name  string
	Sleep time.Duration
}

// work runs in a child process.
var work = multiproc.Register("examples.work", func(ctx context.Context, j job) (string, error) {
	fmt.Printf("  child %-8s pid %d, parent %d: working %v\n", j.Name, os.Getpid(), os.Getppid(), j.Sleep)
	select {
	case <-time.After(j.Sleep):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if j.Name == "unlucky" {
		return "", errors.New("unlucky failed on purpose")
	}
	return "done", nil
})

func main() {
	multiproc.Main() // first: in a child this runs the child's task and exits

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fmt.Printf("parent pid %d\n", os.Getpid())

	var ps []*multiproc.Process
	for i, name := range []string{"alpha", "beta", "unlucky"} {
		p := work.Process(job{Name: name, Sleep: time.Duration(100*(i+1)) * time.Millisecond})
		p.Name = name
		if err := p.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("started %-8s pid %d alive=%v\n", p.Name, p.Pid(), p.IsAlive())
		ps = append(ps, p)
	}
	for _, p := range ps {
		err := p.Join(ctx)
		code, _ := p.ExitCode()
		fmt.Printf("joined  %-8s exit code %d err=%v\n", p.Name, code, err)
	}

	// A process that would run for a minute, terminated: exit code -15.
	long := work.Process(job{Name: "sleepy", Sleep: time.Minute})
	long.Name = "sleepy"
	if err := long.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	time.Sleep(100 * time.Millisecond)
	long.Terminate()
	long.Join(ctx)
	code, _ := long.ExitCode()
	fmt.Printf("terminated %s: exit code %d\n", long.Name, code)

	// Call: run once in a fresh process and get the result back.
	res, err := work.Call(ctx, job{Name: "call", Sleep: 10 * time.Millisecond})
	fmt.Printf("Call returned %q, %v\n", res, err)
}
