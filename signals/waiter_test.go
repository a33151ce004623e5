//go:build linux

package signals_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/signals"
)

// The Waiter tests run real signals between real processes: multiproc
// children of this test binary.
func TestMain(m *testing.M) {
	multiproc.Main()
	os.Exit(m.Run())
}

type echoArg struct {
	Parent, ParentTid int
	Tid               *multiproc.Value[int64] // the child's Waiter thread
	N                 int
}

// echo answers each of N signals (SIGUSR1 or SIGUSR2) sent to its Waiter
// thread with the same signal to the parent's Waiter thread.
var echo = multiproc.Register("signals_test.echo", func(ctx context.Context, a echoArg) (int, error) {
	w, err := signals.NewWaiter(syscall.SIGUSR1, syscall.SIGUSR2)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	a.Tid.Store(int64(w.Tid()))
	if err := signals.KillThread(a.Parent, a.ParentTid, syscall.SIGUSR1); err != nil { // ready
		return 0, err
	}
	for i := range a.N {
		s, err := w.Wait(ctx)
		if err != nil {
			return i, err
		}
		if err := signals.KillThread(a.Parent, a.ParentTid, s.(syscall.Signal)); err != nil {
			return i, err
		}
	}
	return a.N, nil
})

type killArg struct {
	Pid int
	Sig syscall.Signal
}

// killer sends Sig to the process Pid, the ordinary way (kill(2)).
var killer = multiproc.Register("signals_test.kill", func(ctx context.Context, a killArg) (int, error) {
	return 0, signals.Kill(a.Pid, a.Sig)
})

// wantSignal waits on w for want, within 10 s.
func wantSignal(t *testing.T, w *signals.Waiter, want syscall.Signal) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := w.Wait(ctx)
	if err != nil || s != want {
		t.Fatalf("Wait = %v, %v; want %v", s, err, want)
	}
}

