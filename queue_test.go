//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

type item struct {
	Producer int
	Seq      int
	Note     string
}

type prodJob struct {
	Q        *multiproc.Queue[item]
	Producer int
	N        int
	Done     *multiproc.Array[int64] // Done[Producer] = Puts that returned
}

type consJob struct {
	Q     *multiproc.Queue[item]
	Seen  *multiproc.Array[int64] // per producer: messages received
	Last  *multiproc.Array[int64] // per consumer×producer: last seq received
	Index int
	Total *multiproc.Value[int64] // messages received by all consumers
	Want  int64
}

var (
	produce = multiproc.Register("test.produce", func(ctx context.Context, j prodJob) (int, error) {
		for i := range j.N {
			if err := j.Q.Put(ctx, item{Producer: j.Producer, Seq: i, Note: "n"}); err != nil {
				return i, err
			}
			if j.Done != nil {
				j.Done.Store(j.Producer, int64(i+1))
			}
		}
		return j.N, nil
	})
	consume = multiproc.Register("test.consume", func(ctx context.Context, j consJob) (int, error) {
		n := 0
		for j.Total.Load() < j.Want {
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			it, err := j.Q.Get(short)
			cancel()
			if errors.Is(err, multiproc.ErrEmpty) {
				continue
			}
			if err != nil {
				return n, err
			}
			// FIFO per producer: each consumer sees a producer's
			// messages in increasing order.
			slot := j.Index*8 + it.Producer
			if last := j.Last.Load(slot); int64(it.Seq) <= last {
				return n, errors.New("a producer's messages arrived out of order")
			}
			j.Last.Store(slot, int64(it.Seq))
			j.Seen.Add(it.Producer, 1)
			j.Total.Add(1)
			n++
		}
		return n, nil
	})
	putBig = multiproc.Register("test.putBig", func(ctx context.Context, q *multiproc.Queue[[]byte]) (int, error) {
		b := make([]byte, 64<<20)
		for i := range b {
			b[i] = byte(i % 253)
		}
		return 0, q.Put(ctx, b)
	})
)

