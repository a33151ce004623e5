//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

type connJob struct{ R *multiproc.Conn }

type gateJob struct {
	Started, Release *multiproc.Event
}

type sharedItem struct {
	V *multiproc.Value[int64]
	I int
}

// heldReadJob holds the worker (Started, Release) or reads R.
type heldReadJob struct {
	Started, Release *multiproc.Event
	R                *multiproc.Conn
}

var (
	// readConn returns the first message of its Conn.
	readConn = multiproc.Register("test.readConn", func(ctx context.Context, j connJob) (string, error) {
		b, err := j.R.RecvBytes()
		return string(b), err
	})
	// holdUntil blocks its worker until Release is set.
	holdUntil = multiproc.Register("test.holdUntil", func(ctx context.Context, j gateJob) (int, error) {
		j.Started.Set()
		return 0, j.Release.Wait(ctx)
	})
	addShared = multiproc.Register("test.addShared", func(ctx context.Context, it sharedItem) (int, error) {
		it.V.Add(1)
		return it.I, nil
	})
	heldRead = multiproc.Register("test.heldRead", func(ctx context.Context, j heldReadJob) (string, error) {
		if j.Started != nil {
			j.Started.Set()
			return "", j.Release.Wait(ctx)
		}
		b, err := j.R.RecvBytes()
		return string(b), err
	})
)

// holdPool returns a pool of one worker, busy until the returned func is
// called: tasks submitted meanwhile wait in the queue.
func holdPool(t *testing.T, ctx context.Context) (*multiproc.Pool, func()) {
	t.Helper()
	pool := newPool(t, multiproc.PoolOptions{Processes: 1})
	started, release := newEvent(t), newEvent(t)
	// Apply with a cancellable context: no other task is queued in the
	// busy worker's socket behind it (only uncancellable ones are).
	held := make(chan error, 1)
	go func() {
		_, err := holdUntil.Apply(ctx, pool, gateJob{started, release})
		held <- err
	}()
	if err := started.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	return pool, func() {
		release.Set()
		if err := <-held; err != nil {
			t.Error(err)
		}
	}
}

// A queued task carries its own shared objects: the caller closing its
// handle before the task is dispatched (as the Pipe docs advise) must not
// hand the worker whatever reuses the descriptor number (issue 9 item 1).
func TestQueuedTaskKeepsItsObjects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool, release := holdPool(t, ctx)
	r, w, err := multiproc.Pipe(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SendBytes([]byte("right")); err != nil {
		t.Fatal(err)
	}
	res := readConn.ApplyAsync(pool, connJob{r})
	// The task is queued behind the held one. Close the parent's end and
	// make a new pipe that takes the same descriptor numbers.
	r.Close()
	w.Close()
	r2, w2, err := multiproc.Pipe(false)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	defer w2.Close()
	if err := w2.SendBytes([]byte("wrong")); err != nil {
		t.Fatal(err)
	}
	release()
	got, err := res.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != "right" {
		t.Fatalf("the queued task read %q from another pipe, want %q", got, "right")
	}
	// The pool goes on serving.
	if pid, err := whoAmI.Apply(ctx, pool, 0); err != nil || pid <= 0 {
		t.Fatal(pid, err)
	}
}

// A queued Map chunk also keeps its objects: the first item holds the
// only worker, so the others wait in the queue while the caller closes
// its ends and makes new pipes that reuse their numbers.
func TestQueuedMapKeepsItsObjects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool := newPool(t, multiproc.PoolOptions{Processes: 1})
	started, release := newEvent(t), newEvent(t)
	jobs := []heldReadJob{{Started: started, Release: release}}
	var ends []*multiproc.Conn
	for range 3 {
		r, w, err := multiproc.Pipe(false)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.SendBytes([]byte("right")); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, heldReadJob{R: r})
		ends = append(ends, r, w)
	}
	type out struct {
		rs  []string
		err error
	}
	done := make(chan out, 1)
	go func() {
		rs, err := heldRead.Map(ctx, pool, jobs)
		done <- out{rs, err}
	}()
	// Map encodes every chunk before it sends the first: once the first
	// item runs, the others are queued.
	if err := started.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range ends {
		c.Close()
	}
	for range 3 {
		r, w, err := multiproc.Pipe(false)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		w.SendBytes([]byte("wrong"))
	}
	release.Set()
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	for i, s := range o.rs[1:] {
		if s != "right" {
			t.Fatalf("item %d read %q, want %q", i+1, s, "right")
		}
	}
}

