//go:build linux && (amd64 || arm64)

package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

type fixed struct {
	A, B int64
	C    float64
}

type record struct {
	ID   int64
	Name string
	Vals []float64
}

type point struct{ X, Y float32 }

type plainWithBool struct {
	On  bool
	_   [3]byte
	N   int32
	Pts [2]point
}

type inner struct {
	N int
	S string
	P *int
}

type celsius float64

// temp encodes itself, and must be used even though it is plain.
type temp struct{ C celsius }

func (t temp) MarshalBinary() ([]byte, error) { return []byte(fmt.Sprintf("%gC", t.C)), nil }
func (t *temp) UnmarshalBinary(b []byte) error {
	_, err := fmt.Sscanf(string(b), "%gC", &t.C)
	return err
}

type shape interface{ Area() float64 }

type square struct{ Side float64 }

func (s square) Area() float64 { return s.Side * s.Side }

func init() { Register(square{}) }

type everything struct {
	B       bool
	I8      int8
	I16     int16
	I32     int32
	I64     int64
	I       int
	U8      uint8
	U16     uint16
	U32     uint32
	U64     uint64
	U       uint
	UP      uintptr
	F32     float32
	F64     float64
	C64     complex64
	C128    complex128
	S       string
	Bs      []byte
	NilBs   []byte
	EmptyBs []byte
	Arr     [3]int32
	StrArr  [2]string
	Pts     []point
	NilPts  []point
	Bools   []bool
	Strs    []string
	Nested  [][]int
	Inner   inner
	PInner  *inner
	NilP    *inner
	M       map[string]int
	NilM    map[string]int
	EmptyM  map[string]int
	MS      map[int][]string
	Set     map[string]struct{}
	T       time.Time
	PT      *time.Time
	Temp    temp
	Any     any
	Shape   shape
	NilAny  any
	Empty   struct{}
	Dur     time.Duration
	private int // skipped, decodes as zero
}

type node struct {
	V    int
	Next *node
}

type tree struct {
	Name string
	Kids []tree
}

func roundTrip[T any](t *testing.T, v T) {
	t.Helper()
	c, err := NewCodec[T]()
	if err != nil {
		t.Fatalf("NewCodec[%T]: %v", v, err)
	}
	b, err := c.Append([]byte("prefix"), &v)
	if err != nil {
		t.Fatalf("Append(%T): %v", v, err)
	}
	if string(b[:6]) != "prefix" {
		t.Fatalf("Append clobbered dst")
	}
	var got T
	if err := c.Decode(b[6:], &got); err != nil {
		t.Fatalf("Decode(%T): %v", v, err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip of %T:\n got %+v\nwant %+v", v, got, v)
	}
	// Decoding again into the same, now populated, value must give the same
	// result: nothing stale may survive.
	if err := c.Decode(b[6:], &got); err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("second decode of %T into a used value: %v\n got %+v", v, err, got)
	}
}

func sampleEverything() everything {
	seven := 7
	ts := time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC)
	return everything{
		B: true, I8: -8, I16: -1600, I32: math.MinInt32, I64: math.MinInt64, I: -1,
		U8: 255, U16: 65535, U32: math.MaxUint32, U64: math.MaxUint64, U: 42, UP: 0xdead,
		F32: 1.5, F64: math.Inf(-1), C64: complex(1, -2), C128: complex(math.Pi, math.E),
		S: "héllo\x00", Bs: []byte{0, 1, 2}, EmptyBs: []byte{},
		Arr: [3]int32{1, -2, 3}, StrArr: [2]string{"a", ""},
		Pts: []point{{1, 2}, {3, 4}}, Bools: []bool{true, false, true},
		Strs:   []string{"x", "", "zz"},
		Nested: [][]int{{1}, nil, {}, {2, 3}},
		Inner:  inner{N: 1, S: "in", P: &seven},
		PInner: &inner{N: 2},
		M:      map[string]int{"a": 1, "b": 2, "c": 3},
		EmptyM: map[string]int{},
		MS:     map[int][]string{1: {"one"}, 2: nil, 3: {}},
		Set:    map[string]struct{}{"k": {}},
		T:      ts, PT: &ts,
		Temp:  temp{21.5},
		Any:   "a string in an interface",
		Shape: square{3},
		Dur:   time.Second,
	}
}

