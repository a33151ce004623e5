// Command socket is the lesson's local-socket demo, with python3 on the
// other end: a Go Listener serves a python3 multiprocessing Client
// (client.py), and a Go client (Dial) talks to a python3 Listener
// (server.py). Objects cross as pickles (SendPickle / RecvPickle), raw
// messages as bytes, and both sides check the same authkey with Python's
// own handshake.
//
//	go run ./examples/socket
//
// It needs python3; without it, it says so and shows the Go-to-Go half.
package main

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/multiproc-go/multiproc"
)

//go:embed client.py
var clientPy []byte

//go:embed server.py
var serverPy []byte

var authkey = []byte("a shared secret")

func main() {
	multiproc.Main()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "socket:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "multiproc-socket-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	python, err := exec.LookPath("python3")
	if err != nil {
		fmt.Println("python3 is not installed: the python half of this example cannot run.")
		fmt.Println("Install python3 (e.g. apt-get install python3) and run it again. Meanwhile, Go to Go:")
		return goToGo(ctx, dir)
	}
	for name, src := range map[string][]byte{"client.py": clientPy, "server.py": serverPy} {
		if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
			return err
		}
	}
	if err := servePython(ctx, python, dir); err != nil {
		return err
	}
	return dialPython(ctx, python, dir)
}

// servePython: a Go Listener on a unix socket, python3's Client connects.
func servePython(ctx context.Context, python, dir string) error {
	path := filepath.Join(dir, "demo.sock")
	l, err := multiproc.Listen("unix", path, authkey)
	if err != nil {
		return err
	}
	defer l.Close() // removes demo.sock
	fmt.Println("== a Go Listener on", l.Addr(), "serves python3's Client")
	cmd := exec.CommandContext(ctx, python, filepath.Join(dir, "client.py"), path, string(authkey))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	conn, err := l.Accept(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for {
		msg, err := conn.RecvPickle() // python's conn.send(obj)
		if err != nil {
			return err
		}
		if msg == nil { // python's goodbye
			break
		}
		req := msg.(map[any]any) // a python dict
		fmt.Printf("go got: %v\n", req)
		switch req["op"] {
		case "stats":
			var sum int64
			vals := req["values"].([]any) // a python list
			ints := make([]int64, len(vals))
			for i, v := range vals {
				ints[i] = v.(int64)
				sum += ints[i]
			}
			err = conn.SendPickle(map[string]any{
				"sum": sum, "min": slices.Min(ints), "max": slices.Max(ints),
				"mean": float64(sum) / float64(len(ints)), "answered_by": multiproc.Tuple{"go", os.Getpid()},
			})
		case "square":
			var out []any
			for _, v := range req["values"].(multiproc.Tuple) { // a python tuple
				b := new(big.Int)
				switch x := v.(type) {
				case int64:
					b.SetInt64(x)
				case *big.Int: // beyond int64: 2**70
					b.Set(x)
				}
				out = append(out, b.Mul(b, b))
			}
			err = conn.SendPickle(out)
		case "raw-next":
			// python's next message comes with send_bytes: no pickle.
			var raw []byte
			if raw, err = conn.RecvBytes(); err == nil {
				err = conn.SendBytes(append([]byte("Go read raw bytes: "), raw...))
			}
		default:
			err = conn.SendPickle(map[string]any{"error": fmt.Sprint("unknown op ", req["op"])})
		}
		if err != nil {
			return err
		}
	}
	return cmd.Wait()
}

// dialPython: python3's Listener on TCP loopback, a Go client Dials it.
func dialPython(ctx context.Context, python, dir string) error {
	cmd := exec.CommandContext(ctx, python, filepath.Join(dir, "server.py"), string(authkey))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("python3's Listener did not say its address: %w", err)
	}
	addr = strings.TrimSpace(addr)
	fmt.Println("== a Go client Dials python3's Listener at", addr)
	conn, err := multiproc.Dial(ctx, "tcp", addr, authkey)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, v := range []any{
		"hello from Go",
		multiproc.Tuple{1, 2.5, nil, true},
		map[string][]int{"primes": {2, 3, 5, 7}},
		multiproc.Set{"a": {}, "b": {}},
		[]byte{0, 1, 2},
		new(big.Int).Lsh(big.NewInt(1), 100),
	} {
		if err := conn.SendPickle(v); err != nil {
			return err
		}
		back, err := conn.RecvPickle()
		if err != nil {
			return err
		}
		fmt.Printf("go sent %v, python saw a %v\n", v, back.(map[any]any)["type"])
	}
	if err := conn.SendPickle(nil); err != nil {
		return err
	}
	return cmd.Wait()
}

// goToGo is the same exchange between two Go processes' ends.
func goToGo(ctx context.Context, dir string) error {
	l, err := multiproc.Listen("unix", filepath.Join(dir, "demo.sock"), authkey)
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := multiproc.Dial(ctx, "unix", l.Addr().String(), authkey)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := l.Accept(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := c.SendPickle(map[string]any{"values": []int{3, 1, 4}}); err != nil {
		return err
	}
	v, err := s.RecvPickle()
	if err != nil {
		return err
	}
	fmt.Printf("go got: %v\n", v)
	return nil
}
