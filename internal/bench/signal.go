package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/signals"
)

type signalArg struct {
	Parent    int                     // the pid to answer
	ParentTid int                     // the thread of the parent's Waiter
	Tid       *multiproc.Value[int64] // the child's Waiter thread, for the parent
	N         int                     // round trips, then return
}

// signalTimeout bounds the wait for the child's ready signal, and, with
// a millisecond a round trip more, the whole run: a lost signal fails the
// scenario instead of hanging it. One deadline for the run, not one a wait:
// a timer armed and stopped on every wait would be measured with it.
const signalTimeout = 10 * time.Second

// The echo child and the parent each wait with a signals.Waiter and send
// to the other's Waiter thread (signals.KillThread, tgkill): the fastest
// path the Go runtime allows, no os/signal goroutine between the kernel and
// the waiting code (see signals.Waiter).
var signalEcho = multiproc.Register("bench.signal-echo", func(ctx context.Context, a signalArg) (int, error) {
	w, err := signals.NewWaiter(syscall.SIGUSR1)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	a.Tid.Store(int64(w.Tid()))
	// Ready: the parent sends nothing before this arrives.
	if err := signals.KillThread(a.Parent, a.ParentTid, syscall.SIGUSR1); err != nil {
		return 0, err
	}
	for i := range a.N {
		if err := awaitSignal(ctx, w); err != nil {
			return i, err
		}
		if err := signals.KillThread(a.Parent, a.ParentTid, syscall.SIGUSR1); err != nil {
			return i, err
		}
	}
	return a.N, nil
})

// awaitSignal waits for SIGUSR1 on w until ctx ends.
func awaitSignal(ctx context.Context, w *signals.Waiter) error {
	_, err := w.Wait(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no signal in time: %w", err)
	}
	return err
}

// signalMu: one signal-rt at a time in this process (a process-directed
// SIGUSR1 reaches every Waiter).
var signalMu sync.Mutex

func measureSignalRT(ctx context.Context, n, _ int) (time.Duration, error) {
	signalMu.Lock()
	defer signalMu.Unlock()
	// The Waiter wires this goroutine to its thread until Close, which
	// comes after the child is gone.
	w, err := signals.NewWaiter(syscall.SIGUSR1)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	tid, err := multiproc.NewValue[int64](0)
	if err != nil {
		return 0, err
	}
	p := signalEcho.Process(signalArg{Parent: os.Getpid(), ParentTid: w.Tid(), Tid: tid, N: n})
	p.Daemon = true
	if err := p.Start(); err != nil {
		return 0, err
	}
	defer func() {
		p.Kill()
		p.Join(context.Background())
	}()
	rctx, cancel := context.WithTimeout(ctx, signalTimeout)
	err = awaitSignal(rctx, w)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("the child's ready signal: %w", err)
	}
	pid, childTid := p.Pid(), int(tid.Load())
	lctx, cancel := context.WithTimeout(ctx, signalTimeout+time.Duration(n)*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	for i := range n {
		if err := signals.KillThread(pid, childTid, syscall.SIGUSR1); err != nil {
			return 0, err
		}
		if err := awaitSignal(lctx, w); err != nil {
			return 0, fmt.Errorf("round trip %d: %w", i, err)
		}
	}
	d := time.Since(t0)
	if err := p.Join(ctx); err != nil {
		return 0, err
	}
	return d, nil
}