func TestCodecRoundTrip(t *testing.T) {
	seven := 7
	ring := &node{V: 1, Next: &node{V: 2, Next: &node{V: 3}}}
	for _, tc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"bytes", func(t *testing.T) { roundTrip(t, []byte("raw bytes")) }},
		{"bytes nil", func(t *testing.T) { roundTrip[[]byte](t, nil) }},
		{"bytes large", func(t *testing.T) { roundTrip(t, pattern(8<<20, 9)) }},
		{"named bytes", func(t *testing.T) { roundTrip(t, json("{}")) }},
		{"string", func(t *testing.T) { roundTrip(t, "a string") }},
		{"string empty", func(t *testing.T) { roundTrip(t, "") }},
		{"int", func(t *testing.T) { roundTrip(t, -12345) }},
		{"bool", func(t *testing.T) { roundTrip(t, true) }},
		{"float", func(t *testing.T) { roundTrip(t, math.SmallestNonzeroFloat64) }},
		{"complex", func(t *testing.T) { roundTrip(t, complex64(3+4i)) }},
		{"array", func(t *testing.T) { roundTrip(t, [4]uint16{1, 2, 3, 65535}) }},
		{"fixed struct", func(t *testing.T) { roundTrip(t, fixed{-1, math.MaxInt64, 2.5}) }},
		{"plain with bool and blank", func(t *testing.T) { roundTrip(t, plainWithBool{On: true, N: -3, Pts: [2]point{{1, 2}, {3, 4}}}) }},
		{"empty struct", func(t *testing.T) { roundTrip(t, struct{}{}) }},
		{"record", func(t *testing.T) { roundTrip(t, record{ID: 1, Name: "n", Vals: []float64{1, 2, math.NaN()}[:2]}) }},
		{"record nil vals", func(t *testing.T) { roundTrip(t, record{ID: -1}) }},
		{"record empty vals", func(t *testing.T) { roundTrip(t, record{Vals: []float64{}}) }},
		{"everything", func(t *testing.T) { roundTrip(t, sampleEverything()) }},
		{"everything zero", func(t *testing.T) { roundTrip(t, everything{}) }},
		{"slice of structs", func(t *testing.T) { roundTrip(t, []record{{ID: 1}, {Name: "x", Vals: []float64{1}}}) }},
		{"slice nil", func(t *testing.T) { roundTrip[[]string](t, nil) }},
		{"slice empty", func(t *testing.T) { roundTrip(t, []string{}) }},
		{"slice of empty structs", func(t *testing.T) { roundTrip(t, make([]struct{}, 1000)) }},
		{"slice of bool arrays", func(t *testing.T) { roundTrip(t, [][2]bool{{true, false}, {false, true}}) }},
		{"map", func(t *testing.T) { roundTrip(t, map[fixed][]string{{A: 1}: {"a"}, {B: 2}: nil}) }},
		{"map of struct keys", func(t *testing.T) { roundTrip(t, map[point]*inner{{1, 2}: {N: 1}, {3, 4}: nil}) }},
		{"map empty key", func(t *testing.T) { roundTrip(t, map[struct{}]int{{}: 5}) }},
		{"pointer", func(t *testing.T) { roundTrip(t, &seven) }},
		{"pointer nil", func(t *testing.T) { roundTrip[*int](t, nil) }},
		{"pointer to pointer", func(t *testing.T) { p := &seven; roundTrip(t, &p) }},
		{"time", func(t *testing.T) { roundTrip(t, time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)) }},
		{"time zone", func(t *testing.T) {
			roundTrip(t, time.Date(2001, 2, 3, 4, 5, 6, 7, time.FixedZone("", 5*3600)))
		}},
		{"marshaler top level", func(t *testing.T) { roundTrip(t, temp{-3.25}) }},
		{"interface", func(t *testing.T) { roundTrip[any](t, square{2}) }},
		{"interface nil", func(t *testing.T) { roundTrip[any](t, nil) }},
		{"linked list", func(t *testing.T) { roundTrip(t, ring) }},
		{"tree", func(t *testing.T) {
			roundTrip(t, tree{Name: "root", Kids: []tree{{Name: "a"}, {Name: "b", Kids: []tree{{Name: "c"}}}}})
		}},
		{"int8 slice", func(t *testing.T) { roundTrip(t, []int8{-1, 0, 1}) }},
	} {
		t.Run(tc.name, tc.run)
	}
}

type json []byte

