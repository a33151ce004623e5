//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// shmPythons is pythons plus pyenv's 3.9 and 3.10, which pythons leaves
// out (shared_memory's layouts differ between 3.8 and 3.9).
func shmPythons(t *testing.T) []pyInterp {
	list := append([]pyInterp(nil), pythons(t)...)
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		if out, err := exec.Command("pyenv", "root").Output(); err == nil {
			root = strings.TrimSpace(string(out))
		}
	}
	for _, v := range []string{"3.9", "3.10"} {
		m, _ := filepath.Glob(filepath.Join(root, "versions", v+".*", "bin", "python3"))
		if root == "" || len(m) == 0 {
			t.Logf("python %s is not present: not tested against it", v)
			continue
		}
		list = append(list, pyInterp{m[0], v})
	}
	return list
}

// shmPyScript runs in python3: it reads and writes the block and the list
// Go made (argv 1, 2), then makes its own, prints their names, waits for
// a line, and checks what Go wrote into them.
const shmPyScript = `
import sys
from multiprocessing import shared_memory as sm, resource_tracker as rt
V = sys.version_info[:2]
def attach(name):
    if V >= (3, 13):
        return sm.SharedMemory(name, track=False)
    s = sm.SharedMemory(name)
    rt.unregister(s._name, "shared_memory")  # or its tracker unlinks Go's block at exit
    return s
a = attach(sys.argv[1])
assert a.size == 5000, a.size
assert bytes(a.buf[:10]) == b"go-wrote!!", bytes(a.buf[:10])
a.buf[100:108] = b"py-wrote"
a.close()
if V >= (3, 9):
    l = sm.ShareableList(name=sys.argv[2])
    rt.unregister(l.shm._name, "shared_memory")
    got = list(l)
    assert got == [7, 2.5, "h\u00e9llo", b"\x01\x02", True, None, "12345678", -2**63], got
    l[0] = -5; l[2] = "ok"; l[4] = None; l[5] = 3.25; l[6] = b"bytes"
    l.shm.close()
b = sm.SharedMemory(create=True, size=1234)
b.buf[:11] = b"from-python"
pl = sm.ShareableList([1, "x" * 10, b"yz", False, None, 1.5, -2**63])
print(b.name, pl.shm.name, flush=True)
sys.stdin.readline()
assert bytes(b.buf[200:210]) == b"go-answer!", bytes(b.buf[200:210])
got = list(pl)
assert got == [99, "go", b"yz", True, 2.0, None, "h\u00e9llo"], got
b.close(); b.unlink(); pl.shm.close(); pl.shm.unlink()
print("done", flush=True)
`

// TestSharedMemoryPython: with every python3 present (3.8 to 3.13), Go
// creates a block and a ShareableList that python3 reads and writes, and
// python3 creates ones that Go reads and writes; each sees the other's
// writes. ShareableList from Go is read from 3.9 on (3.8's layout
// differs); 3.8's own lists are read and written by Go.
func TestSharedMemoryPython(t *testing.T) {
	for _, py := range shmPythons(t) {
		t.Run(py.version, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			a, err := multiproc.CreateSharedMemory(shmName(t, "pya"+py.version), 5000)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			copy(a.Bytes(), "go-wrote!!")
			l, err := multiproc.NewShareableList(shmName(t, "pyl"+py.version),
				[]any{7, 2.5, "héllo", []byte{1, 2}, true, nil, "12345678", int64(-1 << 63)})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()

			cmd := exec.CommandContext(ctx, py.path, "-c", shmPyScript, a.Name(), l.Name())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close()
			out := bufio.NewReader(stdout)
			line, err := out.ReadString('\n')
			names := strings.Fields(line)
			if err != nil || len(names) != 2 {
				cmd.Wait()
				t.Fatalf("python said %q (%v); stderr:\n%s", line, err, stderr.String())
			}
			if got := string(a.Bytes()[100:108]); got != "py-wrote" {
				t.Errorf("python's write into Go's block: %q", got)
			}
			if py.version != "3.8" {
				want := []any{int64(-5), 2.5, "ok", []byte{1, 2}, nil, 3.25, []byte("bytes"), int64(-1 << 63)}
				for i, w := range want {
					if v, err := l.Get(i); err != nil || !reflect.DeepEqual(v, w) {
						t.Errorf("Go's list item %d after python = %#v, %v; want %#v", i, v, err, w)
					}
				}
			}

			b, err := multiproc.OpenSharedMemory(names[0])
			if err != nil {
				t.Fatal(err)
			}
			if b.Size() != 1234 || string(b.Bytes()[:11]) != "from-python" {
				t.Errorf("python's block: %d bytes, %q", b.Size(), b.Bytes()[:11])
			}
			copy(b.Bytes()[200:], "go-answer!")
			b.Close()
			pl, err := multiproc.OpenShareableList(names[1])
			if err != nil {
				t.Fatal(err)
			}
			want := []any{int64(1), "xxxxxxxxxx", []byte("yz"), false, nil, 1.5, int64(-1 << 63)}
			for i, w := range want {
				if v, err := pl.Get(i); err != nil || !reflect.DeepEqual(v, w) {
					t.Errorf("python's list item %d = %#v, %v; want %#v", i, v, err, w)
				}
			}
			for i, v := range []any{99, "go", []byte("yz"), true, 2.0, nil, "héllo"} {
				if err := pl.Set(i, v); err != nil {
					t.Fatalf("Set(%d, %#v) on python's list: %v", i, v, err)
				}
			}
			if err := pl.Set(1, strings.Repeat("y", 17)); err == nil {
				t.Error("17 bytes into python's 16-byte slot worked")
			}
			pl.Close()

			stdin.Write([]byte("go on\n"))
			if line, _ := out.ReadString('\n'); line != "done\n" {
				cmd.Wait()
				t.Fatalf("python said %q; stderr:\n%s", line, stderr.String())
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("python: %v; stderr:\n%s", err, stderr.String())
			}
			// Python's tracker was told to leave Go's block alone.
			if _, err := os.Stat("/dev/shm/" + a.Name()); err != nil {
				t.Errorf("Go's block after python exited: %v", err)
			}
			if strings.Contains(stderr.String(), "leaked") {
				t.Errorf("python's resource tracker complained:\n%s", stderr.String())
			}
		})
	}
}
