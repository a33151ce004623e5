//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// pyInterp is a python3 that really runs, and its version.
type pyInterp struct{ path, version string }

var (
	pythonsOnce sync.Once
	pythonsList []pyInterp
)

// pythons finds the python3 interpreters present: python3 on PATH and the
// 3.8, 3.12 and 3.13 under pyenv (whose shims fail unless selected, so
// each candidate is run and must report its version).
func pythons(t *testing.T) []pyInterp {
	pythonsOnce.Do(func() {
		cands := []string{"python3"}
		root := os.Getenv("PYENV_ROOT")
		if root == "" {
			if out, err := exec.Command("pyenv", "root").Output(); err == nil {
				root = strings.TrimSpace(string(out))
			}
		}
		if root != "" {
			for _, v := range []string{"3.8", "3.12", "3.13"} {
				m, _ := filepath.Glob(filepath.Join(root, "versions", v+".*", "bin", "python3"))
				cands = append(cands, m...)
			}
		}
		seen := map[string]bool{}
		for _, c := range cands {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			out, err := exec.CommandContext(ctx, c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])").Output()
			cancel()
			v := strings.TrimSpace(string(out))
			if err != nil || v == "" || seen[v] {
				continue
			}
			seen[v] = true
			pythonsList = append(pythonsList, pyInterp{c, v})
		}
	})
	if len(pythonsList) == 0 {
		t.Skip("no python3 runs here: the interop tests need one")
	}
	for _, want := range []string{"3.11", "3.12", "3.13"} {
		found := false
		for _, p := range pythonsList {
			found = found || p.version == want
		}
		if !found {
			t.Logf("python %s is not present: not tested against it", want)
		}
	}
	return pythonsList
}

// pySession is what the python side does on a connection, whichever side
// made it: bytes both ways, objects both ways, 16 MiB raw in and pickled
// back.
const pySession = `
import sys, pickle
from multiprocessing.connection import Listener, Client, AuthenticationError

EXPECTED = {
    'nested': [1, (2.5, None, b'\x00\xff'), {'k': [True, False]}],
    'big': 2**70, 'neg': -2**70, 'floats': [0.1, -1e300, float('inf')],
    'set': {1, 2, 3}, 'frozen': frozenset({'a'}), (1, 't'): 'tuple key',
    'none': None, 'text': 'h\u00e9llo \u2713', 'empty': ([], {}, ()),
}

def session(c):
    b = c.recv_bytes()
    c.send_bytes(b + b'!')
    o = c.recv()
    assert o == EXPECTED, repr(o)
    c.send(EXPECTED)
    big = c.recv_bytes()
    assert len(big) == BIG and big[:4] == b'\x01\x02\x03\x04', len(big)
    c.send(big)
    assert c.recv_bytes() == b'bye'
    c.close()

role, family, addr, key = sys.argv[1:5]
BIG = int(sys.argv[5]) if len(sys.argv) > 5 else 0
key = None if key == '-' else key.encode()
if family == 'tcp':
    host, port = addr.rsplit(':', 1)
    addr = (host, int(port))
elif addr.startswith('@'):
    addr = '\0' + addr[1:]
try:
    if role == 'client':
        c = Client(addr, authkey=key)
    else:
        l = Listener(addr, authkey=key)
        a = l.address
        if isinstance(a, tuple):
            a = '%s:%d' % a
        elif isinstance(a, bytes) or a.startswith('\0'):
            a = '@' + (a.decode() if isinstance(a, bytes) else a)[1:]
        print(a, flush=True)
        c = l.accept()
except AuthenticationError as e:
    print('AUTHFAIL', e, flush=True)
    sys.exit(3)
session(c)
print('OK', flush=True)
`

