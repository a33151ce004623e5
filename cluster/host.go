package cluster

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Serve makes this process a worker host of the cluster at opts.URL: it
// runs opts.Processes worker processes (a multiproc.Pool) and takes tasks
// from the work queue until ctx ends, then returns nil. Every host runs
// the same program as the clients, so the same functions are registered;
// call it from main after multiproc.Main, typically behind a flag:
//
//	if *worker != "" {
//		log.Fatal(cluster.Serve(ctx, cluster.Options{URL: *worker}))
//	}
//
// A task that crashes its worker process kills that process only (it is
// replaced); the task fails with an error matching
// multiproc.ErrWorkerDied. The host holds its running tasks and a few
// more (as many as it runs in about 4ms; one while tasks are slow) at
// once and tells the server every AckWait/3 that it still works on them,
// so if the host dies its tasks go to other hosts. Serve waits for the
// server (and for the queue, which a client makes) if it is not up yet,
// and rides out a server that goes away and comes back, saying so in the
// standard logger. It takes only tasks of its own build of the program
// (see the package doc, "One program per queue"). When ctx ends, the tasks it holds are stopped and handed
// back to the queue at once for other hosts.
func Serve(ctx context.Context, opts Options) error {
	if err := opts.fill(true); err != nil {
		return err
	}
	if opts.URL == "" {
		return errors.New("multiproc: cluster.Serve needs Options.URL, the NATS server of the cluster")
	}
	name := hostName()
	// The host says in its log when its server goes and comes back: it
	// reconnects for ever meanwhile.
	nc, err := nats.Connect(opts.URL, append(opts.natsOptions("multiproc host "+name, newIdentity(roleHost)),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Printf("multiproc cluster host %s: lost the NATS server %s (%v); reconnecting", name, opts.URL, err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Printf("multiproc cluster host %s: reconnected to %s", name, nc.ConnectedUrlRedacted())
		}))...)
	if err != nil {
		return fmt.Errorf("multiproc: cluster: connecting to %s: %w", opts.URL, err)
	}
	defer nc.Close()
	h, err := newHost(ctx, nc, &opts, name)
	if err != nil {
		return err
	}
	h.run(ctx)
	return nil
}

func hostName() string {
	n, err := os.Hostname()
	if err != nil {
		n = "host"
	}
	return n + ":" + strconv.Itoa(os.Getpid())
}

// host takes tasks from the work queue and runs them in its pool.
type host struct {
	opts  *Options
	s     subjects
	nc    *nats.Conn
	cons  jetstream.Consumer
	pool  *multiproc.Pool
	blobs *blobs
	id    string
	name  string

	mu        sync.Mutex
	held      map[string]*heldTask
	cap       int // tasks held at most: Processes plus a prefetch (see adapt)
	free      int // cap less the tasks held and asked for; < 0 after cap shrank
	lastDone  time.Time
	interval  float64       // moving average of the time between two answers, in seconds
	freed     chan struct{} // signalled when a slot frees
	cancelled map[string]time.Time
	prefixes  map[string]time.Time // cancelled key prefixes (a client's epoch)

	done, failed, redelivered, dropped atomic.Uint64

	// inflight counts the held tasks not yet acknowledged or handed back:
	// stopping waits for them, so that no Nak is lost with the connection.
	inflight sync.WaitGroup
}

type heldTask struct {
	msg      jetstream.Msg
	cancel   context.CancelFunc
	canceled bool // by the client: no answer wanted
	// A message of several tasks: each member by its key (see
	// startMulti).
	members map[string]*heldMember
}

// heldMember is one task of a held message of several: what stops its
// run now (its own, or its group's), and whether its client cancelled
// it. Guarded by host.mu.
type heldMember struct {
	stop     context.CancelFunc
	canceled bool
}

