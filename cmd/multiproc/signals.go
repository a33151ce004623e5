package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/multiproc-go/multiproc/signals"
)

var signalsCommand = command{
	name:    "signals",
	summary: "print the signal table: number, name, default action, meaning",
	run:     runSignals,
}

const signalsUsage = `usage: multiproc signals

Print every signal of this system, in 'kill -l' order: its number, its
name, the action the kernel takes when a process has not caught it
(terminate, core, stop, continue or ignore) and what it is for.
`

func runSignals(args []string) int {
	fs := newFlags("signals", signalsUsage, os.Stdout, os.Stderr)
	pos, code := fs.parse(args)
	if code >= 0 {
		return code
	}
	if len(pos) > 0 {
		return fs.usageError("unexpected argument %q", pos[0])
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NUM\tNAME\tDEFAULT\tMEANING")
	for _, in := range signals.Table() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", int(in.Signal), in.Name, in.Default, in.Meaning)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "multiproc signals:", err)
		return exitFail
	}
	return exitOK
}
