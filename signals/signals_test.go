//go:build linux

package signals_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc/signals"
)

// None of these tests use t.Parallel: Pause catches any signal, so a test
// that sends one must not run while another test is waiting in Pause.

func TestTableSignal7(t *testing.T) {
	want := []struct {
		name string
		num  syscall.Signal
		def  string
	}{
		{"SIGHUP", 1, "terminate"},
		{"SIGINT", 2, "terminate"},
		{"SIGQUIT", 3, "core"},
		{"SIGKILL", 9, "terminate"},
		{"SIGUSR1", 10, "terminate"},
		{"SIGSEGV", 11, "core"},
		{"SIGPIPE", 13, "terminate"},
		{"SIGALRM", 14, "terminate"},
		{"SIGTERM", 15, "terminate"},
		{"SIGSTKFLT", 16, "terminate"},
		{"SIGCHLD", 17, "ignore"},
		{"SIGCONT", 18, "continue"},
		{"SIGSTOP", 19, "stop"},
		{"SIGTSTP", 20, "stop"},
		{"SIGURG", 23, "ignore"},
		{"SIGXCPU", 24, "core"},
		{"SIGXFSZ", 25, "core"},
		{"SIGVTALRM", 26, "terminate"},
		{"SIGPROF", 27, "terminate"},
		{"SIGWINCH", 28, "ignore"},
		{"SIGIO", 29, "terminate"},
		{"SIGPWR", 30, "terminate"},
		{"SIGSYS", 31, "core"},
		{"SIGRTMIN", 34, "terminate"},
		{"SIGRTMAX", 64, "terminate"},
	}
	byName := map[string]signals.Info{}
	for _, in := range signals.Table() {
		byName[in.Name] = in
	}
	for _, w := range want {
		in, ok := byName[w.name]
		if !ok {
			t.Errorf("%s missing from Table()", w.name)
			continue
		}
		if in.Signal != w.num || in.Default != w.def {
			t.Errorf("%s = (%d, %q), want (%d, %q)", w.name, in.Signal, in.Default, w.num, w.def)
		}
	}
}

func TestTableShape(t *testing.T) {
	tab := signals.Table()
	if len(tab) != 31+31 {
		t.Fatalf("len(Table()) = %d, want 62 (31 standard + 31 real-time)", len(tab))
	}
	valid := map[string]bool{"terminate": true, "core": true, "stop": true, "continue": true, "ignore": true}
	names := map[string]bool{}
	for i, in := range tab {
		if i > 0 && in.Signal <= tab[i-1].Signal {
			t.Errorf("Table()[%d] = %d after %d: not in ascending order", i, in.Signal, tab[i-1].Signal)
		}
		if !strings.HasPrefix(in.Name, "SIG") || names[in.Name] {
			t.Errorf("bad or duplicate name %q", in.Name)
		}
		names[in.Name] = true
		if !valid[in.Default] {
			t.Errorf("%s: Default %q", in.Name, in.Default)
		}
		if in.Meaning == "" || strings.ContainsAny(in.Meaning, "\n\r") {
			t.Errorf("%s: Meaning %q is not one line", in.Name, in.Meaning)
		}
	}
	// A fresh copy each call.
	tab[0].Name = "changed"
	tab[1] = signals.Info{}
	if again := signals.Table(); again[0].Name != "SIGHUP" || again[1].Name != "SIGINT" {
		t.Errorf("modifying the result of Table() changed the table: %v %v", again[0], again[1])
	}
}

