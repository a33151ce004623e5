// Command multiproc is the command-line side of the multiproc library:
//
//	multiproc copy [-j N] [-q] SRC DST   copy a file with N processes
//	multiproc bench                      pipe, queue and shared memory against python3
//	multiproc signals                    the signal table
//	multiproc kill [-s SIG] PID...       send a signal, like kill(1)
//	multiproc help [COMMAND]             usage
//
// Exit status: 0 success, 1 failure, 2 usage error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/multiproc-go/multiproc"
)

// command is one subcommand. run gets the arguments after the command's
// name and returns the exit status; given -h or --help it prints its usage
// on stdout and returns 0.
type command struct {
	name    string
	summary string
	run     func(args []string) int
}

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// commands is the command table, in the order help lists it. It is filled
// in init: help refers to the table itself.
var commands []command

func init() {
	commands = []command{
		copyCommand,
		benchCommand,
		signalsCommand,
		killCommand,
		{name: "help", summary: "show how to use multiproc or one of its commands", run: runHelp},
	}
}

func main() {
	multiproc.Main() // in a child process (copy's workers) this runs the child's task and exits
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(os.Stdout)
		return exitOK
	}
	c, ok := lookupCommand(args[0])
	if !ok {
		fmt.Fprintf(os.Stderr, "multiproc: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return exitUsage
	}
	return c.run(args[1:])
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	fmt.Fprint(w, `multiproc: Python's multiprocessing, done right, for Go — the command-line tool.

usage: multiproc COMMAND [ARGUMENTS]

commands:
`)
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'multiproc help COMMAND' or 'multiproc COMMAND -h' for a command's options.
Exit status: 0 success, 1 failure, 2 usage error.
`)
}

func runHelp(args []string) int {
	switch {
	case len(args) == 0:
		usage(os.Stdout)
		return exitOK
	case len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		fmt.Print("usage: multiproc help [COMMAND]\n\nShow how to use multiproc, or one of its commands.\n")
		return exitOK
	case len(args) > 1:
		fmt.Fprintln(os.Stderr, "usage: multiproc help [COMMAND]")
		return exitUsage
	}
	c, ok := lookupCommand(args[0])
	if !ok {
		fmt.Fprintf(os.Stderr, "multiproc help: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return exitUsage
	}
	if c.name == "help" {
		return runHelp([]string{"-h"})
	}
	return c.run([]string{"-h"})
}

// newFlagSet returns a flag set for a command that reports nothing itself:
// parseFlags prints errors and usage.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("multiproc "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args with fs, accepting flags after the positional
// arguments too ("copy SRC DST -j 2"); "--" ends the flags. On -h it prints
// the usage text on stdout and returns exitOK; on a bad flag it prints the
// error and the usage line on stderr and returns exitUsage; otherwise it
// returns the positional arguments and -1.
func parseFlags(fs *flag.FlagSet, args []string, usageText string) ([]string, int) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Print(usageText)
				return nil, exitOK
			}
			return nil, usageError(fs.Name(), usageText, "%v", err)
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), -1
		}
		if len(rest) == 0 {
			return pos, -1
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError prints "NAME: message" and the first line of the command's
// usage on stderr, and returns exitUsage.
func usageError(name, usageText, format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "%s: %s\n", name, fmt.Sprintf(format, a...))
	line, _, _ := strings.Cut(usageText, "\n")
	fmt.Fprintf(os.Stderr, "%s\nRun 'multiproc help %s' for more.\n", line, strings.TrimPrefix(name, "multiproc "))
	return exitUsage
}