func TestWaiterRoundTripsBetweenProcesses(t *testing.T) {
	// Another os/signal user of the same signals: the fast path must not
	// reach it.
	mine := make(chan os.Signal, 8)
	signal.Notify(mine, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(mine)

	w, err := signals.NewWaiter(syscall.SIGUSR1, syscall.SIGUSR2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tid, err := multiproc.NewValue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	p := echo.Process(echoArg{Parent: os.Getpid(), ParentTid: w.Tid(), Tid: tid, N: n})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Kill()
		p.Join(context.Background())
	}()
	wantSignal(t, w, syscall.SIGUSR1) // ready
	child, ctid := p.Pid(), int(tid.Load())
	for i := range n {
		sig := []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2}[i%2]
		if err := signals.KillThread(child, ctid, sig); err != nil {
			t.Fatal(err)
		}
		wantSignal(t, w, sig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Join(ctx); err != nil {
		t.Fatalf("echo child: %v", err)
	}
	// None of the 2n+1 signals went through os/signal: a SIGUSR2 sent to
	// the process now is the first thing the other channel gets.
	if err := signals.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-mine:
		if s != syscall.SIGUSR2 {
			t.Errorf("the other Notify channel got %v: a signal sent to the Waiter's thread reached os/signal", s)
		}
	case <-ctx.Done():
		t.Fatal("the SIGUSR2 sent to the process never reached the other Notify channel")
	}
	// The Waiter also takes that process-directed SIGUSR2.
	wantSignal(t, w, syscall.SIGUSR2)
}

func TestWaiterTakesSignalsSentToTheProcess(t *testing.T) {
	mine := make(chan os.Signal, 4)
	signal.Notify(mine, syscall.SIGUSR2)
	defer signal.Stop(mine)
	w, err := signals.NewWaiter(syscall.SIGUSR2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// kill(2) from another process, before Wait: the runtime's handler
	// takes it, and os/signal gives it to every Notify channel, the
	// Waiter's included. (While Wait reads, the Waiter may take such a
	// signal first, and then only it sees it: see Waiter.)
	if _, err := killer.Call(ctx, killArg{Pid: os.Getpid(), Sig: syscall.SIGUSR2}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mine:
	case <-ctx.Done():
		t.Fatal("the other Notify channel missed the SIGUSR2 sent to the process")
	}
	wantSignal(t, w, syscall.SIGUSR2)

	// And while Wait waits: it returns it, whichever way it came.
	errc := make(chan error, 1)
	go func() {
		_, err := killer.Call(ctx, killArg{Pid: os.Getpid(), Sig: syscall.SIGUSR2})
		errc <- err
	}()
	wantSignal(t, w, syscall.SIGUSR2)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestWaiterKeepsSignalsSentBeforeWait(t *testing.T) {
	w, err := signals.NewWaiter(syscall.SIGUSR1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := signals.KillThread(os.Getpid(), w.Tid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// Pending on the thread, not lost (as Pause would lose it).
	wantSignal(t, w, syscall.SIGUSR1)

	// A fork on the Waiter's goroutine resets its thread's signal mask; a
	// signal sent to the thread then goes the os/signal way, and still
	// arrives; the next Wait blocks the signals again.
	if err := exec.Command(os.Args[0], "-test.run=^$").Run(); err != nil {
		t.Fatal(err)
	}
	if err := signals.KillThread(os.Getpid(), w.Tid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	wantSignal(t, w, syscall.SIGUSR1)
	if err := signals.KillThread(os.Getpid(), w.Tid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	wantSignal(t, w, syscall.SIGUSR1)
}

func TestWaiterContext(t *testing.T) {
	w, err := signals.NewWaiter(syscall.SIGUSR1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := w.Wait(ctx); s != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Wait(cancelled) = %v, %v; want Canceled", s, err)
	}
	start := time.Now()
	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	if s, err := w.Wait(dctx); s != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait(100ms) = %v, %v; want DeadlineExceeded", s, err)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("Wait returned after %v, before its deadline", el)
	}
	// Cancelled while it waits (or just before: the same result).
	cctx, ccancel := context.WithCancel(context.Background())
	stop := time.AfterFunc(50*time.Millisecond, ccancel)
	defer stop.Stop()
	if s, err := w.Wait(cctx); s != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Wait, then cancel = %v, %v; want Canceled", s, err)
	}
	// The Waiter still works after its contexts ended.
	if err := signals.KillThread(os.Getpid(), w.Tid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	wantSignal(t, w, syscall.SIGUSR1)
}

func TestWaiterOwnerAndClose(t *testing.T) {
	w, err := signals.NewWaiter(syscall.SIGUSR1)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() {
		_, err := w.Wait(context.Background())
		errs <- err
		errs <- w.Close()
	}()
	for _, what := range []string{"Wait", "Close"} {
		if err := <-errs; !errors.Is(err, syscall.EINVAL) || !strings.HasPrefix(err.Error(), "multiproc: ") {
			t.Errorf("%s from another goroutine: %v, want a multiproc: error matching EINVAL", what, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := w.Wait(context.Background()); !errors.Is(err, signals.ErrClosed) {
		t.Errorf("Wait after Close: %v, want ErrClosed", err)
	}
}

func TestWaiterRefusesSignals(t *testing.T) {
	if _, err := signals.NewWaiter(); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("NewWaiter() = %v, want EINVAL", err)
	}
	for _, s := range []syscall.Signal{0, syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE,
		syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGURG, syscall.SIGPROF, 32, 33, 34, 65, -1,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGCONT} {
		w, err := signals.NewWaiter(syscall.SIGUSR1, s)
		if err == nil {
			w.Close()
			t.Errorf("NewWaiter(SIGUSR1, %d) succeeded", s)
			continue
		}
		if !errors.Is(err, syscall.EINVAL) || !strings.HasPrefix(err.Error(), "multiproc: ") {
			t.Errorf("NewWaiter(%d) = %v, want a multiproc: error matching EINVAL", s, err)
		}
	}
	// A refused NewWaiter leaves no Waiter behind: the goroutine can make one.
	w, err := signals.NewWaiter(syscall.SIGUSR1, syscall.SIGUSR1, syscall.Signal(64))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
}

func TestKillThread(t *testing.T) {
	w, err := signals.NewWaiter(syscall.SIGUSR1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	self := os.Getpid()
	for _, c := range [][2]int{{0, w.Tid()}, {-1, w.Tid()}, {1<<32 + self, w.Tid()}, {self, 0}, {self, -1}, {self, 1<<32 + w.Tid()}, {self, signals.MaxPid + 1}} {
		if err := signals.KillThread(c[0], c[1], syscall.SIGUSR1); !errors.Is(err, signals.ErrBadPid) || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("KillThread(%d, %d) = %v, want ErrBadPid", c[0], c[1], err)
		}
	}
	// A thread of another process is not a thread of this one: ESRCH, and
	// nothing is sent (the child would report it).
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := signals.KillThread(self, cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("KillThread(self, a gone pid) = %v, want ESRCH", err)
	}
	// Nothing of the refused ones arrived: the first signal Wait sees is
	// the one sent now.
	if err := signals.KillThread(self, w.Tid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	wantSignal(t, w, syscall.SIGUSR1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if s, err := w.Wait(ctx); err == nil {
		t.Errorf("a second signal arrived: %v (a refused KillThread sent one)", s)
	}
}

// The helper process's part of TestWaiterCloseDropsPending.
func waiterCloseHelper() {
	w, err := signals.NewWaiter(syscall.SIGTERM)
	if err != nil {
		panic(err)
	}
	// Pending on the thread when Close runs: dropped, not delivered.
	signals.KillThread(os.Getpid(), w.Tid(), syscall.SIGTERM)
	w.Close() // a SIGTERM delivered by unblocking would end the process here
	os.Stdout.WriteString("alive after Close\n")
	// SIGTERM has its default again: this ends the process.
	signals.Kill(os.Getpid(), syscall.SIGTERM)
	time.Sleep(5 * time.Second)
	os.Stdout.WriteString("alive after SIGTERM\n")
}

func TestWaiterCloseDropsPending(t *testing.T) {
	out, ws := runHelper(t, "waiter-close")
	if !strings.Contains(out, "alive after Close\n") || strings.Contains(out, "after SIGTERM") {
		t.Errorf("helper output %q", out)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("helper ended with %v, want killed by SIGTERM after Close", ws)
	}
}

// blocked reports whether sig is blocked on thread tid of this process,
// from /proc (SigBlk).
func blocked(t *testing.T, tid int, sig syscall.Signal) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if hex, ok := strings.CutPrefix(line, "SigBlk:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return mask&(1<<(uint(sig)-1)) != 0
		}
	}
	t.Fatal("no SigBlk line in the thread's status")
	return false
}

// TestWaiterWakeSignal: the Waiter's signals and its wake-up signal
// (SIGRTMAX) stay blocked on its thread from NewWaiter to Close, a fork on
// the goroutine included, since Wait no longer blocks them each time; a
// Waiter that waits for SIGRTMAX wakes with another real-time signal; one
// that would wait for every real-time signal is refused.
func TestWaiterWakeSignal(t *testing.T) {
	const rtmax = syscall.Signal(64)
	w, err := signals.NewWaiter(syscall.SIGUSR1)
	if err != nil {
		t.Fatal(err)
	}
	tid := w.Tid()
	for _, s := range []syscall.Signal{syscall.SIGUSR1, rtmax} {
		if !blocked(t, tid, s) {
			t.Errorf("signal %d not blocked on the Waiter's thread", s)
		}
	}
	if err := exec.Command(os.Args[0], "-test.run=^$").Run(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []syscall.Signal{syscall.SIGUSR1, rtmax} {
		if !blocked(t, tid, s) {
			t.Errorf("signal %d unblocked on the Waiter's thread by a fork: Wait would miss it (the Go runtime changed)", s)
		}
	}
	if err := signals.KillThread(os.Getpid(), tid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	wantSignal(t, w, syscall.SIGUSR1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []syscall.Signal{syscall.SIGUSR1, rtmax} {
		if blocked(t, tid, s) {
			t.Errorf("signal %d still blocked on the thread after Close", s)
		}
	}

	// Waiting for SIGRTMAX itself: the context still wakes Wait, and
	// SIGRTMAX sent to the thread is a signal, not a wake-up.
	w, err = signals.NewWaiter(syscall.SIGUSR1, rtmax)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if s, err := w.Wait(ctx); s != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait(50ms) of a Waiter for SIGRTMAX = %v, %v; want DeadlineExceeded", s, err)
	}
	if err := signals.KillThread(os.Getpid(), w.Tid(), rtmax); err != nil {
		t.Fatal(err)
	}
	wantSignal(t, w, rtmax)

	var all []syscall.Signal
	for n := syscall.Signal(35); n <= rtmax; n++ {
		all = append(all, n)
	}
	if w, err := signals.NewWaiter(all...); !errors.Is(err, syscall.EINVAL) {
		if err == nil {
			w.Close()
		}
		t.Errorf("NewWaiter(every real-time signal) = %v; want EINVAL", err)
	}
}

// TestWaiterNoWakeAfterClose: a context that ends as its Wait returns
// sends the Waiter's wake-up signal from a goroutine of its own, which may
// run late: after Close, when a new Waiter on the same thread waits for
// that very signal and would take it for a real one. Close stops them.
// With one P the late goroutine runs only when the next Wait blocks: the
// interleaving that went wrong, forced.
func TestWaiterNoWakeAfterClose(t *testing.T) {
	const rtmax = syscall.Signal(64)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for i := range 50 {
		w, err := signals.NewWaiter(syscall.SIGUSR1) // its wake-up: SIGRTMAX
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := signals.KillThread(os.Getpid(), w.Tid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		if s, err := w.Wait(ctx); s != syscall.SIGUSR1 || err != nil {
			t.Fatalf("round %d: Wait = %v, %v; want SIGUSR1", i, s, err)
		}
		cancel() // its wake-up, on a goroutine that cannot run yet
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		w2, err := signals.NewWaiter(syscall.SIGUSR1, rtmax)
		if err != nil {
			t.Fatal(err)
		}
		dctx, dcancel := context.WithTimeout(context.Background(), time.Millisecond)
		s, err := w2.Wait(dctx)
		dcancel()
		w2.Close()
		if s != nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: a new Waiter for SIGRTMAX got %v, %v: the closed Waiter's wake-up", i, s, err)
		}
	}
}