func TestTableMatchesKillL(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash on this machine")
	}
	out, err := exec.Command(bash, "-c", "kill -l").Output()
	if err != nil {
		t.Skipf("bash -c 'kill -l': %v", err)
	}
	re := regexp.MustCompile(`(\d+)\) (SIG\S+)`)
	var want []string
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		want = append(want, m[1]+" "+m[2])
	}
	if len(want) == 0 {
		t.Skipf("cannot parse kill -l output:\n%s", out)
	}
	var got []string
	for _, in := range signals.Table() {
		got = append(got, strconv.Itoa(int(in.Signal))+" "+in.Name)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Table() differs from bash's kill -l\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLookup(t *testing.T) {
	good := []struct {
		in   string
		num  syscall.Signal
		name string
	}{
		{"INT", 2, "SIGINT"},
		{"SIGINT", 2, "SIGINT"},
		{"int", 2, "SIGINT"},
		{"sigint", 2, "SIGINT"},
		{"SigInt", 2, "SIGINT"},
		{"2", 2, "SIGINT"},
		{" 2 ", 2, "SIGINT"},
		{"\tTERM\n", 15, "SIGTERM"},
		{"9", 9, "SIGKILL"},
		{"31", 31, "SIGSYS"},
		{"STKFLT", 16, "SIGSTKFLT"},
		{"RTMIN", 34, "SIGRTMIN"},
		{"SIGRTMIN", 34, "SIGRTMIN"},
		{"RTMIN+3", 37, "SIGRTMIN+3"},
		{"rtmin+3", 37, "SIGRTMIN+3"},
		{"SIGRTMIN+15", 49, "SIGRTMIN+15"},
		{"RTMIN+20", 54, "SIGRTMAX-10"},
		{"SIGRTMAX-1", 63, "SIGRTMAX-1"},
		{"RTMAX-14", 50, "SIGRTMAX-14"},
		{"RTMAX", 64, "SIGRTMAX"},
		{"34", 34, "SIGRTMIN"},
		{"64", 64, "SIGRTMAX"},
		{"IOT", 6, "SIGABRT"},
		{"SIGCLD", 17, "SIGCHLD"},
		{"poll", 29, "SIGIO"},
	}
	for _, g := range good {
		in, err := signals.Lookup(g.in)
		if err != nil {
			t.Errorf("Lookup(%q): %v", g.in, err)
			continue
		}
		if in.Signal != g.num || in.Name != g.name {
			t.Errorf("Lookup(%q) = %d %s, want %d %s", g.in, in.Signal, in.Name, g.num, g.name)
		}
		if in.Default == "" || in.Meaning == "" {
			t.Errorf("Lookup(%q) = %+v: incomplete", g.in, in)
		}
	}

	bad := []string{"", "   ", "0", "32", "33", "65", "-1", "+2", "FOO", "SIG", "SIGFOO", "2x", "INT2",
		"RTMIN+31", "RTMAX-31", "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMIN+-1", "RTMIN+ 1", "99999999999999999999"}
	for _, b := range bad {
		in, err := signals.Lookup(b)
		if err == nil {
			t.Errorf("Lookup(%q) = %+v, want an error", b, in)
			continue
		}
		if !errors.Is(err, signals.ErrUnknownSignal) {
			t.Errorf("Lookup(%q): error %v does not match ErrUnknownSignal", b, err)
		}
		if !strings.HasPrefix(err.Error(), "multiproc: ") {
			t.Errorf("Lookup(%q): error %q lacks the multiproc: prefix", b, err)
		}
		if in != (signals.Info{}) {
			t.Errorf("Lookup(%q) returned %+v with its error", b, in)
		}
	}
	if _, err := signals.Lookup("FOO"); err == nil || err.Error() != `multiproc: unknown signal "FOO"` {
		t.Errorf("Lookup(FOO) error = %v", err)
	}
}

func TestKillSelf(t *testing.T) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	defer signal.Stop(c)

	if err := signals.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case s := <-c:
		if s != syscall.SIGUSR1 {
			t.Errorf("got %v, want SIGUSR1", s)
		}
	case <-ctx.Done():
		t.Fatal("SIGUSR1 sent to self never arrived")
	}
	// Signal 0 checks that the process exists.
	if err := signals.Kill(os.Getpid(), 0); err != nil {
		t.Errorf("Kill(self, 0): %v", err)
	}
}

func TestKillGoneProcess(t *testing.T) {
	var cmd *exec.Cmd
	if path, err := exec.LookPath("true"); err == nil {
		cmd = exec.Command(path)
	} else {
		cmd = helperCommand(context.Background(), "exit")
	}
	if err := cmd.Run(); err != nil { // Run waits, so the child is reaped
		t.Fatal(err)
	}
	err := signals.Kill(cmd.Process.Pid, syscall.SIGTERM)
	if !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("Kill(reaped pid %d) = %v, want an error matching ESRCH", cmd.Process.Pid, err)
	}
	if !strings.HasPrefix(err.Error(), "multiproc: ") {
		t.Errorf("error %q lacks the multiproc: prefix", err)
	}
	t.Log(err)
}

func TestKillRefusesGroups(t *testing.T) {
	for _, pid := range []int{0, -1, -os.Getpid()} {
		err := signals.Kill(pid, syscall.Signal(0))
		if err == nil || !errors.Is(err, syscall.EINVAL) || !errors.Is(err, signals.ErrBadPid) || !strings.HasPrefix(err.Error(), "multiproc: ") {
			t.Errorf("Kill(%d, 0) = %v, want a multiproc: error matching ErrBadPid and EINVAL", pid, err)
		}
	}
}