// newHost connects the host's pieces: the queue (waiting for the server
// while ctx lasts), the pool, the cancel and ping subscriptions.
func newHost(ctx context.Context, nc *nats.Conn, o *Options, name string) (*host, error) {
	opts := new(Options)
	*opts = *o // AckWait and MaxDeliveries come from the queue
	s := newSubjects(opts.Name, fingerprint())
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("multiproc: cluster: %w", err)
	}
	var cons jetstream.Consumer
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		_, cons, err = setupQueue(ctx, js, s, opts, queueHost)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("multiproc: cluster host %s could not reach the work queue at %s: %w", name, opts.URL, err)
	}
	pool, err := multiproc.NewPool(multiproc.PoolOptions{Processes: opts.Processes, TaskTimeout: opts.TaskTimeout})
	if err != nil {
		return nil, err
	}
	h := &host{
		opts: opts, s: s, nc: nc, cons: cons, pool: pool, blobs: &blobs{js: js, s: s},
		id: newID(), name: name, cap: opts.Processes + 1,
		held: map[string]*heldTask{}, freed: make(chan struct{}, 1),
		cancelled: map[string]time.Time{}, prefixes: map[string]time.Time{},
	}
	h.free = h.cap
	return h, nil
}

// run serves until ctx ends, then hands back what it holds.
func (h *host) run(ctx context.Context) {
	var subs []*nats.Subscription
	if sub, err := h.nc.Subscribe(h.s.cancel+"*", h.onCancel); err == nil {
		subs = append(subs, sub)
	}
	if sub, err := h.nc.Subscribe(h.s.ping, func(m *nats.Msg) {
		if b, err := json.Marshal(h.stats()); err == nil {
			m.Respond(b)
		}
	}); err == nil {
		subs = append(subs, sub)
	}
	var wg sync.WaitGroup
	wg.Go(func() { h.beat(ctx) })
	h.announce()
	h.fetchLoop(ctx)
	// Stop: the tasks held, their contexts ended with ctx, go back to
	// the queue now (see start); Terminate fails those not yet started.
	for _, s := range subs {
		s.Unsubscribe()
	}
	h.pool.Terminate()
	wg.Wait()
	settled := make(chan struct{})
	go func() { h.inflight.Wait(); close(settled) }()
	select {
	case <-settled:
	case <-time.After(10 * time.Second):
	}
	flush(h.nc)
}

// beat announces the host every second and keeps its tasks' leases.
func (h *host) beat(ctx context.Context) {
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	lease := time.NewTicker(h.opts.AckWait / 3)
	defer lease.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.announce()
			h.expireCancels()
		case <-lease.C:
			h.mu.Lock()
			for _, t := range h.held {
				t.msg.InProgress()
			}
			h.mu.Unlock()
		}
	}
}

func (h *host) announce() {
	if b, err := json.Marshal(h.stats()); err == nil {
		h.nc.Publish(h.s.hosts, b)
	}
}

func (h *host) stats() HostStats {
	h.mu.Lock()
	running := len(h.held)
	h.mu.Unlock()
	return HostStats{
		ID: h.id, Name: h.name, Build: fingerprint(), Processes: h.opts.Processes, Running: running,
		Done: h.done.Load(), Failed: h.failed.Load(), Redelivered: h.redelivered.Load(), Dropped: h.dropped.Load(),
	}
}

