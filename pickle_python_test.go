//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
	"golang.org/x/sys/unix"
)

// pickleCase is one value of the fidelity corpus: a python expression and
// the Go value RecvPickle must make of it (and SendPickle send back as an
// equal value). same: SendPickle's bytes are pickle.dumps(v, 4)'s, byte
// for byte (where a Go map's order cannot differ from python's).
type pickleCase struct {
	py   string
	goV  any
	same bool
}

func bigPow(base int64, exp uint, add int64, neg bool) *big.Int {
	x := new(big.Int).Exp(big.NewInt(base), big.NewInt(int64(exp)), nil)
	x.Add(x, big.NewInt(add))
	if neg {
		x.Neg(x)
	}
	return x
}

// goInt is x as RecvPickle returns it: int64 where it fits.
func goInt(x *big.Int) any {
	if x.IsInt64() {
		return x.Int64()
	}
	return x
}

func pickleCorpus() []pickleCase {
	var cs []pickleCase
	// Ints at every size boundary of every encoding: BININT1/2, BININT,
	// LONG1 (its length ≥ 128 from 2**1015: og-rek read it signed),
	// LONG4 (from 2**2040), and a 30103-digit one (binary: no digit limit
	// from protocol 2; python itself cannot write it at protocols 0, 1).
	for _, c := range []struct {
		exp      uint
		add      int64
		exprBase string
	}{
		{0, -1, "2**0-1"}, {0, 0, "2**0"}, {8, -1, "2**8-1"}, {8, 0, "2**8"}, {16, -1, "2**16-1"}, {16, 0, "2**16"},
		{31, -1, "2**31-1"}, {31, 0, "2**31"}, {32, 0, "2**32"}, {63, -1, "2**63-1"}, {63, 0, "2**63"}, {64, 0, "2**64"},
		{1015, -1, "2**1015-1"}, {1015, 0, "2**1015"}, {1016, 0, "2**1016"}, {1023, 0, "2**1023"},
		{2039, 0, "2**2039"}, {2040, -1, "2**2040-1"}, {2040, 0, "2**2040"}, {2048, 0, "2**2048"}, {100000, 0, "2**100000"},
	} {
		for _, neg := range []bool{false, true} {
			expr := c.exprBase
			if neg {
				expr = "-(" + expr + ")"
			}
			cs = append(cs, pickleCase{expr, goInt(bigPow(2, c.exp, c.add, neg)), true})
		}
	}
	cs = append(cs, pickleCase{"-2**31-1", int64(math.MinInt32) - 1, true}, pickleCase{"10**4300", bigPow(10, 4300, 0, false), true})
	nested := []any{}
	for range 200 {
		nested = []any{nested}
	}
	x := []any{int64(1)}
	tup := make(multiproc.Tuple, 50)
	for i := range tup {
		tup[i] = int64(i)
	}
	tups := make([]any, 100)
	for i := range tups {
		tups[i] = tup
	}
	row := map[any]any{}
	for i := range 100 {
		row[fmt.Sprintf("k%d", i)] = int64(i)
	}
	rows := make([]any, 14)
	for i := range rows {
		rows[i] = row
	}
	r2500 := make([]any, 2500)
	s2500 := multiproc.Set{}
	for i := range r2500 {
		r2500[i] = int64(i)
		s2500[int64(i)] = struct{}{}
	}
	all256 := make([]byte, 256)
	for i := range all256 {
		all256[i] = byte(i)
	}
	return append(cs, []pickleCase{
		{"None", nil, true}, {"True", true, true}, {"False", false, true},
		{"0.0", 0.0, true}, {"-0.0", math.Copysign(0, -1), true}, {"1.5", 1.5, true}, {"0.1", 0.1, true},
		{"1e300", 1e300, true}, {"-5e-324", -5e-324, true}, {"float('inf')", math.Inf(1), true},
		{"float('-inf')", math.Inf(-1), true}, {"float('nan')", math.Float64frombits(0x7ff8000000000000), true},
		{"''", "", true}, {"'a'", "a", true}, {"'h\\xe9llo'", "héllo", true}, {"'\\u20ac\\U0001f600'", "€😀", true},
		{"'x'*300", strings.Repeat("x", 300), true}, {"'a\\\\u0041\\nb\\r\\x00\\x1a\\xff'", "a\\u0041\nb\r\x00\x1a\u00ff", true},
		{"'y'*70000", strings.Repeat("y", 70000), true},
		{"'\\ud800'", "\xed\xa0\x80", true}, {"'\\udfffa\\ud800'", "\xed\xbf\xbfa\xed\xa0\x80", true},
		{"'\\ud83d\\ude00'", "\xed\xa0\xbd\xed\xb8\x80", true},
		{"b''", []byte{}, true}, {"b'\\x00\\xff\\x80a'", []byte{0, 0xff, 0x80, 'a'}, true}, {"bytes(range(256))", all256, true},
		{"b'z'*70000", []byte(strings.Repeat("z", 70000)), true},
		{"bytearray()", []byte{}, false}, {"bytearray(b'ab\\xff')", []byte("ab\xff"), false},
		{"()", multiproc.Tuple{}, true}, {"(1,)", multiproc.Tuple{int64(1)}, true}, {"(1, 'a')", multiproc.Tuple{int64(1), "a"}, true},
		{"(1, 2, 3)", multiproc.Tuple{int64(1), int64(2), int64(3)}, true},
		{"(1, 2.5, None, b'x')", multiproc.Tuple{int64(1), 2.5, nil, []byte("x")}, true},
		{"((), ((),))", multiproc.Tuple{multiproc.Tuple{}, multiproc.Tuple{multiproc.Tuple{}}}, true},
		{"[]", []any{}, true}, {"[1]", []any{int64(1)}, true}, {"[1, 'b', [2]]", []any{int64(1), "b", []any{int64(2)}}, true},
		{"list(range(2500))", r2500, true},
		{"{}", map[any]any{}, true}, {"{'a': 1}", map[any]any{"a": int64(1)}, true},
		{"{'a': 1, 'b': [1, (2,)]}", map[any]any{"a": int64(1), "b": []any{int64(1), multiproc.Tuple{int64(2)}}}, true},
		{"{None: 0, False: 1, 3: 2, 2.5: 3, 'x': 4, (1, ('a', None)): 5, (): 6}", map[any]any{
			nil: int64(0), false: int64(1), int64(3): int64(2), 2.5: int64(3), "x": int64(4),
			[2]any{int64(1), [2]any{"a", nil}}: int64(5), [0]any{}: int64(6)}, false},
		{"set()", multiproc.Set{}, true}, {"{7}", multiproc.Set{int64(7): {}}, true},
		{"{1, 'a', (2, 'b')}", multiproc.Set{int64(1): {}, "a": {}, [2]any{int64(2), "b"}: {}}, false},
		{"set(range(2500))", s2500, false},
		{"frozenset()", multiproc.FrozenSet{}, true}, {"frozenset({'x'})", multiproc.FrozenSet{"x": {}}, true},
		{"frozenset({1, 2.5})", multiproc.FrozenSet{int64(1): {}, 2.5: {}}, false},
		{"{'k': [7, 2.5, '\\xe9', b'\\x01', None, True, (1, 2), {3}, frozenset(), bytearray(b'q')]}", map[any]any{"k": []any{
			int64(7), 2.5, "é", []byte{1}, nil, true, multiproc.Tuple{int64(1), int64(2)}, multiproc.Set{int64(3): {}},
			multiproc.FrozenSet{}, []byte("q")}}, false},
		{"(lambda x: [x, x])([1])", []any{x, x}, true},
		{"(lambda t: [t] * 100)(tuple(range(50)))", tups, true},
		{"[{'k%d' % i: i for i in range(100)}] * 14", rows, false},
		{"(lambda b: (b, [b, b]))(b'shared')", func() any { b := []byte("shared"); return multiproc.Tuple{b, []any{b, b}} }(), true},
		{"__import__('functools').reduce(lambda a, _: [a], range(200), [])", nested, true},
	}...)
}

