package pickle

import (
	"bytes"
	"errors"
	"math/big"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

// TestRefusesConstructors: every opcode that would import, call, build or
// fetch an object is refused, in hand-made pickles that would run
// os.system in Python's unpickler.
func TestRefusesConstructors(t *testing.T) {
	for _, c := range []struct{ name, pickle, says string }{
		{"GLOBAL+REDUCE", "cos\nsystem\n(S'echo pwned'\ntR.", `GLOBAL at offset 0 ("os.system")`},
		{"STACK_GLOBAL", "\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c\x02id\x85R.", `STACK_GLOBAL at offset 17 ("posix.system")`},
		{"REDUCE alone", "\x80\x04N)R.", "REDUCE"},
		{"BUILD", "\x80\x04}}b.", "BUILD"},
		{"INST", "(S'echo pwned'\nios\nsystem\n.", `INST at offset 15 ("os.system")`},
		{"OBJ", "\x80\x02(cos\nsystem\nS'id'\no.", "GLOBAL"},
		{"OBJ alone", "\x80\x02(N)o.", "OBJ"},
		{"NEWOBJ", "\x80\x02N)\x81.", "NEWOBJ"},
		{"NEWOBJ_EX", "\x80\x04N)}\x92.", "NEWOBJ_EX"},
		{"PERSID", "P1\n.", "PERSID"},
		{"BINPERSID", "\x80\x04K\x00Q.", "BINPERSID"},
		{"EXT1", "\x80\x02\x82\x01.", "EXT1"},
		{"EXT2", "\x80\x02\x83\x01\x00.", "EXT2"},
		{"EXT4", "\x80\x02\x84\x01\x00\x00\x00.", "EXT4"},
		{"NEXT_BUFFER", "\x80\x05\x97.", "NEXT_BUFFER"},
		{"READONLY_BUFFER", "\x80\x05\x97\x98.", "NEXT_BUFFER"},
		{"set global, other call", "\x80\x04\x8c\x08builtins\x8c\x03set\x93\x8c\x02os\x85R.", "builtins.set of a string"},
		{"set name, other stack", "\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x8c\x08builtins\x8c\x03set00h\x00h\x01\x93)R.", "os.system"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := Unmarshal([]byte(c.pickle))
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, %v; want ErrUnsafe saying %q", v, err, c.says)
			}
		})
	}
}

// TestNotPickles: garbage and lying lengths are errors, never a panic or
// an allocation of what the stream claims.
func TestNotPickles(t *testing.T) {
	for _, p := range []string{
		"", "hello", "\x80\x04", "\x80\x04N", "\x80\x04N..", "\x80\x07N.",
		"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.", // BINBYTES8 of 8 EiB
		"\x80\x04X\xff\xff\xff\x7f.", "\x80\x04T\xff\xff\xff\xff.", "\x80\x04\x8a\x09\x00.",
		"\x80\x04e.", "\x80\x04(.", "\x80\x04a.", "I12", "\x80\x04\x95\x01\x00\x00\x00\x00\x00\x00",
	} {
		if v, err := Unmarshal([]byte(p)); err == nil {
			t.Errorf("%q decoded to %#v", p, v)
		} else if !errors.Is(err, ErrNotPickle) && !errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrUnsupported) {
			t.Errorf("%q: %v", p, err)
		}
	}
	// Random mutations of a valid pickle: errors or values, never a panic.
	good, err := Marshal(map[string]any{"a": []any{1, 2.5, "x", []byte("y"), Tuple{nil, true}, Set{int64(1): {}}}})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	for range 5000 {
		m := bytes.Clone(good)
		for range 1 + r.Intn(3) {
			m[r.Intn(len(m))] = byte(r.Intn(256))
		}
		Unmarshal(m[:r.Intn(len(m)+1)])
		Unmarshal(m)
	}
}

// TestBombs: deep nesting and exponential sharing are bounded errors.
func TestBombs(t *testing.T) {
	deep := "\x80\x04" + strings.Repeat("]", 100000) + strings.Repeat("a", 99999) + "."
	if _, err := Unmarshal([]byte(deep)); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("100000 nested lists: %v", err)
	}
	// t0 = (1, 1); t(n+1) = (tn, tn): 2^60 leaves in a few hundred bytes.
	var b strings.Builder
	b.WriteString("\x80\x04K\x01K\x01\x86\x94")
	for i := range 60 {
		b.WriteString("h" + string(rune(i)) + "h" + string(rune(i)) + "\x86\x94")
	}
	b.WriteString(".")
	if _, err := Unmarshal([]byte(b.String())); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("shared-tuple bomb: %v", err)
	}
	self := []any{1}
	self[0] = self
	if _, err := Marshal(self); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("a slice that contains itself: %v", err)
	}
	// A list that occurs twice: og-rek would decode its second copy empty.
	if _, err := Unmarshal([]byte("\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94K\x01ah\x01e.")); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("[x, x]: %v", err)
	}
}

// TestRoundTrip: Go → pickle → Go, with every supported kind.
func TestRoundTrip(t *testing.T) {
	big70 := new(big.Int).Lsh(big.NewInt(1), 70)
	in := map[any]any{
		"ints": []any{int64(0), int64(-1), int64(1 << 40), big70, new(big.Int).Neg(big70)},
		"u64":  uint64(1 << 63), "f": 1.25, "s": "ü", "b": []byte{0, 1},
		"t":  Tuple{nil, true, false},
		"st": Set{int64(1): {}, "a": {}, [2]any{int64(1), "x"}: {}}, "fs": FrozenSet{},
		[3]any{int64(1), nil, [1]any{"n"}}: "nested tuple key",
	}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want["u64"] = new(big.Int).SetUint64(1 << 63)
	if !reflect.DeepEqual(out, any(want)) {
		t.Fatalf("\n got %#v\nwant %#v", out, want)
	}
	for _, bad := range []any{struct{}{}, new(int), make(chan int), func() {}, map[any]any{"k": struct{}{}}} {
		if _, err := Marshal(bad); !errors.Is(err, ErrUnsupported) || !strings.HasPrefix(err.Error(), "multiproc: ") {
			t.Errorf("Marshal(%T): %v", bad, err)
		}
	}
	// bytes as a dict key has no comparable Go form: refused clearly.
	if _, err := Unmarshal([]byte("\x80\x04}C\x01kK\x01s.")); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("bytes key: %v", err)
	}
}
