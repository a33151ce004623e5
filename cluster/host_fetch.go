package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A host's flow control: how many tasks it asks the server for, and when.

// fetchLoop pulls as many tasks as the host has free slots, and runs each
// as it arrives. A slot that frees becomes a new pull request at once,
// beside those still open, so a busy host never waits for a round trip
// to the server between tasks.
func (h *host) fetchLoop(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		h.mu.Lock()
		k := max(h.free, 0)
		h.free -= k
		h.mu.Unlock()
		if k == 0 {
			select {
			case <-h.freed:
			case <-ctx.Done():
			}
			continue
		}
		wg.Go(func() { h.fetch(ctx, k) })
	}
}

// fetch is one pull request for k tasks, open for up to 5 seconds.
func (h *host) fetch(ctx context.Context, k int) {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got := 0
	batch, err := h.cons.Fetch(k, jetstream.FetchContext(fctx))
	if err == nil {
		for m := range batch.Messages() {
			got++
			h.start(ctx, m)
		}
		err = batch.Error()
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
		// The server is away or the queue is being remade: wait a
		// little rather than spin.
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	h.release(k - got)
}

// prefetchWindow is how much work, in time, a host keeps queued beyond
// its running tasks: enough to cover a round trip to the server, so its
// workers never idle between short tasks; and no more, so that long tasks
// spread over hosts instead of piling up on the first to ask.
const prefetchWindow = 4 * time.Millisecond

// answered accounts for an answered task: the host's pace sets how many
// tasks it holds beyond its workers (one while tasks are slow, up to 32
// per worker while they take microseconds).
func (h *host) answered() {
	now := time.Now()
	h.mu.Lock()
	if !h.lastDone.IsZero() {
		d := now.Sub(h.lastDone).Seconds()
		if h.interval == 0 {
			h.interval = d
		} else {
			h.interval = 0.9*h.interval + 0.1*d
		}
		extra := h.opts.Processes * 32
		if h.interval > 0 {
			extra = min(extra, max(1, int(prefetchWindow.Seconds()/h.interval)))
		}
		c := h.opts.Processes + extra
		h.free += c - h.cap
		h.cap = c
	}
	h.lastDone = now
	h.mu.Unlock()
	h.release(1)
}

func (h *host) release(n int) {
	if n <= 0 {
		return
	}
	h.mu.Lock()
	h.free += n
	free := h.free
	h.mu.Unlock()
	if free <= 0 {
		return
	}
	select {
	case h.freed <- struct{}{}:
	default:
	}
}
