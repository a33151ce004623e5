//go:build linux && (amd64 || arm64)

package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func envs(kv ...any) []string {
	var out []string
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, fmt.Sprintf("RING_%v=%v", kv[i], kv[i+1]))
	}
	return out
}

// waitKilled waits for a child that is expected to die by SIGKILL.
func (c *child) waitKilled(t testing.TB, ctx context.Context) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child %s: want death by SIGKILL, got %v\n%s", c.desc, err, c.stderr.String())
		}
	case <-ctx.Done():
		c.kill(t)
		t.Fatalf("child %s did not die", c.desc)
	}
}

func putPills(t testing.TB, ctx context.Context, r *Ring, n int) {
	t.Helper()
	for range n {
		if err := r.Put(ctx, makeMsg(nil, pillID, 0, msgHdr)); err != nil {
			t.Fatal(err)
		}
	}
}

// checkConsumers verifies the consumers' own counters (no corrupt
// message, no duplicate, FIFO per producer) and returns, for each producer
// id and sequence number, how many consumers recorded it.
func checkConsumers(t testing.TB, rp *report, cons []int) func(id, seq uint32) []int {
	t.Helper()
	for _, c := range cons {
		if b, d, f := rp.get(c, rcBad), rp.get(c, rcDup), rp.get(c, rcFifo); b+d+f != 0 {
			t.Errorf("consumer %d: %d corrupt, %d duplicate, %d out-of-order messages", c, b, d, f)
		}
	}
	return func(id, seq uint32) []int {
		var who []int
		for _, c := range cons {
			if rp.has(c, id, seq) {
				who = append(who, c)
			}
		}
		return who
	}
}

// TestProcMPMC: 4 producer processes × 150k messages, 2 consumer processes;
// every message is received exactly once, in order per producer.
func TestProcMPMC(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	const producers, consumers = 4, 2
	per := 150000
	if testing.Short() {
		per = 20000
	}
	r := mkRing(t, 4096, 0)
	rp := newReport(t, per)
	start := time.Now()
	var cs, ps []*child
	for c := range consumers {
		cs = append(cs, spawn(t, ctx, r, rp, "consume", envs("ID", c)...))
	}
	for p := range producers {
		ps = append(ps, spawn(t, ctx, r, rp, "produce", envs("ID", p, "N", per, "MIN", 8, "MAX", 64)...))
	}
	for _, p := range ps {
		p.wait(t, ctx)
	}
	putPills(t, ctx, r, consumers)
	for _, c := range cs {
		c.wait(t, ctx)
	}
	t.Logf("%d messages through %d+%d processes in %v", producers*per, producers, consumers, time.Since(start))
	checkConsumers(t, rp, []int{0, 1})
	total := 0
	for p := range producers {
		checkExactly(t, rp, []int{0, 1}, uint32(p), per)
	}
	for c := range consumers {
		total += int(rp.get(c, rcCount))
	}
	if total != producers*per || r.Len() != 0 {
		t.Fatalf("received %d of %d, Len %d", total, producers*per, r.Len())
	}
}

// TestProcBigMessageProducerExits: a producer process puts 64 MiB into a
// 1 MiB ring and exits before anyone reads (no join deadlock).
func TestProcBigMessageProducerExits(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	r := mkRing(t, 0, 1<<20)
	c := spawn(t, ctx, r, nil, "bigput", envs("N", 64<<20)...)
	c.wait(t, ctx)
	if r.Len() != 1 {
		t.Fatalf("Len = %d after the producer exited", r.Len())
	}
	b, err := r.Get(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, bigMsg(64<<20)) {
		t.Fatalf("64 MiB message differs (len %d)", len(b))
	}
}

