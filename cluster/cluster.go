package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"encoding/hex"
	"encoding/json"

	"github.com/multiproc-go/multiproc"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster submits tasks to the cluster's work queue and gives each caller
// its results: it is a multiproc.Executor, so the Func methods run on it
// as on a local Pool (square.Map(ctx, c, xs)). It may also run worker
// processes of its own (Options.Processes). Its methods are safe for
// concurrent use. Close it when done: it stops its workers, its embedded
// server if any, and fails the calls still waiting.
type Cluster struct {
	opts  Options
	s     subjects
	emb   *embedded // nil when Options.URL was set
	nc    *nats.Conn
	js    jetstream.JetStream
	st    jetstream.Stream
	cons  jetstream.Consumer
	ident identity // the connection's (see identity)
	id    string   // ident.pub: the client's id in its subjects
	seq   atomic.Uint64
	subs  []*nats.Subscription
	local *localHost
	blobs *blobs

	mu      sync.Mutex
	epoch   int // bumped when the connection drops: the old epoch's tasks are failed and purged
	stale   []int
	pending map[string]*call
	closed  bool
	hosts   map[string]HostStats
	// The stream sequence of each stored task message whose calls still
	// wait, so that the server's word that its deliveries ran out
	// (onMaxDeliveries) fails them; and the messages of several tasks
	// published but not yet stored, by subject (see onStored).
	bySeq map[uint64]*storedMsg
	multi map[string][]*call

	// Tasks with no deadline (ApplyAsync's, for one) wait here for the
	// flusher, which sends those that pile up while it publishes as one
	// message.
	obMu   sync.Mutex
	outbox []*call
	kick   chan struct{}

	closeOnce sync.Once
	closeErr  error
	quit      chan struct{} // closed by Close

	submitted, completed, failed atomic.Uint64
	forged                       atomic.Uint64 // results dropped: no valid proof (see resultMAC)
}

// call is one submitted task waiting for its result.
type call struct {
	key     string
	subject string
	fn      string
	want    int
	done    func([]multiproc.Result, error)
	stop    func() bool   // stops the ctx watch
	stored  chan struct{} // closed once the server has stored the task
	batch   bool
	secret  []byte // only the host the task is delivered to learns it
	blob    bool   // its arguments are in the payload store
	body    []byte // the encoded arguments
	ctx     bool   // its caller may cancel it
	multi   bool   // it travels in a message of several (under Cluster.mu)
	epoch   int
	seq     uint64
	sseq    uint64 // its message's stream sequence, once stored (see bySeq)
}

// storedMsg is a stored task message: its subject and its calls, of
// which left still wait.
type storedMsg struct {
	subject string
	calls   []*call
	left    int
}

type localHost struct {
	cancel context.CancelFunc
	done   chan struct{}
	nc     *nats.Conn
}