func TestCodecSkipsUnexported(t *testing.T) {
	type mixed struct {
		A int
		b int
	}
	c, err := NewCodec[mixed]()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Append(nil, &mixed{A: 1, b: 2})
	var got mixed
	if err := c.Decode(b, &got); err != nil || got != (mixed{A: 1}) {
		t.Fatalf("got %+v, %v; want {A:1 b:0}", got, err)
	}
}

func TestCodecUnsupported(t *testing.T) {
	type withChan struct {
		Name string
		Ch   chan int
	}
	type hidden struct{ a, b int }
	type withMutexField struct {
		N  int
		Mu hidden
	}
	check := func(err error, mention string) {
		t.Helper()
		if err == nil {
			t.Fatalf("no error, want one mentioning %q", mention)
		}
		if strings.Contains(err.Error(), "multiproc:") || !strings.Contains(err.Error(), mention) {
			t.Errorf("error %q should mention %q, and not say multiproc: (the package's boundary adds it)", err, mention)
		}
	}
	_, err := NewCodec[chan int]()
	check(err, "chan int")
	_, err = NewCodec[func()]()
	check(err, "func()")
	_, err = NewCodec[unsafe.Pointer]()
	check(err, "unsafe.Pointer")
	_, err = NewCodec[withChan]()
	check(err, "Ch")
	_, err = NewCodec[map[string]func()]()
	check(err, "func()")
	_, err = NewCodec[hidden]()
	check(err, "no exported fields")
	_, err = NewCodec[withMutexField]()
	check(err, "Mu")
}

func TestCodecGobUnregistered(t *testing.T) {
	type unregistered struct{ A int }
	c, err := NewCodec[any]()
	if err != nil {
		t.Fatal(err)
	}
	var v any = unregistered{1}
	out, err := c.Append([]byte("keep"), &v)
	if err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("got %v, want a registration error", err)
	}
	if string(out) != "keep" {
		t.Errorf("failed Append returned %q, want dst unchanged", out)
	}
}

func TestCodecConcurrent(t *testing.T) {
	c, _ := NewCodec[everything]()
	want := sampleEverything()
	done := make(chan error, 4)
	for range 4 {
		go func() {
			var buf []byte
			for range 200 {
				var err error
				if buf, err = c.Append(buf[:0], &want); err != nil {
					done <- err
					return
				}
				var got everything
				if err := c.Decode(buf, &got); err != nil || !reflect.DeepEqual(got, want) {
					done <- fmt.Errorf("decode: %v, equal %v", err, reflect.DeepEqual(got, want))
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("timed out")
		}
	}
}

func TestCodecCyclicValue(t *testing.T) {
	c, err := NewCodec[node]()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{V: 1}
	n.Next = n
	if _, err := c.Append(nil, n); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("encoding a cycle: got %v", err)
	}
	// A hostile message nesting deeper than the limit fails cleanly too.
	var in []byte
	for range maxDepth + 10 {
		in = append(in, 0, 1) // V=0, Next present
	}
	in = append(in, 0, 0)
	var got node
	if err := c.Decode(in, &got); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("decoding a too-deep list: got %v", err)
	}
	if got != (node{}) {
		t.Errorf("value not reset after a failed decode: %+v", got)
	}
}

// truncations checks that every strict prefix of enc fails to decode,
// without panicking, and leaves v zeroed.
func truncations[T any](t *testing.T, v T) {
	t.Helper()
	c, err := NewCodec[T]()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Append(nil, &v)
	if err != nil {
		t.Fatal(err)
	}
	var zero T
	for i := range len(enc) {
		got := v
		if err := c.Decode(enc[:i], &got); err == nil {
			t.Fatalf("%T: decoding the first %d of %d bytes succeeded", v, i, len(enc))
		} else if strings.Contains(err.Error(), "multiproc:") {
			t.Fatalf("error %q says multiproc: (the package's boundary adds it)", err)
		}
		if !reflect.DeepEqual(got, zero) {
			t.Fatalf("%T: failed decode left %+v", v, got)
		}
	}
	// And trailing garbage is refused.
	if err := c.Decode(append(enc, 0), new(T)); err == nil {
		t.Fatalf("%T: trailing byte accepted", v)
	}
}

func TestCodecTruncated(t *testing.T) {
	truncations(t, fixed{1, 2, 3})
	truncations(t, record{ID: 300, Name: "name", Vals: []float64{1, 2, 3}})
	truncations(t, sampleEverything())
	truncations(t, []string{"a", "bb"})
	truncations(t, &node{V: 1, Next: &node{V: 2}})
	truncations(t, map[string][]int{"a": {1, 2}})
}