// TestProcDieAt kills a process at exact points inside the critical
// sections (holding the locks) and checks that the queue carries on with
// exactly the committed messages.
func TestProcDieAt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		point hookPoint
	}{
		{"producer-halfway", hookPutHalfway},
		{"producer-before-commit", hookPutWritten},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			r := mkRing(t, 0, 4096)
			c := spawn(t, ctx, r, nil, "produce", envs("ID", 1, "N", 10, "MIN", 300, "MAX", 300, "DIE_POINT", int(tc.point), "DIE_NTH", 3)...)
			c.waitKilled(t, ctx)
			if n := r.Len(); n != 2 {
				t.Fatalf("Len = %d, want the 2 committed messages", n)
			}
			if err := r.Put(ctx, makeMsg(nil, 2, 0, 50)); err != nil {
				t.Fatal(err)
			}
			want := [][2]uint32{{1, 0}, {1, 1}, {2, 0}}
			for _, w := range want {
				b := mustGet(t, ctx, r)
				if id, seq, ok := parseMsg(b); !ok || id != w[0] || seq != w[1] {
					t.Fatalf("got %d/%d (ok %v), want %d/%d", id, seq, ok, w[0], w[1])
				}
			}
			if _, err := r.TryGet(nil); err != ErrEmpty {
				t.Fatalf("after draining: %v", err)
			}
			if r.recovered.Load() == 0 {
				t.Fatal("the dead holder's lock was not taken over")
			}
		})
	}

	t.Run("grower", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		r := mkRing(t, 0, 4096)
		// Move the positions so that the live data wraps when the child grows.
		for i := range 3 {
			r.TryPut(makeMsg(nil, 9, uint32(i), 1000))
			mustGet(t, ctx, r)
		}
		lw := load64(r.layout)
		rp := newReport(t, 100)
		c := spawn(t, ctx, r, rp, "produce", envs("ID", 1, "N", 100, "MIN", 1000, "MAX", 1000, "DIE_POINT", int(hookGrowCopied), "DIE_NTH", 1)...)
		c.waitKilled(t, ctx)
		k := int(atomic.LoadUint64(rp.lastPut(1)))
		if k < 2 || r.Len() != k || load64(r.layout) != lw {
			t.Fatalf("child put %d messages, Len %d, layout %#x (was %#x)", k, r.Len(), load64(r.layout), lw)
		}
		var buf []byte
		for i := range 20 { // grows again, under the parent this time
			buf = makeMsg(buf, 2, uint32(i), 1000)
			if err := r.Put(ctx, buf); err != nil {
				t.Fatal(err)
			}
		}
		if load64(r.layout) == lw {
			t.Fatal("the ring did not grow")
		}
		for i := range k {
			if id, seq, ok := parseMsg(mustGet(t, ctx, r)); !ok || id != 1 || seq != uint32(i) {
				t.Fatalf("got %d/%d (ok %v), want 1/%d", id, seq, ok, i)
			}
		}
		for i := range 20 {
			if id, seq, ok := parseMsg(mustGet(t, ctx, r)); !ok || id != 2 || seq != uint32(i) {
				t.Fatalf("got %d/%d (ok %v), want 2/%d", id, seq, ok, i)
			}
		}
		if r.Len() != 0 || r.recovered.Load() < 2 {
			t.Fatalf("Len %d, locks taken over %d (want both)", r.Len(), r.recovered.Load())
		}
	})

	t.Run("consumer-before-commit", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		r := mkRing(t, 0, 4096)
		for i := range 5 {
			r.TryPut(makeMsg(nil, 1, uint32(i), 100))
		}
		c := spawn(t, ctx, r, nil, "consume", envs("DIE_POINT", int(hookGetCopied), "DIE_NTH", 2)...)
		c.waitKilled(t, ctx)
		if n := r.Len(); n != 4 {
			t.Fatalf("Len = %d, want 4 (message 1 was never taken)", n)
		}
		for i := 1; i < 5; i++ {
			if id, seq, ok := parseMsg(mustGet(t, ctx, r)); !ok || id != 1 || seq != uint32(i) {
				t.Fatalf("got %d/%d (ok %v), want 1/%d", id, seq, ok, i)
			}
		}
		if r.recovered.Load() == 0 {
			t.Fatal("the dead holder's lock was not taken over")
		}
	})
}

// killSoon waits until the child has made progress (its report word moves),
// then kills it at a random moment.
func killSoon(t testing.TB, ctx context.Context, c *child, rng *rand.Rand, progress func() uint64) {
	t.Helper()
	for progress() == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("child %s made no progress", c.desc)
		case err := <-c.done:
			c.done <- err
			t.Fatalf("child %s exited early: %v\n%s", c.desc, err, c.stderr.String())
		case <-time.After(200 * time.Microsecond):
		}
	}
	time.Sleep(time.Duration(rng.IntN(20000)) * time.Microsecond)
	c.kill(t)
}