// Apply with a context that is already done never sends the task: no
// worker is killed and the function never runs (issue 9 item 8).
func TestApplyDoneContextNeverRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool := newPool(t, multiproc.PoolOptions{Processes: 1})
	pid, err := whoAmI.Apply(ctx, pool, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := multiproc.NewValue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	dead, stop := context.WithCancel(ctx)
	stop()
	for i := range 20 {
		if _, err := addShared.Apply(dead, pool, sharedItem{v, i}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply with a done context: %v", err)
		}
		if r := addShared.ApplyAsync(pool, sharedItem{v, i}); r == nil {
			t.Fatal("nil AsyncResult")
		}
	}
	if _, err := addShared.Map(dead, pool, []sharedItem{{v, 1}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Map with a done context: %v", err)
	}
	for _, err := range addShared.IMap(dead, pool, func(yield func(sharedItem) bool) { yield(sharedItem{v, 1}) }) {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("IMap with a done context: %v", err)
		}
	}
	// The 20 ApplyAsync ran; the cancelled calls did not.
	pid2, err := whoAmI.Apply(ctx, pool, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pid2 != pid {
		t.Fatalf("the worker changed (%d → %d): a cancelled task was dispatched and killed", pid, pid2)
	}
	if got := v.Load(); got != 20 {
		t.Fatalf("counter %d, want 20 (only the ApplyAsync tasks)", got)
	}
}

// One object shared by every item of a Map travels once per chunk, so a
// large Map works (issue 9 item 11); many distinct objects are split into
// chunks a message can carry.
func TestMapSharedObjects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	pool := newPool(t, multiproc.PoolOptions{Processes: 1})
	v, err := multiproc.NewValue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	items := make([]sharedItem, 2001)
	for i := range items {
		items[i] = sharedItem{v, i}
	}
	got, err := addShared.Map(ctx, pool, items)
	if err != nil {
		t.Fatal(err)
	}
	if v.Load() != 2001 || len(got) != 2001 || got[2000] != 2000 {
		t.Fatalf("counter %d, %d results", v.Load(), len(got))
	}
	// 1100 distinct objects: one chunk of 275 would need more descriptors
	// than one message carries.
	vs := make([]*multiproc.Value[int64], 1100)
	for i := range vs {
		if vs[i], err = multiproc.NewValue[int64](0); err != nil {
			t.Fatal(err)
		}
		items[i] = sharedItem{vs[i], i}
	}
	if _, err := addShared.Map(ctx, pool, items[:1100]); err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if v.Load() != 1 {
			t.Fatalf("object %d was added %d times", i, v.Load())
		}
	}
}

// An Executor that is nil, as an interface or a nil *Pool, is an error.
func TestNilExecutor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var p *multiproc.Pool
	if _, err := whoAmI.Apply(ctx, p, 0); err == nil {
		t.Fatal("Apply on a nil *Pool")
	}
	if _, err := whoAmI.Map(ctx, nil, []int{1}); err == nil {
		t.Fatal("Map on a nil Executor")
	}
}

// Pool.Submit is usable directly, as another Executor forwarding tasks
// would: encoded arguments in, encoded results out.
func TestPoolSubmitMalformed(t *testing.T) {
	pool := newPool(t, multiproc.PoolOptions{Processes: 1})
	errc := make(chan error, 2)
	pool.Submit(context.Background(), &multiproc.Task{}, func(_ []multiproc.Result, err error) { errc <- err })
	pool.Submit(context.Background(), &multiproc.Task{Func: "test.nosuch", Args: [][]byte{nil}}, func(rs []multiproc.Result, err error) {
		if err == nil && len(rs) == 1 {
			err = rs[0].Err
		}
		errc <- err
	})
	for range 2 {
		select {
		case err := <-errc:
			if err == nil {
				t.Fatal("a malformed task succeeded")
			}
		case <-time.After(60 * time.Second):
			t.Fatal("Submit never answered")
		}
	}
}

// forwarder is an Executor written outside the package, as a remote
// backend would be: it copies what can travel (Func, Args, Batch) into a
// fresh Task — as a host would after receiving it — refuses tasks with
// shared objects, and runs the copy on a local pool.
type forwarder struct {
	pool *multiproc.Pool
	sent int
}

