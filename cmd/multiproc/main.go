// Command multiproc is the command-line side of the multiproc library:
//
//	multiproc copy [-r] [-p] [-n] [-j N] [-v] SRC... DST   copy files and trees with at most N processes, like cp
//	multiproc bench                                      pipe, queue and shared memory against python3 and C
//	multiproc signals                                    the signal table
//	multiproc kill [-s SIG] PID...                       send a signal, like kill(1)
//	multiproc version                                    the module and Go versions (also -version)
//	multiproc help [COMMAND]                             usage
//
// Exit status: 0 success, 1 failure, 2 usage error, 128+N interrupted by
// signal N (130: Ctrl-C).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/multiproc-go/multiproc"
	"golang.org/x/sys/unix"
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
		versionCommand,
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
	case "-version", "--version":
		return runVersion(args[1:])
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
Exit status: 0 success, 1 failure, 2 usage error, 128+N interrupted by
signal N (130: Ctrl-C).
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

// flagSet is how every subcommand parses its arguments: the standard
// flag package, plus flags after the operands ("copy SRC DST -j 2"), "--"
// to end the flags, and -h/--help printing the command's usage on stdout.
// Errors and usage go to the writers given, so that tests can call a
// command in-process.
type flagSet struct {
	*flag.FlagSet
	usage          string // the command's whole usage text; its first line is the usage line
	stdout, stderr io.Writer
}

// newFlags returns the flag set of the command name ("copy").
func newFlags(name, usage string, stdout, stderr io.Writer) *flagSet {
	fs := flag.NewFlagSet("multiproc "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself, once
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, usage: usage, stdout: stdout, stderr: stderr}
}

// parse parses args. On -h it prints the usage on stdout and returns
// exitOK; on a bad flag it prints the error and the usage line on stderr
// and returns exitUsage; otherwise it returns the operands and -1.
func (fs *flagSet) parse(args []string) ([]string, int) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(fs.stdout, fs.usage)
				return nil, exitOK
			}
			return nil, fs.usageError("%v", err)
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

// isSet reports whether the flag name was given.
func (fs *flagSet) isSet(name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// usageError prints "multiproc NAME: message" and the command's usage line
// on stderr, and returns exitUsage.
func (fs *flagSet) usageError(format string, a ...any) int {
	return usageErrorTo(fs.stderr, fs.Name(), fs.usage, format, a...)
}

// usageError is usageErrorTo on stderr.
func usageError(name, usageText, format string, a ...any) int {
	return usageErrorTo(os.Stderr, name, usageText, format, a...)
}

// usageErrorTo prints "NAME: message" and the first line of the command's
// usage on w, and returns exitUsage.
func usageErrorTo(w io.Writer, name, usageText, format string, a ...any) int {
	fmt.Fprintf(w, "%s: %s\n", name, fmt.Sprintf(format, a...))
	line, _, _ := strings.Cut(usageText, "\n")
	fmt.Fprintf(w, "%s\nRun 'multiproc help %s' for more.\n", line, strings.TrimPrefix(name, "multiproc "))
	return exitUsage
}

// isTerminal reports whether w is a terminal (TCGETS succeeds on it).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	tty := false
	rc.Control(func(fd uintptr) {
		_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		tty = err == nil
	})
	return tty
}

// interruptError is the cause of a context that interruptContext
// cancelled: the signal that arrived.
type interruptError struct{ sig syscall.Signal }

func (e interruptError) Error() string { return e.sig.String() + " signal received" }

// interruptContext returns a context cancelled, with an interruptError
// cause, when one of sigs arrives. Until stop is called, the signals no
// longer end the program: the command cleans up and returns
// interruptStatus.
func interruptContext(sigs ...os.Signal) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			if sig, ok := s.(syscall.Signal); ok {
				cancel(interruptError{sig})
			}
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(context.Canceled)
	}
}

// exitSignalled is the exit status of a command ended by sig, as shells
// report it: 128+N (130 for SIGINT).
func exitSignalled(sig syscall.Signal) int { return 128 + int(sig) }

// interruptStatus returns exitSignalled of the signal that cancelled ctx
// (made by interruptContext), if one did.
func interruptStatus(ctx context.Context) (int, bool) {
	var ie interruptError
	if errors.As(context.Cause(ctx), &ie) {
		return exitSignalled(ie.sig), true
	}
	return 0, false
}