// checkExactly checks that messages 0..n-1 of producer id were received
// exactly once each, and no other message of id.
func checkExactly(t testing.TB, rp *report, cons []int, id uint32, n int) {
	t.Helper()
	total := 0
	for _, c := range cons {
		total += rp.count(c, id)
	}
	for s := range n {
		k := 0
		for _, c := range cons {
			if rp.has(c, id, uint32(s)) {
				k++
			}
		}
		if k != 1 {
			t.Fatalf("producer %d (%d messages): message %d received %d times", id, n, s, k)
		}
	}
	if total != n {
		t.Fatalf("producer %d: %d messages received, want 0..%d", id, total, n-1)
	}
}

// checkPrefix checks that killed producer id delivered exactly messages
// 0..n-1, where n is the count of Puts that returned (or one more: the Put
// in flight may have committed just before the kill), and returns n.
func checkPrefix(t testing.TB, rp *report, cons []int, id uint32) int {
	t.Helper()
	last := int(atomic.LoadUint64(rp.lastPut(int(id))))
	n := 0
	for _, c := range cons {
		n += rp.count(c, id)
	}
	if n != last && n != last+1 {
		t.Fatalf("killed producer %d: %d Puts returned, %d messages delivered", id, last, n)
	}
	checkExactly(t, rp, cons, id, n)
	return n
}

// TestProcKillProducer SIGKILLs producer processes at random moments, with a
// small ring so they are often inside Put or growing it.
func TestProcKillProducer(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const kills = 6

	t.Run("no-consumer", func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		r := mkRing(t, 0, 4096)
		rp := newReport(t, 200000)
		steady := spawn(t, ctx, r, rp, "produce", envs("ID", 0, "N", 3000, "MIN", 8, "MAX", 3000)...)
		for k := 1; k <= kills; k++ {
			c := spawn(t, ctx, r, rp, "produce", envs("ID", k, "N", 0, "MIN", 8, "MAX", 3000)...)
			killSoon(t, ctx, c, rng, func() uint64 { return atomic.LoadUint64(rp.lastPut(k)) })
		}
		steady.wait(t, ctx)
		n := r.Len()
		cs := &consumer{rp: rp, c: repCons - 1}
		var buf []byte
		drained := 0
		for {
			var err error
			if buf, err = r.TryGet(buf); err == ErrEmpty {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			cs.record(buf)
			drained++
		}
		if drained != n {
			t.Fatalf("Len said %d, drained %d", n, drained)
		}
		cons := []int{repCons - 1}
		checkConsumers(t, rp, cons)
		checkExactly(t, rp, cons, 0, 3000)
		total := 3000
		for k := 1; k <= kills; k++ {
			total += checkPrefix(t, rp, cons, uint32(k))
		}
		if total != drained {
			t.Fatalf("accounted %d, drained %d", total, drained)
		}
		t.Logf("%d messages from the steady producer, %d from %d killed ones; locks taken over: producer %d, parent %d",
			3000, total-3000, kills, atomic.LoadUint64(rp.recov(0)), r.recovered.Load())
	})

	t.Run("with-consumers", func(t *testing.T) {
		ctx := testCtx(t, 60*time.Second)
		r := mkRing(t, 64, 4096)
		rp := newReport(t, 100000)
		c0 := spawn(t, ctx, r, rp, "consume", envs("ID", 0)...)
		c1 := spawn(t, ctx, r, rp, "consume", envs("ID", 1)...)
		steady := spawn(t, ctx, r, rp, "produce", envs("ID", 0, "N", 0, "MIN", 8, "MAX", 3000)...)
		for k := 1; k <= kills; k++ {
			c := spawn(t, ctx, r, rp, "produce", envs("ID", k, "N", 0, "MIN", 8, "MAX", 3000)...)
			killSoon(t, ctx, c, rng, func() uint64 { return atomic.LoadUint64(rp.lastPut(k)) })
		}
		atomic.StoreUint64(rp.stop(), 1)
		steady.wait(t, ctx)
		putPills(t, ctx, r, 2)
		c0.wait(t, ctx)
		c1.wait(t, ctx)
		cons := []int{0, 1}
		checkConsumers(t, rp, cons)
		n0 := int(atomic.LoadUint64(rp.lastPut(0)))
		checkExactly(t, rp, cons, 0, n0)
		total := n0
		for k := 1; k <= kills; k++ {
			total += checkPrefix(t, rp, cons, uint32(k))
		}
		t.Logf("%d messages from the steady producer, %d from %d killed ones; locks taken over: producer %d, consumers %d+%d",
			n0, total-n0, kills, atomic.LoadUint64(rp.recov(0)), rp.get(0, rcRecov), rp.get(1, rcRecov))
		if got := int(rp.get(0, rcCount) + rp.get(1, rcCount)); got != total || r.Len() != 0 {
			t.Fatalf("consumers got %d, accounted %d, Len %d", got, total, r.Len())
		}
	})
}

