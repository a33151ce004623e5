package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// consumerName is the one durable pull consumer every host of a cluster
// shares: a work queue hands each task to one of them.
const consumerName = "hosts"

type subjects struct {
	name    string
	tasks   string // prefix of task subjects: tasks + "<client>.<epoch>.<seq>"
	results string // prefix of result subjects: results + "<client>"
	cancel  string
	hosts   string
	ping    string
}

func newSubjects(name string) subjects {
	return subjects{
		name:    name,
		tasks:   name + ".tasks.",
		results: name + ".results.",
		cancel:  name + ".cancel",
		hosts:   name + ".hosts",
		ping:    name + ".hosts.ping",
	}
}

func streamConfig(s subjects, storage jetstream.StorageType) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        s.name,
		Description: "multiproc cluster work queue",
		Subjects:    []string{s.tasks + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     storage,
		Discard:     jetstream.DiscardOld,
	}
}

func consumerConfig(s subjects, o *Options) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       consumerName,
		Description:   "multiproc cluster hosts",
		FilterSubject: s.tasks + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		// Hosts count deliveries themselves and answer the task with an
		// error past MaxDeliveries; the server's bound is a backstop.
		MaxDeliver:    o.MaxDeliveries + 2,
		MaxAckPending: 1 << 16,
		MaxWaiting:    1 << 12, // open pull requests: each host has up to 2×Processes+2
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// The queue's roles in setting it up: the head made the embedded server
// and creates the queue on it before anyone else can connect; a client of
// a server of its own (URL) creates it if missing and otherwise takes it
// as it is, after checking it; a host only takes it, waiting for it to
// exist.
const (
	queueHead = iota
	queueClient
	queueHost
)

// setupQueue makes sure the stream and the hosts' consumer exist, or
// binds to them (see queueHead, queueClient, queueHost). Their settings
// are decided once, by whoever creates them: the stream is kept in memory
// on the embedded server (it dies with its process anyway) and in files
// on a server of its own (it outlives a restart of the server); the
// consumer's AckWait and MaxDeliveries are its creator's. A client or
// host that finds them made checks they are a work queue of this
// package's shape, and takes AckWait and MaxDeliveries from the consumer
// into o, unless o set them explicitly to something else: that is an
// error naming both.
func setupQueue(ctx context.Context, js jetstream.JetStream, s subjects, o *Options, role int) (jetstream.Stream, jetstream.Consumer, error) {
	var st jetstream.Stream
	var err error
	switch role {
	case queueHead:
		st, err = js.CreateOrUpdateStream(ctx, streamConfig(s, jetstream.MemoryStorage))
	default:
		st, err = js.Stream(ctx, s.name)
		if errors.Is(err, jetstream.ErrStreamNotFound) && role == queueClient {
			st, err = js.CreateStream(ctx, streamConfig(s, jetstream.FileStorage))
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				st, err = js.Stream(ctx, s.name)
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("multiproc: cluster: work queue stream %q: %w", s.name, err)
	}
	if role != queueHead {
		cfg := st.CachedInfo().Config
		if cfg.Retention != jetstream.WorkQueuePolicy || len(cfg.Subjects) != 1 || cfg.Subjects[0] != s.tasks+">" {
			return nil, nil, fmt.Errorf("multiproc: cluster: the stream %q on the server is not a multiproc work queue (retention %v, subjects %q): pick another Options.Name", s.name, cfg.Retention, cfg.Subjects)
		}
	}
	var cons jetstream.Consumer
	switch role {
	case queueHead:
		cons, err = st.CreateOrUpdateConsumer(ctx, consumerConfig(s, o))
	default:
		cons, err = st.Consumer(ctx, consumerName)
		if errors.Is(err, jetstream.ErrConsumerNotFound) && role == queueClient {
			cons, err = st.CreateConsumer(ctx, consumerConfig(s, o))
			if err != nil {
				cons, err = st.Consumer(ctx, consumerName)
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("multiproc: cluster: work queue consumer: %w", err)
	}
	if role != queueHead {
		cfg := cons.CachedInfo().Config
		if cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.FilterSubject != s.tasks+">" || cfg.AckWait < 300*time.Millisecond || cfg.MaxDeliver < 3 {
			return nil, nil, fmt.Errorf("multiproc: cluster: the consumer %q of stream %q is not a multiproc one: pick another Options.Name", consumerName, s.name)
		}
		maxd := cfg.MaxDeliver - 2
		if o.ackWaitSet && o.AckWait != cfg.AckWait || o.maxDeliveriesSet && o.MaxDeliveries != maxd {
			return nil, nil, fmt.Errorf("multiproc: cluster: the work queue %q was made with AckWait %v and MaxDeliveries %d, these options say %v and %d: leave them 0 to take the queue's, or use another Name", s.name, cfg.AckWait, maxd, o.AckWait, o.MaxDeliveries)
		}
		o.AckWait, o.MaxDeliveries = cfg.AckWait, maxd
	}
	return st, cons, nil
}

// retry calls f until it succeeds or ctx ends, backing off up to a second:
// a host waits for its server.
func retry(ctx context.Context, f func(context.Context) error) error {
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			}
			return nil
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		wait = min(2*wait, time.Second)
	}
}
