//go:build linux && (amd64 || arm64)

package shmmap

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func newMap(t *testing.T) *Map {
	t.Helper()
	m, err := Create()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestMapAgainstGoMap runs random operations against the table and a Go
// map, through growth and compaction, and compares them throughout.
func TestMapAgainstGoMap(t *testing.T) {
	m := newMap(t)
	ref := map[string]string{}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 4000
	}
	for i := range n {
		k := fmt.Sprintf("k%d", rng.IntN(800))
		switch rng.IntN(4) {
		case 0, 1:
			v := fmt.Sprintf("%d:%s", i, make([]byte, rng.IntN(300)))
			if err := m.Store([]byte(k), []byte(v)); err != nil {
				t.Fatal(err)
			}
			ref[k] = v
		case 2:
			if err := m.Delete([]byte(k)); err != nil {
				t.Fatal(err)
			}
			delete(ref, k)
		case 3:
			v, ok, err := m.Load(nil, []byte(k))
			if err != nil {
				t.Fatal(err)
			}
			if w, wok := ref[k]; ok != wok || string(v) != w {
				t.Fatalf("op %d: Load(%s) = %q, %v; want %q, %v", i, k, v, ok, w, wok)
			}
		}
	}
	if l, err := m.Len(); err != nil || l != len(ref) {
		t.Fatalf("Len = %d, %v; want %d", l, err, len(ref))
	}
	seen := 0
	for pos := 0; pos >= 0; {
		var err error
		pos, _, err = m.Range(pos, 7, func(k, v []byte) {
			seen++
			if ref[string(k)] != string(v) {
				t.Errorf("Range: %s = %q, want %q", k, v, ref[string(k)])
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen != len(ref) {
		t.Fatalf("Range saw %d entries, want %d", seen, len(ref))
	}
}

// TestMapSecondHandle: a second Map on the same memfd (as another process
// would hold it) sees the first one's writes, and remaps as it grows.
func TestMapSecondHandle(t *testing.T) {
	m := newMap(t)
	dup, err := m.DupFd()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Open(dup)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	for i := range 3000 {
		if err := m.Store(fmt.Appendf(nil, "%d", i), make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := m2.Len(); l != 3000 || err != nil {
		t.Fatalf("second handle: Len = %d, %v", l, err)
	}
	err = m2.Update([]byte("7"), func(old []byte, ok bool) ([]byte, error) {
		if !ok || len(old) != 100 {
			t.Errorf("Update saw %d bytes, %v", len(old), ok)
		}
		return []byte("x"), nil
	})
	if v, _, _ := m.Load(nil, []byte("7")); string(v) != "x" || err != nil {
		t.Fatalf("after Update: %q, %v", v, err)
	}
}

// TestMapCorrupt: scribbled memory is ErrCorrupt, never a fault.
func TestMapCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		m, err := Create()
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			m.Store(fmt.Appendf(nil, "%d", i), make([]byte, i))
		}
		mem := m.seg.Bytes()
		for range 1 + rng.IntN(4) {
			var off int
			if rng.IntN(2) == 0 {
				off = offRoot + rng.IntN(offDesc+2*descSize-offRoot)
			} else {
				off = hdrSize + rng.IntN(len(mem)-hdrSize)
			}
			mem[off] = byte(rng.Uint32())
		}
		for i := range 60 {
			k := fmt.Appendf(nil, "%d", i)
			_, _, err1 := m.Load(nil, k)
			err2 := m.Store(k, make([]byte, 3*i))
			for _, err := range []error{err1, err2} {
				if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("trial %d: %v", trial, err)
				}
			}
		}
		m.Len()
		m.Close()
	}
}

func TestMapUpdatePanicUnlocks(t *testing.T) {
	m := newMap(t)
	m.Store([]byte("a"), []byte("1"))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not go on")
			}
		}()
		m.Update([]byte("a"), func(old []byte, ok bool) ([]byte, error) { panic("boom") })
	}()
	if v, ok, err := m.Load(nil, []byte("a")); string(v) != "1" || !ok || err != nil {
		t.Fatalf("after a panicking Update: %q, %v, %v", v, ok, err)
	}
}

func TestMapClosed(t *testing.T) {
	m := newMap(t)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := m.Store([]byte("a"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Store after Close: %v", err)
	}
}