// startReporter starts a child copy of the test binary that prints "got
// SIGUSR1" or "got SIGUSR2" for each signal it gets, and returns its pid
// and its next line, with a deadline.
func startReporter(t *testing.T) (pid int, next func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := helperCommand(ctx, "report")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next = func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the reporter child ended")
			}
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("the reporter child said nothing within 10 s")
			return ""
		}
	}
	if l := next(); l != "ready" {
		t.Fatalf("reporter: %q, want ready", l)
	}
	return cmd.Process.Pid, next
}

// A Go int is 64 bits, kill(2)'s pid_t 32: ids past 2^31-1 must be
// refused, not cut to 32 bits (issue 9 item 2).
func TestKillRefusesPidsPast32Bits(t *testing.T) {
	child, next := startReporter(t)
	self := os.Getpid()
	mine := make(chan os.Signal, 4)
	signal.Notify(mine, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(mine)

	refused := func(pid int, sig syscall.Signal) {
		t.Helper()
		err := signals.Kill(pid, sig)
		if !errors.Is(err, signals.ErrBadPid) || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Kill(%d, %v) = %v, want an error matching ErrBadPid and EINVAL", pid, sig, err)
			return
		}
		if !strings.HasPrefix(err.Error(), "multiproc: ") || strings.Count(err.Error(), "multiproc:") != 1 {
			t.Errorf("Kill(%d): error %q: want one multiproc: prefix", pid, err)
		}
		if !strings.Contains(err.Error(), strconv.Itoa(pid)) {
			t.Errorf("Kill(%d): error %q does not name the pid", pid, err)
		}
	}
	// Signal 0 only where the cut would reach a group or every process:
	// kill(0, 0) and kill(-1, 0) check, and send nothing.
	refused(1<<32, 0)   // was kill(0, 0)
	refused(1<<32-1, 0) // was kill(-1, 0)
	refused(1<<31, 0)   // was kill(-2^31, 0)
	refused(signals.MaxPid+1, 0)
	refused(math.MaxInt64, 0)
	refused(math.MinInt64, 0)
	refused(1<<33, 0)
	// Cut to a process we own: these would have been delivered.
	refused(1<<32+child, syscall.SIGUSR1)
	refused(1<<32+self, syscall.SIGUSR1)

	// Nothing arrived: a SIGUSR2 sent now is the first signal each sees
	// (a SIGUSR1 delivered before it would be reported first).
	if err := signals.Kill(child, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if l := next(); l != "got SIGUSR2" {
		t.Errorf("the child reported %q first, want got SIGUSR2 (a refused SIGUSR1 reached it)", l)
	}
	if err := signals.Kill(self, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-mine:
		if s != syscall.SIGUSR2 {
			t.Errorf("this process got %v first, want SIGUSR2 (a refused SIGUSR1 reached it)", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGUSR2 to self never arrived")
	}
	// The largest valid id is not refused as bad (no such process).
	if err := signals.Kill(signals.MaxPid, 0); errors.Is(err, signals.ErrBadPid) {
		t.Errorf("Kill(MaxPid, 0) = %v, want no ErrBadPid", err)
	}
}

// armAlarmTest makes sure no alarm survives the test.
func armAlarmTest(t *testing.T) {
	t.Helper()
	signals.Alarm(0)
	t.Cleanup(func() { signals.Alarm(0) })
}

func TestAlarmReplaceAndCancel(t *testing.T) {
	armAlarmTest(t)
	const slack = 2 * time.Second // generous: a loaded machine may stall us

	if prev := signals.Alarm(10 * time.Second); prev != 0 {
		t.Errorf("first Alarm returned %v, want 0", prev)
	}
	prev := signals.Alarm(5 * time.Second)
	if prev > 10*time.Second || prev < 10*time.Second-slack {
		t.Errorf("replacing a 10s alarm returned %v, want about 10s", prev)
	}
	prev = signals.Alarm(0)
	if prev > 5*time.Second || prev < 5*time.Second-slack {
		t.Errorf("cancelling a 5s alarm returned %v, want about 5s", prev)
	}
	if prev := signals.Alarm(0); prev != 0 {
		t.Errorf("cancelling with no alarm returned %v, want 0", prev)
	}

	// A negative duration cancels.
	signals.Alarm(3 * time.Second)
	prev = signals.Alarm(-time.Second)
	if prev > 3*time.Second || prev < 3*time.Second-slack {
		t.Errorf("Alarm(-1s) over a 3s alarm returned %v, want about 3s", prev)
	}
	if prev := signals.Alarm(0); prev != 0 {
		t.Errorf("after Alarm(-1s), an alarm was still pending: %v", prev)
	}

	// Sub-second precision, and huge values are accepted.
	signals.Alarm(1500 * time.Millisecond)
	if prev := signals.Alarm(0); prev <= time.Second || prev > 1500*time.Millisecond {
		t.Errorf("Alarm(1.5s) then cancel returned %v, want within (1s, 1.5s]", prev)
	}
	signals.Alarm(time.Duration(1<<63 - 1))
	if prev := signals.Alarm(0); prev < 60*365*24*time.Hour {
		t.Errorf("Alarm(max) then cancel returned %v, want decades", prev)
	}
}

func TestAlarmTinyStillFires(t *testing.T) {
	armAlarmTest(t)
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGALRM)
	defer signal.Stop(c)

	signals.Alarm(time.Nanosecond) // rounded up to 1µs, not 0 (which would cancel)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case <-c:
	case <-ctx.Done():
		t.Fatal("Alarm(1ns) never fired")
	}
}

func TestAlarmFiresIntoPause(t *testing.T) {
	armAlarmTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	start := time.Now()
	signals.Alarm(50 * time.Millisecond)
	s, err := signals.Pause(ctx)
	if err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if s != syscall.SIGALRM {
		t.Fatalf("Pause returned %v, want SIGALRM", s)
	}
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Errorf("alarm fired after %v, want about 50ms", el)
	}
	if prev := signals.Alarm(0); prev != 0 {
		t.Errorf("fired alarm still pending: %v", prev)
	}
}

func TestPauseDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	s, err := signals.Pause(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || s != nil {
		t.Fatalf("Pause = %v, %v; want nil, DeadlineExceeded", s, err)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("Pause returned after %v, before the deadline", el)
	}
}

func TestPauseAlreadyCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := signals.Pause(ctx); !errors.Is(err, context.Canceled) || s != nil {
		t.Fatalf("Pause = %v, %v; want nil, Canceled", s, err)
	}
}

// sendLater sends sigs to this process, one after another, after d.
func sendLater(t *testing.T, d time.Duration, sigs ...syscall.Signal) {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		time.Sleep(d)
		for _, s := range sigs {
			if err := signals.Kill(os.Getpid(), s); err != nil {
				t.Error(err)
			}
		}
	}()
}

func TestPauseUSR1(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sendLater(t, 50*time.Millisecond, syscall.SIGUSR1)
	s, err := signals.Pause(ctx)
	if err != nil || s != syscall.SIGUSR1 {
		t.Fatalf("Pause = %v, %v; want SIGUSR1", s, err)
	}
}

func TestPauseIgnoresDefaultIgnoreSignals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// These arrive first but must not wake Pause; SIGUSR2 must.
	sendLater(t, 20*time.Millisecond, syscall.SIGCHLD, syscall.SIGWINCH, syscall.SIGURG)
	sendLater(t, 150*time.Millisecond, syscall.SIGUSR2)
	s, err := signals.Pause(ctx)
	if err != nil || s != syscall.SIGUSR2 {
		t.Fatalf("Pause = %v, %v; want SIGUSR2", s, err)
	}
}

func TestPauseKeepsOtherNotify(t *testing.T) {
	mine := make(chan os.Signal, 4)
	signal.Notify(mine, syscall.SIGUSR1)
	defer signal.Stop(mine)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sendLater(t, 50*time.Millisecond, syscall.SIGUSR1)
	if s, err := signals.Pause(ctx); err != nil || s != syscall.SIGUSR1 {
		t.Fatalf("Pause = %v, %v; want SIGUSR1", s, err)
	}
	select {
	case <-mine:
	case <-ctx.Done():
		t.Fatal("the program's own channel missed the SIGUSR1 that Pause saw")
	}
	// After Pause, the program's registration still works.
	if err := signals.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mine:
	case <-ctx.Done():
		t.Fatal("the program's own channel stopped receiving SIGUSR1 after Pause")
	}
}

// Subprocess tests: behaviour that would end the test binary if it went
// wrong runs in a child copy of it.

const helperEnv = "MULTIPROC_SIGNALS_HELPER"

// helperCommand runs this test binary as a child in the given helper mode;
// the child is killed if ctx ends.
func helperCommand(ctx context.Context, mode string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
	// Under -race, skip the race runtime's one-second sleep at exit.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "GORACE="+gorace)
	return cmd
}