// start runs one task from the queue, or drops it (cancelled, past its
// caller's deadline, delivered too often, malformed) with an answer where
// one is due. Its slot is released when it is answered.
func (h *host) start(ctx context.Context, m jetstream.Msg) {
	if testDieOnDelivery {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	key, client, ok := h.parseSubject(m.Subject())
	if !ok {
		m.Term()
		h.release(1)
		return
	}
	hdr := m.Headers()
	fn := hdr.Get(hdrFunc)
	reply := h.s.results + client
	secret, _ := hex.DecodeString(hdr.Get(hdrSecret))
	answer := func(b []byte) { h.answer(reply, key, fn, secret, b) }
	drop := func() {
		h.dropped.Add(1)
		m.Ack()
		h.release(1)
	}
	// fail answers the task with an error before running it.
	fail := func(b []byte) {
		h.failed.Add(1)
		answer(b)
		m.Ack()
		h.release(1)
	}
	h.mu.Lock()
	cancelled := h.isCancelledLocked(key)
	h.mu.Unlock()
	if cancelled {
		drop()
		return
	}
	var deadline time.Time
	if d := hdr.Get(hdrDeadline); d != "" {
		ns, err := strconv.ParseInt(d, 10, 64)
		if err == nil {
			deadline = time.Unix(0, ns)
			if time.Now().After(deadline) {
				drop() // the caller has given up on it
				return
			}
		}
	}
	if hdr.Get(hdrMulti) != "" {
		h.startMulti(ctx, m, key, reply)
		return
	}
	if n := h.deliveries(m); n > uint64(h.opts.MaxDeliveries) {
		fail(tooManyDeliveries(fn, n))
		return
	}
	body := m.Data()
	if n := hdr.Get(hdrBlob); n != "" && len(secret) == secretLen {
		var err error
		if body, err = h.loadBlob(ctx, m, key, secret, n); err != nil {
			fail(append([]byte{resFailed}, fmt.Sprintf("multiproc: cluster: reading the task's arguments: %v", err)...))
			return
		}
	}
	args, err := decodeArgs(body)
	if err != nil || fn == "" || len(secret) != secretLen {
		fail(append([]byte{resFailed}, "multiproc: cluster: malformed task"...))
		return
	}
	// A task its caller can never cancel, with no deadline or timeout,
	// runs under a context that never ends, so that the pool may queue it
	// in a busy worker (as it does for ApplyAsync) and the worker never
	// idles between tasks; stopping the host still stops it (Terminate).
	timeout := h.taskTimeout(hdr)
	tctx, cancel := context.Background(), context.CancelFunc(func() {})
	switch {
	case !deadline.IsZero():
		tctx, cancel = context.WithDeadline(ctx, deadline)
	case hdr.Get(hdrCtx) != "" || timeout > 0:
		tctx, cancel = context.WithCancel(ctx)
	}
	if timeout > 0 {
		var c2 context.CancelFunc
		tctx, c2 = context.WithTimeout(tctx, timeout)
		c1 := cancel
		cancel = func() { c2(); c1() }
	}
	t := &heldTask{msg: m, cancel: cancel}
	h.mu.Lock()
	h.held[key] = t
	h.inflight.Add(1)
	h.mu.Unlock()
	task := &multiproc.Task{Func: fn, Args: args, Batch: hdr.Get(hdrBatch) == "1"}
	h.pool.Submit(tctx, task, func(rs []multiproc.Result, err error) {
		h.mu.Lock()
		delete(h.held, key)
		h.mu.Unlock()
		cancel()
		h.mu.Lock()
		canceled := t.canceled
		h.mu.Unlock()
		if h.settle(ctx, canceled, rs, err, answer) {
			m.Nak()
		} else {
			m.Ack()
		}
		h.answered()
		h.inflight.Done()
	})
}

// settle does what becomes of a task the pool ran, or of one member of
// a message of several, and reports whether it is to be handed back
// (the host is stopping and the stop ended it: Nak, so another host
// runs it now). Otherwise it was dropped (its client cancelled it) or
// answered with its outcome, and its message is to be acknowledged:
// answer first, then ack, for a host dying between the two makes the
// task run again, and the caller keeps the first answer.
func (h *host) settle(ctx context.Context, canceled bool, rs []multiproc.Result, err error, answer func([]byte)) (handBack bool) {
	switch {
	case ctx.Err() != nil && err != nil:
		return true
	case canceled:
		h.dropped.Add(1)
	default:
		if err != nil {
			h.failed.Add(1)
		} else {
			h.done.Add(1)
		}
		answer(encodeResults(rs, err))
	}
	return false
}

// loadBlob reads a task's arguments from the payload store, telling the
// server meanwhile that the task is in hand.
func (h *host) loadBlob(ctx context.Context, m jetstream.Msg, key string, secret []byte, size string) ([]byte, error) {
	n, err := strconv.ParseUint(size, 10, 63)
	if err != nil {
		return nil, errCorrupt
	}
	gctx, cancel := context.WithTimeout(ctx, blobTimeout)
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(h.opts.AckWait / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				m.InProgress()
			}
		}
	}()
	return h.blobs.get(gctx, key, secret, 0, n+64)
}

