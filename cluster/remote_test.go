package cluster

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/nats-io/nats.go/jetstream"
)

const testAckWait = 2 * time.Second

// remote is a client with an embedded server on loopback and no local
// workers, and n host processes (one worker each) joined to it.
func remote(t *testing.T, ctx context.Context, n, maxDeliveries int) (*Cluster, []*hostProc) {
	t.Helper()
	c := connect(t, ctx, Options{Listen: "127.0.0.1:0", Processes: -1, AckWait: testAckWait, MaxDeliveries: maxDeliveries})
	if !strings.HasPrefix(c.URL(), "nats://127.0.0.1:") {
		t.Fatalf("URL() = %q", c.URL())
	}
	var hs []*hostProc
	for range n {
		hs = append(hs, startHost(t, c.URL(), 1, testAckWait, maxDeliveries))
	}
	waitFor(t, time.Minute, "the hosts to join", func() bool { return c.Workers() == n })
	return c, hs
}

// Two hosts in other processes both do work, and Map's results come back
// in order.
func TestRemoteHostsShareWork(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c, _ := remote(t, ctx, 2, 0)
	jobs := make([]counted, 32)
	for i := range jobs {
		jobs[i] = counted{N: i, Ms: 50}
	}
	got, err := slow.Map(ctx, c, jobs)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != 2*i {
			t.Fatalf("Map[%d] = %d, want %d", i, v, 2*i)
		}
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Hosts) != 2 || st.Workers != 2 {
		t.Fatalf("Stats = %+v, want 2 hosts", st)
	}
	for _, h := range st.Hosts {
		if h.Done == 0 {
			t.Errorf("host %s did no work: %+v", h.Name, st.Hosts)
		}
	}
	// Status sees the same from outside.
	st2, err := Status(ctx, Options{URL: c.URL()})
	if err != nil || len(st2.Hosts) != 2 {
		t.Fatalf("Status = %+v, %v", st2, err)
	}
	var b strings.Builder
	st2.WriteTo(&b)
	t.Log("\n" + b.String())
}

