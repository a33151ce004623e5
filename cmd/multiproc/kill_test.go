package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSignals(t *testing.T) {
	r := runCLI(t, 0, "signals")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) < 2 || !regexp.MustCompile(`^NUM +NAME +DEFAULT +MEANING$`).MatchString(lines[0]) {
		t.Fatalf("bad header: %q", r.stdout)
	}
	// Columns are aligned: every field starts where the header's does.
	cols := []int{0, strings.Index(lines[0], "NAME"), strings.Index(lines[0], "DEFAULT"), strings.Index(lines[0], "MEANING")}
	found := map[string]bool{}
	for _, l := range lines[1:] {
		for i, c := range cols {
			if c >= len(l) || l[c] == ' ' || (c > 0 && l[c-1] != ' ') {
				t.Fatalf("column %d does not start at %d in %q", i, c, l)
			}
		}
		found[strings.Join(strings.Fields(l[:cols[3]]), " ")] = true
	}
	for _, want := range []string{"2 SIGINT terminate", "9 SIGKILL terminate", "11 SIGSEGV core", "17 SIGCHLD ignore", "19 SIGSTOP stop", "18 SIGCONT continue", "34 SIGRTMIN terminate", "64 SIGRTMAX terminate"} {
		if !found[want] {
			t.Errorf("no row %q in\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "interrupt from the keyboard (Ctrl-C)") {
		t.Error("SIGINT's meaning is missing")
	}
}

// startSignalHelper starts the test binary as a process that reports the
// signals it gets, and returns it once it is ready, with its output lines.
func startSignalHelper(t *testing.T) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=signals")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("helper did not start: %q %v", sc.Text(), sc.Err())
	}
	return cmd, sc
}

// nextLine reads the helper's next line, with a deadline.
func nextLine(t *testing.T, sc *bufio.Scanner) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		sc.Scan()
		line <- sc.Text()
	}()
	select {
	case l := <-line:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("the helper reported no signal within 10 s")
		return ""
	}
}

func TestKillSendsSignal(t *testing.T) {
	cmd, sc := startSignalHelper(t)
	pid := fmt.Sprint(cmd.Process.Pid)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-s", "USR1"}, "got user defined signal 1"},
		{[]string{"-s", "SIGUSR2"}, "got user defined signal 2"},
		{[]string{"-s", "10"}, "got user defined signal 1"},
		{[]string{"-USR2"}, "got user defined signal 2"},
		{[]string{"-10"}, "got user defined signal 1"},
		{[]string{"--signal=usr2"}, "got user defined signal 2"},
		{nil, "got terminated"}, // the default: SIGTERM
	} {
		args := append(append([]string{"kill"}, c.args...), pid)
		r := runCLI(t, 0, args...)
		if r.stdout != "" || r.stderr != "" {
			t.Errorf("%q: stdout %q, stderr %q; want nothing", args, r.stdout, r.stderr)
		}
		if got := nextLine(t, sc); got != c.want {
			t.Errorf("%q: the helper said %q, want %q", args, got, c.want)
		}
	}
	// Signal 0 only checks that the process is there.
	runCLI(t, 0, "kill", "-0", pid)
}

func TestKillDeadProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dead := exec.CommandContext(ctx, os.Args[0])
	dead.Env = append(os.Environ(), helperEnv+"=exit")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := fmt.Sprint(dead.Process.Pid) // exited and reaped
	cmd, sc := startSignalHelper(t)
	live := fmt.Sprint(cmd.Process.Pid)
	r := runCLI(t, 1, "kill", "-s", "USR1", pid, live)
	if want := "multiproc kill: " + pid + ": no such process\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	// The live process got its signal all the same.
	if got := nextLine(t, sc); got != "got user defined signal 1" {
		t.Errorf("the helper said %q", got)
	}
}

