package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configure Connect and Serve. The zero value is a cluster of one
// machine: an embedded NATS server and runtime.NumCPU() local workers.
type Options struct {
	// URL is the NATS server (or cluster) to use, as "nats://host:4222";
	// "" makes Connect start an embedded server. Serve needs a URL.
	URL string
	// Listen, with URL "", is the address where the embedded server
	// accepts hosts from other machines (":4222", "10.0.0.5:4222"; port 0
	// picks a free one; see Cluster.URL). "" means no port at all: only
	// this process reaches the server. An address beyond loopback (":4222"
	// listens on every interface) needs a Token: Connect refuses it
	// without one. On loopback without a Token, every program of this
	// machine may join (see the package doc's trust model).
	Listen string
	// Processes is how many worker processes this process runs: for
	// Connect, 0 means none when URL is set (a pure client) and
	// runtime.NumCPU() when it is not, and -1 means none in either case
	// (an embedded server that only hosts from elsewhere serve); for
	// Serve, 0 means runtime.NumCPU().
	Processes int
	// Name is the work queue's name (the JetStream stream, and the prefix
	// of every subject the cluster uses); "" means "multiproc". Clients
	// and hosts of one cluster use the same Name; several clusters can
	// share one NATS server under different names. Letters, digits, '-'
	// and '_' only.
	Name string
	// TaskTimeout bounds each task, as PoolOptions.TaskTimeout: a task past
	// it fails with an error matching context.DeadlineExceeded and its
	// worker process is killed and replaced. Connect sends it with every
	// task; Serve applies its own to every task it runs as well. A host
	// whose TaskTimeout is the client's counts it from the moment a worker
	// takes the task up, as a Pool does (the local workers of Connect are
	// such a host); a host with another counts the client's from the moment
	// it took the task from the queue. 0: none.
	TaskTimeout time.Duration

	// AckWait is how long a host may stay silent about a task it holds
	// before the task is given to another host: hosts confirm every
	// AckWait/3 that they still work on their tasks, so this is how fast a
	// host that died or lost its network is noticed. It is the queue's
	// setting, made once by whoever creates the queue (the Connect that
	// runs the embedded server; with URL, the first Connect): 0 means the
	// queue's, or 30 seconds for its creator; another value than the
	// queue's is an error. Hosts always take the queue's.
	AckWait time.Duration
	// MaxDeliveries bounds how many times a task is handed to a host:
	// a task whose hosts keep dying fails, after that many tries, with a
	// clear error instead of being redelivered for ever. 0 means the
	// queue's, or 3 for its creator (as AckWait).
	MaxDeliveries int
	// Token, when set, is the secret the embedded server demands of every
	// connection (Listen) and that Connect, Serve and Status present (as
	// a NATS token, and as the password of their per-connection user
	// name). It admits a connection as a member of the cluster, with the
	// rights of its role only (see the package doc's trust model).
	Token string
	// NATS are extra nats.go options for connections to URL: credentials
	// (nats.UserCredentials, nats.UserInfo), TLS (nats.RootCAs,
	// nats.ClientCert), and the like.
	NATS []nats.Option

	// Set by fill: whether AckWait and MaxDeliveries were given (a
	// queue made with others is then an error, see setupQueue).
	ackWaitSet, maxDeliveriesSet bool
}

const (
	defaultName          = "multiproc"
	defaultAckWait       = 30 * time.Second
	defaultMaxDeliveries = 3
	// heartbeat is how often a host announces itself.
	heartbeat = time.Second
)

// maxPayload is the embedded server's message size limit: a task or
// result above it (less blobHeadroom) travels through the payload store.
// A variable so that tests can lower it.
var maxPayload int32 = 8 << 20

