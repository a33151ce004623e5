package cluster

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// asyncErrs collects a connection's asynchronous errors (permission
// violations arrive there).
type asyncErrs struct {
	mu   sync.Mutex
	errs []error
}

func (a *asyncErrs) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	a.mu.Lock()
	a.errs = append(a.errs, err)
	a.mu.Unlock()
}

func (a *asyncErrs) has(sub string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.errs {
		if strings.Contains(strings.ToLower(e.Error()), "permissions violation") && strings.Contains(e.Error(), sub) {
			return true
		}
	}
	return false
}

// joinAs connects to c's server as this package's own connections do,
// with role, as an attacker who knows the protocol and the token would.
func joinAs(t *testing.T, c *Cluster, role string, errs *asyncErrs) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URL(), append(c.opts.natsOptions("member", newIdentity(role)),
		nats.MaxReconnects(0), nats.ErrorHandler(errs.handler))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Fault 1: nobody but the host a task was delivered to can answer it. A
// client and a host connection that are not given the task publish
// results for its key (a replayed genuine answer of 666, and garbage)
// all the while it runs; the caller still gets its own answer, and
// counts the forged ones in Stats. Neither connection can read the tasks
// to learn their secret. Without a token and with one.
func TestForgedResultsDropped(t *testing.T) {
	for _, token := range []string{"", "s3cret"} {
		t.Run("token="+token, func(t *testing.T) {
			ctx := testCtx(t, time.Minute)
			c := connect(t, ctx, Options{Processes: 1, Listen: "127.0.0.1:0", Token: token})
			// A genuine answer of 666, to replay: what the caller of
			// slow(333) receives.
			genuine := make(chan *nats.Msg, 1)
			sub, err := c.nc.ChanSubscribe(c.s.results+c.id, genuine)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := slow.Apply(ctx, c, counted{N: 333}); err != nil || v != 666 {
				t.Fatalf("Apply = %d, %v", v, err)
			}
			replay := <-genuine
			sub.Unsubscribe()

			var errs asyncErrs
			forgers := []*nats.Conn{joinAs(t, c, roleHost, &errs), joinAs(t, c, roleClient, &errs)}
			peek := make(chan *nats.Msg, 16)
			for _, f := range forgers {
				if _, err := f.ChanSubscribe(c.s.tasks+">", peek); err != nil {
					t.Fatal(err)
				}
				f.Flush()
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			next := c.seq.Load() + 1
			for _, f := range forgers {
				wg.Go(func() {
					for {
						for seq := next; seq < next+3; seq++ {
							key := c.id + ".0." + strconv.FormatUint(seq, 10)
							for _, body := range [][]byte{replay.Data, {resFailed, 'x'}} {
								m := nats.NewMsg(c.s.results + c.id)
								m.Header.Set(hdrID, key)
								m.Header.Set(hdrMAC, replay.Header.Get(hdrMAC))
								m.Data = body
								f.PublishMsg(m)
							}
						}
						f.Flush()
						select {
						case <-stop:
							return
						case <-time.After(time.Millisecond):
						}
					}
				})
			}
			for i := range 3 {
				v, err := slow.Apply(ctx, c, counted{N: 7 + i, Ms: 100})
				if err != nil || v != 2*(7+i) {
					t.Errorf("Apply(%d) with forgers = %d, %v; want %d", 7+i, v, err, 2*(7+i))
				}
			}
			close(stop)
			wg.Wait()
			st, err := c.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Forged == 0 {
				t.Errorf("Stats.Forged = 0: the forged results were not seen")
			}
			t.Logf("forged results dropped: %d", st.Forged)
			select {
			case m := <-peek:
				t.Errorf("a member read a task: %s", m.Subject)
			default:
			}
			waitFor(t, 10*time.Second, "the task subscriptions to be refused", func() bool { return errs.has(c.s.tasks) })
		})
	}
}

// Who may do what on the embedded server: anonymous connections are
// refused; members cannot read the stored tasks, manage the stream, read
// another client's results, submit tasks in another client's name, or
// subscribe to another connection's inbox.
func TestPermissions(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	c := connect(t, ctx, Options{Processes: 1, Listen: "127.0.0.1:0"})
	if nc, err := nats.Connect(c.URL(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an anonymous connection was accepted")
	}
	var errs asyncErrs
	for _, role := range []string{roleHost, roleClient} {
		nc := joinAs(t, c, role, &errs)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err = js.DeleteStream(dctx, c.s.name)
		cancel()
		if err == nil {
			t.Fatalf("%s deleted the stream", role)
		}
		for _, subj := range []string{c.s.results + c.id, c.s.results + "*", "_MP.>", c.ident.inbox() + ".>"} {
			if _, err := nc.SubscribeSync(subj); err != nil {
				t.Fatal(err)
			}
		}
		nc.Publish(c.s.tasks+c.id+".0.999", []byte("x"))
		nc.Flush()
	}
	waitFor(t, 10*time.Second, "the violations", func() bool {
		return errs.has("$JS.API.STREAM.DELETE") && errs.has(c.s.results+c.id) && errs.has(`"_MP.>"`) && errs.has(c.s.tasks+c.id)
	})
	if _, err := c.st.Info(ctx); err != nil {
		t.Fatalf("the stream is gone: %v", err)
	}
	if v, err := square.Apply(ctx, c, 7); err != nil || v != 49 {
		t.Fatalf("Apply = %d, %v", v, err)
	}
}

// Fault 2: an embedded server listening beyond loopback needs a Token;
// loopback needs none.
func TestListenNeedsToken(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	for _, l := range []string{":0", "0.0.0.0:0", "[::]:0", "example.com:0"} {
		_, err := Connect(ctx, Options{Listen: l, Processes: -1})
		if err == nil || !strings.Contains(err.Error(), "Token") {
			t.Errorf("Connect(Listen %q, no Token) = %v, want a refusal naming Token", l, err)
		}
	}
	c := connect(t, ctx, Options{Listen: "127.0.0.1:0", Processes: -1})
	if c.URL() == "" {
		t.Fatal("no URL")
	}
	c2 := connect(t, ctx, Options{Listen: ":0", Processes: -1, Token: "t0ken"})
	url := "nats://127.0.0.1:" + strconv.Itoa(c2.emb.srv.Addr().(*net.TCPAddr).Port)
	if _, err := Status(ctx, Options{URL: url, Token: "wrong"}); err == nil {
		t.Fatal("a wrong token was accepted")
	}
	if _, err := Status(ctx, Options{URL: url, Token: "t0ken"}); err != nil {
		t.Fatal(err)
	}
}

// Cancels and purges are tied to their sender: another member with the
// client role (as an attacker who knows the protocol, the token and the
// victim's task key) cannot cancel or purge a client's task, neither
// queued nor running, whichever subject it tries; the task completes.
func TestCancelOnlyOwn(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	c := connect(t, ctx, Options{Listen: "127.0.0.1:0", Processes: -1, AckWait: testAckWait})
	log := filepath.Join(t.TempDir(), "runs")
	// A caller that may cancel: the task travels alone, under its own key.
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	type out struct {
		v   int
		err error
	}
	r := make(chan out, 1)
	go func() {
		v, err := slow.Apply(actx, c, counted{Path: log, N: 21, Ms: 800})
		r <- out{v, err}
	}()
	var key string
	waitFor(t, 30*time.Second, "the task to be queued", func() bool {
		c.mu.Lock()
		for k := range c.pending {
			key = k
		}
		c.mu.Unlock()
		st, err := c.Stats(ctx)
		return key != "" && err == nil && st.Queued == 1
	})

	var errs asyncErrs
	me := newIdentity(roleClient)
	nc, err := nats.Connect(c.URL(), append(c.opts.natsOptions("attacker", me),
		nats.MaxReconnects(0), nats.ErrorHandler(errs.handler))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	prefix := key[:strings.LastIndexByte(key, '.')+1]
	attack := func() {
		t.Helper()
		for _, k := range []string{key, prefix, c.id + "."} {
			nc.Publish(c.s.cancel+c.id, []byte(k))                        // the victim's cancel subject: refused
			nc.Publish(c.s.cancel+me.pub, []byte(k))                      // its own, with the victim's key: ignored
			nc.PublishRequest(c.s.purge+c.id, me.inbox()+".x", []byte(k)) // the victim's purge subject: refused
			// Its own purge subject, the victim's key: the head refuses.
			if m, err := nc.Request(c.s.purge+me.pub, []byte(k), 5*time.Second); err != nil || !strings.HasPrefix(string(m.Data), "refused") {
				t.Errorf("purge request for the victim's key %q on the attacker's own subject: %v", k, err)
			}
		}
		pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer pcancel()
		if st, err := js.Stream(pctx, c.s.name); err == nil {
			if err := st.Purge(pctx); err == nil {
				t.Errorf("a client purged the whole stream")
			}
		}
		nc.Flush()
	}
	attack()
	waitFor(t, 10*time.Second, "the violations", func() bool {
		return errs.has(c.s.cancel+c.id) && errs.has(c.s.purge+c.id) && errs.has("$JS.API.STREAM.PURGE")
	})
	if st, err := c.Stats(ctx); err != nil || st.Queued != 1 {
		t.Fatalf("after the attack on the queued task: Stats = %+v, %v; want it still queued", st, err)
	}
	// Now running on a host: the cancels must not stop it.
	startHost(t, c.URL(), 1, testAckWait, 0)
	waitFor(t, 30*time.Second, "the task to start", func() bool { return runs(t, log)[21] == 1 })
	attack()
	o := <-r
	if o.err != nil || o.v != 42 {
		t.Fatalf("Apply = %d, %v; want 42: another client's cancel or purge reached it", o.v, o.err)
	}
	if got := runs(t, log); got[21] != 1 {
		t.Fatalf("runs = %v, want the task run once", got)
	}
}
