package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/nats-io/nats-server/v2/server"
)

// Roles the test binary plays when re-run by a test.
const (
	envRole  = "MPC_TEST_ROLE" // "host"
	envURL   = "MPC_TEST_URL"
	envArgs  = "MPC_TEST_OPTS"  // processes,ackwait,maxdeliveries
	envBuild = "MPC_TEST_BUILD" // the host stands for another build (testBuild)
	envDie   = "MPC_TEST_DIE"   // "1": the host SIGKILLs itself on every delivery (testDieOnDelivery)
)

func TestMain(m *testing.M) {
	multiproc.Main()
	if os.Getenv(envRole) == "host" {
		os.Exit(hostMain())
	}
	if os.Getenv(envRole) == "head" {
		// A client with an embedded server, until killed.
		if _, err := Connect(context.Background(), Options{Processes: -1}); err != nil {
			fmt.Fprintln(os.Stderr, "head:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		select {}
	}
	os.Exit(m.Run())
}

// hostMain is a host process: Serve until SIGTERM.
func hostMain() int {
	var procs, maxd int
	var ack time.Duration
	fmt.Sscanf(os.Getenv(envArgs), "%d,%d,%d", &procs, &ack, &maxd)
	testBuild = os.Getenv(envBuild)
	testDieOnDelivery = os.Getenv(envDie) == "1"
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err := Serve(ctx, Options{URL: os.Getenv(envURL), Processes: procs, AckWait: ack, MaxDeliveries: maxd})
	if err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		return 1
	}
	return 0
}

// Registered functions the tests run on the cluster.
var (
	square = multiproc.Register("cluster.square", func(_ context.Context, x int) (int, error) { return x * x, nil })
	failer = multiproc.Register("cluster.failer", func(_ context.Context, x int) (int, error) {
		if x == 13 {
			panic("unlucky")
		}
		if x < 0 {
			return 0, fmt.Errorf("negative %d", x)
		}
		return x, nil
	})
	crash = multiproc.Register("cluster.crash", func(_ context.Context, job counted) (int, error) {
		job.mark()
		os.Exit(7)
		return 0, nil
	})
	crashOn7 = multiproc.Register("cluster.crashOn7", func(_ context.Context, x int) (int, error) {
		if x == 7 {
			os.Exit(7)
		}
		return x, nil
	})
	killHost = multiproc.Register("cluster.killHost", func(ctx context.Context, job counted) (int, error) {
		job.mark()
		// The worker's parent is its host: a task that takes its host
		// down, as an OOM kill would. The worker dies with it (Pdeathsig).
		syscall.Kill(os.Getppid(), syscall.SIGKILL)
		<-ctx.Done()
		return 0, nil
	})
	slow = multiproc.Register("cluster.slow", func(ctx context.Context, job counted) (int, error) {
		job.mark()
		select {
		case <-time.After(time.Duration(job.Ms) * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return job.N * 2, nil
	})
	shared = multiproc.Register("cluster.shared", func(_ context.Context, v *multiproc.Value[int64]) (int64, error) { return v.Add(1), nil })
)

// counted is a task that records each execution in a file, one line per
// run, so a test can count runs across processes and hosts.
type counted struct {
	Path string
	N    int
	Ms   int
}

func (c counted) mark() {
	if c.Path == "" {
		return
	}
	f, err := os.OpenFile(c.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(f, "%d\n", c.N)
	f.Close()
}

// runs reads the execution log: how many times each N ran.
func runs(t *testing.T, path string) map[int]int {
	t.Helper()
	out := map[int]int{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			t.Fatalf("bad line %q in %s", sc.Text(), path)
		}
		out[n]++
	}
	return out
}

func total(m map[int]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostProc is a host process the test started.
type hostProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startHost runs the test binary as a cluster host; it is stopped (and
// waited for) when the test ends.
func startHost(t *testing.T, url string, procs int, ackWait time.Duration, maxDeliveries int, env ...string) *hostProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"=host", envURL+"="+url,
		fmt.Sprintf("%s=%d,%d,%d", envArgs, procs, ackWait, maxDeliveries))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &hostProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(h.done) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *hostProc) kill() { h.cmd.Process.Kill() }

func (h *hostProc) stop(t *testing.T) {
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		t.Errorf("host %d did not stop within 20s of SIGTERM; killing it", h.cmd.Process.Pid)
		h.cmd.Process.Kill()
		<-h.done
	}
}

// natsServer is a standalone NATS server with JetStream on loopback,
// standing for a cluster's own server: the tests stop and restart it.
type natsServer struct {
	srv  *server.Server
	port int
	dir  string
}

func startNATS(t *testing.T, port int, dir string) *natsServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: filepath.Join(dir, "js"),
		NoSigs: true, NoLog: true, MaxPayload: maxPayload,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	n := &natsServer{srv: srv, port: srv.Addr().(*net.TCPAddr).Port, dir: dir}
	t.Cleanup(n.stop)
	return n
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

func (n *natsServer) stop() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, ctx context.Context, o Options) *Cluster {
	t.Helper()
	c, err := Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}