// taskTimeout is the caller's TaskTimeout for a task, to be applied by a
// context, or 0. When it is the host's own TaskTimeout, the host's pool
// applies it, exactly: from the moment a worker takes the task up. A
// different one is applied from the moment the host took the task, so it
// also counts the task's wait for a free worker of this host.
func (h *host) taskTimeout(hdr nats.Header) time.Duration {
	ns, err := strconv.ParseInt(hdr.Get(hdrTimeout), 10, 64)
	if err != nil || ns <= 0 || time.Duration(ns) == h.opts.TaskTimeout {
		return 0
	}
	return time.Duration(ns)
}

// deliveries is how many times m has been handed to a host, this time
// included (counting the redelivered).
func (h *host) deliveries(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 1
	}
	if md.NumDelivered > 1 {
		h.redelivered.Add(1)
	}
	return md.NumDelivered
}

// testDieOnDelivery, set by tests in a host process, makes the host
// SIGKILL itself the moment a task is delivered to it: a host that dies
// on every delivery, the last ones included.
var testDieOnDelivery bool

// tooManyDeliveries is the answer of a task delivered n times (see
// ErrDeliveriesExhausted).
func tooManyDeliveries(fn string, n uint64) []byte {
	return append([]byte{resDeliveries}, fmt.Sprintf("multiproc: task %s was handed to a host %d times and none finished it (each host died or fell silent for longer than the AckWait); giving up", fn, n-1)...)
}