// Connect joins (or, with opts.URL "", starts) a cluster and returns the
// client that submits tasks to it. With URL "" it starts an embedded NATS
// server with JetStream (its store in a temporary directory that Close
// removes; no TCP port unless opts.Listen is set) and runs opts.Processes
// local worker processes (NumCPU by default), so one machine needs no
// setup; hosts on other machines join with Serve at URL(). With a URL it
// talks to that NATS server or cluster and runs opts.Processes workers
// (none by default) beside the hosts that Serve there. Connect makes the
// work queue (a JetStream stream with work-queue retention) as opts say.
// Tasks wait in the queue until a host takes them: with no worker anywhere
// (Processes -1 and no host yet), a call waits for one, within its ctx.
func Connect(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.fill(false); err != nil {
		return nil, err
	}
	c := &Cluster{
		opts: opts, s: newSubjects(opts.Name, fingerprint()),
		pending: map[string]*call{}, hosts: map[string]HostStats{}, quit: make(chan struct{}),
		kick: make(chan struct{}, 1), bySeq: map[uint64]*storedMsg{}, multi: map[string][]*call{},
	}
	ok := false
	defer func() {
		if !ok {
			close(c.quit)
			c.shutdown()
		}
	}()
	var err error
	c.ident = newIdentity(roleClient)
	if opts.URL == "" {
		if c.emb, err = startServer(opts.Listen, opts.Token); err != nil {
			return nil, err
		}
		c.ident = c.emb.head
	}
	c.id = c.ident.pub
	natsOpts := append(opts.natsOptions("multiproc client "+hostName(), c.ident),
		nats.DisconnectErrHandler(c.onDisconnect),
		nats.ReconnectHandler(c.onReconnect))
	if opts.URL == "" {
		c.nc, err = nats.Connect("", append(natsOpts, nats.InProcessServer(c.emb.srv))...)
	} else {
		c.nc, err = nats.Connect(opts.URL, natsOpts...)
	}
	if err != nil {
		return nil, fmt.Errorf("multiproc: cluster: connecting to NATS %s: %w", c.where(), err)
	}
	c.js, err = jetstream.New(c.nc,
		jetstream.WithPublishAsyncAckHandler(c.onStored),
		jetstream.WithPublishAsyncErrHandler(c.onPublishErr),
		jetstream.WithPublishAsyncMaxPending(1<<16),
		jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("multiproc: cluster: %w", err)
	}
	role := queueClient
	if c.emb != nil {
		role = queueHead
	}
	if c.st, c.cons, err = setupQueue(ctx, c.js, c.s, &c.opts, role); err != nil {
		return nil, err
	}
	c.blobs = &blobs{js: c.js, s: c.s, canCreate: role == queueClient, storage: jetstream.FileStorage}
	if role == queueHead {
		// Made now, by the only one who may.
		if _, err := c.js.CreateOrUpdateObjectStore(ctx, blobConfig(c.s, jetstream.MemoryStorage)); err != nil {
			return nil, fmt.Errorf("multiproc: cluster: the payload store: %w", err)
		}
	}
	handlers := map[string]nats.MsgHandler{c.s.results + c.id: c.onResult, c.s.hosts: c.onHost, c.s.maxDeliveries: c.onMaxDeliveries}
	if role == queueHead {
		handlers[c.s.purge+"*"] = c.onPurge
	}
	for subj, h := range handlers {
		sub, err := c.nc.Subscribe(subj, h)
		if err != nil {
			return nil, fmt.Errorf("multiproc: cluster: subscribing to %s: %w", subj, err)
		}
		if subj == c.s.results+c.id || subj == c.s.hosts {
			// Results must not be dropped; heartbeats are small and
			// bounded in what they cost (addHostLocked). Purge requests
			// keep the default bounds: a client that floods them loses
			// its own.
			sub.SetPendingLimits(-1, -1)
		}
		c.subs = append(c.subs, sub)
	}
	go c.flusher()
	go c.watchBuild()
	if opts.Processes > 0 {
		if err := c.startLocal(ctx); err != nil {
			return nil, err
		}
	}
	// Learn the hosts already there, so Workers is right from the start.
	c.pingHosts(ctx, 200*time.Millisecond)
	ok = true
	return c, nil
}

func (c *Cluster) where() string {
	if c.opts.URL == "" {
		return "embedded server"
	}
	return c.opts.URL
}

// startLocal runs Processes workers in this process, as a host with its
// own connection.
func (c *Cluster) startLocal(ctx context.Context) error {
	name := hostName()
	id := newIdentity(roleHost)
	var nc *nats.Conn
	var err error
	if c.emb != nil {
		nc, err = c.emb.connect(&c.opts, "multiproc host "+name, id)
	} else {
		nc, err = nats.Connect(c.opts.URL, c.opts.natsOptions("multiproc host "+name, id)...)
	}
	if err != nil {
		return err
	}
	hctx, cancel := context.WithCancel(context.Background())
	h, err := newHost(ctx, nc, &c.opts, name)
	if err != nil {
		cancel()
		nc.Close()
		return err
	}
	c.local = &localHost{cancel: cancel, done: make(chan struct{}), nc: nc}
	c.mu.Lock()
	st := h.stats()
	st.Seen = time.Now()
	c.hosts[h.id] = st
	c.mu.Unlock()
	go func() {
		defer close(c.local.done)
		h.run(hctx)
	}()
	return nil
}

// URL returns where hosts connect to the cluster: Options.URL, or the
// embedded server's address when it listens (Options.Listen; an
// unspecified host is replaced by this machine's name), or "" when the
// embedded server has no port and only this process can reach it.
func (c *Cluster) URL() string {
	if c.emb != nil {
		return c.emb.url()
	}
	return c.opts.URL
}