func TestKillList(t *testing.T) {
	r := runCLI(t, 0, "kill", "-l")
	for _, want := range []string{" 1) SIGHUP ", " 2) SIGINT ", " 9) SIGKILL ", "15) SIGTERM\n", "34) SIGRTMIN ", "64) SIGRTMAX\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("kill -l lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "32)") || strings.Contains(r.stdout, "33)") {
		t.Errorf("kill -l lists 32 or 33:\n%s", r.stdout)
	}
	r = runCLI(t, 0, "kill", "-l", "INT", "9", "sigterm", "143")
	if r.stdout != "2\nKILL\n15\nTERM\n" {
		t.Errorf("kill -l INT 9 sigterm 143: %q", r.stdout)
	}
	r = runCLI(t, 1, "kill", "-l", "NOPE")
	if !strings.Contains(r.stderr, "NOPE: unknown signal") {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestKillUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"kill"}, "no process id given"},
		{[]string{"kill", "-s", "USR1"}, "no process id given"},
		{[]string{"kill", "-s"}, "-s needs a signal"},
		{[]string{"kill", "-s", "NOPE", "1"}, `unknown signal "NOPE"`},
		{[]string{"kill", "-NOPE", "1"}, `unknown option or signal "-NOPE"`},
		{[]string{"kill", "-99", "1"}, `unknown option or signal "-99"`},
	} {
		r := runCLI(t, 2, c.args...)
		if !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "usage: multiproc kill") {
			t.Errorf("%q: stderr %q, want %q and the usage line", c.args, r.stderr, c.want)
		}
	}
}

// A PID is decimal digits, 1 to 2^31-1; anything else is refused with one
// line and exit status 2, and nothing is sent (issue 9 item 2: 4294967295
// was kill(-1), every process). The arguments that could reach a process
// group or every process if the check were missing use signal 0, which
// sends nothing; the others aim at a child we own with SIGUSR1, and the
// child proves it got none.
func TestKillRefusesBadPids(t *testing.T) {
	cmd, sc := startSignalHelper(t)
	child := cmd.Process.Pid
	pid := fmt.Sprint(child)
	for _, c := range []struct {
		args []string
		bad  string
	}{
		{[]string{"-0", "4294967295"}, "4294967295"}, // was kill(-1, 0)
		{[]string{"-0", "4294967296"}, "4294967296"}, // was kill(0, 0)
		{[]string{"-0", "2147483648"}, "2147483648"}, // 2^31: a negative pid_t
		{[]string{"-0", "18446744073709551615"}, "18446744073709551615"},
		{[]string{"-0", "99999999999999999999999"}, "99999999999999999999999"},
		{[]string{"-0", "--", "-1"}, "-1"},
		{[]string{"-0", "0"}, "0"},
		{[]string{"-0", "00"}, "00"},
		{[]string{"-0", ""}, ""},
		{[]string{"-s", "USR1", fmt.Sprint(1<<32 + child)}, fmt.Sprint(1<<32 + child)},
		{[]string{"-s", "USR1", "+" + pid}, "+" + pid},
		{[]string{"-s", "USR1", " " + pid}, " " + pid},
		{[]string{"-s", "USR1", pid + " "}, pid + " "},
		{[]string{"-s", "USR1", pid + "\n"}, pid + "\n"},
		{[]string{"-s", "USR1", "0x10"}, "0x10"},
		{[]string{"-s", "USR1", "1e3"}, "1e3"},
		{[]string{"-s", "USR1", "١٢"}, "١٢"}, // Arabic-Indic digits
		{[]string{"-s", "USR1", "notapid"}, "notapid"},
		// A good PID beside a bad one: nothing is sent to either.
		{[]string{"-s", "USR1", pid, "+" + pid}, "+" + pid},
	} {
		args := append([]string{"kill"}, c.args...)
		r := runCLI(t, 2, args...)
		want := fmt.Sprintf("multiproc kill: bad process id %q: want a decimal number from 1 to 2147483647 (process groups are never signalled); nothing was sent\n", c.bad)
		if r.stderr != want || r.stdout != "" {
			t.Errorf("%q: stdout %q, stderr %q; want stderr %q", args, r.stdout, r.stderr, want)
		}
	}
	// The child got none of the SIGUSR1s: the SIGUSR2 sent now is the first
	// signal it reports (a SIGUSR1 sent before would come first).
	runCLI(t, 0, "kill", "-s", "USR2", pid)
	if got := nextLine(t, sc); got != "got user defined signal 2" {
		t.Errorf("the child said %q first, want got user defined signal 2: a refused kill reached it", got)
	}
	// Leading zeros are still decimal, and the largest pid is accepted.
	runCLI(t, 0, "kill", "-s", "USR1", "000"+pid)
	if got := nextLine(t, sc); got != "got user defined signal 1" {
		t.Errorf("kill 000%s: the child said %q", pid, got)
	}
	r := runCLI(t, 1, "kill", "-0", "2147483647")
	if r.stderr != "multiproc kill: 2147483647: no such process\n" {
		t.Errorf("kill -0 2147483647: stderr %q", r.stderr)
	}
}