// A host SIGKILLed in the middle of a Map: its tasks go to the other host
// after the ack wait, and every result arrives, once, in order.
func TestRemoteHostKilledMidMap(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	c, hs := remote(t, ctx, 2, 0)
	log := filepath.Join(t.TempDir(), "runs")
	jobs := make([]counted, 40)
	for i := range jobs {
		jobs[i] = counted{Path: log, N: i, Ms: 100}
	}
	type out struct {
		vs  []int
		err error
	}
	done := make(chan out, 1)
	go func() {
		vs, err := slow.Map(ctx, c, jobs)
		done <- out{vs, err}
	}()
	// Both hosts hold tasks once each has run one item.
	waitFor(t, time.Minute, "both hosts to be busy", func() bool {
		st, err := c.Stats(ctx)
		if err != nil || len(st.Hosts) != 2 {
			return false
		}
		return st.Hosts[0].Running > 0 && st.Hosts[1].Running > 0 && total(runs(t, log)) >= 2
	})
	hs[0].kill()
	var o out
	select {
	case o = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("Map did not finish within 2 minutes of a host's death")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	for i, v := range o.vs {
		if v != 2*i {
			t.Fatalf("Map[%d] = %d, want %d", i, v, 2*i)
		}
	}
	got := runs(t, log)
	for i := range jobs {
		if got[i] == 0 {
			t.Fatalf("item %d never ran: %v", i, got)
		}
	}
	if total(got) == len(jobs) {
		t.Logf("no item ran twice (the killed host had not started any of its held chunks' items)")
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var redelivered uint64
	for _, h := range st.Hosts {
		redelivered += h.Redelivered
	}
	if redelivered == 0 {
		t.Fatalf("no task was redelivered after a host's death: %+v", st)
	}
}

// A task that takes its host down is handed out at most MaxDeliveries
// times, then fails with a clear error.
func TestRemoteMaxDeliveries(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	c, _ := remote(t, ctx, 2, 1)
	log := filepath.Join(t.TempDir(), "runs")
	_, err := killHost.Apply(ctx, c, counted{Path: log, N: 1})
	if !errors.Is(err, ErrDeliveriesExhausted) || !strings.Contains(err.Error(), "handed to a host 1 times") || strings.Count(err.Error(), "multiproc:") != 1 {
		t.Fatalf("error = %v, want the delivery bound's", err)
	}
	if n := total(runs(t, log)); n != 1 {
		t.Fatalf("the host-killing task ran %d times, want 1", n)
	}
}

// A task whose host is SIGKILLed on every delivery, the last ones
// included (so no host ever answers it with the delivery bound's error),
// and whose caller has no deadline: the server's max-deliveries advisory
// fails the call with ErrDeliveriesExhausted instead of leaving it
// waiting for ever, and the task leaves the queue.
func TestDeliveriesExhaustedNoDeadline(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	const ackWait = 500 * time.Millisecond
	c := connect(t, ctx, Options{Listen: "127.0.0.1:0", Processes: -1, AckWait: ackWait, MaxDeliveries: 1})
	// The server gives a task MaxDeliveries+2 tries (see consumerConfig):
	// one host for each, each dying at its delivery.
	var hs []*hostProc
	for range 3 {
		hs = append(hs, startHost(t, c.URL(), 1, ackWait, 1, envDie+"=1"))
	}
	waitFor(t, time.Minute, "the hosts to join", func() bool { return c.Workers() == 3 })
	r := square.ApplyAsync(c, 7) // no deadline, no cancel
	_, err := r.Get(ctx)
	if !errors.Is(err, ErrDeliveriesExhausted) || strings.Count(err.Error(), "multiproc:") != 1 {
		t.Fatalf("Get = %v, want ErrDeliveriesExhausted", err)
	}
	t.Log(err)
	dead := 0
	for _, h := range hs {
		select {
		case <-h.done:
			dead++
		default:
		}
	}
	if dead == 0 {
		t.Fatal("no host died: the task was never delivered")
	}
	waitFor(t, 30*time.Second, "the task to leave the queue", func() bool {
		st, err := c.Stats(ctx)
		return err == nil && st.Queued == 0 && st.Running == 0
	})
}

// The same for tasks that travel several to a message (a burst of
// ApplyAsync): every one of them fails with ErrDeliveriesExhausted when
// the server gives up on their message. The dying host here is a member
// connection that pulls the messages and never answers, as a host killed
// at each delivery looks to the server.
func TestDeliveriesExhaustedMulti(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	const ackWait = 500 * time.Millisecond
	c := connect(t, ctx, Options{Listen: "127.0.0.1:0", Processes: -1, AckWait: ackWait, MaxDeliveries: 1})
	// Submitted with a ctx nobody can cancel (the Func methods' always
	// can: their AsyncResult's Cancel), from several goroutines at once,
	// so that they pile up while the client publishes and travel several
	// to a message. Their arguments are never read.
	const n = 200
	outcomes := make(chan error, n)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range n / 4 {
				c.Submit(context.Background(), &multiproc.Task{Func: "cluster.square", Args: [][]byte{{1}}}, func(_ []multiproc.Result, err error) { outcomes <- err })
			}
		})
	}
	wg.Wait()
	var errs asyncErrs
	nc := joinAs(t, c, roleHost, &errs)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, c.s.name, c.s.consumer)
	if err != nil {
		t.Fatal(err)
	}
	pulled, multi := 0, 0
	stop := make(chan struct{})
	pulling := make(chan struct{})
	go func() {
		defer close(pulling)
		for {
			select {
			case <-stop:
				return
			default:
			}
			batch, err := cons.Fetch(64, jetstream.FetchMaxWait(200*time.Millisecond))
			if err != nil {
				continue
			}
			for m := range batch.Messages() {
				pulled++
				if m.Headers().Get(hdrMulti) != "" {
					multi++
				}
			}
		}
	}()
	for i := range n {
		select {
		case err := <-outcomes:
			if !errors.Is(err, ErrDeliveriesExhausted) {
				t.Fatalf("task %d: %v, want ErrDeliveriesExhausted", i, err)
			}
		case <-ctx.Done():
			t.Fatalf("%d tasks of %d still wait: %v", n-i, n, ctx.Err())
		}
	}
	close(stop)
	<-pulling
	if multi == 0 {
		t.Fatalf("pulled %d messages, none of several tasks", pulled)
	}
	t.Logf("%d deliveries, %d of messages of several tasks", pulled, multi)
}

