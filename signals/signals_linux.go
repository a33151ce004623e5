//go:build linux

package signals

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Info describes one signal of the operating system.
type Info struct {
	Signal  syscall.Signal
	Name    string // "SIGINT"
	Default string // "terminate", "core", "stop", "continue" or "ignore"
	Meaning string // one line: what it is for
}

// ErrUnknownSignal is matched (with errors.Is) by the error Lookup returns
// for a name or number that is not a signal of this system.
var ErrUnknownSignal = errors.New("multiproc: unknown signal")

// table is every signal, in `kill -l` order; built once, never modified.
var table = buildTable()

// byNumber maps a signal number to its index in table.
var byNumber = func() map[syscall.Signal]int {
	m := make(map[syscall.Signal]int, len(table))
	for i, in := range table {
		m[in.Signal] = i
	}
	return m
}()

func buildTable() []Info {
	t := make([]Info, 0, len(standard)+sigRTMax-sigRTMin+1)
	t = append(t, standard...)
	mid := sigRTMin + (sigRTMax-sigRTMin)/2 // 49: the last one `kill -l` names from SIGRTMIN
	for n := sigRTMin; n <= sigRTMax; n++ {
		var name string
		switch {
		case n == sigRTMin:
			name = "SIGRTMIN"
		case n == sigRTMax:
			name = "SIGRTMAX"
		case n <= mid:
			name = fmt.Sprintf("SIGRTMIN+%d", n-sigRTMin)
		default:
			name = fmt.Sprintf("SIGRTMAX-%d", sigRTMax-n)
		}
		meaning := "real-time signal, free for the application to use; queued, and delivered in order"
		if n == sigRTMin {
			meaning += "; Go programs cannot catch this one (the runtime leaves it to the C library)"
		}
		t = append(t, Info{syscall.Signal(n), name, actTerm, meaning})
	}
	return t
}

// Table returns every signal of this system in the order `kill -l` lists
// them: the standard signals 1 to 31, then the real-time signals SIGRTMIN
// (34) to SIGRTMAX (64), named "SIGRTMIN+n" for the first half and
// "SIGRTMAX-n" for the second, as bash's `kill -l` names them. Numbers 32
// and 33 are missing, as in `kill -l`: the C library keeps them for
// itself.
//
// Default is the action the kernel takes when the signal arrives and the
// process has neither caught nor ignored it, as signal(7) gives it. A Go
// program does not get that action for every signal, because the Go
// runtime catches most of them; see the package documentation.
//
// The slice is a fresh copy: the caller may modify it.
func Table() []Info {
	return append([]Info(nil), table...)
}

// Lookup finds a signal by name or number. Names may be given with or
// without the "SIG" prefix, in any case: "INT", "SIGINT", "int" and
// "sigint" are all SIGINT. Real-time signals are named as `kill -l` names
// them, "RTMIN", "RTMIN+3", "SIGRTMAX-1", "RTMAX"; any "RTMIN+n" or
// "RTMAX-n" inside the range is accepted and returns the canonical name.
// The signal(7) synonyms IOT, CLD and POLL give SIGABRT, SIGCHLD and SIGIO.
// A decimal number, such as "2", is looked up by number. Surrounding
// white space is ignored.
//
// Anything else, including 0, 32, 33, numbers above 64, negative numbers
// and the empty string, gives an error that matches ErrUnknownSignal, for
// example `multiproc: unknown signal "FOO"`.
func Lookup(s string) (Info, error) {
	if i, ok := lookupIndex(strings.TrimSpace(s)); ok {
		return table[i], nil
	}
	return Info{}, fmt.Errorf("%w %q", ErrUnknownSignal, s)
}