// startMulti runs a message of several tasks (see encodeMulti), each
// answered on its own; the message is acknowledged once all are. Each
// may be cancelled by its client (its key on the cancel subject, see
// onCancel): one cancelled before it starts never runs; one cancelled
// while it runs is stopped (its worker killed), and if it ran in a group
// with others, they run again, each on its own, as when a worker dies.
// The runs' contexts end only by such a cancel or a TaskTimeout, not
// when the host stops: Terminate stops them then, and they are handed
// back.
func (h *host) startMulti(ctx context.Context, m jetstream.Msg, key, reply string) {
	members, err := decodeMulti(m.Data())
	prefix := key[:strings.LastIndexByte(key, '.')+1]
	if err != nil || len(members) == 0 {
		h.failed.Add(1)
		m.Ack() // nothing to answer: the keys are unreadable
		h.release(1)
		return
	}
	if n := h.deliveries(m); n > uint64(h.opts.MaxDeliveries) {
		for _, mb := range members {
			h.failed.Add(1)
			h.answer(reply, prefix+strconv.FormatUint(mb.seq, 10), mb.fn, mb.secret, tooManyDeliveries(mb.fn, n))
		}
		m.Ack()
		h.release(1)
		return
	}
	timeout := h.taskTimeout(m.Headers())
	tctx, cancel := context.Background(), context.CancelFunc(func() {})
	if timeout > 0 {
		tctx, cancel = context.WithCancel(ctx)
	}
	t := &heldTask{msg: m, cancel: cancel, members: make(map[string]*heldMember, len(members))}
	memberKey := func(mb *member) string { return prefix + strconv.FormatUint(mb.seq, 10) }
	h.mu.Lock()
	h.held[key] = t
	h.inflight.Add(1)
	for i := range members {
		k := memberKey(&members[i])
		t.members[k] = &heldMember{canceled: h.isCancelledLocked(k)}
	}
	h.mu.Unlock()
	// run gives a member's (or a group's) run a context its cancel
	// ends, or reports that one of them was cancelled already.
	run := func(group []member, timeout time.Duration) (context.Context, context.CancelFunc, bool) {
		rctx, rcancel := context.WithCancel(tctx)
		if timeout > 0 {
			rctx, rcancel = context.WithTimeout(tctx, timeout)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for i := range group {
			hm := t.members[memberKey(&group[i])]
			if hm.canceled {
				rcancel()
				return nil, nil, false
			}
			hm.stop = rcancel
		}
		return rctx, rcancel, true
	}
	var left atomic.Int64
	var nak atomic.Bool
	left.Store(int64(len(members)))
	// finishOne accounts for one member's outcome; the last one acks.
	finishOne := func(mb *member, rs []multiproc.Result, err error) {
		h.mu.Lock()
		canceled := t.canceled || t.members[memberKey(mb)].canceled
		h.mu.Unlock()
		if h.settle(ctx, canceled, rs, err, func(b []byte) { h.answer(reply, memberKey(mb), mb.fn, mb.secret, b) }) {
			nak.Store(true)
		}
		if left.Add(-1) > 0 {
			return
		}
		h.mu.Lock()
		delete(h.held, key)
		h.mu.Unlock()
		cancel()
		if nak.Load() {
			m.Nak() // the host is stopping: the unanswered ones go to another
		} else {
			m.Ack()
		}
		h.answered()
		h.inflight.Done()
	}
	runOne := func(mb *member) {
		mctx, mcancel, ok := run([]member{*mb}, timeout)
		if !ok {
			finishOne(mb, nil, context.Canceled) // dropped: cancelled
			return
		}
		h.pool.Submit(mctx, &multiproc.Task{Func: mb.fn, Args: mb.args, Batch: mb.batch}, func(rs []multiproc.Result, err error) {
			mcancel()
			finishOne(mb, rs, err)
		})
	}
	for i := 0; i < len(members); {
		// Consecutive plain tasks of one function run as one pool task
		// (one worker round trip for all), when no timeout applies to
		// each (the caller's or this host's). If that worker dies, each runs again on its own, so that
		// only the one that crashes it fails (the others ran at least
		// once, as the cluster promises).
		j := i + 1
		for timeout == 0 && h.opts.TaskTimeout == 0 && !members[i].batch && j < len(members) && !members[j].batch && members[j].fn == members[i].fn {
			j++
		}
		group := members[i:j]
		i = j
		if len(group) == 1 {
			runOne(&group[0])
			continue
		}
		gctx, gcancel, ok := run(group, 0)
		if !ok { // one was cancelled already: the others on their own
			for k := range group {
				runOne(&group[k])
			}
			continue
		}
		var args [][]byte
		for _, mb := range group {
			args = append(args, mb.args...)
		}
		h.pool.Submit(gctx, &multiproc.Task{Func: group[0].fn, Args: args}, func(rs []multiproc.Result, err error) {
			gcancel()
			if err == nil && len(rs) != len(args) {
				err = fmt.Errorf("multiproc: cluster: the pool answered %d tasks with %d results", len(args), len(rs))
			}
			if err != nil && !(ctx.Err() != nil && errors.Is(err, multiproc.ErrPoolClosed)) {
				for k := range group {
					runOne(&group[k])
				}
				return
			}
			off := 0
			for k := range group {
				mb := &group[k]
				if err != nil {
					finishOne(mb, nil, err)
					continue
				}
				finishOne(mb, rs[off:off+len(mb.args)], nil)
				off += len(mb.args)
			}
		})
	}
}

// parseSubject splits a task subject into its key ("<client>.<epoch>.<seq>")
// and its client.
func (h *host) parseSubject(subj string) (key, client string, ok bool) {
	key, ok = strings.CutPrefix(subj, h.s.tasks)
	if !ok {
		return "", "", false
	}
	parts := strings.Split(key, ".")
	if len(parts) != 3 || parts[0] == "" {
		return "", "", false
	}
	return key, parts[0], true
}