func TestCodecGarbled(t *testing.T) {
	pc, _ := NewCodec[plainWithBool]()
	b, _ := pc.Append(nil, &plainWithBool{On: true})
	b[0] = 2
	if err := pc.Decode(b, new(plainWithBool)); !errors.Is(err, errBool) {
		t.Errorf("plain bool byte 2: got %v", err)
	}
	bc, _ := NewCodec[[]bool]()
	if err := bc.Decode([]byte{3, 1, 7}, new([]bool)); !errors.Is(err, errBool) {
		t.Errorf("[]bool byte 7: got %v", err)
	}
	ic, _ := NewCodec[*int]()
	if err := ic.Decode([]byte{2, 0}, new(*int)); !errors.Is(err, errPresence) {
		t.Errorf("presence byte 2: got %v", err)
	}
	mc, _ := NewCodec[map[struct{}]int]()
	if err := mc.Decode([]byte{3, 1, 2}, new(map[struct{}]int)); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate map keys: got %v", err)
	}
	i16, _ := NewCodec[*int16]()
	if err := i16.Decode([]byte{1, 0x80, 0x80, 0x04}, new(*int16)); !errors.Is(err, errRange) {
		t.Errorf("int16 out of range: got %v", err)
	}
	rc, _ := NewCodec[record]()
	over := []byte{0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}
	if err := rc.Decode(over, new(record)); !errors.Is(err, errVarint) {
		t.Errorf("overflowing varint: got %v", err)
	}
}

// TestCodecHugeLengths feeds length prefixes far beyond the input and
// checks that they are refused before anything is allocated for them.
func TestCodecHugeLengths(t *testing.T) {
	huge := binary.AppendUvarint(nil, 1<<40)
	cases := []struct {
		name string
		run  func() error
	}{
		{"string", func() error { c, _ := NewCodec[inner](); return c.Decode(append([]byte{0}, huge...), new(inner)) }},
		{"[]float64", func() error { c, _ := NewCodec[record](); return c.Decode(append([]byte{0, 0}, huge...), new(record)) }},
		{"[]string", func() error { c, _ := NewCodec[[]string](); return c.Decode(huge, new([]string)) }},
		{"map", func() error { c, _ := NewCodec[map[int]int](); return c.Decode(huge, new(map[int]int)) }},
		{"*[1<<20]byte", func() error { c, _ := NewCodec[*[1 << 20]byte](); return c.Decode([]byte{1, 0}, new(*[1 << 20]byte)) }},
		{"map[struct{}]int", func() error {
			c, _ := NewCodec[map[struct{}]int]()
			return c.Decode(append(binary.AppendUvarint(nil, 4), 0, 0), new(map[struct{}]int))
		}},
		{"map[struct{}]struct{}", func() error {
			c, _ := NewCodec[map[struct{}]struct{}]()
			return c.Decode(binary.AppendUvarint(nil, 1<<40), new(map[struct{}]struct{}))
		}},
	}
	for _, tc := range cases {
		tc.run() // warm the codec cache
		var err error
		if n := allocBytes(func() { err = tc.run() }); n > 64<<10 {
			t.Errorf("%s: allocated %d bytes", tc.name, n)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: got %v, want a truncation error", tc.name, err)
		}
	}
}

type fuzzMsg struct {
	ID    int64
	Small int16
	Name  string
	Vals  []float64
	Flags []bool
	Raw   []byte
	Arr   [2]uint32
	Kids  []inner
	P     *inner
	Tags  map[string]int32
	When  time.Time
	Ok    bool
	Next  *fuzzMsg
}