// TestProcKillConsumer SIGKILLs consumer processes at random moments (often
// holding the consumer lock, half-way through a Get). Consumers record each
// message just before their Get commits, so the accounting is exact: every
// message is received, and a message recorded twice must be the last one
// a killed consumer recorded (it died before committing, the message stayed).
func TestProcKillConsumer(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 8))
	const kills, producers = 8, 3
	r := mkRing(t, 256, 4096)
	rp := newReport(t, 300000)
	// Three producers against one or two consumers: the consumers are the
	// bottleneck, so a kill usually lands inside a Get.
	var ps []*child
	for p := range producers {
		ps = append(ps, spawn(t, ctx, r, rp, "produce", envs("ID", p, "N", 0, "MIN", 8, "MAX", 2000)...))
	}
	steady := spawn(t, ctx, r, rp, "consume", envs("ID", 0)...)
	for k := 1; k <= kills; k++ {
		c := spawn(t, ctx, r, rp, "consume", envs("ID", k)...)
		killSoon(t, ctx, c, rng, func() uint64 { return rp.get(k, rcCount) })
	}
	atomic.StoreUint64(rp.stop(), 1)
	for _, p := range ps {
		p.wait(t, ctx)
	}
	putPills(t, ctx, r, 1)
	steady.wait(t, ctx)

	cons := []int{0}
	for k := 1; k <= kills; k++ {
		cons = append(cons, k)
	}
	holders := checkConsumers(t, rp, cons)
	redelivered := 0
	sent := 0
	for p := range uint32(producers) {
		n := uint32(atomic.LoadUint64(rp.lastPut(int(p))))
		sent += int(n)
		distinct := 0
		for _, c := range cons {
			distinct += rp.count(c, p)
		}
		for s := range n {
			h := holders(p, s)
			if len(h) == 0 {
				t.Fatalf("message %d/%d lost", p, s)
			}
			// Besides the one that committed it, only killed consumers
			// whose last record it is may hold it.
			uncommitted := 0
			for _, c := range h {
				if c != 0 && rp.get(c, rcLast) == uint64(p)<<32|uint64(s)+1 {
					uncommitted++
				}
			}
			if len(h)-1 > uncommitted {
				t.Fatalf("message %d/%d received by %v", p, s, h)
			}
			redelivered += len(h) - 1
			distinct -= len(h)
		}
		if distinct != 0 {
			t.Fatalf("producer %d put %d messages, and %d more were received", p, n, distinct)
		}
	}
	got, recov := 0, 0
	for _, c := range cons {
		got += int(rp.get(c, rcCount))
		recov += int(rp.get(c, rcRecov))
	}
	t.Logf("%d messages; killed consumers received %d; %d redelivered after a kill; consumers took over %d locks from the dead",
		sent, got-int(rp.get(0, rcCount)), redelivered, recov)
	// A consumer killed between recording a message and counting it
	// (record's last two steps) holds it uncounted: at most one each.
	if got > sent+redelivered || got < sent+redelivered-kills || r.Len() != 0 {
		t.Fatalf("received %d (%d redelivered) of %d, Len %d", got, redelivered, sent, r.Len())
	}
}
