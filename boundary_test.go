//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"golang.org/x/sys/unix"
)

// Tasks that abuse the control socket (fd 3 in every child), as a
// careless or hostile task could.
var (
	// hugeHeader announces a 64 GiB result on the control stream, sends
	// 1 KiB of it and exits.
	hugeHeader = multiproc.Register("test.hugeHeader", func(ctx context.Context, _ int) (int, error) {
		unix.Write(3, ctlHeader(3, 0, 1<<36))
		unix.Write(3, make([]byte, 1024))
		os.Exit(0)
		return 0, nil
	})
	// textOnCtl writes 36 bytes of text into the control stream and
	// lives on: it returns, or with wait set, waits for its context.
	textOnCtl = multiproc.Register("test.textOnCtl", func(ctx context.Context, wait bool) (int, error) {
		unix.Write(3, []byte("this is not a control message at all"))
		if wait {
			<-ctx.Done()
		}
		return 1, nil
	})
	// replaceCtl closes fd 3 and makes a socketpair that reuses the
	// number, then lives on like textOnCtl.
	replaceCtl = multiproc.Register("test.replaceCtl", func(ctx context.Context, wait bool) (int, error) {
		unix.Close(3)
		for {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err != nil {
				return 0, err
			}
			if fds[0] == 3 || fds[1] == 3 {
				keep = append(keep, fds[:]...)
				break
			}
		}
		if wait {
			// Until the parent kills it. Not until ctx ends: the child's
			// context ends when its control socket fails, which closing
			// fd 3 just made it do, and a child that then exited on its own
			// would race the parent's kill (1 run in 5 failed so).
			<-time.After(time.Minute)
		}
		return 1, nil
	})
	// fdFlood sends well-formed messages nobody expects that carry
	// descriptors they do not announce, then waits for its context (a
	// pool task that returned would answer in its task slot, which the
	// control stream does not carry).
	fdFlood = multiproc.Register("test.fdFlood", func(ctx context.Context, n int) (int, error) {
		fds := make([]int, 200)
		for i := range fds {
			fds[i] = 0
		}
		rights := unix.UnixRights(fds...)
		for range n {
			if err := unix.Sendmsg(3, ctlHeader(99, 0, 0), rights, nil, 0); err != nil {
				return 0, err
			}
		}
		<-ctx.Done()
		return 1, nil
	})
	// procInfo reports what the child sees of itself, also on stdout.
	procInfo = multiproc.Register("test.procInfo", func(ctx context.Context, _ int) (info, error) {
		cmdline, _ := os.ReadFile("/proc/self/cmdline")
		comm, _ := os.ReadFile("/proc/self/comm")
		in := info{
			Argv0:  strings.Split(string(cmdline), "\x00")[0],
			Comm:   strings.TrimSpace(string(comm)),
			Args0:  os.Args[0],
			Spares: multiproc.SpareProcesses,
		}
		b, _ := json.Marshal(in)
		os.Stdout.Write(b)
		return in, nil
	})
	// prints writes its argument to stdout and stderr.
	prints = multiproc.Register("test.prints", func(ctx context.Context, s string) (int, error) {
		os.Stdout.WriteString("out:" + s)
		os.Stderr.WriteString("err:" + s)
		return 0, nil
	})
)

var keep []int

type info struct {
	Argv0, Comm, Args0 string
	Spares             bool
}

func ctlHeader(typ byte, nfd int, size uint64) []byte {
	h := binary.LittleEndian.AppendUint32(nil, 0x4d50)
	h = append(h, typ, byte(nfd))
	return binary.LittleEndian.AppendUint64(h, size)
}

// A child announcing a 64 GiB result must not make its parent allocate it
// (before: fatal error: runtime: out of memory).
func TestCallHugeAnnouncedResult(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	_, err := hugeHeader.Call(ctx, 0)
	var ee *multiproc.ExitError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "control stream") {
		t.Fatalf("Call of a child that lied about its result's size = %v", err)
	}
}

func TestPoolHugeAnnouncedResult(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 1})
	if _, err := hugeHeader.Apply(ctx, p, 0); !errors.Is(err, multiproc.ErrWorkerDied) {
		t.Fatalf("Apply of a task that lied about its result's size = %v", err)
	}
	if v, err := double.Apply(ctx, p, 4); err != nil || v != 8 {
		t.Fatalf("the pool after it: %v, %v", v, err)
	}
}