func FuzzDecode(f *testing.F) {
	c, err := NewCodec[fuzzMsg]()
	if err != nil {
		f.Fatal(err)
	}
	seven := 7
	for _, v := range []fuzzMsg{
		{},
		{ID: -5, Small: 300, Name: "x", Vals: []float64{1.5}, Flags: []bool{true}, Raw: []byte{}, Ok: true},
		{Kids: []inner{{N: 1, S: "k", P: &seven}}, P: &inner{}, Tags: map[string]int32{"t": -1}, When: time.Unix(1e9, 5).UTC()},
		{Next: &fuzzMsg{Name: "next", Next: &fuzzMsg{ID: 1}}},
	} {
		b, err := c.Append(nil, &v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var v fuzzMsg
		if err := c.Decode(in, &v); err != nil {
			if !reflect.DeepEqual(v, fuzzMsg{}) {
				t.Fatalf("failed decode left %+v", v)
			}
			return
		}
		// Nothing decoded can be bigger than the input that described it.
		for m := &v; m != nil; m = m.Next {
			if len(m.Vals)*8 > len(in) || len(m.Flags) > len(in) || len(m.Raw) > len(in) ||
				len(m.Kids)*3 > len(in) || len(m.Tags)*2 > len(in) {
				t.Fatalf("decoded more elements than %d input bytes can hold", len(in))
			}
		}
		// A decoded value must encode again and decode to the same encoding
		// (maps with several entries may reorder, so compare only sizes then).
		enc, err := c.Append(nil, &v)
		if err != nil {
			t.Fatalf("re-encoding a decoded value: %v", err)
		}
		var v2 fuzzMsg
		if err := c.Decode(enc, &v2); err != nil {
			t.Fatalf("decoding a re-encoded value: %v", err)
		}
		enc2, _ := c.Append(nil, &v2)
		if len(enc2) != len(enc) || (len(v.Tags) <= 1 && v.Next == nil && !bytes.Equal(enc, enc2)) {
			t.Fatalf("re-encoding is unstable:\n% x\n% x", enc, enc2)
		}
	})
}

func TestCodecNoAllocs(t *testing.T) {
	c, _ := NewCodec[record]()
	v := record{ID: 7, Name: "name", Vals: make([]float64, 8)}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf, _ = c.Append(buf[:0], &v) }); n != 0 {
		t.Errorf("Append allocates %v times", n)
	}
	var out record
	if n := testing.AllocsPerRun(100, func() { c.Decode(buf, &out) }); n != 2 {
		t.Errorf("Decode allocates %v times, want 2 (string and slice)", n)
	}
}