// Workers is how many worker processes the hosts of this build (see
// ErrBuildMismatch) seen in the last few seconds run (at least 1): Map sizes its chunks and IMap its window from
// it. Hosts that join later are counted once their first heartbeat
// arrives (within a second).
func (c *Cluster) Workers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	cutoff := time.Now().Add(-hostExpiry)
	me := fingerprint()
	for _, h := range c.hosts {
		if h.Build == me && !h.Seen.Before(cutoff) {
			n += h.Processes
		}
	}
	return min(max(n, 1), maxWorkers)
}

// MaxTaskBytes is how large a task's arguments may be to travel as one
// message (the server's max payload, less room for headers): Map sizes
// its chunks by it as well as by count, so that chunks of large items
// travel as messages. A single item beyond it still works: it goes
// through the payload store (see the package doc, "Large payloads").
func (c *Cluster) MaxTaskBytes() int {
	return int(c.nc.MaxPayload() - blobHeadroom)
}

// maxWorkers bounds Workers: heartbeats are claims, and a flood of them
// must not make Map's chunks tiny or IMap's window huge.
const maxWorkers = 1 << 12

// hostExpiry is how long a silent host is still counted.
const hostExpiry = 4 * heartbeat

// ErrNotConnected: the cluster's NATS server cannot be reached now. Calls
// fail with it (wrapped) at once while it lasts; the connection is retried
// for ever, and calls work again once it is back.
var ErrNotConnected = errors.New("multiproc: cluster: not connected to the NATS server")

// Submit queues t on the work queue; done is called once with its results
// or an error (see multiproc.Executor). A task carrying shared-memory
// objects is refused: they cannot leave this machine. If ctx ends first,
// done gets ctx.Err() at once, the task is removed from the queue if it
// has not started (or, if it travels with others, dropped by the hosts
// that hear of it: see the package doc, "Delivery"), and stopped (its
// worker killed) if it runs.
func (c *Cluster) Submit(ctx context.Context, t *multiproc.Task, done func([]multiproc.Result, error)) {
	if t.Shared() {
		done(nil, fmt.Errorf("multiproc: cluster: %w: a task of %s carries a *Value, *Array, *Queue, *Conn, lock or the like, which only a Pool on this machine can pass", multiproc.ErrShared, t.Func))
		return
	}
	if err := ctx.Err(); err != nil {
		done(nil, err)
		return
	}
	want := len(t.Args)
	if t.Batch {
		want = 1
	}
	body := encodeArgs(t.Args)
	cl := &call{fn: t.Func, want: want, done: done, stored: make(chan struct{}), batch: t.Batch, body: body, secret: newSecret(), ctx: ctx.Done() != nil}
	cl.blob = int64(len(body)) > c.nc.MaxPayload()-blobHeadroom
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		done(nil, fmt.Errorf("%w: the cluster client is closed", multiproc.ErrPoolClosed))
		return
	}
	if !c.nc.IsConnected() {
		c.mu.Unlock()
		done(nil, fmt.Errorf("%w (%s; %s)", ErrNotConnected, c.where(), c.nc.Status()))
		return
	}
	cl.epoch, cl.seq = c.epoch, c.seq.Add(1)
	cl.key = c.id + "." + strconv.Itoa(cl.epoch) + "." + strconv.FormatUint(cl.seq, 10)
	cl.subject = c.s.tasks + cl.key
	c.pending[cl.key] = cl
	c.mu.Unlock()
	c.submitted.Add(1)
	if ctx.Done() != nil {
		cl.stop = context.AfterFunc(ctx, func() { c.abandon(cl.key, ctx.Err()) })
	}
	if _, ok := ctx.Deadline(); !ok && !cl.blob {
		// No deadline to carry: it may travel with others (see flush).
		c.obMu.Lock()
		c.outbox = append(c.outbox, cl)
		c.obMu.Unlock()
		select {
		case c.kick <- struct{}{}:
		default:
		}
		return
	}
	m := c.taskMsg(ctx, cl)
	if cl.blob {
		go c.publishBlob(ctx, cl, m)
		return
	}
	if _, err := c.js.PublishMsgAsync(m); err != nil {
		c.finish(cl.key, nil, fmt.Errorf("multiproc: cluster: queueing task %s: %w", t.Func, err))
	}
}

