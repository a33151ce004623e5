package pickle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"math/rand"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestRefusesConstructors: every opcode that would import, call, build or
// fetch an object is refused, in hand-made pickles that would run
// os.system in Python's unpickler.
func TestRefusesConstructors(t *testing.T) {
	for _, c := range []struct{ name, pickle, says string }{
		{"GLOBAL+REDUCE", "cos\nsystem\n(S'echo pwned'\ntR.", `offset 0: opcode GLOBAL ("os.system")`},
		{"STACK_GLOBAL", "\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c\x02id\x85R.", `offset 17: opcode STACK_GLOBAL ("posix.system")`},
		{"REDUCE alone", "\x80\x04N)R.", "REDUCE calls a None"},
		{"BUILD", "\x80\x04}}b.", "BUILD"},
		{"INST", "(S'echo pwned'\nios\nsystem\n.", `offset 15: opcode INST ("os.system")`},
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
		{"set of a str", "\x80\x04\x8c\x08builtins\x8c\x03set\x93\x8c\x02os\x85R.", "builtins.set(str)"},
		{"set names, other global", "\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x8c\x08builtins\x8c\x03set00h\x00h\x01\x93)R.", "os.system"},
		{"__builtin__ at protocol 4", "\x80\x04c__builtin__\nset\n)R.", "__builtin__.set"},
		{"encode, other codec", "\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.", "_codecs.encode(str, str)"},
		{"bytearray of a list", "\x80\x04\x8c\x08builtins\x8c\x09bytearray\x93]\x85R.", "builtins.bytearray(list)"},
		// Fault 5: og-rek read LONG1's length as signed; a scanner that
		// skips 0x80+ data bytes and a decoder that does not disagree on
		// where the GLOBAL is. One pass: the GLOBAL after the LONG1 is an
		// opcode, refused.
		{"GLOBAL after LONG1", "\x80\x02\x8a\x81" + strings.Repeat("\x01", 0x81) + "0cos\nsystem\nX\x02\x00\x00\x00id\x85R.", `opcode GLOBAL ("os.system")`},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := Unmarshal([]byte(c.pickle))
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, %v; want ErrUnsafe saying %q", v, err, c.says)
			}
		})
	}
	// The same bytes as data of a LONG1 (its length 0x8a read unsigned)
	// are an int, not a call.
	hidden := "cos\nsystem\nX\x02\x00\x00\x00id\x85R."
	p := "\x80\x02\x8a" + string(rune(0)) // placeholder, fixed below
	data := []byte(hidden + strings.Repeat("\x00", 200-len(hidden)))
	p = "\x80\x02\x8a" + string([]byte{byte(len(data))}) + string(data) + "."
	v, err := Unmarshal([]byte(p))
	if err != nil {
		t.Fatalf("LONG1 of %d bytes holding a GLOBAL's text: %v", len(data), err)
	}
	want := new(big.Int).SetBytes(reversed(data))
	if x, ok := v.(*big.Int); !ok || x.Cmp(want) != 0 {
		t.Fatalf("LONG1 decoded to %v", v)
	}
}

func reversed(b []byte) []byte {
	r := make([]byte, len(b))
	for i, c := range b {
		r[len(b)-1-i] = c
	}
	return r
}

