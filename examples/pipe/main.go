// Command pipe is the lesson's Pipe demo: a parent and a child talk over a
// duplex pipe (Go values with Send/Recv, raw messages with SendBytes/
// RecvBytes), a one-way pipe carries a stream to its end, and a closed
// peer shows up as io.EOF or a broken pipe, never a hang.
//
//	go run ./examples/pipe
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc"
)

type request struct {
	ID   int
	Text string
}

type reply struct {
	ID    int
	Upper string
	Pid   int
}

type talk struct{ Conn *multiproc.Conn }

// server answers requests until the parent closes its end.
var server = multiproc.Register("examples.server", func(ctx context.Context, t talk) (int, error) {
	n := 0
	for {
		var req request
		err := t.Conn.Recv(&req)
		if err == io.EOF {
			return n, nil // the parent closed its end
		}
		if err != nil {
			return n, err
		}
		if err := t.Conn.Send(reply{ID: req.ID, Upper: strings.ToUpper(req.Text), Pid: os.Getpid()}); err != nil {
			return n, err
		}
		n++
	}
})

// writer sends lines down a one-way pipe, then exits (closing its end).
var writer = multiproc.Register("examples.writer", func(ctx context.Context, t talk) (int, error) {
	for i := range 3 {
		if err := t.Conn.SendBytes(fmt.Appendf(nil, "line %d from pid %d", i, os.Getpid())); err != nil {
			return i, err
		}
	}
	return 3, nil
})

func main() {
	multiproc.Main()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pipe:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Duplex: both ends send and receive.
	parent, child, err := multiproc.Pipe(true)
	if err != nil {
		return err
	}
	p := server.Process(talk{Conn: child})
	if err := p.Start(); err != nil {
		return err
	}
	child.Close() // the child has its own copy; ours would keep the pipe open
	for i, text := range []string{"hello", "pipes", "across processes"} {
		if err := parent.Send(request{ID: i, Text: text}); err != nil {
			return err
		}
		var r reply
		if err := parent.Recv(&r); err != nil {
			return err
		}
		fmt.Printf("request %d %-18q -> %q from pid %d\n", r.ID, text, r.Upper, r.Pid)
	}
	parent.Close() // the server sees io.EOF and returns
	if err := p.Join(ctx); err != nil {
		return err
	}

	// One-way: the first end only receives, the second only sends.
	r, w, err := multiproc.Pipe(false)
	if err != nil {
		return err
	}
	wp := writer.Process(talk{Conn: w})
	if err := wp.Start(); err != nil {
		return err
	}
	w.Close()
	for {
		if ok, _ := r.Poll(5 * time.Second); !ok {
			return errors.New("nothing arrived")
		}
		b, err := r.RecvBytes()
		if err == io.EOF {
			fmt.Println("writer exited: io.EOF")
			break
		}
		if err != nil {
			return err
		}
		fmt.Printf("received %q\n", b)
	}
	wp.Join(ctx)

	// Writing to a pipe whose reader is gone: an error, not a dead process.
	err = r.SendBytes([]byte("x"))
	fmt.Println("Send on the receive-only end:", err)
	r2, w2, _ := multiproc.Pipe(false)
	r2.Close()
	err = w2.SendBytes([]byte("anyone?"))
	fmt.Println("Send with the reader closed:", err, "| EPIPE:", errors.Is(err, syscall.EPIPE))
	return nil
}
