//go:build linux && (amd64 || arm64)

package wire

import (
	"bytes"
	"errors"
	"testing"
)

type anyKey struct {
	K any
	N int8
}

type anyMsg struct {
	A  any
	L  []any
	M  map[any]int
	S  map[anyKey]string
	Ar map[[2]any]bool
}

// swapPrefix encodes v, checks that it begins with the encoding of was,
// and replaces that with the encoding of is: a message a peer could craft
// but no Go value encodes to.
func swapPrefix[V, P any](t testing.TB, v V, was, is P) []byte {
	t.Helper()
	cv, err := NewCodec[V]()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := NewCodec[P]()
	if err != nil {
		t.Fatal(err)
	}
	bv, err1 := cv.Append(nil, &v)
	bw, err2 := cp.Append(nil, &was)
	bi, err3 := cp.Append(nil, &is)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(bv, bw) {
		t.Fatalf("% x does not begin with % x", bv, bw)
	}
	return append(bi, bv[len(bw):]...)
}

// TestDecodeUncomparableKey: a well-formed map[any]int whose key's type
// name says []uint8 (no Go value encodes to it; a peer can send it). The
// decoder used to panic in SetMapIndex ("hash of unhashable type"); it
// must return an error. So must a struct or array key holding one.
func TestDecodeUncomparableKey(t *testing.T) {
	str, raw := []any{"ab"}, []any{[]byte("ab")}
	cases := []struct {
		name string
		in   []byte
		dec  func([]byte) error
	}{
		{"map[any]int", swapPrefix(t, map[any]int{"ab": 1}, str, raw), func(b []byte) error {
			return DecodeAny(b, new(map[any]int))
		}},
		{"map[anyKey]string", swapPrefix(t, map[anyKey]string{{K: "ab"}: "x"}, str, raw), func(b []byte) error {
			return DecodeAny(b, new(map[anyKey]string))
		}},
		{"map[[2]any]bool", swapPrefix(t, map[[2]any]bool{{"ab", nil}: true}, str, raw), func(b []byte) error {
			return DecodeAny(b, new(map[[2]any]bool))
		}},
	}
	for _, tc := range cases {
		err := tc.dec(tc.in)
		if !errors.Is(err, errKeyType) {
			t.Errorf("%s: %v, want an error saying the key cannot be a map key", tc.name, err)
		}
	}
	// The same messages with a comparable key still decode.
	var m map[any]int
	if err := DecodeAny(swapPrefix(t, map[any]int{"ab": 1}, str, str), &m); err != nil || m["ab"] != 1 {
		t.Fatalf("map[any]int: %v %v", m, err)
	}
}

// FuzzDecodeAny is FuzzDecode for values with interfaces: in fields,
// slices, and map keys (plain, in a struct, in an array), where a peer
// can name any registered type.
func FuzzDecodeAny(f *testing.F) {
	c, err := NewCodec[anyMsg]()
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range []anyMsg{
		{},
		{A: 1, L: []any{"s", []byte("b"), nil, 2.5}, M: map[any]int{"k": 1, int64(2): 3}},
		{S: map[anyKey]string{{K: "x", N: 1}: "y", {}: ""}, Ar: map[[2]any]bool{{1, "a"}: true}},
		{A: map[string]any{"n": []any{1, "x"}}},
	} {
		b, err := c.Append(nil, &v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// The crafted key of TestDecodeUncomparableKey, inside an anyMsg.
	ca, _ := NewCodec[any]()
	var str, raw any = "ab", []byte("ab")
	bs, _ := ca.Append(nil, &str)
	br, _ := ca.Append(nil, &raw)
	b, err := c.Append(nil, &anyMsg{M: map[any]int{"ab": 1}})
	if err != nil || !bytes.Contains(b, bs) {
		f.Fatalf("% x holds no % x (%v)", b, bs, err)
	}
	f.Add(bytes.Replace(b, bs, br, 1))
	f.Fuzz(func(t *testing.T, in []byte) {
		var v anyMsg
		if err := c.Decode(in, &v); err != nil {
			return
		}
		enc, err := c.Append(nil, &v)
		if err != nil {
			t.Fatalf("re-encoding a decoded value: %v", err)
		}
		var v2 anyMsg
		if err := c.Decode(enc, &v2); err != nil {
			t.Fatalf("decoding a re-encoded value: %v", err)
		}
	})
}