// TestNotPickles: garbage and lying lengths are errors, never a panic or
// an allocation of what the stream claims.
func TestNotPickles(t *testing.T) {
	for _, p := range []string{
		"", "hello", "\x80\x04", "\x80\x04N", "\x80\x04N..", "\x80\x07N.",
		"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.", // BINBYTES8 of 8 EiB
		"\x80\x04X\xff\xff\xff\x7f.", "\x80\x04T\xff\xff\xff\xff.", "\x80\x04\x8a\x09\x00.",
		"\x80\x04\x8b\xff\xff\xff\xff.", // LONG4, negative length
		"\x80\x04e.", "\x80\x04(.", "\x80\x04a.", "I12", "\x80\x04\x95\x01\x00\x00\x00\x00\x00\x00",
		"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffN.", // FRAME beyond the end
		"\x80\x04h\x00.", "\x80\x04N\x94h\x01.", // memo keys not there
		"\x80\x04K\x01(\x85.",         // TUPLE1 below a MARK
		"\x80\x04]K\x01K\x02s.",       // SETITEM into a list
		"\x80\x04}K\x01]s.",           // hmm: the list is the value: fine; see below
		"\x80\x04}]N\x86N\x86K\x01s.", // fine too
		"\x80\x04}]K\x01s.",           // a list as a key: unhashable
		"\x80\x04\x8c\x02\xff\xfe.",   // str not UTF-8
		"I0x10\n.", "I007\n.", "F0x1p3\n.", "Vabc\\u12\n.", "V\\U00110000\n.",
		"S'abc\n.", "S'\xe9'\n.", "\x80\x02\x8f(\x91\x90.", // ADDITEMS into a frozenset
	} {
		if v, err := Unmarshal([]byte(p)); err == nil {
			if p == "\x80\x04}K\x01]s." || p == "\x80\x04}]N\x86N\x86K\x01s." {
				continue
			}
			t.Errorf("%q decoded to %#v", p, v)
		} else if !errors.Is(err, ErrNotPickle) && !errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrLimit) {
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

// bombs are the pickles of issue 18 (and 17's fault 8), built small
// enough for a unit test; each must be refused, or decoded, fast.
func deepTupleKey(depth int) []byte {
	var b bytes.Buffer
	b.WriteString("\x80\x04}K\x01")
	b.Write(bytes.Repeat([]byte{0x85}, depth)) // TUPLE1, depth times
	b.WriteString("Ns.")
	return b.Bytes()
}

// dagTuple is t0 = (1, 1), t(i+1) = (ti, ti) through the memo: 2^levels
// leaves in a few bytes a level. With asKey, it is a dict's key.
func dagTuple(levels int, asKey bool) []byte {
	var b bytes.Buffer
	b.WriteString("\x80\x04")
	base := 0
	if asKey {
		b.WriteString("}\x94")
		base = 1
	}
	b.WriteString("K\x01K\x01\x86\x94")
	for i := range levels {
		idx := make([]byte, 4)
		binary.LittleEndian.PutUint32(idx, uint32(base+i))
		b.WriteString("0j" + string(idx) + "j" + string(idx) + "\x86\x94")
	}
	if asKey {
		b.WriteString("Ns")
	}
	b.WriteString(".")
	return b.Bytes()
}

// sharedBytes is a list holding one bytes object of size n refs times.
func sharedBytes(n, refs int) []byte {
	var b bytes.Buffer
	b.WriteString("\x80\x04]\x94(B")
	binary.Write(&b, binary.LittleEndian, uint32(n))
	b.Write(bytes.Repeat([]byte{'x'}, n))
	b.WriteString("\x94")
	for range refs - 1 {
		b.WriteString("h\x01")
	}
	b.WriteString("e.")
	return b.Bytes()
}

func decimalLong(digits int) []byte {
	return []byte("L" + strings.Repeat("7", digits) + "L\n.")
}

func within(t *testing.T, what string, limit time.Duration, f func()) {
	t.Helper()
	t0 := time.Now()
	f()
	if d := time.Since(t0); d > limit {
		t.Errorf("%s took %v (limit %v)", what, d, limit)
	}
}

// TestFaultDeepTupleKey: issue 18 fault 1, a dict whose key is a tuple
// nested 1.5 million deep (a 1.5 MB pickle) killed the process with a
// stack overflow; it is refused as it is built.
func TestFaultDeepTupleKey(t *testing.T) {
	p := deepTupleKey(1_500_000)
	within(t, "1.5M-deep tuple key", 5*time.Second, func() {
		if _, err := Unmarshal(p); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "deeper than 1000") {
			t.Fatalf("got %v", err)
		}
	})
	// 1000 deep is allowed (MaxDepth), as a key too.
	if _, err := Unmarshal(deepTupleKey(999)); err != nil {
		t.Fatalf("999-deep tuple key: %v", err)
	}
	// Deep lists (which finish measures) too.
	deep := "\x80\x04" + strings.Repeat("]", 100000) + strings.Repeat("a", 99999) + "."
	if _, err := Unmarshal([]byte(deep)); !errors.Is(err, ErrLimit) {
		t.Fatalf("100000 nested lists: %v", err)
	}
	// Nested out of order: 2000 lists made first, then each appended to
	// the one before (so construction never sees the depth): finish does.
	var b strings.Builder
	b.WriteString("\x80\x04")
	for range 2000 {
		b.WriteString("]\x94")
	}
	for i := 1999; i > 0; i-- {
		b.WriteString("j" + le32(i-1) + "j" + le32(i) + "a0")
	}
	b.WriteString("j" + le32(0) + ".")
	if _, err := Unmarshal([]byte(b.String())); !errors.Is(err, ErrLimit) {
		t.Fatalf("2000 lists nested after they were made: %v", err)
	}
}

func le32(i int) string {
	var x [4]byte
	binary.LittleEndian.PutUint32(x[:], uint32(i))
	return string(x[:])
}

// TestFaultSharedTupleKey: issue 18 fault 2 (and 17's fault 8), the
// shared-tuple DAG as a dict key: og-rek hashed every path (30 levels:
// days). The key's form is made once per tuple; its hashing cost is
// charged, so the 30-level key is refused at once. As a value, the DAG
// decodes (shared, as in Python) in linear time, even 60 levels.
func TestFaultSharedTupleKey(t *testing.T) {
	for _, levels := range []int{24, 30, 60} {
		p := dagTuple(levels, true)
		within(t, "DAG key", time.Second, func() {
			if _, err := Unmarshal(p); !errors.Is(err, ErrLimit) {
				t.Fatalf("%d-level DAG key (%d bytes): %v", levels, len(p), err)
			}
		})
	}
	// A 200-byte pickle (issue 17, fault 8).
	if p := dagTuple(15, true); len(p) > 220 {
		t.Fatalf("the small bomb is %d bytes", len(p))
	}
	within(t, "200-byte DAG key", time.Second, func() { Unmarshal(dagTuple(15, true)) })
	p := dagTuple(60, false)
	var v any
	within(t, "DAG value", time.Second, func() {
		var err error
		if v, err = Unmarshal(p); err != nil {
			t.Fatalf("60-level DAG value: %v", err)
		}
	})
	// Shared: the two items of each level are one Tuple.
	for range 60 {
		tu := v.(Tuple)
		if &tu[0].(Tuple)[0] != &tu[1].(Tuple)[0] {
			t.Fatal("the DAG's levels are copies, not shared")
		}
		v = tu[0]
	}
	// A small DAG key is fine, and equal to the one Go builds.
	v, err := Unmarshal(dagTuple(2, true))
	if err != nil {
		t.Fatal(err)
	}
	leaf := [2]any{int64(1), int64(1)}
	want := map[any]any{[2]any{[2]any{leaf, leaf}, [2]any{leaf, leaf}}: nil}
	if !reflect.DeepEqual(v, any(want)) {
		t.Fatalf("got %#v", v)
	}
}

// heapGrowth runs f and returns how many bytes it allocated.
func heapGrowth(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestFaultSharedBytes: issue 18 fault 3, a 48 KB pickle referring to one
// bytes object thousands of times left 257 MiB on the heap (a copy per
// reference). References share the one []byte, as Python shares the object.
func TestFaultSharedBytes(t *testing.T) {
	p := sharedBytes(16<<10, 16000)
	if len(p) > 50<<10 {
		t.Fatalf("the bomb is %d bytes", len(p))
	}
	var v any
	grew := heapGrowth(func() {
		var err error
		if v, err = Unmarshal(p); err != nil {
			t.Fatal(err)
		}
	})
	l := v.([]any)
	if len(l) != 16000 || len(l[0].([]byte)) != 16<<10 || &l[0].([]byte)[0] != &l[15999].([]byte)[0] {
		t.Fatalf("not one shared bytes: %d items", len(l))
	}
	if grew > 4<<20 {
		t.Fatalf("decoding a %d-byte pickle allocated %d bytes", len(p), grew)
	}
	// bytearray(b) copies (a bytearray is its own object), and is
	// charged: thousands of bytearray(one 64 KiB bytes) are over the limit.
	var b bytes.Buffer
	b.WriteString("\x80\x04]\x94(\x8c\x08builtins\x94\x8c\x09bytearray\x94\x93\x94B")
	binary.Write(&b, binary.LittleEndian, uint32(64<<10))
	b.Write(make([]byte, 64<<10))
	b.WriteString("\x94")
	for range 5000 {
		b.WriteString("h\x03h\x04\x85R")
	}
	b.WriteString("e.")
	grew = heapGrowth(func() {
		if _, err := Unmarshal(b.Bytes()); !errors.Is(err, ErrLimit) {
			t.Fatalf("5000 bytearrays of one 64 KiB bytes: %v", err)
		}
	})
	if grew > 300*uint64(b.Len()) {
		t.Fatalf("the refused bytearray bomb allocated %d bytes", grew)
	}
}

// TestFaultDecimalDigits: issue 18 fault 4, a protocol-0 LONG of 1M
// digits took seconds; Python refuses more than 4300 digits, and so does
// Unmarshal, before parsing.
func TestFaultDecimalDigits(t *testing.T) {
	within(t, "1M-digit LONG", time.Second, func() {
		if _, err := Unmarshal(decimalLong(1_000_000)); !errors.Is(err, ErrLimit) {
			t.Fatalf("1M digits: %v", err)
		}
	})
	if _, err := Unmarshal(decimalLong(4301)); !errors.Is(err, ErrLimit) {
		t.Fatalf("4301 digits: %v", err)
	}
	v, err := Unmarshal(decimalLong(4300))
	if want, _ := new(big.Int).SetString(strings.Repeat("7", 4300), 10); err != nil || v.(*big.Int).Cmp(want) != 0 {
		t.Fatalf("4300 digits: %v", err)
	}
	if _, err := Unmarshal([]byte("I" + strings.Repeat("9", 5000) + "\n.")); !errors.Is(err, ErrLimit) {
		t.Fatalf("INT of 5000 digits: %v", err)
	}
}

// TestFaultBinaryLongs: issue 18 fault 5, ints ≥ 2**1015 (LONG1 with a
// length ≥ 128) and ≥ 2**2040 (LONG4) failed; every size decodes.
func TestFaultBinaryLongs(t *testing.T) {
	for _, bits := range []uint{0, 7, 8, 31, 32, 63, 64, 65, 1015, 1016, 1023, 1024, 2039, 2040, 2047, 2048, 100000} {
		for _, neg := range []bool{false, true} {
			x := new(big.Int).Lsh(big.NewInt(1), bits)
			if neg {
				x.Neg(x)
			}
			for _, y := range []*big.Int{x, new(big.Int).Sub(x, big.NewInt(1)), new(big.Int).Add(x, big.NewInt(1))} {
				p := append([]byte{0x80, 2}, longBytes(y)...)
				p = append(p, '.')
				v, err := Unmarshal(p)
				if err != nil {
					t.Fatalf("%v: %v", y, err)
				}
				got, ok := v.(*big.Int)
				if !ok {
					got = big.NewInt(v.(int64))
				} else if got.IsInt64() {
					t.Fatalf("%v came as a *big.Int", y)
				}
				if got.Cmp(y) != 0 {
					t.Fatalf("%v came back as %v", y, got)
				}
			}
		}
	}
}

// TestPythonValues: issue 18 fault 7, values Python writes at low
// protocols (the sequences of research/third-wave.md §2.2), and the
// protocol-0 str with a lone surrogate.
func TestPythonValues(t *testing.T) {
	for _, c := range []struct {
		name, pickle string
		want         any
	}{
		{"bytes p0", "c_codecs\nencode\np0\n(V\xff\\u0080a\np1\nVlatin1\np2\ntp3\nRp4\n.", []byte{0xff, 0x80, 'a'}},
		{"empty bytes p2", "\x80\x02c__builtin__\nbytes\nq\x00)Rq\x01.", []byte{}},
		{"bytes p2", "\x80\x02c_codecs\nencode\nq\x00X\x05\x00\x00\x00\xc3\xbf\xc2\x80aq\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04.", []byte{0xff, 0x80, 'a'}},
		{"bytearray p4", "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\tbytearray\x94\x93\x94C\x02ab\x94\x85\x94R\x94.", []byte("ab")},
		{"bytearray p2", "\x80\x02c__builtin__\nbytearray\nq\x00c_codecs\nencode\nq\x01X\x02\x00\x00\x00abq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05\x85q\x06Rq\x07.", []byte("ab")},
		{"empty bytearray p0", "c__builtin__\nbytearray\np0\n(tRp1\n.", []byte{}},
		{"set p2, set global from the memo", "\x80\x02]q\x00(c__builtin__\nset\nq\x01]q\x02K\x01a\x85q\x03Rq\x04h\x01]q\x05K\x02a\x85q\x06Rq\x07e.",
			[]any{Set{int64(1): {}}, Set{int64(2): {}}}},
		{"frozenset p0", "c__builtin__\nfrozenset\np0\n((lp1\nI1\naI2\natp2\nRp3\n.", FrozenSet{int64(1): {}, int64(2): {}}},
		{"lone surrogate p0", "V\\ud800x\n.", "\xed\xa0\x80x"},
		{"surrogate pair p0 (two code points)", "V\\ud83d\\ude00\n.", "\xed\xa0\xbd\xed\xb8\x80"},
		{"non-BMP p0", "V\\U0001f600\\u20ac\xe9\n.", "😀€é"},
		{"backslashes p0", "V\\\\u0041\\\\\\u0041\n.", "\\\\u0041\\\\A"},
		{"lone surrogate p4", "\x80\x04\x8c\x03\xed\xa0\x80.", "\xed\xa0\x80"},
		{"bools p0", "(lp0\nI01\naI00\na.", []any{true, false}},
		{"long p0", "L-12345678901234567890L\n.", func() any { x, _ := new(big.Int).SetString("-12345678901234567890", 10); return x }()},
		{"float p0", "(lp0\nFnan\naFinf\naF-0.0\naF1e400\na.", nil},
		{"python 2 str", "(lp0\nS'a\\n\\x41\\'b'\naU\x02hia.", []any{"a\nA'b", "hi"}},
		{"DUP, POP, POP_MARK", "\x80\x02K\x012\x86(K\x05K\x061K\x070.", Tuple{int64(1), int64(1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := Unmarshal([]byte(c.pickle))
			if err != nil {
				t.Fatal(err)
			}
			if c.want == nil { // the floats
				l := v.([]any)
				if !math.IsNaN(l[0].(float64)) || !math.IsInf(l[1].(float64), 1) || !math.Signbit(l[2].(float64)) || !math.IsInf(l[3].(float64), 1) {
					t.Fatalf("got %v", l)
				}
				return
			}
			if !reflect.DeepEqual(v, c.want) {
				t.Fatalf("got %#v, want %#v", v, c.want)
			}
		})
	}
}

// TestFaultSharedData: issue 18 fault 8, ordinary shared data was
// "too many shared references": [row]*14 with a 100-key dict, a list of
// 100 references to one 50-item tuple; a cycle is a clear error.
func TestFaultSharedData(t *testing.T) {
	row := map[string]any{}
	for i := range 100 {
		row[string(rune('A'+i%26))+string(rune('a'+i/26))] = int64(i)
	}
	rows := make([]any, 14)
	for i := range rows {
		rows[i] = row
	}
	tup := make(Tuple, 50)
	for i := range tup {
		tup[i] = int64(i)
	}
	refs := make([]any, 100)
	for i := range refs {
		refs[i] = tup
	}
	for _, v := range []any{rows, refs} {
		p, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(p)
		if err != nil {
			t.Fatal(err)
		}
		l := back.([]any)
		if reflect.ValueOf(l[0]).UnsafePointer() != reflect.ValueOf(l[len(l)-1]).UnsafePointer() {
			t.Fatal("not shared")
		}
		if len(p) > 2000 {
			t.Fatalf("%d bytes: the shared part was written more than once", len(p))
		}
	}
	// Python's l = []; l.append(l), and d = {}; d['k'] = [d].
	for _, p := range []string{"\x80\x04]\x94h\x00a.", "\x80\x04}\x94\x8c\x01k]h\x00as."} {
		if _, err := Unmarshal([]byte(p)); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "recursive structure") {
			t.Fatalf("%q: %v", p, err)
		}
	}
	// A list that grows after it was referred to: every reference sees it whole.
	v, err := Unmarshal([]byte("\x80\x04]\x94]\x94ah\x01K\x07a0."))
	if err != nil || !reflect.DeepEqual(v, any([]any{[]any{int64(7)}})) {
		t.Fatalf("got %#v, %v", v, err)
	}
}

// TestMarshalRefuses: issue 18 fault 9, what Python would read
// differently is an error, not a silent difference.
func TestMarshalRefuses(t *testing.T) {
	self := []any{1}
	self[0] = self
	for _, c := range []struct {
		name string
		v    any
		says string
	}{
		{"invalid UTF-8", "a\xffb", "not UTF-8"},
		{"invalid UTF-8 key", map[string]int{"\xc3": 1}, "not UTF-8"},
		{"NaN key", map[float64]int{math.NaN(): 1}, "NaN"},
		{"NaN in a set", Set{math.NaN(): {}}, "NaN"},
		{"1 and 1.0", map[any]any{int64(1): "a", 1.0: "b"}, "one key in Python"},
		{"1 and True", Set{1: {}, true: {}}, "one key in Python"},
		{"int and uint8", map[any]any{int64(7): nil, uint8(7): nil}, "one key in Python"},
		{"2**70 and 2.0**70", map[any]any{new(big.Int).Lsh(big.NewInt(1), 70): 1, math.Ldexp(1, 70): 2}, "one key in Python"},
		{"(1, 'a') and (1.0, 'a')", map[any]any{[2]any{1, "a"}: 1, [2]any{1.0, "a"}: 2}, "one key in Python"},
		{"itself", self, "contains itself"},
		{"struct", struct{}{}, "no Python counterpart"},
		{"chan", make(chan int), "no Python counterpart"},
	} {
		if _, err := Marshal(c.v); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), c.says) || strings.HasPrefix(err.Error(), "multiproc: ") {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// A lone surrogate as Unmarshal returns it goes back.
	if _, err := Marshal("\xed\xa0\x80"); err != nil {
		t.Fatal(err)
	}
	// Distinct keys of one float type, and -0.0 with other floats, are fine.
	if _, err := Marshal(map[any]any{0.5: 1, 1.5: 2, "x": 3}); err != nil {
		t.Fatal(err)
	}
}

// TestRoundTrip: Go → pickle → Go, with every supported kind.
func TestRoundTrip(t *testing.T) {
	big70 := new(big.Int).Lsh(big.NewInt(1), 70)
	huge := new(big.Int).Lsh(big.NewInt(3), 20000) // 6000 digits: binary, no digit limit
	in := map[any]any{
		"ints": []any{int64(0), int64(-1), int64(255), int64(256), int64(65535), int64(65536), int64(math.MinInt32), int64(math.MaxInt32),
			int64(math.MaxInt32) + 1, int64(math.MinInt32) - 1, int64(math.MaxInt64), int64(math.MinInt64), big70, new(big.Int).Neg(big70), huge},
		"u64": uint64(1 << 63), "f": 1.25, "s": "ü", "b": []byte{0, 1}, "empty": []any{}, "et": Tuple{},
		"t":  Tuple{nil, true, false, Tuple{int64(1)}},
		"st": Set{int64(1): {}, "a": {}, [2]any{int64(1), "x"}: {}}, "fs": FrozenSet{},
		[3]any{int64(1), nil, [1]any{"n"}}: "nested tuple key",
		"big":                              strings.Repeat("x", 100000), "bigb": bytes.Repeat([]byte{7}, 70000),
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
	// bytes as a dict key has no comparable Go form: refused clearly.
	if _, err := Unmarshal([]byte("\x80\x04}C\x01kK\x01s.")); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("bytes key: %v", err)
	}
}

// TestFraming: frames as CPython writes them: none under 4 bytes, about
// 64 KiB each, big payloads outside any.
func TestFraming(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{nil, "\x80\x04N."},
		{int64(7), "\x80\x04K\x07."},
		{"héllo", "\x80\x04\x95\x0a\x00\x00\x00\x00\x00\x00\x00\x8c\x06h\xc3\xa9llo\x94."},
		{[]any{int64(1), int64(2)}, "\x80\x04\x95\x09\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01K\x02e."},
		{Tuple{int64(1), int64(2), int64(3), int64(4)}, "\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00(K\x01K\x02K\x03K\x04t\x94."},
		{new(big.Int).Lsh(big.NewInt(1), 31), "\x80\x04\x95\x08\x00\x00\x00\x00\x00\x00\x00\x8a\x05\x00\x00\x00\x80\x00."},
	} {
		b, err := Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("%v: %q, %v; want %q", c.v, b, err, c.want)
		}
	}
	b, _ := Marshal(make([]byte, 200<<10))
	if want := "\x80\x04B\x00\x20\x03\x00"; string(b[:7]) != want || string(b[len(b)-2:]) != "\x94." {
		t.Errorf("200 KiB bytes: %q...%q", b[:12], b[len(b)-2:])
	}
}