// taskMsg is the message of one task, the only place its headers are
// written (see the hdr constants): its function, key and secret, how it
// is batched, and what bounds it: ctx's deadline, whether ctx can cancel
// it, the task timeout.
func (c *Cluster) taskMsg(ctx context.Context, cl *call) *nats.Msg {
	m := nats.NewMsg(cl.subject)
	m.Header.Set(hdrFunc, cl.fn)
	m.Header.Set(hdrID, cl.key)
	m.Header.Set(hdrSecret, hex.EncodeToString(cl.secret))
	if cl.batch {
		m.Header.Set(hdrBatch, "1")
	}
	if dl, ok := ctx.Deadline(); ok {
		m.Header.Set(hdrDeadline, strconv.FormatInt(dl.UnixNano(), 10))
	}
	if cl.ctx {
		m.Header.Set(hdrCtx, "1")
	}
	c.setTimeout(m)
	m.Data = cl.body
	return m
}

// setTimeout sets the task timeout header of a task message (of one
// task or several), if there is a timeout.
func (c *Cluster) setTimeout(m *nats.Msg) {
	if c.opts.TaskTimeout > 0 {
		m.Header.Set(hdrTimeout, strconv.FormatInt(int64(c.opts.TaskTimeout), 10))
	}
}

// publishBlob stores a task's arguments in the payload store, then
// queues the task.
func (c *Cluster) publishBlob(ctx context.Context, cl *call, m *nats.Msg) {
	if err := c.blobs.put(ctx, cl.key, cl.secret, 0, cl.body, c.nc.MaxPayload()); err != nil {
		c.finish(cl.key, nil, fmt.Errorf("multiproc: cluster: queueing task %s: %w", cl.fn, err))
		return
	}
	m.Header.Set(hdrBlob, strconv.Itoa(len(cl.body)))
	m.Data = nil
	cl.body = nil
	if _, err := c.js.PublishMsgAsync(m); err != nil {
		c.finish(cl.key, nil, fmt.Errorf("multiproc: cluster: queueing task %s: %w", cl.fn, err))
	}
}

// take removes and returns the call for key, if it still waits.
func (c *Cluster) take(key string) *call {
	c.mu.Lock()
	cl := c.pending[key]
	delete(c.pending, key)
	if cl != nil && cl.sseq != 0 {
		if sm := c.bySeq[cl.sseq]; sm != nil {
			if sm.left--; sm.left <= 0 {
				delete(c.bySeq, cl.sseq)
			}
		}
	}
	c.mu.Unlock()
	if cl != nil && cl.stop != nil {
		cl.stop()
	}
	if cl != nil && cl.blob {
		c.blobs.remove(cl.key)
	}
	return cl
}

func (c *Cluster) finish(key string, rs []multiproc.Result, err error) {
	cl := c.take(key)
	if cl == nil {
		return // answered already: a redelivered task's second answer
	}
	if err != nil {
		c.failed.Add(1)
	} else {
		c.completed.Add(1)
	}
	cl.done(rs, err)
}

// abandon is the caller's ctx ending: answer at once, then make sure the
// task never runs (purge it from the queue) or stops (the hosts kill it).
func (c *Cluster) abandon(key string, err error) {
	cl := c.take(key)
	if cl == nil {
		return
	}
	c.failed.Add(1)
	cl.done(nil, err)
	c.cancel(key)
	c.mu.Lock()
	multi := cl.multi
	c.mu.Unlock()
	if multi {
		// Its message holds others: the hosts drop it (see
		// host.startMulti), or stop it if it runs.
		return
	}
	go func() {
		// Purge only once the server has stored it, or the purge could
		// come first and the task be stored after it.
		select {
		case <-cl.stored:
		case <-time.After(10 * time.Second):
		case <-c.quit:
			return // Close purges what is left
		}
		c.purge(key)
	}()
}

// cancel tells the hosts to drop or stop the task key, or every task
// whose key starts with it (a prefix, ending in "."), on this client's
// own cancel subject: a client may cancel only its own tasks (see
// clientPermissions and host.onCancel).
func (c *Cluster) cancel(key string) {
	c.nc.Publish(c.s.cancel+c.id, []byte(key))
}

