package pickle

import (
	"math/big"
	"testing"
)

// dict10 is internal/bench's pickle-dict10 message (a dict of 10 mixed
// values); python3's twin: python3 -m timeit -s 'import pickle; m = {...}'
// 'pickle.loads(pickle.dumps(m, 4))'.
func dict10() map[string]any {
	return map[string]any{
		"id": 12345, "name": "sensor-7", "value": 21.5, "ok": true,
		"tags": []any{"a", "b", "c"}, "pos": Tuple{1.5, -2.0},
		"data":  []byte("\x00\x01\x02\x03\x00\x01\x02\x03\x00\x01\x02\x03\x00\x01\x02\x03"),
		"count": new(big.Int).Lsh(big.NewInt(1), 70), "none": nil,
		"meta": map[string]any{"unit": "C", "n": 3},
	}
}

func BenchmarkMarshalDict10(b *testing.B) {
	m := dict10()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalDict10(b *testing.B) {
	p, err := Marshal(dict10())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(p); err != nil {
			b.Fatal(err)
		}
	}
}
