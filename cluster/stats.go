package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HostStats is what a host reports about itself, every second and when
// asked.
type HostStats struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`  // machine name and process id
	Build       string    `json:"build"` // the program's build it runs (see ErrBuildMismatch)
	Processes   int       `json:"processes"`
	Running     int       `json:"running"`     // tasks it holds now (running or about to)
	Done        uint64    `json:"done"`        // tasks it answered with results
	Failed      uint64    `json:"failed"`      // tasks it answered with an error for the whole task
	Redelivered uint64    `json:"redelivered"` // tasks it got that another host had held before
	Dropped     uint64    `json:"dropped"`     // tasks it dropped: cancelled, or past their caller's deadline
	Seen        time.Time `json:"-"`           // when this report arrived
}

// Stats is a snapshot of a cluster: its hosts and its work queue, and,
// from Cluster.Stats, this client's own counts. A progress bar for a long
// job can poll it (Completed counts tasks: a Map chunk is one task; IMap
// yields one result per item, for per-item progress).
type Stats struct {
	Hosts       []HostStats // hosts heard from in the last few seconds, by name
	Workers     int         // their worker processes in all
	Queued      uint64      // messages in the queue that no host holds yet (every client's; several ApplyAsync tasks may share one)
	Running     int         // messages held by hosts and not yet answered (every client's)
	Redelivered int         // held messages that had been handed out before

	// This client's tasks (zero in Status's answer).
	Submitted, Completed, Failed uint64
	// Forged counts results this client dropped because they did not
	// carry the proof that their sender was the host the task was
	// delivered to (see the package doc's trust model).
	Forged uint64
}

func decodeHost(b []byte, h *HostStats) error { return json.Unmarshal(b, h) }

// pingHosts asks every host of the cluster for its stats and collects the
// answers that come within d.
func pingHosts(ctx context.Context, nc *nats.Conn, s subjects, d time.Duration) ([]HostStats, error) {
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(s.ping, inbox, nil); err != nil {
		return nil, err
	}
	flush(nc)
	var hosts []HostStats
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m := <-ch:
			var h HostStats
			if len(m.Data) <= 64<<10 && decodeHost(m.Data, &h) == nil && h.ID != "" {
				h.Seen = time.Now()
				hosts = append(hosts, h)
			}
		case <-timer.C:
			return hosts, nil
		case <-ctx.Done():
			return hosts, nil
		}
	}
}

// queueStats sums the queue's consumers (one per build served).
func queueStats(ctx context.Context, stream jetstream.Stream, st *Stats) error {
	l := stream.ListConsumers(ctx)
	for info := range l.Info() {
		st.Queued += info.NumPending
		st.Running += info.NumAckPending
		st.Redelivered += info.NumRedelivered
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("multiproc: cluster: reading the work queue: %w", err)
	}
	return nil
}

func (s *Stats) addHosts(hosts []HostStats) {
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Name < hosts[j].Name })
	s.Hosts = hosts
	for _, h := range hosts {
		s.Workers += h.Processes
	}
}

// Stats asks the hosts (waiting up to about a quarter second for their
// answers) and the work queue how the cluster is doing.
func (c *Cluster) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Submitted: c.submitted.Load(), Completed: c.completed.Load(), Failed: c.failed.Load(), Forged: c.forged.Load()}
	hosts, err := pingHosts(ctx, c.nc, c.s, 250*time.Millisecond)
	if err != nil {
		return st, fmt.Errorf("multiproc: cluster: asking the hosts: %w", err)
	}
	st.addHosts(hosts)
	return st, queueStats(ctx, c.st, &st)
}

// Status connects to the cluster at opts.URL (opts.Name, opts.Token and
// opts.NATS as for Connect), without joining it, and returns its Stats:
// what `multiproc-cluster status URL` prints.
func Status(ctx context.Context, opts Options) (Stats, error) {
	if err := opts.fill(false); err != nil {
		return Stats{}, err
	}
	if opts.URL == "" {
		return Stats{}, errors.New("multiproc: cluster.Status needs Options.URL")
	}
	nc, err := nats.Connect(opts.URL, append(opts.natsOptions("multiproc status", newIdentity(roleClient)), nats.MaxReconnects(0))...)
	if err != nil {
		return Stats{}, fmt.Errorf("multiproc: cluster: connecting to %s: %w", opts.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return Stats{}, fmt.Errorf("multiproc: cluster: %w", err)
	}
	s := newSubjects(opts.Name, fingerprint())
	stream, err := js.Stream(ctx, s.name)
	if err != nil {
		return Stats{}, fmt.Errorf("multiproc: cluster: no work queue %q at %s: %w", s.name, opts.URL, err)
	}
	var st Stats
	hosts, err := pingHosts(ctx, nc, s, 500*time.Millisecond)
	if err != nil {
		return st, fmt.Errorf("multiproc: cluster: asking the hosts: %w", err)
	}
	st.addHosts(hosts)
	return st, queueStats(ctx, stream, &st)
}

// WriteTo prints the stats as a small table (what `multiproc-cluster
// status` shows).
func (s Stats) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "hosts %d, worker processes %d; queue: %d waiting, %d running, %d redelivered\n",
		len(s.Hosts), s.Workers, s.Queued, s.Running, s.Redelivered)
	if s.Submitted > 0 {
		fmt.Fprintf(&b, "this client: %d submitted, %d completed, %d failed, %d forged results dropped\n", s.Submitted, s.Completed, s.Failed, s.Forged)
	}
	if len(s.Hosts) > 0 {
		tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "host\tprocesses\trunning\tdone\tfailed\tredelivered\tdropped\t")
		for _, h := range s.Hosts {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", h.Name, h.Processes, h.Running, h.Done, h.Failed, h.Redelivered, h.Dropped)
		}
		tw.Flush()
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
