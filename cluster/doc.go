// Package cluster runs multiproc's registered functions on worker
// processes of many machines, through a NATS JetStream work queue: a
// *Cluster is a multiproc.Executor, so
//
//	c, err := cluster.Connect(ctx, cluster.Options{})
//	...
//	squares, err := square.Map(ctx, c, xs)
//
// is the same call as on a local multiproc.Pool. With no options, Connect
// starts an embedded NATS server with JetStream (no port, its store in a
// temporary directory) and NumCPU local worker processes: a program works
// on one machine the moment it is written. With Options.Listen the
// embedded server accepts hosts from other machines; each host runs the
// same program, which calls Serve (a flag such as -worker URL is the usual
// way); a client with Options.URL uses an existing NATS server or cluster.
// Every host runs its tasks in a local multiproc.Pool, so a crashing task
// kills one worker process, not the host.
//
// This module is separate from multiproc's so that users of the core never
// download a NATS server.
//
// # How tasks travel
//
// A task (one Apply, one Map chunk, one IMap item) is one message in the
// work queue, a JetStream stream with work-queue retention named
// Options.Name, on the subject Name.tasks.<build>.<client>.<epoch>.<seq>
// (see "One program per queue" below). Tasks
// with no deadline (ApplyAsync's, for one) that pile up while the client
// publishes travel several to a message, in chunks as Map's (about a
// quarter of the pile per worker), and a host runs consecutive ones of one
// function in one worker round trip; a cancel still reaches each of them
// on its own (see below). All hosts share one durable pull consumer; each pulls
// as many messages as it has workers, plus as many as it gets through in
// about 4ms (one while tasks are slow), so that short tasks keep its workers
// busy and long ones spread by who is free. Results come
// back on the caller's own core-NATS subject (Name.results.<client>), not
// through a second stream: only the waiting caller wants them, and a stream
// would cost two more stored writes per task and its own cleanup. A result
// that cannot be delivered (the caller is gone, or the connection dropped)
// is of no use to anyone; a caller whose connection drops fails its waiting
// calls at once (see below) rather than wait for answers that may be lost.
//
// # Trust model
//
// Who may do what is enforced by NATS's own authorization, not by a
// scheme of this package, wherever NATS has one. On the embedded server
// (Connect with URL ""):
//
//   - A connection must present Options.Token if one is set, and a user
//     name "<role>.<Name>.<secret>" that this package makes for each
//     connection (a fresh random secret; it travels only in the CONNECT).
//     Anonymous and unknown connections are refused. Listen beyond
//     loopback without a Token is refused at Connect: no port is open to
//     the network without a secret. Loopback without a Token stays the
//     zero-setup default: then everyone on this machine is a member.
//   - Clients may submit tasks under their own id only (the id is derived
//     from the secret by the server), cancel and purge their own tasks
//     only, ping hosts, read the queue's state, hear the server's
//     max-deliveries advisories, and subscribe to their own results and
//     inbox only. A cancel travels on the client's own subject
//     (Name.cancel.<client>), and hosts take from it only keys of that
//     client; a purge is a request on the client's own subject
//     (Name.purge.<client>) to the head, which purges only that client's
//     keys: no member can purge the stream itself, whose filter NATS
//     permissions cannot restrict.
//   - Hosts may pull tasks from their build's consumer and acknowledge
//     them, heartbeat, answer pings, hear cancels and publish results. They
//     cannot submit tasks, read anyone's results or inbox.
//   - Nobody but the head (the process that runs the server) creates,
//     changes, purges whole or deletes the stream and the consumer; no
//     member can read stored tasks (no direct or message get), nor
//     subscribe to task subjects or to another connection's inbox, where
//     the tasks a host pulls arrive.
//
// So only the host a task was delivered to reads it. Each task carries a
// random secret of its own, and a result counts only with an HMAC of the
// task's key and the result's bytes under that secret: a result from
// anyone else (another host, a client, a replay of another task's
// answer) is dropped and counted in Stats.Forged, and the caller keeps
// waiting for the real one. The secret never travels on its own.
//
// What is trusted: a host is trusted to compute, that is to run the
// function it was given and answer honestly (as a Pool's worker is);
// a host could also acknowledge (drop) tasks delivered to other hosts if
// it guessed their acknowledgement subjects. Members that share the
// credentials share the queue and the payload store (whose blobs are
// sealed, but which a member could empty).
//
// With a server of its own (Options.URL), the same rules need that
// server's authorization: give each client and host user the
// permissions above, with the inbox prefix "_MP.<id>" (see the
// functions clientPermissions and hostPermissions in auth.go; the admin
// creates the stream, or a client with stream-create rights does). There
// is no head there: a client purges its tasks itself, so it needs
// $JS.API.STREAM.PURGE.<Name>, which lets it purge anyone's (trust your
// clients, or give them none: a cancelled queued task is then dropped
// by the hosts that heard the cancel, and may run on a host that joins
// later). A
// server with no permissions trusts every connection with everything,
// including reading the tasks' secrets.
//
// # One program per queue
//
// A task names its function, and its arguments are encoded for that
// function's types in this program: only the same program, built the
// same way, can run it exactly. So each task carries the fingerprint of
// its build (a hash of the Go build ID of the executable, which changes
// with any change to the program or its dependencies) in its subject,
// and the hosts of each build share a consumer of their own, filtered to
// their build's tasks: a host never sees another build's tasks. Hosts
// report their build in their heartbeats; a client whose calls wait
// while only hosts of other builds are seen fails them, after ten
// seconds, with ErrBuildMismatch naming the builds. A rolling upgrade
// works: old hosts run old clients' tasks and new hosts new ones, side
// by side. The queue's AckWait and MaxDeliveries are decided once, by
// whoever creates the stream (the head; with Options.URL, the first
// client), kept in the stream's metadata, and taken from there by every
// other client and host; explicit options that disagree are an error.
//
// # Delivery
//
// Delivery is at least once, and each caller gets exactly one result per
// task: a host answers, then acknowledges; the caller keeps the first
// answer for a task and ignores any later one. A host tells the server
// every AckWait/3 that it still works on the tasks it holds; a host that
// dies or loses its network stops doing so, and after Options.AckWait
// (30s by default) its tasks go to other hosts. A task that was handed out
// Options.MaxDeliveries times (3) without an answer fails with an error
// matching ErrDeliveriesExhausted, never redelivered for ever, even for a
// caller with no deadline: the host it is handed to next answers it so,
// and if hosts die on those deliveries too, the server's max-deliveries
// advisory fails the call (a caller needs no deadline to be sure of an
// answer). A task whose own worker process died
// (a crash inside the task) fails at once with an error matching
// multiproc.ErrWorkerDied, as on a local Pool, and is not run again.
// A client that dies without Close leaves its queued tasks behind: those
// with a deadline are dropped once it passes, the others still run, for
// nobody.
//
// Options.TaskTimeout bounds each task as PoolOptions.TaskTimeout does (an
// error matching context.DeadlineExceeded; the worker is killed). When a
// caller's ctx ends, its calls return ctx.Err() at once; each of its tasks
// is purged from the queue (so a queued one never runs later, even on a
// host that joins later), and a cancel message makes the host that holds
// it drop it or kill its worker. A task that travels with others in one
// message cannot be purged alone: the hosts that heard its cancel drop
// it, or stop it if it runs (with the others of its worker round trip,
// which then run again, each on its own); a host that joins later than
// the cancel may still run it, for nobody. The ctx's deadline also
// travels with the task, and hosts drop tasks past it (this assumes the
// machines' clocks roughly agree).
//
// Map sends its input in chunks (one task each) sized from Workers(), the
// worker processes of the hosts seen, like a local pool; IMap keeps
// 2×Workers() items in flight. Arguments holding shared-memory objects
// (*multiproc.Value, *Queue, *Conn, ...) are refused at the call: they
// cannot leave the machine.
//
// # Large payloads
//
// A task's arguments or results beyond what one message may carry (the
// server's max payload: 8 MiB on the embedded server, 1 MiB by default on
// others) travel through a JetStream Object Store bucket "<Name>_blobs",
// sealed with AES-GCM under the task's secret, and the caller deletes
// them when its call ends (the bucket's 24-hour TTL bounds what a client
// that died leaves). So a Map of large items, or one 256 MiB argument,
// works as on a Pool, at the cost of a store and a read.
//
// # When the server goes away
//
// Every connection reconnects for ever. While the client is disconnected,
// calls fail at once with an error matching ErrNotConnected, and the calls
// that were waiting fail the moment the connection drops (their answers
// may be lost); once the connection is back, those tasks are purged from
// the queue and stopped on their hosts, and new calls work. Hosts keep
// their tasks while the server is away and answer them when it returns
// (if it returns within AckWait; otherwise the tasks are redelivered).
//
// # Observability
//
// Cluster.Stats, and Status for a process that only watches (what the
// command github.com/multiproc-go/multiproc/cluster/cmd/multiproc-cluster
// prints with `multiproc-cluster status URL`), report the hosts seen, their
// worker processes and counts, and the queue: tasks waiting, running and
// redelivered.
//
// # Cost
//
// Against a local Pool, each task pays a JetStream store and delivery, an
// acknowledgement and a result message: tens of microseconds on one
// machine, a network round trip or two across machines. Chunked Map hides
// it; many tiny Apply calls feel it.
package cluster