// A worker sending descriptors nobody announced has a broken stream: it
// is replaced, and the descriptors do not pile up in the parent.
func TestPoolWorkerFloodsFds(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 1})
	if v, err := double.Apply(ctx, p, 1); err != nil || v != 2 {
		t.Fatal(v, err)
	}
	before := openFds(t)
	if _, err := fdFlood.Apply(ctx, p, 20); !errors.Is(err, multiproc.ErrWorkerDied) {
		t.Fatalf("Apply of a task that floods descriptors = %v", err)
	}
	if v, err := double.Apply(ctx, p, 4); err != nil || v != 8 {
		t.Fatalf("the pool after it: %v, %v", v, err)
	}
	// The replacement holds what its predecessor held.
	if after := openFds(t); after > before+2 {
		t.Fatalf("%d descriptors open after the flood, %d before", after, before)
	}
}

// A worker that breaks its control stream but stays alive is killed and
// replaced; its task fails with ErrWorkerDied; the pool serves on, and
// Close and Join work (before: Get timed out, later tasks and Join hung).
// The task lives on after it broke the stream: one that returned would
// have its result in its task slot, which the stream does not carry.
func TestPoolWorkerBreaksItsStream(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   *multiproc.Func[bool, int]
	}{{"text", textOnCtl}, {"replaced fd", replaceCtl}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t, 60*time.Second)
			p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Terminate()
			broken := c.fn.ApplyAsync(p, true)
			queued := double.ApplyAsync(p, 21)
			if _, err := broken.Get(ctx); !errors.Is(err, multiproc.ErrWorkerDied) || !strings.Contains(err.Error(), "control stream") {
				t.Fatalf("the task that broke its stream = %v", err)
			}
			// The worker may have taken up the next task before it was
			// killed: that one then died with it.
			if v, err := queued.Get(ctx); (err != nil || v != 42) && !errors.Is(err, multiproc.ErrWorkerDied) {
				t.Fatalf("the task queued behind it = %v, %v", v, err)
			}
			if v, err := double.Apply(ctx, p, 5); err != nil || v != 10 {
				t.Fatalf("a later task = %v, %v", v, err)
			}
			p.Close()
			if err := p.Join(ctx); err != nil {
				t.Fatalf("Join after Close: %v", err)
			}
		})
	}
}

// Call and Process: a broken stream is a clear error, not a hang until
// the child ends.
func TestCallChildBreaksItsStream(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   *multiproc.Func[bool, int]
	}{{"text", textOnCtl}, {"replaced fd", replaceCtl}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t, 40*time.Second)
			_, err := c.fn.Call(ctx, true)
			var ee *multiproc.ExitError
			if !errors.As(err, &ee) || ee.Signal() != syscall.SIGKILL || !strings.Contains(err.Error(), "control stream") {
				t.Fatalf("Call of a child that broke its stream = %v", err)
			}
		})
	}
}

// A user reaping a child gets an error from Join, never a panic (before:
// a nil dereference in the library's reaper, 8 runs in 10).
func TestUserReapsChild(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	reaped := 0
	for range 10 {
		p := start(t, sleeps.Process(50*time.Millisecond))
		done := make(chan error, 1)
		go func() {
			var ws syscall.WaitStatus
			_, err := syscall.Wait4(p.Pid(), &ws, 0, nil)
			done <- err
		}()
		err := p.Join(ctx)
		werr := <-done
		switch {
		case err == nil:
		case errors.Is(err, multiproc.ErrReaped):
			reaped++
			if code, exited := p.ExitCode(); exited || code != 0 {
				t.Errorf("ExitCode of a child reaped by the user = %d, %v", code, exited)
			}
		default:
			t.Fatalf("Join of a child the user reaped = %v (the user's wait4: %v)", err, werr)
		}
	}
	t.Logf("the user reaped %d of 10 children first", reaped)
}

