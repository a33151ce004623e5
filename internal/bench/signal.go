package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc"
)

type signalArg struct {
	Parent int // the pid to answer
	N      int // round trips, then return
}

// signalTimeout bounds every wait for a signal: a lost one fails the
// scenario instead of hanging it.
const signalTimeout = 10 * time.Second

var signalEcho = multiproc.Register("bench.signal-echo", func(ctx context.Context, a signalArg) (int, error) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	defer signal.Stop(ch)
	// Ready: the parent sends nothing before this arrives.
	if err := syscall.Kill(a.Parent, syscall.SIGUSR1); err != nil {
		return 0, err
	}
	for i := range a.N {
		if err := awaitSignal(ctx, ch); err != nil {
			return i, err
		}
		if err := syscall.Kill(a.Parent, syscall.SIGUSR1); err != nil {
			return i, err
		}
	}
	return a.N, nil
})

func awaitSignal(ctx context.Context, ch <-chan os.Signal) error {
	select {
	case <-ch:
		return nil
	default:
	}
	t := time.NewTimer(signalTimeout)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("no signal within " + signalTimeout.String())
	}
}

// signalMu: one signal-rt at a time in this process (they would take each
// other's SIGUSR1).
var signalMu sync.Mutex

func measureSignalRT(ctx context.Context, n, _ int) (time.Duration, error) {
	signalMu.Lock()
	defer signalMu.Unlock()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	// Stop only after the child is gone: a late SIGUSR1 to a process that
	// no longer catches it would kill it.
	defer signal.Stop(ch)
	p := signalEcho.Process(signalArg{Parent: os.Getpid(), N: n})
	p.Daemon = true
	if err := p.Start(); err != nil {
		return 0, err
	}
	defer func() {
		p.Kill()
		p.Join(context.Background())
	}()
	if err := awaitSignal(ctx, ch); err != nil {
		return 0, fmt.Errorf("the child's ready signal: %w", err)
	}
	pid := p.Pid()
	t0 := time.Now()
	for i := range n {
		if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
			return 0, err
		}
		if err := awaitSignal(ctx, ch); err != nil {
			return 0, fmt.Errorf("round trip %d: %w", i, err)
		}
	}
	d := time.Since(t0)
	if err := p.Join(ctx); err != nil {
		return 0, err
	}
	return d, nil
}