// pyFidelity is the python side: for each expression Go sends, it sends
// the value pickled at protocols 0 to 5 (send_bytes(dumps(v, p))) and by
// conn.send(v) — "__skip__" where python cannot pickle it — then
// receives Go's pickle of the same value, loads it and says whether it is
// the same value, and whether its bytes are dumps(v, 4)'s.
const pyFidelity = `
import sys, pickle, math, os
from multiprocessing.connection import Connection
c = Connection(int(sys.argv[1]))

def same(a, b):
    if isinstance(a, (bytes, bytearray)) and isinstance(b, (bytes, bytearray)):
        return bytes(a) == bytes(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and sorted(map(repr, a)) == sorted(map(repr, b)) and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, (set, frozenset)):
        return a == b and sorted(map(repr, a)) == sorted(map(repr, b))
    return a == b

def shares(a, b):
    # where a holds one object twice, b must too
    if isinstance(a, list) and len(a) >= 2 and a[0] is a[1] and isinstance(a[0], (list, tuple, dict, bytes)) and len(a[0]) > 0:
        return b[0] is b[1]
    if isinstance(a, tuple) and len(a) == 2 and isinstance(a[1], list) and a[1] and a[0] is a[1][0]:
        return b[0] is b[1][0] is b[1][1]
    return True

exprs = c.recv()
for e in exprs:
    v = eval(e)
    for p in range(6):
        try:
            c.send_bytes(pickle.dumps(v, p))
        except ValueError:
            c.send('__skip__')
    c.send(v)
    raw = c.recv_bytes()
    try:
        back = pickle.loads(raw)
    except Exception as ex:
        c.send_bytes(('FAIL loads: %r' % ex).encode())
        continue
    if not same(v, back):
        c.send_bytes(('FAIL: got %.300r' % (back,)).encode())
    elif not shares(v, back):
        c.send_bytes(b'FAIL: not shared')
    else:
        c.send_bytes(b'ok same' if raw == pickle.dumps(v, 4) else b'ok diff')
`