// A child killed by a signal before its hello is an *ExitError with that
// signal, not "call Main" (before: ErrNoMain).
func TestChildKilledDuringHandshake(t *testing.T) {
	t.Setenv("MULTIPROC_TEST_EARLY", "kill")
	ctx := testCtx(t, 30*time.Second)
	err := double.Process(1).StartContext(ctx)
	var ee *multiproc.ExitError
	if !errors.As(err, &ee) || ee.Signal() != syscall.SIGKILL || errors.Is(err, multiproc.ErrNoMain) {
		t.Fatalf("Start of a child killed before its hello = %v", err)
	}
}

// A child that exits with a status before its hello ran without Main.
func TestChildExitsDuringHandshake(t *testing.T) {
	t.Setenv("MULTIPROC_TEST_EARLY", "exit")
	err := double.Process(1).Start()
	if !errors.Is(err, multiproc.ErrNoMain) {
		t.Fatalf("Start of a child that exited before its hello = %v", err)
	}
}

// StartContext returns when its context ends, the child killed.
func TestStartContext(t *testing.T) {
	if err := double.Process(1).StartContext(canceledCtx()); !errors.Is(err, context.Canceled) {
		t.Fatalf("StartContext with a done context = %v", err)
	}
	t.Setenv("MULTIPROC_TEST_EARLY", "stop") // the child stops before Main
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := double.Process(1).StartContext(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("StartContext of a stopped child = %v", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("StartContext returned %v after its 500ms deadline", d)
	}
}

func canceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// Stdout and Stderr take a child's output; a panic's stack goes there.
func TestProcessStdoutStderr(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	// Several in a row: fresh children and spares.
	for i := range 3 {
		var out, errb bytes.Buffer
		p := prints.Process("hello")
		p.Stdout, p.Stderr = &out, &errb
		start(t, p)
		if err := p.Join(ctx); err != nil {
			t.Fatal(err)
		}
		if out.String() != "out:hello" || errb.String() != "err:hello" {
			t.Fatalf("run %d: stdout %q, stderr %q", i, out.String(), errb.String())
		}
	}
	var both bytes.Buffer
	p := panics.Process("kaboom")
	p.Stdout, p.Stderr = &both, &both
	start(t, p)
	err := p.Join(ctx)
	var ee *multiproc.ExitError
	if !errors.As(err, &ee) || ee.Message != "kaboom" {
		t.Fatalf("Join of a panicking child = %v", err)
	}
	if s := both.String(); !strings.Contains(s, "panic in multiproc child") || !strings.Contains(s, "goroutine") {
		t.Fatalf("the panic's stack is not in Stderr: %q", s)
	}
}

// ps shows which program a child is, and its name; the child's program
// sees its own os.Args[0].
func TestChildNameInPs(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	for i := range 3 { // fresh children and spares
		p := procInfo.Process(0)
		p.Name = fmt.Sprintf("named-%d", i)
		var out bytes.Buffer
		p.Stdout = &out
		start(t, p)
		if err := p.Join(ctx); err != nil {
			t.Fatal(err)
		}
		var in info
		if err := json.Unmarshal(out.Bytes(), &in); err != nil {
			t.Fatalf("%v: %q", err, out.String())
		}
		if in.Argv0 != os.Args[0]+" [multiproc]" || in.Args0 != os.Args[0] {
			t.Fatalf("a child's /proc/self/cmdline argv[0] is %q, its os.Args[0] %q", in.Argv0, in.Args0)
		}
		if in.Comm != p.Name {
			t.Fatalf("a child named %q has comm %q", p.Name, in.Comm)
		}
	}
}

// SpareProcesses = false in main, after Main, holds in the children too.
func TestSpareProcessesInherited(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "MULTIPROC_TEST_NOSPARES=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "child SpareProcesses: false <nil>") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// A child that started processes kills and reaps its spares before it
// exits: none is left to PID 1 (which here, as in many containers, never
// reaps them).
func TestChildReapsItsSpares(t *testing.T) {
	if !multiproc.SpareProcesses {
		t.Skip("spares off")
	}
	ctx := testCtx(t, 40*time.Second)
	pids, err := sparesOf.Call(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	parent, pids := pids[0], pids[1:]
	if len(pids) == 0 {
		t.Fatal("the child kept no spare")
	}
	// Until they are gone, their parent must stay the child: a spare
	// reparented (to PID 1 or a subreaper) was orphaned.
	waitFor(t, 20*time.Second, "the child's spares to be reaped", func() bool {
		for _, pid := range pids {
			if ppid := procPpid(pid); ppid > 0 && ppid != parent {
				t.Fatalf("spare %d of child %d was left to pid %d", pid, parent, ppid)
			}
			if procState(pid) != "" {
				return false
			}
		}
		return true
	})
}

// procPpid returns pid's parent, or 0 if pid is gone.
func procPpid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// sparesOf starts one process, waits for the spares that follow it and
// returns their pids.
var sparesOf = multiproc.Register("test.sparesOf", func(ctx context.Context, _ int) ([]int, error) {
	pids, err := startAndWaitForSpares(ctx)
	return append([]int{os.Getpid()}, pids...), err
})

// startAndWaitForSpares runs one process and returns the pids of this
// process's children once there are two (its spares, or its deadline).
func startAndWaitForSpares(ctx context.Context) ([]int, error) {
	if _, err := double.Call(ctx, 1); err != nil {
		return nil, err
	}
	for {
		pids := childPids()
		if len(pids) >= 2 {
			return pids, nil
		}
		select {
		case <-ctx.Done():
			return pids, nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Spares nobody takes retire: a program that started one process long
// ago keeps no idle ones.
func TestSparesRetireWhenIdle(t *testing.T) {
	if !multiproc.SpareProcesses {
		t.Skip("spares off")
	}
	ctx := testCtx(t, 60*time.Second)
	n, err := sparesRetire.Call(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d spares still there", n)
	}
}

// sparesRetire starts one process, waits for its spares, then for them to
// retire; it returns how many are left.
var sparesRetire = multiproc.Register("test.sparesRetire", func(ctx context.Context, _ int) (int, error) {
	if pids, err := startAndWaitForSpares(ctx); err != nil || len(pids) < 2 {
		return -1, fmt.Errorf("spares %v: %v", pids, err)
	}
	n := 0
	for {
		n = len(childPids())
		if n == 0 {
			return 0, nil
		}
		select {
		case <-ctx.Done():
			return n, nil
		case <-time.After(10 * time.Millisecond):
		}
	}
})

func childPids() []int {
	var pids []int
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(w)
			pids = append(pids, pid)
		}
	}
	return pids
}

// Starting many processes at once under a low descriptor limit fails with
// "too many open files", never with a misleading "bad file descriptor"
// (before: fork/exec /proc/self/exe: bad file descriptor, whenever the
// control socket got the last descriptor number the limit allows).
func TestStartAtDescriptorLimit(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "MULTIPROC_TEST_FDLIMIT=1", fmt.Sprintf("MULTIPROC_TEST_FDLIMIT_ROUNDS=%d", *fdLimitRounds))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "done") || strings.Contains(string(out), "bad file descriptor") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// fdLimitRounds is how many rounds of 300 concurrent Starts
// TestStartAtDescriptorLimit's helper runs. A round is about 6 s under
// -race; two keep the suite within its budget, and -fdlimit.rounds=N tries
// harder.
var fdLimitRounds = flag.Int("fdlimit.rounds", 2, "rounds of 300 concurrent Starts in TestStartAtDescriptorLimit")

// fdLimitHelper runs in a helper process: rounds of 300 concurrent Starts
// under RLIMIT_NOFILE 100, printing the errors that are not EMFILE.
func fdLimitHelper() int {
	rounds, err := strconv.Atoi(os.Getenv("MULTIPROC_TEST_FDLIMIT_ROUNDS"))
	if err != nil || rounds < 1 {
		rounds = 2
	}
	lim := syscall.Rlimit{Cur: 100, Max: 100}
	var old syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old)
	lim.Max = old.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	var mu sync.Mutex
	for range rounds {
		var wg sync.WaitGroup
		for range 300 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := double.Process(1)
				err := p.StartContext(ctx)
				if err == nil {
					err = p.Join(ctx)
				}
				if err != nil && !errors.Is(err, syscall.EMFILE) {
					mu.Lock()
					fmt.Println("error:", err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	fmt.Println("done")
	return 0
}
