// Command multiproc-cluster watches and measures multiproc clusters:
//
//	multiproc-cluster status [-name NAME] [-token T] URL
//	multiproc-cluster bench [-quick] [-dask=false]
//
// status prints the hosts of the cluster at URL (a NATS server, as
// "nats://head:4222"), their worker processes and task counts, and the
// work queue: tasks waiting, running and redelivered. bench prints the
// cluster's throughput and latency beside a local Pool's and, where
// python3 has the distributed package (Debian's python3-distributed),
// Dask's.
//
// It is a command of its own, in the cluster module, because the core
// module's `multiproc` command must not depend on NATS.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/cluster"
)

func main() {
	multiproc.Main()
	os.Exit(run(os.Args[1:]))
}

const usage = `usage:
  multiproc-cluster status [-name NAME] [-token T] [-timeout D] URL
  multiproc-cluster bench [-quick] [-dask=false]
`

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "status":
		return status(args[1:])
	case "bench":
		return bench(args[1:])
	case "serve": // a bench host: not for users, who serve from their own program
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if len(args) != 2 {
			return 2
		}
		if err := cluster.Serve(ctx, cluster.Options{URL: args[1], Processes: 1}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "multiproc-cluster: unknown command %q\n%s", args[0], usage)
	return 2
}

func status(args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	name := fs.String("name", "", "the work queue's name (Options.Name; default multiproc)")
	token := fs.String("token", "", "the server's token (Options.Token)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	st, err := cluster.Status(ctx, cluster.Options{URL: fs.Arg(0), Name: *name, Token: *token})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st.WriteTo(os.Stdout)
	return 0
}