func (o *Options) fill(serve bool) error {
	if o.Name == "" {
		o.Name = defaultName
	}
	if err := validName(o.Name); err != nil {
		return err
	}
	if o.Processes < -1 || o.Processes == -1 && serve || o.TaskTimeout < 0 || o.AckWait < 0 || o.MaxDeliveries < 0 {
		return errors.New("multiproc: cluster Options: TaskTimeout, AckWait and MaxDeliveries must not be negative, nor Processes (but -1 for Connect: no local workers)")
	}
	switch {
	case o.Processes == 0 && (serve || o.URL == ""):
		o.Processes = runtime.NumCPU()
	case o.Processes == -1:
		o.Processes = 0
	}
	o.ackWaitSet, o.maxDeliveriesSet = o.AckWait != 0, o.MaxDeliveries != 0
	if o.AckWait == 0 {
		o.AckWait = defaultAckWait
	}
	if o.AckWait < 300*time.Millisecond {
		return fmt.Errorf("multiproc: cluster Options.AckWait %v is too short (at least 300ms)", o.AckWait)
	}
	if o.MaxDeliveries == 0 {
		o.MaxDeliveries = defaultMaxDeliveries
	}
	if o.Listen != "" && o.URL != "" {
		return errors.New("multiproc: cluster Options.Listen is for the embedded server: it needs URL \"\"")
	}
	if o.Listen != "" && o.Token == "" && !loopback(o.Listen) {
		return fmt.Errorf("multiproc: cluster Options.Listen %q accepts connections from other machines: set Options.Token (the secret every host and client must present), or listen on loopback (127.0.0.1:PORT) only", o.Listen)
	}
	return nil
}

func validName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("multiproc: cluster Options.Name %q: 1 to 64 letters, digits, '-' and '_'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("multiproc: cluster Options.Name %q: only letters, digits, '-' and '_'", name)
		}
	}
	return nil
}

// loopback reports whether the listen address is on loopback only: an
// IP literal of the loopback range, or "localhost". An empty host (all
// interfaces), a name or any other address is not.
func loopback(listen string) bool {
	h, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// natsOptions are the options of every connection this package makes:
// its identity (user name and inbox prefix, see identity; a server other
// than the embedded one ignores the user name when it checks a token or
// nothing), reconnect for ever (calls fail while the server is away, and
// work again once it is back), then the user's.
func (o *Options) natsOptions(label string, id identity) []nats.Option {
	opts := []nats.Option{
		nats.Name(label),
		nats.UserInfo(id.user(o.Name), o.Token),
		nats.CustomInboxPrefix(id.inbox()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	return append(opts, o.NATS...)
}

// embedded is a nats-server with JetStream run inside this process.
type embedded struct {
	srv  *server.Server
	dir  string
	head identity // the head's: full rights (see authenticator)
}

// startServer starts the embedded server: its store in a new temporary
// directory, no signal handlers (the program's own signals stay its
// own), no log, a TCP port only if listen is set, and the access control
// of authenticator (every connection, in-process ones too).
func startServer(listen, token string) (*embedded, error) {
	dir, err := makeStore()
	if err != nil {
		return nil, fmt.Errorf("multiproc: cluster: store directory: %w", err)
	}
	head := newIdentity(roleHead)
	so := &server.Options{
		ServerName: "multiproc-" + strconv.Itoa(os.Getpid()),
		JetStream:  true,
		StoreDir:   filepath.Join(dir, "jetstream"),
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: maxPayload,
		DontListen: listen == "",
		// The head's user name is its secret (not tied to a queue name).
		CustomClientAuthentication: &authenticator{token: token, head: head.user("")},
	}
	if listen != "" {
		h, p, err := net.SplitHostPort(listen)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("multiproc: cluster Options.Listen %q: %w", listen, err)
		}
		port, err := strconv.Atoi(p)
		if err != nil || port < 0 || port > 65535 {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("multiproc: cluster Options.Listen %q: bad port", listen)
		}
		if port == 0 {
			port = server.RANDOM_PORT
		}
		if h == "" {
			h = "0.0.0.0"
		}
		so.Host, so.Port = h, port
	}
	srv, err := server.NewServer(so)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("multiproc: cluster: embedded NATS server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		os.RemoveAll(dir)
		return nil, errors.New("multiproc: cluster: embedded NATS server did not start within 10s (is the Listen port free?)")
	}
	return &embedded{srv: srv, dir: dir, head: head}, nil
}

// url is where other machines reach the server, "" when it has no port.
func (e *embedded) url() string {
	addr, ok := e.srv.Addr().(*net.TCPAddr)
	if !ok || addr == nil {
		return ""
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

func (e *embedded) connect(o *Options, label string, id identity) (*nats.Conn, error) {
	opts := append(o.natsOptions(label, id), nats.InProcessServer(e.srv))
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("multiproc: cluster: connecting to the embedded server: %w", err)
	}
	return nc, nil
}

func (e *embedded) stop() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	os.RemoveAll(e.dir)
}