// TestHelperProcess is not a test: it is the child of the subprocess tests.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process only")
	}
	pauseBriefly := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		signals.Pause(ctx)
	}
	self := os.Getpid()
	switch mode {
	case "exit":
	case "waiter-close":
		waiterCloseHelper()
	case "report": // print each SIGUSR1 and SIGUSR2, until killed
		c := make(chan os.Signal, 8)
		signal.Notify(c, syscall.SIGUSR1, syscall.SIGUSR2)
		fmt.Println("ready")
		deadline := time.After(20 * time.Second)
		for {
			select {
			case s := <-c:
				fmt.Println("got", sigName(s))
			case <-deadline:
				os.Exit(0)
			}
		}
	case "alarm-unheard": // SIGALRM with nobody listening
		signals.Alarm(10 * time.Millisecond)
		time.Sleep(300 * time.Millisecond)
		fmt.Println("alive")
	case "usr1-unheard":
		signals.Kill(self, syscall.SIGUSR1)
		time.Sleep(300 * time.Millisecond)
		fmt.Println("alive")
	case "term-after-pause": // Pause must give SIGTERM back its default
		pauseBriefly()
		signals.Kill(self, syscall.SIGTERM)
		time.Sleep(5 * time.Second)
		fmt.Println("alive")
	case "ignored-term-after-pause": // and must not un-ignore it
		signal.Ignore(syscall.SIGTERM)
		pauseBriefly()
		signals.Kill(self, syscall.SIGTERM)
		time.Sleep(300 * time.Millisecond)
		fmt.Println("alive")
	case "tstp-after-pause": // and must leave SIGTSTP able to stop us
		pauseBriefly()
		signals.Kill(self, syscall.SIGTSTP)
		// kill(2) may hand the signal to another thread, which stops the
		// process a moment later: give it time before declaring failure.
		time.Sleep(time.Second)
		fmt.Println("alive")
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
	os.Exit(0)
}

func runHelper(t *testing.T, mode string) (out string, ws syscall.WaitStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := helperCommand(ctx, mode)
	b, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("helper %s: %v", mode, err)
	}
	return string(b), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func TestAlarmAndUSR1DoNotKillGoProgram(t *testing.T) {
	for _, mode := range []string{"alarm-unheard", "usr1-unheard"} {
		out, ws := runHelper(t, mode)
		if !ws.Exited() || ws.ExitStatus() != 0 || !strings.Contains(out, "alive") {
			t.Errorf("%s: child ended with %v, output %q; want exit 0 and alive", mode, ws, out)
		}
	}
}

func TestPauseRestoresSignalHandling(t *testing.T) {
	out, ws := runHelper(t, "term-after-pause")
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("SIGTERM after Pause: child ended with %v, output %q; want killed by SIGTERM", ws, out)
	}
	out, ws = runHelper(t, "ignored-term-after-pause")
	if !ws.Exited() || ws.ExitStatus() != 0 || !strings.Contains(out, "alive") {
		t.Errorf("ignored SIGTERM after Pause: child ended with %v, output %q; want exit 0", ws, out)
	}
}

func TestPauseLeavesJobControl(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := helperCommand(ctx, "tstp-after-pause")
	// A process group of its own, with its parent (us) outside it in the
	// same session, is not orphaned, so SIGTSTP can stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// The child stops itself with SIGTSTP; wait until /proc shows it stopped.
	stat := fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)
	for {
		b, err := os.ReadFile(stat)
		if err != nil {
			t.Fatal(err)
		}
		// The state, field 3, follows "(comm) ".
		var state byte
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && len(b) > i+2 {
			state = b[i+2]
		}
		if state == 'T' {
			break
		}
		if state == 'Z' {
			t.Fatal("child ended without being stopped by SIGTSTP after Pause")
		}
		if ctx.Err() != nil {
			t.Fatal("child was not stopped by SIGTSTP after Pause")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := signals.Kill(cmd.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 0, 64)
	buf := make([]byte, 64)
	for !strings.Contains(string(b), "alive") {
		n, err := stdout.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	if !strings.Contains(string(b), "alive") {
		t.Errorf("child output %q, want it to continue after SIGCONT", b)
	}
}

func sigName(s os.Signal) string {
	if n, ok := s.(syscall.Signal); ok {
		if in, err := signals.Lookup(strconv.Itoa(int(n))); err == nil {
			return in.Name
		}
	}
	return s.String()
}