// pickleEqual is reflect.DeepEqual with NaN equal to NaN and -0.0 told
// from 0.0, for the corpus's values.
func pickleEqual(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (math.IsNaN(x) && math.IsNaN(y) || x == y && math.Signbit(x) == math.Signbit(y))
	case *big.Int:
		y, ok := b.(*big.Int)
		return ok && x.Cmp(y) == 0
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !pickleEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case multiproc.Tuple:
		y, ok := b.(multiproc.Tuple)
		return ok && pickleEqual([]any(x), []any(y))
	case map[any]any:
		y, ok := b.(map[any]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !pickleEqual(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// pythonVersions finds ~/.pyenv's (or $PYENV_ROOT's) python 3.8 to 3.13.
func pythonVersions(t *testing.T) map[string]string {
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		home, _ := os.UserHomeDir()
		root = filepath.Join(home, ".pyenv")
	}
	found := map[string]string{}
	for _, v := range []string{"3.8", "3.9", "3.10", "3.11", "3.12", "3.13"} {
		m, _ := filepath.Glob(filepath.Join(root, "versions", v+".*", "bin", "python3"))
		if len(m) > 0 {
			found[v] = m[len(m)-1]
		} else if v == "3.11" {
			if p, err := exec.LookPath("python3"); err == nil {
				found[v] = p // the default python3 (checked to be 3.11 below)
			}
		}
	}
	return found
}

// TestPickleFidelityPython: the corpus both ways, through every protocol
// 0 to 5 and conn.send, against each python3 3.8 to 3.13 present (one
// python process per version for the whole corpus).
func TestPickleFidelityPython(t *testing.T) {
	found := pythonVersions(t)
	corpus := pickleCorpus()
	exprs := make([]any, len(corpus))
	for i, c := range corpus {
		exprs[i] = c.py
	}
	for _, v := range []string{"3.8", "3.9", "3.10", "3.11", "3.12", "3.13"} {
		t.Run(v, func(t *testing.T) {
			py, ok := found[v]
			if !ok {
				t.Skipf("python %s is not installed: not tested against it", v)
			}
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			theirs := os.NewFile(uintptr(fds[1]), "python's end")
			c := multiproc.ConnFromFd(fds[0])
			defer c.Close()
			cmd := exec.CommandContext(ctx, py, "-c", pyFidelity, "3")
			cmd.ExtraFiles = []*os.File{theirs}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			theirs.Close()
			defer func() {
				c.Close()
				if err := cmd.Wait(); err != nil && !t.Failed() {
					t.Errorf("python %s: %v\n%s", v, err, stderr.String())
				}
			}()
			fail := func(format string, args ...any) {
				t.Helper()
				c.Close()
				cmd.Wait()
				t.Fatalf(format+"\npython's stderr: %s", append(args, stderr.String())...)
			}
			if err := c.SendPickleContext(ctx, exprs); err != nil {
				fail("sending the corpus: %v", err)
			}
			for _, pc := range corpus {
				for p := range 7 {
					got, err := c.RecvPickleContext(ctx)
					if err != nil {
						fail("%s at protocol %d: %v", pc.py, p, err)
					}
					if got == "__skip__" {
						continue
					}
					if !pickleEqual(got, pc.goV) {
						fail("%s at protocol %d (6: conn.send):\n got %.300v\nwant %.300v", pc.py, p, got, pc.goV)
					}
				}
				if err := c.SendPickleContext(ctx, pc.goV); err != nil {
					fail("SendPickle(%s): %v", pc.py, err)
				}
				verdict, err := c.RecvBytesContext(ctx)
				if err != nil {
					fail("%s: python's verdict: %v", pc.py, err)
				}
				switch {
				case !strings.HasPrefix(string(verdict), "ok"):
					fail("%s sent to python: %s", pc.py, verdict)
				case pc.same && string(verdict) != "ok same":
					t.Errorf("%s: SendPickle's bytes are not pickle.dumps(v, 4)'s", pc.py)
				}
			}
		})
	}
}