func TestQueueInProcess(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	q, err := multiproc.NewQueue[item](3)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Empty() || q.Full() || q.Len() != 0 {
		t.Fatal("new queue not empty")
	}
	if _, err := q.TryGet(); !errors.Is(err, multiproc.ErrEmpty) {
		t.Fatalf("TryGet on empty = %v", err)
	}
	for i := range 3 {
		if err := q.Put(ctx, item{Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	if !q.Full() || q.Len() != 3 {
		t.Fatal("queue of 3 not full")
	}
	if err := q.TryPut(item{}); !errors.Is(err, multiproc.ErrFull) {
		t.Fatalf("TryPut on full = %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := q.Put(short, item{}); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, multiproc.ErrFull) {
		t.Fatalf("Put on full past deadline = %v", err)
	}
	for i := range 3 {
		it, err := q.Get(ctx)
		if err != nil || it.Seq != i {
			t.Fatalf("Get %d = %+v, %v", i, it, err)
		}
	}
	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if _, err := q.Get(short2); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, multiproc.ErrEmpty) {
		t.Fatalf("Get on empty past deadline = %v", err)
	}
	q.Close()
	if err := q.TryPut(item{}); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("TryPut after Close = %v", err)
	}
}

func TestQueueManyProducersAndConsumers(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	const producers, perProducer, consumers = 4, 50000, 2
	q, err := multiproc.NewQueue[item](1000)
	if err != nil {
		t.Fatal(err)
	}
	seen, _ := multiproc.NewArray[int64](8)
	last, _ := multiproc.NewArray[int64](8 * consumers)
	for i := range last.Len() {
		last.Store(i, -1)
	}
	total, _ := multiproc.NewValue[int64](0)
	var ps []*multiproc.Process
	for c := range consumers {
		ps = append(ps, start(t, consume.Process(consJob{Q: q, Seen: seen, Last: last, Index: c, Total: total, Want: producers * perProducer})))
	}
	for i := range producers {
		ps = append(ps, start(t, produce.Process(prodJob{Q: q, Producer: i, N: perProducer})))
	}
	joinAll(t, ctx, ps)
	for i := range producers {
		if seen.Load(i) != perProducer {
			t.Fatalf("producer %d: %d messages received, want %d", i, seen.Load(i), perProducer)
		}
	}
	if total.Load() != producers*perProducer || q.Len() != 0 {
		t.Fatalf("total %d, left %d", total.Load(), q.Len())
	}
}

func TestQueue64MiBFromExitedProducer(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	q, err := multiproc.NewQueue[[]byte](0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := putBig.Call(ctx, q); err != nil {
		t.Fatal(err)
	}
	// The producer has exited; its message is still there.
	b, err := q.Get(ctx)
	if err != nil || len(b) != 64<<20 {
		t.Fatalf("64 MiB message: %d bytes, %v", len(b), err)
	}
	for i := 0; i < len(b); i += 4099 {
		if b[i] != byte(i%253) {
			t.Fatalf("byte %d = %d", i, b[i])
		}
	}
}

func TestQueueProducerKilledMidStream(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	q, _ := multiproc.NewQueue[item](0)
	done, _ := multiproc.NewArray[int64](2)
	killed := produce.Process(prodJob{Q: q, Producer: 0, N: 1 << 30, Done: done})
	healthy := produce.Process(prodJob{Q: q, Producer: 1, N: 20000, Done: done})
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	if err := healthy.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the producer to put some messages", func() bool { return done.Load(0) > 5000 })
	killed.Kill()
	killed.Join(ctx)
	if err := healthy.Join(ctx); err != nil {
		t.Fatal(err)
	}
	returned := done.Load(0)
	var got [2]int64
	for {
		it, err := q.TryGet()
		if errors.Is(err, multiproc.ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if int64(it.Seq) != got[it.Producer] {
			t.Fatalf("producer %d: got seq %d, want %d (a gap or a duplicate)", it.Producer, it.Seq, got[it.Producer])
		}
		got[it.Producer]++
	}
	if got[1] != 20000 {
		t.Fatalf("healthy producer: %d of 20000", got[1])
	}
	// Every Put that returned is there; at most the one in flight more.
	if got[0] < returned || got[0] > returned+1 {
		t.Fatalf("killed producer: %d messages in the queue, %d Puts returned", got[0], returned)
	}
	// And the queue still works.
	if err := q.Put(ctx, item{Seq: 7}); err != nil {
		t.Fatal(err)
	}
	if it, err := q.Get(ctx); err != nil || it.Seq != 7 {
		t.Fatal(it, err)
	}
}

func TestQueueConsumerKilled(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	q, _ := multiproc.NewQueue[item](0)
	for i := range 30000 {
		q.Put(ctx, item{Seq: i})
	}
	seen, _ := multiproc.NewArray[int64](8)
	last, _ := multiproc.NewArray[int64](8)
	total, _ := multiproc.NewValue[int64](0)
	last.Store(0, -1)
	p := consume.Process(consJob{Q: q, Seen: seen, Last: last, Total: total, Want: 1 << 40})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the consumer to take some messages", func() bool { return total.Load() > 1000 })
	syscall.Kill(p.Pid(), syscall.SIGKILL)
	p.Join(ctx)
	// The consumer counts a message after its Get returns; a kill between
	// the two leaves one message taken but not counted.
	taken := total.Load()
	left := int64(q.Len())
	if taken+left != 30000 && taken+left != 29999 {
		t.Fatalf("consumer took %d, %d left: messages lost or duplicated", taken, left)
	}
	// The rest is intact and in order.
	prev := -1
	for range left {
		it, err := q.Get(ctx)
		if err != nil || it.Seq <= prev {
			t.Fatal(it, err)
		}
		prev = it.Seq
	}
	if prev != 29999 {
		t.Fatalf("last message %d", prev)
	}
}

// TestQueueCloseIsIdempotent: a second Close returns nil, and what fails
// after Close fails with the package's own ErrClosed.
func TestQueueCloseIsIdempotent(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	q, err := multiproc.NewQueue[int](0)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := q.Put(ctx, 1); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("Put after Close = %v", err)
	}
	if _, err := q.Get(ctx); !errors.Is(err, multiproc.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	// No panic on a closed Queue (it used to panic): the answers of an
	// empty one, as Python's qsize after close.
	if n, full, empty := q.Len(), q.Full(), q.Empty(); n != 0 || full || !empty {
		t.Fatalf("after Close: Len %d Full %v Empty %v, want 0 false true", n, full, empty)
	}
}
