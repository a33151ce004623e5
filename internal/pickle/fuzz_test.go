package pickle

import (
	"errors"
	"math/big"
	"strings"
	"testing"
)

// FuzzUnmarshal: any input is a value or an error matching one of the
// package's sentinels, never a panic, a hang or a blow-up (the fuzzer's
// own time and memory limits catch those); a value decodes again from
// what Marshal makes of it. The seeds hold every bomb of issue 18 (and
// 17's fault 8), and python3's own pickles of the values of TestPythonValues.
// Run: go test -run '^$' -fuzz FuzzUnmarshal -fuzztime 10s ./internal/pickle
func FuzzUnmarshal(f *testing.F) {
	f.Add(deepTupleKey(1_500_000))    // fault 1
	f.Add(dagTuple(30, true))         // fault 2; issue 17 fault 8
	f.Add(dagTuple(15, true))         // the 200-byte one
	f.Add(dagTuple(60, false))        // the DAG as a value
	f.Add(sharedBytes(16<<10, 16000)) // fault 3: 48 KB, one bytes 16000 times
	f.Add(decimalLong(1_000_000))     // fault 4
	f.Add([]byte("I" + strings.Repeat("9", 5000) + "\n."))
	f.Add(append(append([]byte{0x80, 2}, longBytes(new(big.Int).Lsh(big.NewInt(1), 1015))...), '.')) // fault 5
	f.Add(append(append([]byte{0x80, 2}, longBytes(new(big.Int).Lsh(big.NewInt(1), 2048))...), '.'))
	f.Add([]byte("\x80\x02\x8a\x81" + strings.Repeat("\x01", 0x81) + "0cos\nsystem\nX\x02\x00\x00\x00id\x85R.")) // fault 5's hidden GLOBAL
	f.Add([]byte("\x80\x04" + strings.Repeat("]", 100000) + strings.Repeat("a", 99999) + "."))
	f.Add([]byte("\x80\x04]\x94h\x00a."))                            // a list that holds itself
	f.Add([]byte("\x80\x04}\x94\x8c\x01k]h\x00as."))                 // a dict that holds itself
	f.Add([]byte("\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93)R.")) // STACK_GLOBAL
	f.Add([]byte("cos\nsystem\n(S'echo pwned'\ntR."))
	f.Add([]byte("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffN."))
	f.Add([]byte("\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f."))
	f.Add([]byte("\x80\x04r\xff\xff\xff\xffN\x94.")) // LONG_BINPUT at 4G
	f.Add([]byte("\x80\x04\x8c\x03\xed\xa0\x80."))   // a lone surrogate
	var ba strings.Builder                           // bytearray(one bytes) thousands of times
	ba.WriteString("\x80\x04]\x94(\x8c\x08builtins\x94\x8c\x09bytearray\x94\x93\x94C\x10" + strings.Repeat("b", 16) + "\x94")
	for range 3000 {
		ba.WriteString("h\x03h\x04\x85R")
	}
	ba.WriteString("e.")
	f.Add([]byte(ba.String()))
	for _, c := range pythonSeeds {
		f.Add([]byte(c))
	}
	for _, v := range []any{nil, true, int64(-1), 2.5, "é", []byte{1}, Tuple{int64(1), "a"}, []any{[]any{}},
		map[any]any{"k": Set{int64(1): {}}, [2]any{int64(1), nil}: FrozenSet{"x": {}}}} {
		p, err := Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		v, err := Unmarshal(p)
		if err != nil {
			if !errors.Is(err, ErrNotPickle) && !errors.Is(err, ErrUnsafe) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrLimit) {
				t.Fatalf("an error of no kind: %v", err)
			}
			return
		}
		b, err := Marshal(v)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) { // a NaN key, keys Python holds equal
				t.Fatalf("Marshal of a decoded value: %v", err)
			}
			return
		}
		if _, err := Unmarshal(b); err != nil && !errors.Is(err, ErrLimit) {
			t.Fatalf("Marshal's pickle of a decoded value: %v", err)
		}
	})
}

// pythonSeeds are pickles python3 wrote (research/third-wave.md §2.2 and
// TestPythonValues).
var pythonSeeds = []string{
	"c_codecs\nencode\np0\n(V\xff\\u0080a\np1\nVlatin1\np2\ntp3\nRp4\n.",
	"\x80\x02c__builtin__\nbytes\nq\x00)Rq\x01.",
	"\x80\x02c_codecs\nencode\nq\x00X\x05\x00\x00\x00\xc3\xbf\xc2\x80aq\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04.",
	"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\tbytearray\x94\x93\x94C\x02ab\x94\x85\x94R\x94.",
	"\x80\x02c__builtin__\nbytearray\nq\x00c_codecs\nencode\nq\x01X\x02\x00\x00\x00abq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05\x85q\x06Rq\x07.",
	"\x80\x02]q\x00(c__builtin__\nset\nq\x01]q\x02K\x01a\x85q\x03Rq\x04h\x01]q\x05K\x02a\x85q\x06Rq\x07e.",
	"c__builtin__\nfrozenset\np0\n((lp1\nI1\naI2\natp2\nRp3\n.",
	"V\\ud800x\n.",
	"(lp0\nFnan\naFinf\naF-0.0\naF1e400\na.",
	"(lp0\nS'a\\n\\x41\\'b'\naU\x02hia.",
	"\x80\x04\x95.\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01k\x94]\x94(K\x07G@\x04\x00\x00\x00\x00\x00\x00\x8c\x02\xc3\xa9\x94C\x01\x01\x94N\x88K\x01K\x02\x86\x94\x8f\x94(K\x03\x90es.",
}
