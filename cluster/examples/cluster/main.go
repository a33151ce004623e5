// Command cluster sums the squares of 1..n on a multiproc cluster.
//
// On one machine, with no setup (an embedded NATS server and one worker
// process per CPU):
//
//	go run ./examples/cluster -n 100000
//
// Across machines: the head listens, and every other machine runs the
// same program as a host:
//
//	head$  go run ./examples/cluster -listen :4222 -token s3cret -wait 5s
//	other$ go run ./examples/cluster -worker nats://head:4222 -token s3cret
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/cluster"
)

// square is registered at package initialisation, in the head and in
// every host alike: they all run this same program.
var square = multiproc.Register("example.square", func(_ context.Context, x int) (int, error) {
	return x * x, nil
})

func main() {
	multiproc.Main() // in a worker process this runs its tasks and never returns

	worker := flag.String("worker", "", "run as a host of the cluster at this NATS URL, until interrupted")
	listen := flag.String("listen", "", "let hosts of other machines join at this address (\":4222\")")
	token := flag.String("token", "", "the secret hosts and head share (with -listen and -worker)")
	procs := flag.Int("procs", 0, "worker processes on this machine (0: one per CPU)")
	wait := flag.Duration("wait", 0, "with -listen: give hosts this long to join before starting")
	n := flag.Int("n", 10000, "sum the squares of 1..n")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *worker != "" {
		// The one line that makes this program a host.
		if err := cluster.Serve(ctx, cluster.Options{URL: *worker, Processes: *procs, Token: *token}); err != nil {
			log.Fatal(err)
		}
		return
	}

	c, err := cluster.Connect(ctx, cluster.Options{Listen: *listen, Processes: *procs, Token: *token})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if *listen != "" {
		fmt.Fprintf(os.Stderr, "hosts join with: %s -worker %s\n", os.Args[0], c.URL())
		select {
		case <-time.After(*wait):
		case <-ctx.Done():
		}
	}

	xs := make([]int, *n)
	for i := range xs {
		xs[i] = i + 1
	}
	squares, err := square.Map(ctx, c, xs) // the same call as on a local multiproc.Pool
	if err != nil {
		log.Fatal(err)
	}
	sum := 0
	for _, s := range squares {
		sum += s
	}
	fmt.Printf("sum of the squares of 1..%d = %d (on %d worker processes)\n", *n, sum, c.Workers())
}
