//go:build linux && (amd64 || arm64)

package wire

import (
	"math"
	"testing"
	"time"
)

// valueMsg holds what the codec writes with a type name beside the value:
// interfaces, at the top, in maps (keys too) and in a struct's field.
type valueMsg struct {
	V    any
	List []any
	Keys map[any]int
	Vals map[string]any
	Err  string
}

// FuzzDecodeValue (beside FuzzDecode, which decodes a fixed struct):
// values whose dynamic types come from the bytes, as a Queue's or a
// Conn's peer sends them. Decoding them yields an error or a value that
// encodes again — never a panic, whatever type names the bytes claim.
func FuzzDecodeValue(f *testing.F) {
	c, err := NewCodec[valueMsg]()
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range []valueMsg{
		{},
		{V: 1, List: []any{"a", 2.5, []byte("b"), true, nil}, Err: "x"},
		{V: map[string]int{"k": 1}, Keys: map[any]int{1: 1, "s": 2, 2.5: 3, int8(4): 4}},
		{V: []any{[]any{map[string]any{"deep": []int{1, 2}}}}, Vals: map[string]any{"t": time.Unix(1, 2).UTC(), "f": math.Inf(-1)}},
		{Keys: map[any]int{"[]uint8": 1}}, // a key whose type name could be rewritten into an unhashable one
		{V: []string{"a", ""}, List: []any{complex(1, 2), int64(-1), uint64(math.MaxUint64), time.Second}},
	} {
		b, err := c.Append(nil, &v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var v valueMsg
		if err := c.Decode(in, &v); err != nil {
			return
		}
		enc, err := c.Append(nil, &v)
		if err != nil {
			t.Fatalf("re-encoding a decoded value: %v", err)
		}
		var v2 valueMsg
		if err := c.Decode(enc, &v2); err != nil {
			t.Fatalf("decoding a re-encoded value: %v", err)
		}
	})
}