func (f *forwarder) Submit(ctx context.Context, t *multiproc.Task, done func([]multiproc.Result, error)) {
	if t.Shared() {
		done(nil, multiproc.ErrShared)
		return
	}
	f.sent++
	args := make([][]byte, len(t.Args))
	for i, a := range t.Args {
		args[i] = append([]byte(nil), a...)
	}
	copied := &multiproc.Task{Func: t.Func, Args: args, Batch: t.Batch}
	f.pool.Submit(ctx, copied, func(rs []multiproc.Result, err error) {
		// Results travel back as bytes and error texts.
		out := make([]multiproc.Result, len(rs))
		for i, r := range rs {
			out[i].Value = append([]byte(nil), r.Value...)
			var re *multiproc.RemoteError
			if errors.As(r.Err, &re) {
				out[i].Err = &multiproc.RemoteError{Text: re.Text, Panic: re.Panic}
			}
		}
		done(out, err)
	})
}

func (f *forwarder) Workers() int { return f.pool.Workers() }

func TestForwardingExecutor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fw := &forwarder{pool: newPool(t, multiproc.PoolOptions{Processes: 2})}
	args := make([]int, 1000)
	for i := range args {
		args[i] = 2 * i
	}
	rs, err := failOdd.Map(ctx, fw, args)
	if err != nil || len(rs) != 1000 || rs[999] != 1998 {
		t.Fatalf("Map through a forwarding executor: %v", err)
	}
	if v, err := failOdd.Apply(ctx, fw, 4); v != 4 || err != nil {
		t.Fatal(v, err)
	}
	var re *multiproc.RemoteError
	if _, err := failOdd.ApplyAsync(fw, 3).Get(ctx); !errors.As(err, &re) || re.Text != "odd input" {
		t.Fatalf("a function's error through a forwarding executor: %v", err)
	}
	n := 0
	for v, err := range failOdd.IMap(ctx, fw, func(yield func(int) bool) {
		for i := range 10 {
			if !yield(i) {
				return
			}
		}
	}) {
		if (n%2 == 1) != (err != nil) || (err == nil && v != n) {
			t.Fatalf("IMap item %d: %v, %v", n, v, err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("IMap yielded %d items", n)
	}
	// Shared objects are refused at the call, with the executor's error.
	v, err := multiproc.NewValue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	sent := fw.sent
	if _, err := addShared.Apply(ctx, fw, sharedItem{v, 1}); !errors.Is(err, multiproc.ErrShared) {
		t.Fatalf("a shared object through a remote executor: %v", err)
	}
	if fw.sent != sent || v.Load() != 0 {
		t.Fatal("a task with a shared object was sent")
	}
}

// A shared object where only a copy could go — a Send, a Put, a
// function's result — is refused with ErrShared; no method of its public
// API is plumbing.
func TestSharedObjectsAreNotCopied(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := multiproc.NewValue[int64](0)
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := multiproc.Pipe(true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := a.Send(sharedItem{V: v}); !errors.Is(err, multiproc.ErrShared) {
		t.Fatalf("Send of a struct holding a Value: %v", err)
	}
	q, err := multiproc.NewQueue[sharedItem](0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Put(ctx, sharedItem{V: v}); !errors.Is(err, multiproc.ErrShared) {
		t.Fatalf("Put of a struct holding a Value: %v", err)
	}
	if err := q.Put(ctx, sharedItem{I: 1}); err != nil {
		t.Fatalf("Put of a struct whose Value field is nil: %v", err)
	}
	qa, err := multiproc.NewQueue[any](0)
	if err != nil {
		t.Fatal(err)
	}
	defer qa.Close()
	if err := qa.Put(ctx, v); err == nil {
		t.Fatal("Put of a Value in an interface succeeded")
	}
	if _, err := makesValue.Call(ctx, 1); err == nil || !strings.Contains(err.Error(), "cannot travel this way") {
		t.Fatalf("a result holding a Value: %v", err)
	}
	for _, typ := range []any{v, a, q} {
		m := reflect.ValueOf(typ).MethodByName("ExportHandle")
		if m.IsValid() {
			t.Errorf("%T exports its plumbing", typ)
		}
	}
}

// trapJob embeds a shared object: its pointer has the object's methods,
// but it is a plain struct whose field holds the object.
type trapJob struct {
	*multiproc.Value[int64]
	N int64
}

var addEmbedded = multiproc.Register("test.addEmbedded", func(ctx context.Context, j *trapJob) (int64, error) {
	return j.Add(j.N), nil
})

func TestStructEmbeddingSharedObject(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := multiproc.NewValue[int64](4)
	if err != nil {
		t.Fatal(err)
	}
	got, err := addEmbedded.Call(ctx, &trapJob{v, 3})
	if err != nil || got != 7 || v.Load() != 7 {
		t.Fatalf("Call with a struct embedding a Value: %v, %v (Value %d)", got, err, v.Load())
	}
}