// goExpected is EXPECTED as RecvPickle returns it, and what SendPickle
// sends to make it.
func goExpected() map[any]any {
	two70 := new(big.Int).Lsh(big.NewInt(1), 70)
	return map[any]any{
		"nested":              []any{int64(1), multiproc.Tuple{2.5, nil, []byte{0, 0xff}}, map[any]any{"k": []any{true, false}}},
		"big":                 two70,
		"neg":                 new(big.Int).Neg(two70),
		"floats":              []any{0.1, -1e300, math.Inf(1)},
		"set":                 multiproc.Set{int64(1): {}, int64(2): {}, int64(3): {}},
		"frozen":              multiproc.FrozenSet{"a": {}},
		[2]any{int64(1), "t"}: "tuple key",
		"none":                nil,
		"text":                "héllo ✓",
		"empty":               multiproc.Tuple{[]any{}, map[any]any{}, multiproc.Tuple{}},
	}
}

// goSession is the Go side of pySession; size is the big message's.
func goSession(t *testing.T, c *multiproc.Conn, size int) {
	t.Helper()
	if err := c.SendBytes([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if b, err := c.RecvBytes(); err != nil || string(b) != "hello!" {
		t.Fatalf("bytes back: %q, %v", b, err)
	}
	if err := c.SendPickle(goExpected()); err != nil {
		t.Fatal(err)
	}
	got, err := c.RecvPickle()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, any(goExpected())) {
		t.Fatalf("object from python:\n got %#v\nwant %#v", got, goExpected())
	}
	big := bytes.Repeat([]byte{1, 2, 3, 4}, size/4)
	if err := c.SendBytes(big); err != nil {
		t.Fatal(err)
	}
	back, err := c.RecvPickle()
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := back.([]byte); !ok || !bytes.Equal(b, big) {
		t.Fatalf("%d bytes back: a %T of %d bytes", size, back, len(b))
	}
	if err := c.SendBytes([]byte("bye")); err != nil {
		t.Fatal(err)
	}
}

// runPy starts python with pySession in role against addr; lines yields
// its stdout lines, wait its exit status.
func runPy(t *testing.T, ctx context.Context, py pyInterp, role, network, addr, key string, size int) (lines <-chan string, wait func() error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, py.path, "-c", pySession, role, network, addr, key, strconv.Itoa(size))
	cmd.Stderr = &bytes.Buffer{}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	return ch, func() error {
		err := cmd.Wait()
		if err != nil {
			return errors.New(err.Error() + ": " + cmd.Stderr.(*bytes.Buffer).String())
		}
		return nil
	}
}

func nextLine(t *testing.T, ctx context.Context, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("python exited without a line")
		}
		return l
	case <-ctx.Done():
		t.Fatal("python said nothing in time")
	}
	return ""
}

// sockAddr is a fresh address of one network for a listener, and the
// size of the big message the python tests send over it: 16 MiB on one
// network per python version and direction (each costs seconds under
// -race on a loaded machine), 256 KiB on the others.
type sockAddr struct {
	name, network, addr string
	big                 int
}

func sockAddrs(t *testing.T) []sockAddr {
	dir := t.TempDir()
	return []sockAddr{
		{"unix", "unix", filepath.Join(dir, "s.sock"), 16 << 20},
		// The abstract namespace is the machine's: other test binaries may
		// run at the same time.
		{"abstract", "unix", fmt.Sprintf("@multiproc-test-%d-%d-%s", os.Getpid(), time.Now().UnixNano(), filepath.Base(dir)), 256 << 10},
		{"tcp", "tcp", "127.0.0.1:0", 256 << 10},
	}
}

// TestSocketGoListenerPythonClient: python's Client against Listen, on a
// unix path, an abstract name and TCP, with each python present.
func TestSocketGoListenerPythonClient(t *testing.T) {
	for _, py := range pythons(t) {
		for _, a := range sockAddrs(t) {
			t.Run(py.version+"/"+a.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				key := []byte("secret key")
				l, err := multiproc.Listen(a.network, a.addr, key)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				_, wait := runPy(t, ctx, py, "client", a.network, l.Addr().String(), string(key), a.big)
				c, err := l.Accept(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				goSession(t, c, a.big)
				if err := wait(); err != nil {
					t.Fatalf("python: %v", err)
				}
			})
		}
	}
}

