//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

var (
	double = multiproc.Register("test.double", func(ctx context.Context, x int) (int, error) { return 2 * x, nil })
	fail   = multiproc.Register("test.fail", func(ctx context.Context, msg string) (int, error) { return 0, errors.New(msg) })
	panics = multiproc.Register("test.panic", func(ctx context.Context, msg string) (int, error) { panic(msg) })
	exits  = multiproc.Register("test.exit", func(ctx context.Context, code int) (int, error) { os.Exit(code); return 0, nil })
	sleeps = multiproc.Register("test.sleep", func(ctx context.Context, d time.Duration) (bool, error) {
		select {
		case <-time.After(d):
			return false, nil
		case <-ctx.Done():
			return true, nil
		}
	})
	structs = multiproc.Register("test.struct", func(ctx context.Context, a point) (point, error) {
		return point{X: a.Y, Y: a.X, Name: strings.ToUpper(a.Name), Tags: append(a.Tags, "seen")}, nil
	})
)

type point struct {
	X, Y int
	Name string
	Tags []string
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestCallReturnsResult(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	r, err := double.Call(ctx, 21)
	if err != nil || r != 42 {
		t.Fatalf("Call = %v, %v; want 42, nil", r, err)
	}
	p, err := structs.Call(ctx, point{X: 1, Y: 2, Name: "go", Tags: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.X != 2 || p.Y != 1 || p.Name != "GO" || len(p.Tags) != 2 || p.Tags[1] != "seen" {
		t.Fatalf("Call struct = %+v", p)
	}
}

func TestCallErrorAndPanic(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	_, err := fail.Call(ctx, "no such file")
	var re *multiproc.RemoteError
	if !errors.As(err, &re) || re.Text != "no such file" || re.Panic {
		t.Fatalf("Call of failing func: %v (%T)", err, err)
	}
	quietStderr(t) // the panic's stack
	_, err = panics.Call(ctx, "boom")
	if !errors.As(err, &re) || !re.Panic || re.Text != "boom" {
		t.Fatalf("Call of panicking func: %v", err)
	}
	_, err = exits.Call(ctx, 7)
	var ee *multiproc.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 7 {
		t.Fatalf("Call of os.Exit(7): %v", err)
	}
}

func TestCallContextKillsChild(t *testing.T) {
	ctx, cancel := context.WithTimeout(testCtx(t, 20*time.Second), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := sleeps.Call(ctx, time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call past its deadline = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Call took %v after its deadline", time.Since(start))
	}
}

func TestProcessExitCodes(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	cases := []struct {
		p       *multiproc.Process
		code    int
		message string
	}{
		{double.Process(1), 0, ""},
		{fail.Process("bad input"), 1, "bad input"},
		{panics.Process("kaboom"), 1, "kaboom"},
		{exits.Process(7), 7, ""},
	}
	var stack bytes.Buffer
	cases[2].p.Stderr = &stack // the panic's, expected
	for _, c := range cases {
		if err := c.p.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cases {
		err := c.p.Join(ctx)
		code, exited := c.p.ExitCode()
		if !exited || code != c.code {
			t.Errorf("case %d: ExitCode = %d, %v; want %d", i, code, exited, c.code)
		}
		if c.code == 0 {
			if err != nil {
				t.Errorf("case %d: Join = %v", i, err)
			}
			continue
		}
		var ee *multiproc.ExitError
		if !errors.As(err, &ee) || ee.ExitCode != c.code || ee.Message != c.message || ee.Pid != c.p.Pid() || ee.Name != c.p.Name {
			t.Errorf("case %d: Join = %#v", i, err)
		}
	}
	if !strings.Contains(stack.String(), "panic in multiproc child") || !strings.Contains(stack.String(), "kaboom") {
		t.Errorf("the panic's stack did not reach the Process's Stderr: %q", stack.String())
	}
}

func TestProcessSignals(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	for _, c := range []struct {
		stop func(*multiproc.Process) error
		code int
	}{
		{(*multiproc.Process).Terminate, -15},
		{(*multiproc.Process).Kill, -9},
		{func(p *multiproc.Process) error { return p.Signal(syscall.SIGINT) }, -2},
	} {
		p := sleeps.Process(time.Minute)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		if !p.IsAlive() {
			t.Fatal("IsAlive false right after Start")
		}
		if err := c.stop(p); err != nil {
			t.Fatal(err)
		}
		err := p.Join(ctx)
		var ee *multiproc.ExitError
		if !errors.As(err, &ee) || ee.ExitCode != c.code || ee.Signal() != syscall.Signal(-c.code) {
			t.Fatalf("Join after signal = %v; want exit code %d", err, c.code)
		}
		if p.IsAlive() {
			t.Fatal("IsAlive after Join")
		}
		if err := p.Kill(); err != nil {
			t.Fatalf("Kill of an exited process = %v", err)
		}
	}
}

func TestProcessLifecycleErrors(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	p := double.Process(2)
	if err := p.Join(ctx); !errors.Is(err, multiproc.ErrNotStarted) {
		t.Fatalf("Join before Start = %v", err)
	}
	if err := p.Kill(); !errors.Is(err, multiproc.ErrNotStarted) {
		t.Fatalf("Kill before Start = %v", err)
	}
	if p.Pid() != 0 || p.IsAlive() {
		t.Fatal("unstarted process has a pid or is alive")
	}
	if _, exited := p.ExitCode(); exited {
		t.Fatal("unstarted process has exited")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Name, "Process-") {
		t.Fatalf("default name %q", p.Name)
	}
	if err := p.Start(); !errors.Is(err, multiproc.ErrStarted) {
		t.Fatalf("second Start = %v", err)
	}
	if err := p.Join(ctx); err != nil {
		t.Fatal(err)
	}
	var zero multiproc.Process
	if err := zero.Start(); err == nil {
		t.Fatal("Start of a zero Process succeeded")
	}
	named := double.Process(3)
	named.Name = "worker-a"
	if err := named.Start(); err != nil || named.Name != "worker-a" {
		t.Fatal(err, named.Name)
	}
	named.Join(ctx)
}

func TestJoinDeadlineLeavesChildRunning(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	p := sleeps.Process(time.Minute)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := p.Join(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Join with short deadline = %v", err)
	}
	if !p.IsAlive() {
		t.Fatal("child died when Join gave up")
	}
	p.Kill()
	if err := p.Join(ctx); err == nil {
		t.Fatal("Join after Kill = nil")
	}
}

// A name registered twice panics at package initialisation, naming it.
func TestRegisterTwicePanics(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MULTIPROC_TEST_DUPREG=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `function "test.double" registered twice`) {
		t.Fatalf("a duplicate Register: %v\n%s", err, out)
	}
}

// Register after Main panics at the call, naming the mistake: a child
// would never know the name.
func TestRegisterAfterMainPanics(t *testing.T) {
	for what, call := range map[string]func(){
		"Register": func() {
			multiproc.Register("test.late", func(ctx context.Context, x int) (int, error) { return x, nil })
		},
		"RegisterRunner": func() { multiproc.RegisterRunner("test.lateRunner", &initRunner{}) },
		"RegisterType":   func() { multiproc.RegisterType(struct{ Late int }{}) },
	} {
		func() {
			defer func() {
				r, _ := recover().(string)
				if !strings.Contains(r, what+"(") || !strings.Contains(r, "after Main") {
					t.Errorf("%s after Main: recover() = %q", what, r)
				}
			}()
			call()
		}()
	}
}

// procState returns the state letter of pid from /proc ("" if gone).
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// gone reports whether pid has exited (a zombie counts: its reaper may be
// an init that never reaps).
func gone(pid int) bool {
	st := procState(pid)
	return st == "" || st == "Z" || st == "X"
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNoZombiesWithoutJoin(t *testing.T) {
	var pids []int
	for range 20 {
		p := double.Process(1)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p.Pid())
	}
	// Nobody calls Join: the library reaps each child as it exits.
	waitFor(t, 20*time.Second, "20 unjoined children to be reaped", func() bool {
		for _, pid := range pids {
			if procState(pid) != "" {
				return false
			}
		}
		return true
	})
}

func TestProgramWithoutMain(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "MULTIPROC_TEST_NOMAIN=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("program without Main: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "start error: multiproc:") || !strings.Contains(string(out), "multiproc.Main()") {
		t.Fatalf("the error does not tell the user to call Main:\n%s", out)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("took %v", d)
	}
	t.Logf("%s", out)
}

// TestConcurrentStartsAndCancels starts processes from many goroutines at
// once — spares are claimed concurrently — with some calls cancelled
// while they run: each call ends with its result or its context's error,
// and every child is reaped.
func TestConcurrentStartsAndCancels(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	var mu sync.Mutex
	var pids []int
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				if (g+i)%3 == 0 {
					short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
					_, err := sleeps.Call(short, time.Minute)
					cancel()
					if !errors.Is(err, context.DeadlineExceeded) {
						errs <- fmt.Errorf("cancelled Call: %v", err)
					}
					continue
				}
				p := double.Process(g*100 + i)
				if err := p.Start(); err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				pids = append(pids, p.Pid())
				mu.Unlock()
				if err := p.Join(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, 10*time.Second, "every child to be reaped", func() bool {
		for _, pid := range pids {
			if procState(pid) != "" {
				return false
			}
		}
		return true
	})
}

type shape interface{ Area() float64 }

type rect struct{ W, H float64 }

func (r rect) Area() float64 { return r.W * r.H }

type shapes struct{ List []shape }

func init() { multiproc.RegisterType(rect{}) }

var totalArea = multiproc.Register("test.totalArea", func(ctx context.Context, s shapes) (float64, error) {
	sum := 0.0
	for _, x := range s.List {
		sum += x.Area()
	}
	return sum, nil
})

func TestInterfaceFieldsTravel(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	if totalArea.Name() != "test.totalArea" {
		t.Fatalf("Name() = %q", totalArea.Name())
	}
	got, err := totalArea.Call(ctx, shapes{List: []shape{rect{2, 3}, rect{1, 1}}})
	if err != nil || got != 7 {
		t.Fatalf("Call with interface values = %v, %v", got, err)
	}
	// A type nobody registered is a clear error, not a crash.
	type unregistered struct{ rect }
	_, err = totalArea.Call(ctx, shapes{List: []shape{unregistered{rect{1, 1}}}})
	if err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("Call with an unregistered type = %v", err)
	}
}
