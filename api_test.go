//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// Every call that takes a context answers a nil one with a clear error,
// never a nil-pointer panic.
func TestNilContext(t *testing.T) {
	var nilCtx context.Context // a caller's mistake, on purpose
	ctx := testCtx(t, 60*time.Second)
	pool := newPool(t, multiproc.PoolOptions{Processes: 1})
	v, _ := multiproc.NewValue[int64](0)
	a, _ := multiproc.NewArray[int64](1)
	l, _ := multiproc.NewLock()
	s, _ := multiproc.NewSemaphore(0)
	e, _ := multiproc.NewEvent()
	b, _ := multiproc.NewBarrier(2)
	q, _ := multiproc.NewQueue[int](0)
	c1, c2, _ := multiproc.Pipe(true)
	defer c1.Close()
	defer c2.Close()
	ln, err := multiproc.Listen("tcp", "127.0.0.1:0", []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := whoAmI.Process(0)
	_, applyErr := whoAmI.Apply(nilCtx, pool, 0)
	_, mapErr := whoAmI.Map(nilCtx, pool, []int{1})
	var imapErr error
	for _, err := range whoAmI.IMap(nilCtx, pool, func(yield func(int) bool) { yield(1) }) {
		imapErr = err
	}
	_, callErr := whoAmI.Call(nilCtx, 0)
	_, getErr := whoAmI.ApplyAsync(pool, 0).Get(nilCtx)
	_, qGetErr := q.Get(nilCtx)
	_, recvBytesErr := c1.RecvBytesContext(nilCtx)
	_, recvIntoErr := c1.RecvBytesIntoContext(nilCtx, make([]byte, 8))
	_, pollErr := c1.PollContext(nilCtx)
	_, acceptErr := ln.Accept(nilCtx)
	_, dialErr := multiproc.Dial(nilCtx, "tcp", ln.Addr().String(), []byte("k"))
	submitErr := make(chan error, 1)
	pool.Submit(nilCtx, &multiproc.Task{Func: "test.whoAmI", Args: [][]byte{nil}}, func(_ []multiproc.Result, err error) { submitErr <- err })
	var recvInt int
	for what, err := range map[string]error{
		"Apply": applyErr, "Map": mapErr, "IMap": imapErr, "Call": callErr, "AsyncResult.Get": getErr,
		"Process.StartContext": p.StartContext(nilCtx), "Process.Join": p.Join(nilCtx), "Pool.Join": pool.Join(nilCtx),
		"Pool.Submit": <-submitErr,
		"Queue.Put":   q.Put(nilCtx, 1), "Queue.Get": qGetErr,
		"Value.LockContext": v.LockContext(nilCtx), "Array.LockContext": a.LockContext(nilCtx), "Lock.LockContext": l.LockContext(nilCtx),
		"Semaphore.Acquire": s.Acquire(nilCtx), "Event.Wait": e.Wait(nilCtx), "Barrier.Wait": b.Wait(nilCtx),
		"Conn.SendContext": c1.SendContext(nilCtx, 1), "Conn.RecvContext": c1.RecvContext(nilCtx, &recvInt),
		"Conn.SendBytesContext": c1.SendBytesContext(nilCtx, nil), "Conn.RecvBytesContext": recvBytesErr,
		"Conn.RecvBytesIntoContext": recvIntoErr,
		"Conn.PollContext":          pollErr, "Listener.Accept": acceptErr, "Dial": dialErr,
	} {
		if err == nil || !strings.Contains(err.Error(), "nil Context") {
			t.Errorf("%s(nil): %v", what, err)
		}
	}
	if p.Pid() != 0 {
		t.Error("StartContext(nil) started a process")
	}
	_ = ctx
}

// The zero Pool fails every method with one clear error; it never queues
// work for ever.
func TestZeroPool(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	var p multiproc.Pool
	for what, err := range map[string]error{"Close": p.Close(), "Join": p.Join(ctx), "Terminate": p.Terminate()} {
		if !errors.Is(err, multiproc.ErrNotInitialized) {
			t.Errorf("zero Pool %s: %v", what, err)
		}
	}
	if _, err := whoAmI.Apply(ctx, &p, 0); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Errorf("Apply on a zero Pool: %v", err)
	}
	if _, err := whoAmI.Map(ctx, &p, []int{1, 2}); !errors.Is(err, multiproc.ErrNotInitialized) {
		t.Errorf("Map on a zero Pool: %v", err)
	}
}

// initPipeErr is what Pipe said at package initialisation, in a process
// started with MULTIPROC_TEST_INITPIPE=1 (a child, in the test below).
var initPipeErr = func() string {
	if os.Getenv("MULTIPROC_TEST_INITPIPE") != "1" {
		return ""
	}
	_, _, err := multiproc.Pipe(false)
	if err == nil {
		return "no error"
	}
	return err.Error()
}()

var reportInitPipe = multiproc.Register("test.reportInitPipe", func(ctx context.Context, _ int) (string, error) {
	return initPipeErr, nil
})

// A shared object made at package initialisation is a different object in
// every process: in a child, where Main has not run yet, it is refused
// with an error that says why.
func TestSharedObjectAtInitInChild(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	t.Setenv("MULTIPROC_TEST_INITPIPE", "1")
	got, err := reportInitPipe.Call(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "Pipe during package initialisation of a child process") {
		t.Fatalf("Pipe at a child's package initialisation: %q", got)
	}
}

var nameOf = multiproc.Register("test.nameOf", func(ctx context.Context, _ int) (string, error) {
	return multiproc.ProcessName(), nil
})

// nameIs fails unless its process is named want.
var nameIs = multiproc.Register("test.nameIs", func(ctx context.Context, want string) (int, error) {
	if got := multiproc.ProcessName(); got != want {
		return 0, fmt.Errorf("ProcessName() = %q, want %q", got, want)
	}
	return 0, nil
})

// ProcessName is Python's current_process().name.
func TestProcessName(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	if got := multiproc.ProcessName(); got != "MainProcess" {
		t.Fatalf("in the parent: %q", got)
	}
	p := nameIs.Process("namer")
	p.Name = "namer"
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Join(ctx); err != nil {
		t.Fatalf("in a Process named namer: %v", err)
	}
	if got, err := nameOf.Call(ctx, 0); err != nil || !strings.HasPrefix(got, "Process-") {
		t.Fatalf("in a Call's child: %q, %v", got, err)
	}
	pool := newPool(t, multiproc.PoolOptions{Processes: 1})
	if got, err := nameOf.Apply(ctx, pool, 0); err != nil || !strings.HasPrefix(got, "PoolWorker-") {
		t.Fatalf("in a pool worker: %q, %v", got, err)
	}
}

// On any platform but Linux amd64/arm64 a build fails with one line that
// says why (every file of the platform-bound packages carries the build
// constraint; a new one that does not would add errors here).
func TestOtherPlatformsFailInOneLine(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	ctx := testCtx(t, 5*time.Minute)
	for _, target := range [][2]string{{"darwin", "arm64"}} {
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", os.DevNull, "./examples/pool")
		cmd.Env = append(os.Environ(), "GOOS="+target[0], "GOARCH="+target[1], "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		if err == nil || len(lines) != 1 || !strings.Contains(lines[0], "multiproc_runs_on_Linux_amd64_and_arm64_only") {
			t.Errorf("%s/%s: %v\n%s", target[0], target[1], err, out)
		}
	}
}