// TestLinear: a decode's time and memory grow linearly with the pickle's
// size, for the shapes of the bombs and for plain data: 4 times the size
// costs about 4 times (allowed 16 times and 30 ms, the best of 3 runs, in
// any of 3 tries, for a loaded machine; the memory check is the exact one).
func TestLinear(t *testing.T) {
	shapes := map[string]func(n int) []byte{
		"shared bytes": func(n int) []byte { return sharedBytes(n, n/2) },
		"DAG value":    func(n int) []byte { return dagTuple(n/12, false) },
		"deep lists": func(n int) []byte {
			return []byte("\x80\x04" + strings.Repeat("]", n/2) + strings.Repeat("a", n/2-1) + ".")
		},
		"ints and strs": func(n int) []byte { p, _ := Marshal(intsAndStrs(n / 8)); return p },
		"refs to a list": func(n int) []byte {
			return []byte("\x80\x04]\x94(]\x94" + strings.Repeat("K\x01", 100) + "e" + strings.Repeat("h\x01", n/2) + "e.")
		},
	}
	for name, make := range shapes {
		small, large := make(10_000), make(40_000)
		ratio := float64(len(large)) / float64(len(small))
		cost := func(p []byte) (time.Duration, uint64) {
			best := time.Hour
			var mem uint64
			for range 3 {
				runtime.GC()
				t0 := time.Now()
				mem = heapGrowth(func() { Unmarshal(p) })
				best = min(best, time.Since(t0))
			}
			return best, mem
		}
		// Time on a loaded machine jumps: a shape fails only if it is
		// slow in each of 3 tries.
		var ts, tl time.Duration
		var ms, ml uint64
		for try := 0; try < 3; try++ {
			ts, ms = cost(small)
			tl, ml = cost(large)
			if testing.Short() || float64(tl) <= 4*ratio*float64(ts)+float64(30*time.Millisecond) {
				break // -short: the memory checks only
			}
			if try == 2 {
				t.Errorf("%s: %d bytes in %v, %d bytes in %v", name, len(small), ts, len(large), tl)
			}
		}
		if float64(ml) > 3*ratio*float64(ms)+1<<20 {
			t.Errorf("%s: %d bytes allocated %d, %d bytes %d", name, len(small), ms, len(large), ml)
		}
		if ml > 300*uint64(len(large)) {
			t.Errorf("%s: a %d-byte pickle allocated %d bytes", name, len(large), ml)
		}
	}
}

func intsAndStrs(n int) []any {
	l := make([]any, n)
	for i := range l {
		if i%2 == 0 {
			l[i] = int64(i * 1000)
		} else {
			l[i] = "s" + string(rune('a'+i%26))
		}
	}
	return l
}