// TestSocketPythonListenerGoDial: Dial against python's Listener.
func TestSocketPythonListenerGoDial(t *testing.T) {
	for _, py := range pythons(t) {
		for _, a := range sockAddrs(t) {
			t.Run(py.version+"/"+a.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				lines, wait := runPy(t, ctx, py, "listener", a.network, a.addr, "secret key", a.big)
				addr := nextLine(t, ctx, lines)
				c, err := multiproc.Dial(ctx, a.network, addr, []byte("secret key"))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				goSession(t, c, a.big)
				if err := wait(); err != nil {
					t.Fatalf("python: %v", err)
				}
			})
		}
	}
}

// TestSocketWrongKeyPython: a wrong key fails on both sides, whichever
// listens: ErrAuthentication in Go, AuthenticationError in python. Run
// with python ≤3.11 and 3.12+, it also checks each side of the legacy
// (MD5) and the new (SHA-256) rules against the other.
func TestSocketWrongKeyPython(t *testing.T) {
	for _, py := range pythons(t) {
		t.Run(py.version+"/go-listens", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rejects := make(chan error, 1)
			l, err := multiproc.ListenConfig{OnReject: func(_ net.Addr, err error) { rejects <- err }}.Listen("tcp", "127.0.0.1:0", []byte("right"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			lines, wait := runPy(t, ctx, py, "client", "tcp", l.Addr().String(), "wrong", 0)
			if line := nextLine(t, ctx, lines); !strings.HasPrefix(line, "AUTHFAIL") {
				t.Fatalf("python said %q", line)
			}
			wait()
			select {
			case err := <-rejects:
				if !errors.Is(err, multiproc.ErrAuthentication) {
					t.Fatalf("rejection: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("no rejection reported")
			}
			if n := l.Rejected(); n != 1 {
				t.Fatalf("Rejected() = %d", n)
			}
			actx, acancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer acancel()
			if c, err := l.Accept(actx); err == nil {
				c.Close()
				t.Fatal("Accept returned a connection that failed the handshake")
			}
		})
		t.Run(py.version+"/python-listens", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			lines, wait := runPy(t, ctx, py, "listener", "tcp", "127.0.0.1:0", "right", 0)
			addr := nextLine(t, ctx, lines)
			c, err := multiproc.Dial(ctx, "tcp", addr, []byte("wrong"))
			if err == nil {
				c.Close()
				t.Fatal("Dial with the wrong key succeeded")
			}
			if !errors.Is(err, multiproc.ErrAuthentication) {
				t.Fatalf("Dial: %v", err)
			}
			if line := nextLine(t, ctx, lines); !strings.HasPrefix(line, "AUTHFAIL") {
				t.Fatalf("python said %q", line)
			}
			wait()
		})
	}
}

// TestSocketPickleRefusedFromPython: an object python can pickle but that
// would need code to rebuild (a complex, a class instance) is refused by
// RecvPickle, and the Conn goes on.
func TestSocketPickleRefusedFromPython(t *testing.T) {
	py := pythons(t)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "s")
	l, err := multiproc.Listen("unix", path, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := exec.CommandContext(ctx, py.path, "-c", `
import os, sys, collections
from multiprocessing.connection import Client
c = Client(sys.argv[1], authkey=b'k')
c.send(1j)
c.send(collections.OrderedDict(a=1))
c.send(os.system)
c.send('still here')
`, path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i := 0; i < 3; i++ {
		v, err := a.RecvPickle()
		if !errors.Is(err, multiproc.ErrPickleUnsafe) {
			t.Fatalf("message %d: %v, %v", i, v, err)
		}
	}
	if v, err := a.RecvPickle(); err != nil || v != "still here" {
		t.Fatalf("after the refusals: %v, %v", v, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}
