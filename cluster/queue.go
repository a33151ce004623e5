package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Each build of the program (see fingerprint) has its own task subjects
// and its own durable pull consumer, "hosts-<build>", that every host of
// that build shares: a work queue hands each task to one of them, and a
// host never sees a task of another build.
const consumerPrefix = "hosts-"

// maxDeliveriesPrefix is the subject prefix of the server's advisories
// that a consumer gave up on a message: "<prefix><stream>.<consumer>".
const maxDeliveriesPrefix = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."

// maxBuilds bounds the consumers of a queue (the builds served at once).
const maxBuilds = 64

type subjects struct {
	name     string
	build    string
	allTasks string // prefix of every build's task subjects
	tasks    string // prefix of this build's: tasks + "<client>.<epoch>.<seq>"
	consumer string // this build's consumer
	results  string // prefix of result subjects: results + "<client>"
	cancel   string // prefix of cancel subjects: cancel + "<client>"
	purge    string // prefix of purge requests: purge + "<client>" (see Cluster.purge)
	hosts    string
	ping     string
	// The server's advisory that this build's consumer gave up on a
	// message (see Cluster.onMaxDeliveries).
	maxDeliveries string
}

func newSubjects(name, build string) subjects {
	return subjects{
		name:     name,
		build:    build,
		allTasks: name + ".tasks.",
		tasks:    name + ".tasks." + build + ".",
		consumer: consumerPrefix + build,
		results:  name + ".results.",
		cancel:   name + ".cancel.",
		purge:    name + ".purge.",
		hosts:    name + ".hosts",
		ping:     name + ".hosts.ping",

		maxDeliveries: maxDeliveriesPrefix + name + "." + consumerPrefix + build,
	}
}

// The queue's settings, kept in the stream's metadata by whoever made it,
// so that every consumer (one per build) is made alike.
const (
	metaAckWait       = "multiproc.ack_wait"
	metaMaxDeliveries = "multiproc.max_deliveries"
)

func streamConfig(s subjects, storage jetstream.StorageType, o *Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:         s.name,
		Description:  "multiproc cluster work queue",
		Subjects:     []string{s.allTasks + ">"},
		Retention:    jetstream.WorkQueuePolicy,
		Storage:      storage,
		Discard:      jetstream.DiscardOld,
		MaxConsumers: maxBuilds,
		Metadata: map[string]string{
			metaAckWait:       strconv.FormatInt(int64(o.AckWait), 10),
			metaMaxDeliveries: strconv.Itoa(o.MaxDeliveries),
		},
	}
}

func consumerConfig(s subjects, o *Options) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       s.consumer,
		Description:   "multiproc cluster hosts of build " + s.build,
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
// a server of its own (URL) creates the stream if missing and otherwise
// takes it as it is, after checking it; a host only takes the stream,
// waiting for it to exist, and makes its build's consumer if missing.
const (
	queueHead = iota
	queueClient
	queueHost
)

// setupQueue makes sure the stream exists, or binds to it (see queueHead,
// queueClient, queueHost), and for the head and hosts, this build's
// consumer (a client needs none). The queue's settings are decided once,
// by whoever creates the stream: it is kept in memory on the embedded
// server (it dies with its process anyway) and in files on a server of
// its own (it outlives a restart of the server); AckWait and
// MaxDeliveries are its creator's, kept in its metadata. A client or host
// that finds it made checks it is a work queue of this package's shape
// and takes AckWait and MaxDeliveries from it into o, unless o set them
// explicitly to something else: that is an error naming both.
func setupQueue(ctx context.Context, js jetstream.JetStream, s subjects, o *Options, role int) (jetstream.Stream, jetstream.Consumer, error) {
	var st jetstream.Stream
	var err error
	switch role {
	case queueHead:
		st, err = js.CreateOrUpdateStream(ctx, streamConfig(s, jetstream.MemoryStorage, o))
	default:
		st, err = js.Stream(ctx, s.name)
		if errors.Is(err, jetstream.ErrStreamNotFound) && role == queueClient {
			st, err = js.CreateStream(ctx, streamConfig(s, jetstream.FileStorage, o))
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				st, err = js.Stream(ctx, s.name)
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("multiproc: cluster: work queue stream %q: %w", s.name, err)
	}
	if role != queueHead {
		if err := takeSettings(st.CachedInfo().Config, s, o); err != nil {
			return nil, nil, err
		}
	}
	if role == queueClient {
		return st, nil, nil
	}
	var cons jetstream.Consumer
	switch role {
	case queueHead:
		cons, err = st.CreateOrUpdateConsumer(ctx, consumerConfig(s, o))
	default:
		cons, err = st.Consumer(ctx, s.consumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cons, err = st.CreateConsumer(ctx, consumerConfig(s, o))
			if err != nil {
				cons, err = st.Consumer(ctx, s.consumer)
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("multiproc: cluster: work queue consumer %q: %w", s.consumer, err)
	}
	if cfg := cons.CachedInfo().Config; cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.FilterSubject != s.tasks+">" || cfg.AckWait != o.AckWait || cfg.MaxDeliver != o.MaxDeliveries+2 {
		return nil, nil, fmt.Errorf("multiproc: cluster: the consumer %q of stream %q is not the queue's (AckWait %v, MaxDeliver %d, filter %q): pick another Options.Name", s.consumer, s.name, cfg.AckWait, cfg.MaxDeliver, cfg.FilterSubject)
	}
	return st, cons, nil
}

// takeSettings checks that a stream found on the server is a queue of
// this package and takes its settings into o (see setupQueue).
func takeSettings(cfg jetstream.StreamConfig, s subjects, o *Options) error {
	ack, err1 := strconv.ParseInt(cfg.Metadata[metaAckWait], 10, 64)
	maxd, err2 := strconv.Atoi(cfg.Metadata[metaMaxDeliveries])
	if cfg.Retention != jetstream.WorkQueuePolicy || len(cfg.Subjects) != 1 || cfg.Subjects[0] != s.allTasks+">" ||
		err1 != nil || err2 != nil || time.Duration(ack) < 300*time.Millisecond || maxd < 1 {
		return fmt.Errorf("multiproc: cluster: the stream %q on the server is not a multiproc work queue (retention %v, subjects %q, metadata %q): pick another Options.Name", s.name, cfg.Retention, cfg.Subjects, cfg.Metadata)
	}
	if o.ackWaitSet && o.AckWait != time.Duration(ack) || o.maxDeliveriesSet && o.MaxDeliveries != maxd {
		return fmt.Errorf("multiproc: cluster: the work queue %q was made with AckWait %v and MaxDeliveries %d, these options say %v and %d: leave them 0 to take the queue's, or use another Name", s.name, time.Duration(ack), maxd, o.AckWait, o.MaxDeliveries)
	}
	o.AckWait, o.MaxDeliveries = time.Duration(ack), maxd
	return nil
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
