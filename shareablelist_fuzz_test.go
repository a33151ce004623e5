//go:build linux && (amd64 || arm64)

package multiproc

import (
	"encoding/hex"
	"testing"
)

// FuzzShareableListLayout feeds arbitrary blocks to the layout parser and
// reads and writes every item of what it accepts: never a panic or a read
// out of range, whatever a hostile process wrote.
func FuzzShareableListLayout(f *testing.F) {
	// Python 3.11's ShareableList([7, 2.5, "héllo", b"\x01\x02", True, None]).
	py311, _ := hex.DecodeString("0600000000000000000000000000000008000000000000001000000000000000180000000000000020000000000000002800000000000000300000000000000007000000000000000000000000000440" +
		"68c3a96c6c6f000001020000000000000000000000000001000000000000000071000000000000006400000000000000387300000000000038730000000000007878787878787" +
		"83f7878787878783f78000001020003")
	f.Add(py311)
	// Python 3.8's ShareableList([1, "ab"]): sizes, not offsets.
	py38, _ := hex.DecodeString("0200000000000000" + "0800000000000000" + "0800000000000000" + "0100000000000000" + "6162000000000000" +
		"7100000000000000" + "3873000000000000" + "0001")
	f.Add(py38)
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		lay, err := parseShareableList(b)
		if err != nil {
			return
		}
		for i := range lay.n {
			slGet(b, &lay, i)
			slSet(b, &lay, i, "ab")
			slGet(b, &lay, i)
			slSet(b, &lay, i, int64(5))
			slSet(b, &lay, i, nil)
		}
	})
}

// TestShareableList38: a list in Python 3.8's layout reads and writes.
func TestShareableList38(t *testing.T) {
	b, _ := hex.DecodeString("0200000000000000" + "0800000000000000" + "0800000000000000" + "0100000000000000" + "6162000000000000" +
		"7100000000000000" + "3873000000000000" + "0001")
	lay, err := parseShareableList(b)
	if err != nil || !lay.v38 || lay.n != 2 {
		t.Fatalf("parse: %+v, %v", lay, err)
	}
	if v, err := slGet(b, &lay, 0); v != int64(1) || err != nil {
		t.Fatalf("item 0 = %#v, %v", v, err)
	}
	if v, err := slGet(b, &lay, 1); v != "ab" || err != nil {
		t.Fatalf("item 1 = %#v, %v", v, err)
	}
	if err := slSet(b, &lay, 1, "xyz"); err != nil {
		t.Fatal(err)
	}
	if v, _ := slGet(b, &lay, 1); v != "xyz" {
		t.Fatalf("item 1 after Set = %#v", v)
	}
}
