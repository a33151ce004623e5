package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/multiproc-go/multiproc/signals"
)

var killCommand = command{
	name:    "kill",
	summary: "send a signal to processes, like kill(1)",
	run:     runKill,
}

const killUsage = `usage: multiproc kill [-s SIG | -SIG] PID...
       multiproc kill -l [SIG...]

Send a signal to each PID, like kill(1); the default signal is SIGTERM.
SIG is a name or a number, in any case, with or without "SIG": TERM,
SIGTERM, term and 15 are the same signal. Signal 0 sends nothing and only
checks that the process exists and may be signalled.

options (before the PIDs):
  -s SIG, -n SIG, --signal SIG   the signal to send
  -SIG                           the same, as kill(1) has it: -9, -KILL, -INT
  -l, --list [SIG...]            list the signals, numbered; or, for each SIG,
                                 print its number (given a name) or its name
                                 (given a number or an exit status 128+N)
  --                             the end of the options

Each PID that cannot be signalled is reported; the exit status is then 1.
Only single processes are signalled, never process groups: a PID is
decimal digits only, from 1 to 2147483647; any other PID argument is a
usage error (exit status 2), and then no signal is sent at all.
`

func runKill(args []string) int {
	sig := syscall.SIGTERM
	list := false
	var rest []string
	usageErr := func(format string, a ...any) int {
		return usageError("multiproc kill", killUsage, format, a...)
	}
	setSig := func(s string) bool {
		n, err := parseSignal(s)
		if err != nil {
			return false
		}
		sig = n
		return true
	}
options:
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = args[i+1:]
			break options
		case a == "-h" || a == "-help" || a == "--help":
			fmt.Print(killUsage)
			return exitOK
		case a == "-l" || a == "-L" || a == "--list":
			list = true
		case a == "-s" || a == "-n" || a == "--signal":
			if i+1 >= len(args) {
				return usageErr("%s needs a signal", a)
			}
			i++
			if !setSig(args[i]) {
				return usageErr("unknown signal %q", args[i])
			}
		case strings.HasPrefix(a, "--signal="), strings.HasPrefix(a, "-s="):
			_, v, _ := strings.Cut(a, "=")
			if !setSig(v) {
				return usageErr("unknown signal %q", v)
			}
		case len(a) > 1 && a[0] == '-':
			if !setSig(a[1:]) {
				return usageErr("unknown option or signal %q", a)
			}
		default:
			rest = args[i:]
			break options
		}
	}
	if list {
		return killList(rest)
	}
	if len(rest) == 0 {
		return usageErr("no process id given")
	}
	// Every PID is checked before any signal is sent: a command line with
	// a bad one is a mistake, and acting on half of it would be worse.
	pids := make([]int, len(rest))
	for i, s := range rest {
		pid, ok := parsePid(s)
		if !ok {
			fmt.Fprintf(os.Stderr, "multiproc kill: bad process id %q: want a decimal number from 1 to %d (process groups are never signalled); nothing was sent\n", s, signals.MaxPid)
			return exitUsage
		}
		pids[i] = pid
	}
	status := exitOK
	for i, pid := range pids {
		if err := killOne(pid, sig); err != nil {
			fmt.Fprintf(os.Stderr, "multiproc kill: %s: %v\n", rest[i], err)
			status = exitFail
		}
	}
	return status
}

// parsePid accepts ASCII decimal digits only (no sign, no space, no
// other base) whose value is a single process id, 1 to signals.MaxPid.
// strconv.Atoi alone would take "+5" and 4294967295, which kill(2),
// reading 32 bits, would take for -1: every process.
func parsePid(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < 1 || n > signals.MaxPid {
		return 0, false
	}
	return int(n), true
}

// parseSignal accepts what signals.Lookup accepts, and 0.
func parseSignal(s string) (syscall.Signal, error) {
	if strings.TrimSpace(s) == "0" {
		return 0, nil
	}
	in, err := signals.Lookup(s)
	if err != nil {
		return 0, err
	}
	return in.Signal, nil
}

// killOne sends sig to the process pid (parsePid checked it). The error
// is short: the caller prefixes the pid.
func killOne(pid int, sig syscall.Signal) error {
	if err := signals.Kill(pid, sig); err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return errno // "no such process", "operation not permitted"
		}
		return err
	}
	return nil
}

// killList prints the numbered signal list, or translates each argument
// (a name to its number, a number or 128+number to its name), as the
// shell's kill -l does.
func killList(args []string) int {
	if len(args) == 0 {
		table := signals.Table()
		const perRow = 5
		var b strings.Builder
		for i, in := range table {
			cell := fmt.Sprintf("%2d) %s", int(in.Signal), in.Name)
			if i%perRow == perRow-1 || i == len(table)-1 {
				b.WriteString(cell + "\n")
			} else {
				fmt.Fprintf(&b, "%-16s", cell)
			}
		}
		fmt.Print(b.String())
		return exitOK
	}
	status := exitOK
	for _, a := range args {
		if n, err := strconv.Atoi(a); err == nil {
			if n > 128 {
				n -= 128 // an exit status: killed by signal n-128
			}
			in, err := signals.Lookup(strconv.Itoa(n))
			if err != nil {
				fmt.Fprintf(os.Stderr, "multiproc kill: %s: unknown signal\n", a)
				status = exitFail
				continue
			}
			fmt.Println(strings.TrimPrefix(in.Name, "SIG"))
			continue
		}
		in, err := signals.Lookup(a)
		if err != nil {
			fmt.Fprintf(os.Stderr, "multiproc kill: %s: unknown signal\n", a)
			status = exitFail
			continue
		}
		fmt.Println(int(in.Signal))
	}
	return status
}