func lookupIndex(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	if c := s[0]; c >= '0' && c <= '9' {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, false
		}
		i, ok := byNumber[syscall.Signal(n)]
		return i, ok
	}
	name := strings.ToUpper(s)
	name = strings.TrimPrefix(name, "SIG")
	if sig, ok := aliases[name]; ok {
		return byNumber[sig], true
	}
	if n, ok := realTime(name); ok {
		return byNumber[syscall.Signal(n)], true
	}
	for i := range standard {
		if standard[i].Name[len("SIG"):] == name {
			return i, true
		}
	}
	return 0, false
}

// realTime parses "RTMIN", "RTMIN+n", "RTMAX" and "RTMAX-n" (already
// upper case, without "SIG") and returns the signal number.
func realTime(name string) (int, bool) {
	var base, sign int
	var rest string
	switch {
	case strings.HasPrefix(name, "RTMIN"):
		base, sign, rest = sigRTMin, 1, name[len("RTMIN"):]
	case strings.HasPrefix(name, "RTMAX"):
		base, sign, rest = sigRTMax, -1, name[len("RTMAX"):]
	default:
		return 0, false
	}
	if rest == "" {
		return base, true
	}
	op := byte('+')
	if sign < 0 {
		op = '-'
	}
	if rest[0] != op || len(rest) == 1 {
		return 0, false
	}
	digits := rest[1:]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	off, err := strconv.Atoi(digits)
	if err != nil || off > sigRTMax-sigRTMin {
		return 0, false
	}
	return base + sign*off, true
}

// sigName returns the table name of sig, or "signal N" for a number that is
// not in the table.
func sigName(sig syscall.Signal) string {
	if i, ok := byNumber[sig]; ok {
		return table[i].Name
	}
	return "signal " + strconv.Itoa(int(sig))
}

// ErrBadPid is matched (with errors.Is) by the error Kill and KillThread
// return for a process or thread id outside 1 to MaxPid. Such an error
// also matches syscall.EINVAL.
var ErrBadPid = errors.New("multiproc: bad process id")

// MaxPid is the largest process or thread id Kill and KillThread accept:
// kill(2) takes a 32-bit pid_t, and Linux never hands out a larger one (its
// pid_max is at most 2^22).
const MaxPid = math.MaxInt32

// checkPid refuses what kill(2) would misread. A Go int is 64 bits wide,
// pid_t 32: unchecked, 1<<32 would become kill(0) (the caller's process
// group) and 1<<32-1 kill(-1) (every process the caller may signal).
func checkPid(what string, pid int) error {
	if pid < 1 || pid > MaxPid {
		return fmt.Errorf("%w: %s id %d: only a single %s, with an id from 1 to %d, can be signalled: %w",
			ErrBadPid, what, pid, what, MaxPid, syscall.EINVAL)
	}
	return nil
}

// Kill sends sig to the single process pid, with kill(2).
//
// pid must be from 1 to MaxPid. kill(2) gives 0 and negative numbers a
// special meaning (0: every process of the caller's process group; -1:
// every process the caller may signal; -N: every process of group N),
// which is easy to trigger by accident with an unset or failed pid, and a
// pid above MaxPid would be cut to 32 bits into one of those (4294967295
// is -1) or into another process's pid. So Kill refuses all of them with
// an error that matches ErrBadPid (and syscall.EINVAL) and sends nothing.
// Use unix.Kill directly to signal a process group on purpose.
//
// sig 0 sends nothing but still checks that the process exists and may be
// signalled, as in kill(2).
//
// Errors from kill(2) are wrapped so that errors.Is sees the errno: a
// process that no longer exists (or a zombie that has been reaped) gives
// an error matching syscall.ESRCH, one that belongs to another user gives
// syscall.EPERM. Note that a child that has ended but has not been waited
// for yet is a zombie: it still exists, and Kill succeeds without effect.
func Kill(pid int, sig syscall.Signal) error {
	if err := checkPid("process", pid); err != nil {
		return err
	}
	if err := unix.Kill(pid, sig); err != nil {
		return fmt.Errorf("multiproc: kill pid %d with %s: %w", pid, sigName(sig), err)
	}
	return nil
}
