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

// setupQueue makes sure the stream and the hosts' consumer exist. The
// client (update) makes them as its options say; a host creates them only
// if missing, and otherwise takes them as they are. The stream is kept in
// files on a server of its own (it outlives a restart of the server) and
// in memory on an embedded one, which dies with its process anyway.
func setupQueue(ctx context.Context, js jetstream.JetStream, s subjects, o *Options, update bool) (jetstream.Stream, jetstream.Consumer, error) {
	storage := jetstream.FileStorage
	if o.URL == "" {
		storage = jetstream.MemoryStorage
	}
	var st jetstream.Stream
	var err error
	if update {
		st, err = js.CreateOrUpdateStream(ctx, streamConfig(s, storage))
	} else {
		st, err = js.Stream(ctx, s.name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st, err = js.CreateStream(ctx, streamConfig(s, storage))
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				st, err = js.Stream(ctx, s.name)
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("multiproc: cluster: work queue stream %q: %w", s.name, err)
	}
	var cons jetstream.Consumer
	if update {
		cons, err = st.CreateOrUpdateConsumer(ctx, consumerConfig(s, o))
	} else {
		cons, err = st.Consumer(ctx, consumerName)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cons, err = st.CreateConsumer(ctx, consumerConfig(s, o))
			if err != nil {
				cons, err = st.Consumer(ctx, consumerName)
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("multiproc: cluster: work queue consumer: %w", err)
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
