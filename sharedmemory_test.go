//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// shmName is a name of this test process's own, removed at the end.
func shmName(t *testing.T, tag string) string {
	t.Helper()
	name := fmt.Sprintf("mpt_%d_%s", os.Getpid(), tag)
	t.Cleanup(func() { os.Remove("/dev/shm/" + name) })
	return name
}

type shmJob struct {
	M *multiproc.SharedMemory
	L *multiproc.ShareableList
}

// shmChild writes through the memory and the list it was passed.
var shmChild = multiproc.Register("test.shmChild", func(ctx context.Context, j shmJob) (string, error) {
	b := j.M.Bytes()
	copy(b[10:], "child")
	v, err := j.L.Get(0)
	if err != nil {
		return "", err
	}
	if err := j.L.Set(1, "from child"); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %d %v %s", j.M.Name(), len(b), v, j.L.Name()), nil
})

func TestSharedMemory(t *testing.T) {
	name := shmName(t, "a")
	m, err := multiproc.CreateSharedMemory(name, 10000)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Name() != name || len(m.Bytes()) != 10000 || m.Size() != 10000 {
		t.Fatalf("Name %q, %d bytes", m.Name(), len(m.Bytes()))
	}
	if st, err := os.Stat("/dev/shm/" + name); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 10000 {
		t.Fatalf("/dev/shm/%s: %v, %v", name, st, err)
	}
	copy(m.Bytes(), "hello")
	// A leading slash names the same block, as in Python.
	m2, err := multiproc.OpenSharedMemory("/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if string(m2.Bytes()[:5]) != "hello" || m2.Size() != 10000 || m2.Name() != "/"+name {
		t.Fatalf("second mapping: %q, %d, %q", m2.Bytes()[:5], m2.Size(), m2.Name())
	}
	m2.Bytes()[5] = '!'
	if m.Bytes()[5] != '!' {
		t.Fatal("a write through one mapping is not seen through the other")
	}
	if _, err := multiproc.CreateSharedMemory(name, 10); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("creating an existing name: %v", err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := m.Unlink(); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlink(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Unlink: %v", err)
	}
	if _, err := multiproc.OpenSharedMemory(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("opening an unlinked name: %v", err)
	}
	m.Bytes()[0] = 'H' // the mapping outlives the name
}

func TestSharedMemoryBadInput(t *testing.T) {
	for _, name := range []string{"/", "a/b", "a\x00b", strings.Repeat("x", 256)} {
		if _, err := multiproc.CreateSharedMemory(name, 8); err == nil {
			os.Remove("/dev/shm/" + name)
			t.Errorf("CreateSharedMemory(%q) worked", name)
		} else if !strings.HasPrefix(err.Error(), "multiproc: ") || strings.Count(err.Error(), "multiproc:") != 1 {
			t.Errorf("error text %q", err)
		}
		if _, err := multiproc.OpenSharedMemory(name); err == nil {
			t.Errorf("OpenSharedMemory(%q) worked", name)
		}
	}
	if _, err := multiproc.CreateSharedMemory(strings.Repeat("x", 256), 8); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("a 256-byte name: %v", err)
	}
	for _, size := range []int{0, -1} {
		if _, err := multiproc.CreateSharedMemory(shmName(t, "sz"), size); err == nil {
			t.Errorf("size %d worked", size)
		}
	}
	if _, err := multiproc.OpenSharedMemory(shmName(t, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("opening a missing block: %v", err)
	}
	// An empty object (a creator that has not sized it yet) is refused.
	empty := shmName(t, "empty")
	if err := os.WriteFile("/dev/shm/"+empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := multiproc.OpenSharedMemory(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("opening an empty block: %v", err)
	}
	// "" picks a name as Python does.
	m, err := multiproc.CreateSharedMemory("", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unlink()
	defer m.Close()
	if n := m.Name(); len(n) != 12 || !strings.HasPrefix(n, "psm_") {
		t.Errorf("picked name %q", n)
	}
}

var sinkByte atomic.Int32

// TestSharedMemoryBytesAfterClose: Bytes panics after Close, and a slice
// taken before faults rather than reach reused memory.
func TestSharedMemoryBytesAfterClose(t *testing.T) {
	name := shmName(t, "closed")
	m, err := multiproc.CreateSharedMemory(name, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unlink()
	b := m.Bytes()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if err, _ := recover().(error); !errors.Is(err, multiproc.ErrClosed) {
				t.Errorf("Bytes after Close: panic %v", err)
			}
		}()
		m.Bytes()
	}()
	faulted := make(chan any, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() { faulted <- recover() }()
		sinkByte.Store(int32(b[7]))
	}()
	if r := <-faulted; r == nil {
		t.Fatal("reading Bytes after Close did not fault")
	}
}

// TestSharedMemoryToChild: a SharedMemory and a ShareableList passed to a
// child are the same memory there.
func TestSharedMemoryToChild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := multiproc.CreateSharedMemory(shmName(t, "child"), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, err := multiproc.NewShareableList(shmName(t, "childl"), []any{int64(42), "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, err := shmChild.Call(ctx, shmJob{M: m, L: l})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s 100 42 %s", m.Name(), l.Name()); got != want {
		t.Fatalf("child said %q, want %q", got, want)
	}
	if string(m.Bytes()[10:15]) != "child" {
		t.Fatalf("the child's write is not here: %q", m.Bytes()[10:15])
	}
	if v, err := l.Get(1); v != "from child" || err != nil {
		t.Fatalf("list item 1 = %v, %v", v, err)
	}
}

func TestShareableList(t *testing.T) {
	items := []any{7, 2.5, "héllo", []byte{1, 2}, true, nil, int64(-1 << 62), "", false}
	l, err := multiproc.NewShareableList(shmName(t, "sl"), items)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := []any{int64(7), 2.5, "héllo", []byte{1, 2}, true, nil, int64(-1 << 62), "", false}
	if l.Len() != len(want) {
		t.Fatalf("Len = %d", l.Len())
	}
	for i, w := range want {
		if v, err := l.Get(i); err != nil || !reflect.DeepEqual(v, w) {
			t.Errorf("item %d = %#v, %v; want %#v", i, v, err, w)
		}
	}
	// The bytes of the research note's annotated dump (Python 3.9 to 3.13).
	l2, err := multiproc.NewShareableList(shmName(t, "dump"), []any{7, 2.5, "héllo", []byte{1, 2}, true, nil})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	m, err := multiproc.OpenSharedMemory(l2.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dump := "0600000000000000" + "0000000000000000" + "0800000000000000" + "1000000000000000" + "1800000000000000" +
		"2000000000000000" + "2800000000000000" + "3000000000000000" + "0700000000000000" + "0000000000000440" +
		"68c3a96c6c6f0000" + "0102000000000000" + "0000000000000001" + "0000000000000000" + "7100000000000000" +
		"6400000000000000" + "3873000000000000" + "3873000000000000" + "787878787878783f" + "7878787878783f78" + "000001020003"
	if got := fmt.Sprintf("%x", m.Bytes()); got != dump {
		t.Fatalf("layout differs from CPython's:\n got %s\nwant %s", got, dump)
	}
	// Any type into any slot; too long for the slot is an error that
	// changes nothing.
	for _, c := range []struct {
		i int
		v any
	}{{0, "1234567"}, {2, int64(5)}, {5, []byte("abcdefgh")}, {3, 1.5}, {4, nil}, {1, false}} {
		if err := l.Set(c.i, c.v); err != nil {
			t.Fatalf("Set(%d, %#v): %v", c.i, c.v, err)
		}
		if v, _ := l.Get(c.i); !reflect.DeepEqual(v, c.v) && !(c.v == nil && v == nil) {
			t.Fatalf("Get(%d) after Set = %#v, want %#v", c.i, v, c.v)
		}
	}
	if err := l.Set(0, "123456789"); err == nil {
		t.Fatal("9 bytes into an 8-byte slot worked")
	}
	if v, _ := l.Get(0); v != "1234567" {
		t.Fatalf("a refused Set changed the item: %#v", v)
	}
	for _, bad := range []any{uint64(1 << 63), []int{1}, struct{}{}} {
		if err := l.Set(1, bad); err == nil {
			t.Errorf("Set of %#v worked", bad)
		}
	}
	if _, err := l.Get(len(want)); err == nil {
		t.Error("Get out of range worked")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(0); !errors.Is(err, multiproc.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := multiproc.NewShareableList(shmName(t, "bad"), []any{[]int{}}); err == nil {
		t.Error("a list item of an unsupported type worked")
	}
	if _, err := os.Stat("/dev/shm/" + shmName(t, "bad")); err == nil {
		t.Error("a refused NewShareableList left its block")
	}
}

// TestShareableListCorrupt: a block whose header lies is refused.
func TestShareableListCorrupt(t *testing.T) {
	name := shmName(t, "corrupt")
	m, err := multiproc.CreateSharedMemory(name, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b := m.Bytes()
	for _, hdr := range [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},                                                 // huge count
		{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // offset past the end
		{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0},                      // data past the end
	} {
		clear(b)
		copy(b, hdr)
		if _, err := multiproc.OpenShareableList(name); !errors.Is(err, multiproc.ErrCorrupt) {
			t.Errorf("header %x: %v", hdr, err)
		}
	}
}
