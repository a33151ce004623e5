package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/multiproc-go/multiproc"
)

// The socket scenarios (multiproc.Listen / Dial; python's Listener /
// Client), added to the table after the others.
func init() {
	all = append(all, socketScenarios...)
}

var socketScenarios = []*Scenario{
	{
		Name: "socket-unix", Title: "Listen/Dial over a unix socket (with authkey), 64 B round trip, SendBytes/RecvBytes, to a Go child that echoes",
		Unit: "µs", Mechanism: "socket",
		Python:   "Listener/Client over a unix socket (authkey), send_bytes/recv_bytes, a child echoes",
		Target:   &Target{Factor: 2, Text: "≤ 0.5× python"},
		FloorRef: &FloorRef{Metric: "unix socket ping-pong RTT 64B", Max: 1.5},
		full:     sizes{n: 20000}, quick: sizes{n: 5000},
		measure: func(ctx context.Context, n, _ int) (time.Duration, error) { return measureSocketGo(ctx, "unix", n) },
	},
	{
		Name: "socket-tcp", Title: "the same over TCP loopback",
		Unit: "µs", Mechanism: "socket",
		Python:   "Listener/Client over TCP loopback (authkey), a child echoes",
		Target:   &Target{Factor: 2, Text: "≤ 0.5× python"},
		FloorRef: &FloorRef{Metric: "tcp loopback ping-pong RTT 64B", Max: 1.5},
		full:     sizes{n: 20000}, quick: sizes{n: 5000},
		measure: func(ctx context.Context, n, _ int) (time.Duration, error) { return measureSocketGo(ctx, "tcp", n) },
	},
	{
		Name: "socket-unix-py", Title: "Go Listener ↔ python3 Client over a unix socket, 64 B round trip (python3 echoes)",
		Unit: "µs", Mechanism: "socket",
		Python: "python3 ↔ python3, as socket-unix",
		Target: &Target{Factor: 1, Text: "≤ 1× python↔python (Go's half not the slower)"},
		full:   sizes{n: 20000}, quick: sizes{n: 5000},
		measure: func(ctx context.Context, n, _ int) (time.Duration, error) { return measureSocketPy(ctx, "unix", n) },
	},
	{
		Name: "socket-tcp-py", Title: "Go Listener ↔ python3 Client over TCP loopback, 64 B round trip (python3 echoes)",
		Unit: "µs", Mechanism: "socket",
		Python: "python3 ↔ python3, as socket-tcp",
		Target: &Target{Factor: 1, Text: "≤ 1× python↔python (Go's half not the slower)"},
		full:   sizes{n: 20000}, quick: sizes{n: 5000},
		measure: func(ctx context.Context, n, _ int) (time.Duration, error) { return measureSocketPy(ctx, "tcp", n) },
	},
}

var socketKey = []byte("multiproc bench")

type sockEchoArg struct{ Network, Addr string }

// sockEcho dials the parent's Listener and echoes every message until EOF.
var sockEcho = multiproc.Register("bench.sock-echo", func(ctx context.Context, a sockEchoArg) (int, error) {
	c, err := multiproc.Dial(ctx, a.Network, a.Addr, socketKey)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return echoUntilEOF(c)
})

// listenBench listens on a fresh abstract unix name or loopback port.
func listenBench(network string) (*multiproc.Listener, error) {
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = "@multiproc-bench-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return multiproc.Listen(network, addr, socketKey)
}

// socketRoundTrips accepts the echoing peer and times n round trips.
func socketRoundTrips(ctx context.Context, l *multiproc.Listener, n int) (time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := l.Accept(actx)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return timeRoundTrips(c, n)
}

func measureSocketGo(ctx context.Context, network string, n int) (time.Duration, error) {
	l, err := listenBench(network)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	p := sockEcho.Process(sockEchoArg{network, l.Addr().String()})
	p.Daemon = true
	if err := p.Start(); err != nil {
		return 0, err
	}
	d, err := socketRoundTrips(ctx, l, n)
	if err != nil {
		p.Kill()
		p.Join(context.Background())
		return 0, err
	}
	if err := p.Join(ctx); err != nil {
		return 0, err
	}
	return d, nil
}

// pyEcho is the python3 Client of socket-*-py: it echoes until EOF.
const pyEcho = `
import sys
from multiprocessing.connection import Client
family, addr = sys.argv[1], sys.argv[2]
if family == 'tcp':
    h, p = addr.rsplit(':', 1)
    addr = (h, int(p))
else:
    addr = '\0' + addr[1:]
c = Client(addr, authkey=sys.argv[3].encode())
try:
    while True:
        c.send_bytes(c.recv_bytes())
except EOFError:
    pass
`

func measureSocketPy(ctx context.Context, network string, n int) (time.Duration, error) {
	python, err := exec.LookPath("python3")
	if err != nil {
		return 0, fmt.Errorf("python3 is needed for this scenario: %w", err)
	}
	l, err := listenBench(network)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	cmd := exec.CommandContext(ctx, python, "-c", pyEcho, network, l.Addr().String(), string(socketKey))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	d, err := socketRoundTrips(ctx, l, n)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, err
	}
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("python3 echo: %w", err)
	}
	return d, nil
}