func benchCodec[T any](b *testing.B, v T) {
	c, err := NewCodec[T]()
	if err != nil {
		b.Fatal(err)
	}
	buf, _ := c.Append(nil, &v)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var out T
	for b.Loop() {
		buf, err = c.Append(buf[:0], &v)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Decode(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecBytes64(b *testing.B) { benchCodec(b, pattern(64, 1)) }

func BenchmarkCodecFixed(b *testing.B) { benchCodec(b, fixed{A: 1, B: -2, C: 3.5}) }

func benchRecord() record {
	return record{ID: 123456, Name: "sensor-42", Vals: []float64{1, 2, 3, 4, 5, 6, 7, 8}}
}

func BenchmarkCodecRecord(b *testing.B) { benchCodec(b, benchRecord()) }

func BenchmarkCodecRecordEncode(b *testing.B) {
	c, _ := NewCodec[record]()
	v := benchRecord()
	buf, _ := c.Append(nil, &v)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = c.Append(buf[:0], &v)
	}
}

func BenchmarkCodecRecordDecode(b *testing.B) {
	c, _ := NewCodec[record]()
	v := benchRecord()
	buf, _ := c.Append(nil, &v)
	b.ReportAllocs()
	var out record
	for b.Loop() {
		if err := c.Decode(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCodecRecordGob is the comparison: a fresh gob encoder and
// decoder per message, which is what self-contained messages cost with gob.
func BenchmarkCodecRecordGob(b *testing.B) {
	v := benchRecord()
	var buf bytes.Buffer
	gob.NewEncoder(&buf).Encode(&v)
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
			b.Fatal(err)
		}
		var out record
		if err := gob.NewDecoder(&buf).Decode(&out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecEverything(b *testing.B) { benchCodec(b, sampleEverything()) }

func BenchmarkFrameSmall(b *testing.B) {
	var rw bytes.Buffer
	payload := pattern(64, 1)
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteFrame(&rw, payload); err != nil {
			b.Fatal(err)
		}
		var err error
		if buf, err = ReadFrameInto(&rw, 0, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCodecInterfaceValues(t *testing.T) {
	c, err := NewCodec[[]any]()
	if err != nil {
		t.Fatal(err)
	}
	in := []any{1, "two", 3.5, []byte("four"), map[string]any{"five": int64(5)}, square{2}, nil}
	b, err := c.Append(nil, &in)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	if err := c.Decode(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("got %#v, want %#v", out, in)
	}
	// A cyclic value is an error, not a crash.
	cyc := []any{nil}
	cyc[0] = cyc
	if _, err := c.Append(nil, &cyc); err == nil {
		t.Fatal("a cyclic value was encoded")
	}
	// A registered type that does not fit the interface is an error.
	sc, _ := NewCodec[shape]()
	var sh shape = square{3}
	sb, err := sc.Append(nil, &sh)
	if err != nil {
		t.Fatal(err)
	}
	var back shape
	if err := sc.Decode(sb, &back); err != nil || back.Area() != 9 {
		t.Fatal(back, err)
	}
	var notShape any = 7
	ab, _ := NewCodec[any]()
	bb, _ := ab.Append(nil, &notShape)
	if err := sc.Decode(bb, &back); err == nil {
		t.Fatal("an int decoded into a shape")
	}
}

// stamp embeds time.Time, whose MarshalBinary and UnmarshalBinary are
// promoted to it: they must not be taken for stamp's own, or Name is lost.
type stamp struct {
	time.Time
	Name string
}

type ptrStamp struct {
	*time.Time
	Name string
}

// tempNote embeds temp, whose MarshalBinary has a value receiver.
type tempNote struct {
	temp
	Note string
}

// ownStamp declares its own pair while embedding time.Time, whose
// AppendBinary is promoted: its own MarshalBinary must be used, not the
// promoted AppendBinary (which would write the time alone).
type ownStamp struct {
	time.Time
	Name string
}

func (s ownStamp) MarshalBinary() ([]byte, error) {
	t, err := s.Time.MarshalBinary()
	return append([]byte(s.Name+"\x00"), t...), err
}

func (s *ownStamp) UnmarshalBinary(b []byte) error {
	name, rest, ok := bytes.Cut(b, []byte{0})
	if !ok {
		return errors.New("no name")
	}
	s.Name = string(name) + "!" // marks that this method decoded it
	return s.Time.UnmarshalBinary(rest)
}

// halfStamp declares MarshalBinary but gets UnmarshalBinary from time.Time.
type halfStamp struct {
	time.Time
	Name string
}

func (s halfStamp) MarshalBinary() ([]byte, error) { return []byte(s.Name), nil }

func TestCodecEmbeddedMarshaler(t *testing.T) {
	now := time.Now()
	check := func(what string, ok bool, got any) {
		t.Helper()
		if !ok {
			t.Errorf("%s: got %+v", what, got)
		}
	}
	{
		in := stamp{now, "hello"}
		out := roundTripValue(t, in)
		check("stamp", out.Name == "hello" && out.Equal(now), out)
	}
	{
		in := []stamp{{now, "a"}, {now.Add(time.Hour), "b"}}
		out := roundTripValue(t, in)
		check("[]stamp", len(out) == 2 && out[1].Name == "b" && out[1].Equal(now.Add(time.Hour)), out)
	}
	{
		in := ptrStamp{&now, "p"}
		out := roundTripValue(t, in)
		check("ptrStamp", out.Name == "p" && out.Time != nil && out.Equal(now), out)
		out = roundTripValue(t, ptrStamp{Name: "nil time"})
		check("ptrStamp with a nil time", out.Name == "nil time" && out.Time == nil, out)
	}
	{
		in := tempNote{temp{21.5}, "warm"}
		out := roundTripValue(t, in)
		check("tempNote", out == in, out)
	}
	{
		in := ownStamp{now, "own"}
		out := roundTripValue(t, in)
		check("ownStamp (its own methods)", out.Name == "own!" && out.Equal(now), out)
	}
	{
		Register(stamp{})
		var in any = stamp{now, "in an interface"}
		out := roundTripValue(t, in)
		s, ok := out.(stamp)
		check("stamp in an interface", ok && s.Name == "in an interface" && s.Equal(now), out)
	}
	_, err := NewCodec[halfStamp]()
	if err == nil || !strings.Contains(err.Error(), "UnmarshalBinary is promoted") || strings.Count(err.Error(), "multiproc:") != 0 {
		t.Errorf("codec for a struct declaring half the pair: %v", err)
	}
	_, err = NewCodec[[]halfStamp]()
	if err == nil || !strings.Contains(err.Error(), "halfStamp") {
		t.Errorf("codec for a slice of a struct declaring half the pair: %v", err)
	}
}

// roundTripValue encodes v and decodes it into a new value.
func roundTripValue[T any](t *testing.T, v T) T {
	t.Helper()
	c, err := NewCodec[T]()
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Append(nil, &v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := c.Decode(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