// purge removes from the queue the task key of this client, or every
// task whose key starts with it (a prefix, ending in "."), of any build.
// On an embedded server only its head may purge (a purge's filter is not
// something NATS permissions can restrict): a client of it asks the head
// on its own purge subject, and the head purges only keys of the client
// the subject names (onPurge). With a server of its own that has no head
// (nobody answers), the client purges itself, with the rights that
// server's admin gave it.
func (c *Cluster) purge(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c.emb == nil {
		_, err := c.nc.RequestWithContext(ctx, c.s.purge+c.id, []byte(key))
		if !errors.Is(err, nats.ErrNoResponders) {
			return
		}
	}
	c.st.Purge(ctx, jetstream.WithPurgeSubject(purgeFilter(c.s, key)))
}

// purgeFilter is the subject filter of the tasks key names (see purge).
func purgeFilter(s subjects, key string) string {
	f := s.allTasks + "*." + key
	if strings.HasSuffix(key, ".") {
		f += ">"
	}
	return f
}

// onPurge is the head's answer to a client's purge request (see purge):
// it purges the key only if it is one of the client's own, as the
// request's subject (which only that client may publish to) names it.
func (c *Cluster) onPurge(m *nats.Msg) {
	client := strings.TrimPrefix(m.Subject, c.s.purge)
	key := string(m.Data)
	if !ownKey(client, key) {
		m.Respond([]byte("refused: not a key of " + client))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.st.Purge(ctx, jetstream.WithPurgeSubject(purgeFilter(c.s, key))); err != nil {
		m.Respond([]byte(err.Error()))
		return
	}
	m.Respond(nil)
}

// ownKey reports whether key names tasks of client only: "<client>."
// (all of them), "<client>.<epoch>." (an epoch's) or
// "<client>.<epoch>.<seq>" (one message), with no wildcard.
func ownKey(client, key string) bool {
	if client == "" || len(key) > 256 || strings.ContainsAny(key, "*> \t\r\n") {
		return false
	}
	parts := strings.Split(key, ".")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != client {
		return false
	}
	for i, p := range parts {
		if p == "" && i != len(parts)-1 {
			return false
		}
	}
	return len(parts) == 3 || parts[1] == ""
}

func (c *Cluster) onResult(m *nats.Msg) {
	key := m.Header.Get(hdrID)
	c.mu.Lock()
	cl := c.pending[key]
	c.mu.Unlock()
	if cl == nil {
		return
	}
	if !validMAC(cl.secret, key, m.Data, m.Header.Get(hdrMAC)) {
		// Not from the host the task was delivered to.
		c.forged.Add(1)
		return
	}
	if n := m.Header.Get(hdrBlob); n != "" {
		go c.resultBlob(key, cl, n, m.Header.Get(hdrHost))
		return
	}
	rs, err := decodeResults(m.Data, cl.want, cl.fn, m.Header.Get(hdrHost))
	c.finish(key, rs, err)
}

// resultBlob reads a result from the payload store (size bytes, as the
// host announced), then deletes it.
func (c *Cluster) resultBlob(key string, cl *call, size, host string) {
	defer c.blobs.remove(key + ".r")
	n, err := strconv.ParseUint(size, 10, 63)
	if err != nil {
		c.finish(key, nil, fmt.Errorf("multiproc: cluster: task %s: a malformed result", cl.fn))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
	defer cancel()
	b, err := c.blobs.get(ctx, key+".r", cl.secret, 1, n+64)
	if err != nil {
		c.finish(key, nil, fmt.Errorf("multiproc: cluster: task %s: its result: %w", cl.fn, err))
		return
	}
	rs, err := decodeResults(b, cl.want, cl.fn, host)
	c.finish(key, rs, err)
}

// flusher publishes the outbox: a task alone as it is, several that piled
// up as messages of several tasks each, in chunks as Map's are (about a
// quarter of the outbox per worker), so that a burst of long tasks still
// spreads over the hosts.
func (c *Cluster) flusher() {
	for {
		select {
		case <-c.kick:
		case <-c.quit:
			return
		}
		for {
			c.obMu.Lock()
			calls := c.outbox
			c.outbox = nil
			c.obMu.Unlock()
			if len(calls) == 0 {
				break
			}
			c.flush(calls)
		}
	}
}

// maxMulti bounds the tasks in one message.
const maxMulti = 256

func (c *Cluster) flush(calls []*call) {
	// Only those still waiting: a disconnect or Close may have failed some.
	c.mu.Lock()
	live := calls[:0]
	for _, cl := range calls {
		if c.pending[cl.key] == cl {
			live = append(live, cl)
		}
	}
	c.mu.Unlock()
	w := c.Workers()
	size := min(maxMulti, max(1, (len(live)+4*w-1)/(4*w)))
	limit := int(c.nc.MaxPayload() / 2)
	for len(live) > 0 {
		n, bytes := 1, len(live[0].body)
		for n < len(live) && n < size && live[n].epoch == live[0].epoch && bytes+len(live[n].body) < limit {
			bytes += len(live[n].body)
			n++
		}
		group := live[:n]
		live = live[n:]
		if n == 1 {
			c.publishOne(group[0])
			continue
		}
		m := nats.NewMsg(c.s.tasks + c.id + "." + strconv.Itoa(group[0].epoch) + ".m" + strconv.FormatUint(group[0].seq, 10))
		m.Header.Set(hdrMulti, "1")
		c.setTimeout(m)
		m.Data = encodeMulti(group)
		c.mu.Lock()
		c.multi[m.Subject] = group
		for _, cl := range group {
			cl.multi = true
		}
		c.mu.Unlock()
		if _, err := c.js.PublishMsgAsync(m); err != nil {
			c.mu.Lock()
			delete(c.multi, m.Subject)
			c.mu.Unlock()
			for _, cl := range group {
				c.finish(cl.key, nil, fmt.Errorf("multiproc: cluster: queueing task %s: %w", cl.fn, err))
			}
		}
	}
}

// publishOne publishes an outbox task as a message of its own.
func (c *Cluster) publishOne(cl *call) {
	m := c.taskMsg(context.Background(), cl)
	if _, err := c.js.PublishMsgAsync(m); err != nil {
		c.finish(cl.key, nil, fmt.Errorf("multiproc: cluster: queueing task %s: %w", cl.fn, err))
	}
}

func (c *Cluster) onStored(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	c.mu.Lock()
	if m.Header.Get(hdrMulti) != "" {
		group := c.multi[m.Subject]
		delete(c.multi, m.Subject)
		c.trackLocked(ack, m.Subject, group)
		c.mu.Unlock()
		return
	}
	cl := c.pending[m.Header.Get(hdrID)]
	if cl != nil {
		c.trackLocked(ack, m.Subject, []*call{cl})
	}
	c.mu.Unlock()
	if cl != nil {
		close(cl.stored)
	}
}

// trackLocked records the stream sequence of a stored message of calls,
// those still waiting (see bySeq).
func (c *Cluster) trackLocked(ack *jetstream.PubAck, subject string, calls []*call) {
	if ack == nil || ack.Sequence == 0 {
		return
	}
	sm := &storedMsg{subject: subject}
	for _, cl := range calls {
		if c.pending[cl.key] == cl {
			cl.sseq = ack.Sequence
			sm.calls = append(sm.calls, cl)
		}
	}
	if sm.left = len(sm.calls); sm.left > 0 {
		c.bySeq[ack.Sequence] = sm
	}
}

// ErrDeliveriesExhausted: a task was handed to hosts
// Options.MaxDeliveries times (or more) and none of them answered: each
// died with it, or fell silent for longer than the AckWait. The call
// fails with an error matching it instead of waiting for ever, whether
// the last host said so (it answers the task with this error past
// MaxDeliveries) or the server did (its max-deliveries advisory, when
// hosts died on every delivery, the last ones included).
var ErrDeliveriesExhausted = errors.New("multiproc: cluster: the task's deliveries ran out")

// maxDeliveriesAdvisory is the part of the server's advisory
// (io.nats.jetstream.advisory.v1.max_deliver) that onMaxDeliveries reads.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// onMaxDeliveries is the server's word that it gave up delivering a
// stored task message: its calls fail with ErrDeliveriesExhausted, and
// the message, which no host will be given again, is purged.
func (c *Cluster) onMaxDeliveries(m *nats.Msg) {
	var a maxDeliveriesAdvisory
	if len(m.Data) > 4<<10 || json.Unmarshal(m.Data, &a) != nil || a.Stream != c.s.name || a.Consumer != c.s.consumer {
		return
	}
	c.mu.Lock()
	sm := c.bySeq[a.StreamSeq]
	delete(c.bySeq, a.StreamSeq)
	var calls []*call
	if sm != nil {
		for _, cl := range sm.calls {
			if c.pending[cl.key] == cl && cl.sseq == a.StreamSeq {
				cl.sseq = 0
				calls = append(calls, cl)
			}
		}
	}
	c.mu.Unlock()
	if len(calls) == 0 {
		return
	}
	for _, cl := range calls {
		c.finish(cl.key, nil, fmt.Errorf("%w: task %s was handed to hosts %d times and none answered (each died with it, or fell silent for longer than the AckWait %v)",
			ErrDeliveriesExhausted, cl.fn, a.Deliveries, c.opts.AckWait))
	}
	go c.purge(strings.TrimPrefix(sm.subject, c.s.tasks))
}

func (c *Cluster) onPublishErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	if m.Header.Get(hdrMulti) != "" {
		c.mu.Lock()
		delete(c.multi, m.Subject)
		c.mu.Unlock()
		prefix := strings.TrimPrefix(m.Subject, c.s.tasks)
		prefix = prefix[:strings.LastIndexByte(prefix, '.')+1]
		members, _ := decodeMulti(m.Data)
		for _, mb := range members {
			c.finish(prefix+strconv.FormatUint(mb.seq, 10), nil, fmt.Errorf("multiproc: cluster: queueing task %s on %s: %w", mb.fn, c.where(), err))
		}
		return
	}
	c.finish(m.Header.Get(hdrID), nil, fmt.Errorf("multiproc: cluster: queueing task %s on %s: %w", m.Header.Get(hdrFunc), c.where(), err))
}

// onDisconnect fails every waiting call: their answers may be lost while
// the connection is down. Their tasks are purged and stopped once it is
// back (onReconnect), so none of them runs for nobody.
func (c *Cluster) onDisconnect(_ *nats.Conn, err error) {
	why := fmt.Errorf("%w (%s): the connection dropped while the task was queued or running", ErrNotConnected, c.where())
	if err != nil {
		why = fmt.Errorf("%w (%s): the connection dropped while the task was queued or running: %w", ErrNotConnected, c.where(), err)
	}
	c.failAll(why)
}

// failAll fails every waiting call with why and starts a new epoch: the
// old epoch's tasks are purged and stopped by purgeStale (at once, or
// on reconnecting).
func (c *Cluster) failAll(why error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	calls := c.pending
	c.pending = map[string]*call{}
	c.bySeq = map[uint64]*storedMsg{}
	c.stale = append(c.stale, c.epoch)
	c.epoch++
	c.mu.Unlock()
	for _, cl := range calls {
		if cl.stop != nil {
			cl.stop()
		}
		c.failed.Add(1)
		cl.done(nil, why)
	}
}

func (c *Cluster) onReconnect(*nats.Conn) { c.purgeStale() }

// purgeStale purges the tasks of past epochs from the queue and stops
// them on their hosts.
func (c *Cluster) purgeStale() {
	c.mu.Lock()
	stale := c.stale
	c.stale = nil
	c.mu.Unlock()
	go func() {
		for _, e := range stale {
			prefix := c.id + "." + strconv.Itoa(e) + "."
			c.cancel(prefix)
			c.purge(prefix)
		}
	}()
}

func (c *Cluster) onHost(m *nats.Msg) {
	var h HostStats
	if len(m.Data) > 4<<10 || decodeHost(m.Data, &h) != nil {
		return
	}
	c.mu.Lock()
	c.addHostLocked(h)
	c.mu.Unlock()
}

// Bounds on what a heartbeat (anyone's: hosts are members, not proven)
// may cost a client.
const (
	maxHosts          = 4096 // hosts remembered at once
	maxHostProcesses  = 1024 // worker processes one host may claim
	maxHostFieldBytes = 256  // its ID, name and build
)

// addHostLocked records a heartbeat: clamped, and bounded in count (the
// silent are forgotten first; when every one is fresh, a newcomer waits).
func (c *Cluster) addHostLocked(h HostStats) {
	if h.ID == "" || len(h.ID) > maxHostFieldBytes || len(h.Name) > maxHostFieldBytes || len(h.Build) > maxHostFieldBytes {
		return
	}
	h.Processes = min(max(h.Processes, 0), maxHostProcesses)
	h.Seen = time.Now()
	if _, ok := c.hosts[h.ID]; !ok && len(c.hosts) >= maxHosts {
		cutoff := h.Seen.Add(-hostExpiry)
		for id, o := range c.hosts {
			if o.Seen.Before(cutoff) {
				delete(c.hosts, id)
			}
		}
		if len(c.hosts) >= maxHosts {
			return
		}
	}
	c.hosts[h.ID] = h
}

// pingHosts asks every host for its heartbeat now and waits up to d for
// the answers.
func (c *Cluster) pingHosts(ctx context.Context, d time.Duration) {
	hosts, err := pingHosts(ctx, c.nc, c.s, d)
	if err != nil {
		return
	}
	c.mu.Lock()
	for _, h := range hosts {
		c.addHostLocked(h)
	}
	c.mu.Unlock()
}

// Close stops the cluster client: calls still waiting fail with an error
// matching multiproc.ErrPoolClosed (their tasks are withdrawn from the
// queue and stopped on their hosts), local workers stop, and the embedded
// server, if any, shuts down and its store is removed. Hosts of other
// processes are not affected. Calling it again returns the first result.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		close(c.quit)
		calls := c.pending
		c.pending = map[string]*call{}
		c.mu.Unlock()
		for _, cl := range calls {
			if cl.stop != nil {
				cl.stop()
			}
			c.cancel(cl.key)
			cl.done(nil, fmt.Errorf("%w: the cluster client was closed while %s was queued or running", multiproc.ErrPoolClosed, cl.fn))
		}
		if c.submitted.Load() > 0 && c.st != nil && c.nc.IsConnected() {
			c.purge(c.id + ".")
		}
		c.shutdown()
	})
	return c.closeErr
}