// A crash inside a task on a remote host: ErrWorkerDied, not redelivered.
func TestRemoteWorkerDied(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c, _ := remote(t, ctx, 1, 0)
	log := filepath.Join(t.TempDir(), "runs")
	_, err := crash.Apply(ctx, c, counted{Path: log, N: 1})
	if !errors.Is(err, multiproc.ErrWorkerDied) {
		t.Fatalf("error = %v, want ErrWorkerDied", err)
	}
	// The host answered it: nothing is left to redeliver, so a later
	// task on the same one-worker host runs after it, and it did not
	// run again.
	if v, err := square.Apply(ctx, c, 5); err != nil || v != 25 {
		t.Fatalf("Apply = %d, %v", v, err)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := total(runs(t, log)); n != 1 || st.Queued != 0 || st.Running != 0 {
		t.Fatalf("crashing task ran %d times; queue %+v", n, st)
	}
}

// A task cancelled while no host is there is purged from the queue: a
// host that joins later never runs it.
func TestRemoteCancelledNeverRunsOnLateHost(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := connect(t, ctx, Options{Listen: "127.0.0.1:0", Processes: -1, AckWait: testAckWait})
	log := filepath.Join(t.TempDir(), "runs")
	actx, cancel := context.WithCancel(ctx)
	r := make(chan error, 1)
	go func() {
		_, err := slow.Apply(actx, c, counted{Path: log, N: 1})
		r <- err
	}()
	waitFor(t, time.Minute, "the task to be queued", func() bool {
		st, err := c.Stats(ctx)
		return err == nil && st.Queued == 1
	})
	cancel()
	select {
	case err := <-r:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Apply did not return within 10s of its cancel")
	}
	waitFor(t, time.Minute, "the queue to be purged", func() bool {
		st, err := c.Stats(ctx)
		return err == nil && st.Queued == 0
	})
	startHost(t, c.URL(), 1, testAckWait, 0)
	waitFor(t, time.Minute, "the host to join", func() bool { return c.Workers() == 1 })
	if v, err := slow.Apply(ctx, c, counted{Path: log, N: 2}); err != nil || v != 4 {
		t.Fatalf("Apply = %d, %v", v, err)
	}
	if got := runs(t, log); got[1] != 0 || got[2] != 1 {
		t.Fatalf("runs = %v: the cancelled task ran", got)
	}
}

// A host told to stop hands its tasks back at once: another host finishes
// them long before the ack wait would have passed.
func TestRemoteHostStopHandsBack(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	const ackWait = time.Minute
	c := connect(t, ctx, Options{Listen: "127.0.0.1:0", Processes: -1, AckWait: ackWait})
	a := startHost(t, c.URL(), 1, ackWait, 0)
	waitFor(t, time.Minute, "host A to join", func() bool { return c.Workers() == 1 })
	log := filepath.Join(t.TempDir(), "runs")
	r := slow.ApplyAsync(c, counted{Path: log, N: 1, Ms: 8000}) // long enough that A cannot finish it while it stops, on a loaded machine
	waitFor(t, time.Minute, "the task to start on A", func() bool { return total(runs(t, log)) == 1 })
	startHost(t, c.URL(), 1, ackWait, 0)
	waitFor(t, time.Minute, "host B to join", func() bool { return c.Workers() == 2 })
	start := time.Now()
	a.stop(t)
	v, err := r.Get(ctx)
	if err != nil || v != 2 {
		t.Fatalf("Get = %d, %v", v, err)
	}
	if d := time.Since(start); d > ackWait/2 {
		t.Fatalf("the task took %v after its host stopped: not handed back", d)
	}
	if got := runs(t, log); got[1] != 2 {
		t.Fatalf("runs = %v, want the task started on A then run on B", got)
	}
}
