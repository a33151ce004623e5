// Command wait is the select-style server of the lesson, with
// multiproc.Wait (Python's multiprocessing.connection.wait): one parent
// serves several children over their own Conns, answering whichever has
// something to say, and notices each child's end through the same Wait —
// no goroutine per child, no polling with a timeout.
//
//	go run ./examples/wait
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/multiproc-go/multiproc"
)

type question struct {
	Worker int
	N      int
}

type job struct {
	ID   int
	Conn *multiproc.Conn
}

// asker asks the parent to square a few numbers, at its own pace, then
// closes its end and exits.
var asker = multiproc.Register("examples.asker", func(ctx context.Context, j job) (int, error) {
	defer j.Conn.Close()
	sum := 0
	for i := range 3 {
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond) // thinking
		if err := j.Conn.Send(question{Worker: j.ID, N: j.ID*10 + i}); err != nil {
			return sum, err
		}
		var answer int
		if err := j.Conn.RecvContext(ctx, &answer); err != nil {
			return sum, err
		}
		sum += answer
	}
	return sum, nil
})

func main() {
	multiproc.Main()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wait:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Each child gets one end of its own duplex pipe; the parent keeps the
	// other and watches all of them, and the children themselves.
	var watch []multiproc.Waitable
	conns := map[*multiproc.Conn]int{}
	for id := 1; id <= 4; id++ {
		ours, theirs, err := multiproc.Pipe(true)
		if err != nil {
			return err
		}
		p := asker.Process(job{ID: id, Conn: theirs})
		p.Name = fmt.Sprintf("asker-%d", id)
		if err := p.Start(); err != nil {
			return err
		}
		theirs.Close() // the child has its own copy: EOF comes when it closes it
		conns[ours] = id
		watch = append(watch, ours, p)
	}
	fmt.Printf("serving %d children: %d running\n", len(conns), len(multiproc.ActiveChildren()))

	for len(watch) > 0 {
		ready, err := multiproc.Wait(ctx, watch...)
		if err != nil {
			return err
		}
		for _, obj := range ready {
			switch o := obj.(type) {
			case *multiproc.Conn:
				var q question
				err := o.Recv(&q)
				if errors.Is(err, io.EOF) { // the child closed its end
					o.Close()
					watch = remove(watch, o)
					continue
				}
				if err != nil {
					return err
				}
				fmt.Printf("asker-%d asks %d² → %d\n", q.Worker, q.N, q.N*q.N)
				if err := o.Send(q.N * q.N); err != nil {
					return err
				}
			case *multiproc.Process:
				if err := o.Join(ctx); err != nil {
					return err
				}
				fmt.Printf("%s (pid %d) is done\n", o.Name, o.Pid())
				watch = remove(watch, o)
			}
		}
	}
	fmt.Printf("all served: %d children running\n", len(multiproc.ActiveChildren()))
	return nil
}

func remove(ws []multiproc.Waitable, x multiproc.Waitable) []multiproc.Waitable {
	for i, w := range ws {
		if w == x {
			return append(ws[:i], ws[i+1:]...)
		}
	}
	return ws
}