// shutdown releases what Connect made, in reverse.
func (c *Cluster) shutdown() {
	if c.local != nil {
		c.local.cancel()
		select {
		case <-c.local.done:
		case <-time.After(30 * time.Second):
			c.closeErr = errors.New("multiproc: cluster: local workers did not stop within 30s")
		}
		c.local.nc.Close()
	}
	for _, s := range c.subs {
		s.Unsubscribe()
	}
	if c.nc != nil {
		flush(c.nc)
		c.nc.Close()
	}
	if c.emb != nil {
		c.emb.stop()
	}
}

// ErrBuildMismatch: the cluster's hosts run other builds of the program
// (see the package doc, "One program per queue"), none this one's, so
// nobody can run its tasks exactly. Calls that wait fail with it after
// mismatchAfter; they are never run by a host of another build.
var ErrBuildMismatch = errors.New("multiproc: cluster: no host runs this build of the program")

// mismatchAfter is how long calls wait for a host of their build while
// only hosts of other builds are seen.
var mismatchAfter = 10 * time.Second

// watchBuild fails the waiting calls with ErrBuildMismatch once, for
// mismatchAfter, hosts have been seen and none of them runs this build.
func (c *Cluster) watchBuild() {
	tick := time.NewTicker(heartbeat / 4)
	defer tick.Stop()
	var since time.Time
	for {
		select {
		case <-c.quit:
			return
		case <-tick.C:
		}
		// A host of this build counts for longer than in Workers: a
		// late heartbeat must not fail calls.
		mine, others := c.builds(hostExpiry + mismatchAfter)
		c.mu.Lock()
		waiting := len(c.pending) > 0
		c.mu.Unlock()
		if mine > 0 || len(others) == 0 || !waiting {
			since = time.Time{}
			continue
		}
		if since.IsZero() {
			since = time.Now()
			continue
		}
		if time.Since(since) < mismatchAfter {
			continue
		}
		since = time.Time{}
		c.failAll(fmt.Errorf("%w: this program is build %s, the %d hosts seen for %v run builds %s (another program under the same Options.Name, or another version of it: start hosts of this build, or use another Name)",
			ErrBuildMismatch, fingerprint(), len(others), mismatchAfter, strings.Join(others, ", ")))
		c.purgeStale()
	}
}

// builds counts the hosts of this build seen within window and lists
// the other builds seen within hostExpiry.
func (c *Cluster) builds(window time.Duration) (mine int, others []string) {
	me := fingerprint()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	cutoff := now.Add(-hostExpiry)
	seen := map[string]bool{}
	for id, h := range c.hosts {
		if h.Seen.Before(now.Add(-window)) {
			delete(c.hosts, id) // silent for long: forgotten
			continue
		}
		switch {
		case h.Build == me:
			if h.Seen.After(now.Add(-window)) {
				mine++
			}
		case h.Seen.Before(cutoff):
		case !seen[h.Build] && len(others) < 8:
			seen[h.Build] = true
			others = append(others, h.Build)
		}
	}
	return mine, others
}
