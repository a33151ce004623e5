package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/multiproc-go/multiproc"
)

// wakeArg is the child of event-rt and condition-rt: it answers each of
// the parent's N wake-ups with one of its own.
type wakeArg struct {
	Ping, Pong *multiproc.Event     // event-rt
	C          *multiproc.Condition // condition-rt
	V          *multiproc.Value[int64]
	Start      *multiproc.Barrier
	N          int
}

var (
	eventEcho = multiproc.Register("bench.eventEcho", func(ctx context.Context, a wakeArg) (int, error) {
		if err := a.Start.Wait(ctx); err != nil {
			return 0, err
		}
		for range a.N {
			if err := a.Ping.Wait(ctx); err != nil {
				return 0, err
			}
			a.Ping.Clear()
			a.Pong.Set()
		}
		return a.N, nil
	})
	conditionEcho = multiproc.Register("bench.conditionEcho", func(ctx context.Context, a wakeArg) (int, error) {
		if err := a.Start.Wait(ctx); err != nil {
			return 0, err
		}
		a.C.Lock()
		defer a.C.Unlock()
		for i := range a.N {
			for a.V.Load() != int64(2*i+1) {
				if err := a.C.Wait(ctx); err != nil {
					return i, err
				}
			}
			a.V.Store(int64(2*i + 2))
			a.C.Notify(1)
		}
		return a.N, nil
	})
)

// startEcho starts the child of a and returns once it is past Start.
func startEcho(ctx context.Context, p *multiproc.Process, start *multiproc.Barrier) (stop func(), err error) {
	p.Daemon = true
	if err := p.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		p.Kill()
		p.Join(context.Background())
	}
	if err := start.Wait(ctx); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// measureEventRT: n round trips of Set → Wait → Clear → Set back.
func measureEventRT(ctx context.Context, n, _ int) (time.Duration, error) {
	ping, err := multiproc.NewEvent()
	if err != nil {
		return 0, err
	}
	defer ping.Close()
	pong, err := multiproc.NewEvent()
	if err != nil {
		return 0, err
	}
	defer pong.Close()
	start, err := multiproc.NewBarrier(2)
	if err != nil {
		return 0, err
	}
	defer start.Close()
	p := eventEcho.Process(wakeArg{Ping: ping, Pong: pong, Start: start, N: n})
	stop, err := startEcho(ctx, p, start)
	if err != nil {
		return 0, err
	}
	defer stop()
	t0 := time.Now()
	for i := range n {
		ping.Set()
		if err := pong.Wait(ctx); err != nil {
			return 0, fmt.Errorf("round trip %d: %w", i, err)
		}
		pong.Clear()
	}
	d := time.Since(t0)
	return d, p.Join(ctx)
}

// measureConditionRT: n round trips of a ping-pong on one Condition and
// a Value, each side waiting for the other's number and notifying one.
func measureConditionRT(ctx context.Context, n, _ int) (time.Duration, error) {
	c, err := multiproc.NewCondition(nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	v, err := multiproc.NewValue[int64](0)
	if err != nil {
		return 0, err
	}
	defer v.Close()
	start, err := multiproc.NewBarrier(2)
	if err != nil {
		return 0, err
	}
	defer start.Close()
	p := conditionEcho.Process(wakeArg{C: c, V: v, Start: start, N: n})
	stop, err := startEcho(ctx, p, start)
	if err != nil {
		return 0, err
	}
	defer stop()
	t0 := time.Now()
	c.Lock()
	for i := range n {
		v.Store(int64(2*i + 1))
		c.Notify(1)
		for v.Load() != int64(2*i+2) {
			if err := c.Wait(ctx); err != nil {
				c.Unlock()
				return 0, fmt.Errorf("round trip %d: %w", i, err)
			}
		}
	}
	c.Unlock()
	d := time.Since(t0)
	return d, p.Join(ctx)
}
