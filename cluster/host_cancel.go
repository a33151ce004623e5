package cluster

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// A host's cancel records: the keys (and key prefixes, a client's
// epoch) of tasks their clients gave up on, so that a task it holds
// stops and one that comes later is dropped.

// Bounds on the cancels a host remembers: only clients may send them
// (see hostPermissions), and past these a cancel still stops a task the
// host holds, but is not remembered for one that comes later (the
// client's purge of the queue covers that).
const (
	maxCancelled = 1 << 16
	maxPrefixes  = 256
)

// cancelTTL is how long a cancel is remembered: past it, the task's own
// deadline and the purge of the queue have dealt with it.
const cancelTTL = 10 * time.Minute

// onCancel takes a cancel from the client its subject names (only that
// client may publish there: see clientPermissions), for keys of that
// client only: a client cannot cancel another's tasks.
func (h *host) onCancel(m *nats.Msg) {
	key := string(m.Data)
	client := strings.TrimPrefix(m.Subject, h.s.cancel)
	if !ownKey(client, key) {
		return
	}
	prefix := strings.HasSuffix(key, ".")
	if prefix && strings.Count(key, ".") != 2 {
		return // not "<client>.<epoch>."
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// Stop what it names now, then remember it for what comes later,
	// within bounds.
	for k, t := range h.held {
		whole := k == key || prefix && strings.HasPrefix(k, key)
		if whole {
			t.canceled = true
			t.cancel()
		}
		// The members of a message of several, one by its key or all.
		for mk, hm := range t.members {
			if whole || mk == key {
				hm.canceled = true
				if hm.stop != nil {
					hm.stop()
				}
			}
		}
	}
	exp := time.Now().Add(cancelTTL)
	switch {
	case prefix:
		if _, ok := h.prefixes[key]; ok || len(h.prefixes) < maxPrefixes {
			h.prefixes[key] = exp
		}
	default:
		if _, ok := h.cancelled[key]; ok || len(h.cancelled) < maxCancelled {
			h.cancelled[key] = exp
		}
	}
}

func (h *host) isCancelledLocked(key string) bool {
	if _, ok := h.cancelled[key]; ok {
		return true
	}
	for p := range h.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (h *host) expireCancels() {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, exp := range h.cancelled {
		if now.After(exp) {
			delete(h.cancelled, k)
		}
	}
	for k, exp := range h.prefixes {
		if now.After(exp) {
			delete(h.prefixes, k)
		}
	}
}
