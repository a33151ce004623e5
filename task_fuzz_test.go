//go:build linux && (amd64 || arm64)

package multiproc

import (
	"testing"

	"github.com/multiproc-go/multiproc/internal/handle"
)

// FuzzParseTask: a child parses whatever its control socket delivers as a
// task (here with no descriptors beside it): an error, or items whose
// bytes all lie within the message — never a panic or an allocation the
// message's length did not pay for.
func FuzzParseTask(f *testing.F) {
	for _, t := range []*task{
		{kind: 1, fn: "f", name: "p", items: []taskItem{{arg: []byte{1, 2, 3}}}},
		{kind: 2, batch: true, fn: "pool.square", name: "w", items: []taskItem{{arg: []byte("abc")}, {}}},
		{kind: 1, daemon: true, items: []taskItem{{entries: []handle.Entry{}, arg: nil}}},
	} {
		t.table = &handle.Table{}
		f.Add(t.append(nil))
	}
	f.Add([]byte{1, flagStdio})
	f.Add([]byte{1, flagTally, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1 {
			in[1] &^= flagStdio | flagTally // those take descriptors, which this test does not send
		}
		tk, err := parseTask(in, nil)
		if err != nil {
			return
		}
		total := len(tk.fn) + len(tk.name)
		for _, it := range tk.items {
			total += len(it.arg) + len(it.entries)
		}
		if total > len(in) || len(tk.items) > len(in) {
			t.Fatalf("a %d-byte task parsed into %d bytes and %d items", len(in), total, len(tk.items))
		}
		tk.imports.Close()
	})
}

// FuzzParseResults: a parent parses whatever a child sends as results,
// and the batch result inside one: an error, or results within the
// message's bytes.
func FuzzParseResults(f *testing.F) {
	f.Add(appendResults(nil, []itemResult{{resultOK, []byte{1}}, {resultErr, []byte("boom")}, {resultPanic, nil}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0})
	ints := []int{1, 2, 3}
	if b, err := appendBatch(nil, []byte{resultOK, resultErr, resultOK}, []string{"bad"}, &ints); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if rs, err := parseResults(in); err == nil {
			total := 0
			for _, r := range rs {
				total += 1 + len(r.data)
			}
			if total > len(in) {
				t.Fatalf("a %d-byte result message parsed into %d bytes", len(in), total)
			}
		}
		for _, n := range []int{1, 3} {
			rs, errs, err := parseBatch[int](in, n)
			if err == nil && (len(rs) != n || len(errs) != n && errs != nil) {
				t.Fatalf("a batch of %d parsed into %d results, %d errors", n, len(rs), len(errs))
			}
		}
	})
}
