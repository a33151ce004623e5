//go:build linux && (amd64 || arm64)

package handle

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// token is a shareable type for the tests: its "fd" is its id.
type token struct{ id int }

func (t *token) exportHandle() (Desc, error) {
	if t.id < 0 {
		return Desc{}, errors.New("refused")
	}
	return Desc{Kind: "token", Meta: []byte{byte(t.id)}, Fds: []int{-1 - t.id}}, nil
}

func (t *token) importHandle(d Desc) error {
	if d.Kind != "token" || len(d.Meta) != 1 {
		return errors.New("not a token")
	}
	t.id = int(d.Meta[0])
	return nil
}

type shareable interface {
	exportHandle() (Desc, error)
	importHandle(Desc) error
}

func init() {
	SetHooks(reflect.TypeFor[shareable](),
		func(obj any) (Desc, error) { return obj.(shareable).exportHandle() },
		func(obj any, d Desc) error { return obj.(shareable).importHandle(d) })
}

type inner struct {
	T     *token
	Other int
}

type outer struct {
	A      *token
	In     inner
	Ptr    *inner
	hidden *token
	Nil    *token
}

func TestCollectRestore(t *testing.T) {
	v := outer{A: &token{1}, In: inner{T: &token{2}, Other: 5}, Ptr: &inner{T: &token{3}}, hidden: &token{4}}
	var tab Table
	cp, entries, err := Collect(&v, &tab)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || tab.Len() != 3 {
		t.Fatalf("%d entries, %d objects, want 3 (the unexported and nil fields are skipped)", len(entries), tab.Len())
	}
	c := cp.(*outer)
	if c.A != nil || c.In.T != nil || c.Ptr.T != nil || c.In.Other != 5 {
		t.Fatalf("copy still holds handles: %+v", c)
	}
	if v.A == nil || v.In.T == nil || v.Ptr.T == nil || v.Ptr == c.Ptr {
		t.Fatal("Collect changed the original or shared its pointers")
	}
	// The table and entries survive encoding, with the fds handed out in order.
	b := AppendTable(nil, &tab)
	b = AppendEntries(b, entries)
	r := NewReader(b)
	descs, used := r.Table(tab.Fds())
	parsed := r.Entries(len(descs))
	if r.Err() != nil || len(r.Rest()) != 0 || used != 3 {
		t.Fatal(r.Err(), len(r.Rest()), used)
	}
	var got outer
	got.In.Other = c.In.Other
	got.Ptr = &inner{}
	if err := Restore(&got, parsed, NewImports(descs)); err != nil {
		t.Fatal(err)
	}
	if got.A.id != 1 || got.In.T.id != 2 || got.Ptr.T.id != 3 {
		t.Fatalf("restored %+v %+v %+v", got.A, got.In.T, got.Ptr.T)
	}
}

// An object passed several times, in one value or in several items of a
// message, travels once and arrives as one object.
func TestCollectDedup(t *testing.T) {
	tok := &token{9}
	var tab Table
	_, e1, err := Collect(&outer{A: tok, In: inner{T: tok}}, &tab)
	if err != nil {
		t.Fatal(err)
	}
	_, e2, err := Collect(&tok, &tab)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 1 || tab.NumFds() != 1 || len(e1) != 2 || len(e2) != 1 {
		t.Fatalf("table of %d objects (%d fds), entries %v %v; want one object", tab.Len(), tab.NumFds(), e1, e2)
	}
	im := NewImports(tab.Descs)
	var a outer
	var b *token
	if err := Restore(&a, e1, im); err != nil {
		t.Fatal(err)
	}
	if err := Restore(&b, e2, im); err != nil {
		t.Fatal(err)
	}
	if a.A != a.In.T || a.A != b || b.id != 9 {
		t.Fatalf("one object arrived as several: %p %p %p", a.A, a.In.T, b)
	}
}

func TestCollectRoot(t *testing.T) {
	tok := &token{7}
	var tab Table
	_, entries, err := Collect(&tok, &tab)
	if err != nil || len(entries) != 1 || len(entries[0].Path) != 0 {
		t.Fatal(entries, err)
	}
	var back *token
	if err := Restore(&back, entries, NewImports(tab.Descs)); err != nil || back.id != 7 {
		t.Fatal(back, err)
	}
}

func TestCollectExportError(t *testing.T) {
	if _, _, err := Collect(&outer{A: &token{-1}}, new(Table)); err == nil {
		t.Fatal("an export error was not returned")
	}
}

// Shared objects inside slices, arrays and maps travel: each distinct
// object once in the table, restored at every place, the sender's value
// untouched.
func TestCollectInContainer(t *testing.T) {
	type job struct{ T *token }
	type withAll struct {
		N    int
		Toks []*token
		Arr  [2]*token
		M    map[string]*token
		ByID map[int]job
		Ptrs []*job
		Nest [][]*token
		Nil  []*token
	}
	a, b, c := &token{1}, &token{2}, &token{3}
	v := withAll{
		N: 7, Toks: []*token{a, nil, b}, Arr: [2]*token{c, a},
		M: map[string]*token{"x": b, "y": nil}, ByID: map[int]job{-4: {T: c}},
		Ptrs: []*job{{T: a}}, Nest: [][]*token{{b}, {c, a}},
	}
	var tab Table
	cp, entries, err := Collect(&v, &tab)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 3 {
		t.Fatalf("%d objects in the table, want 3 (each once)", tab.Len())
	}
	if v.Toks[0] != a || v.M["x"] != b || v.ByID[-4].T != c || v.Ptrs[0].T != a || v.Nest[1][1] != a {
		t.Fatal("Collect changed the sender's value")
	}
	got := cp.(*withAll)
	if got.Toks[0] != nil || got.Arr[0] != nil || got.M["x"] != nil || got.ByID[-4].T != nil || got.Ptrs[0].T != nil || got.Nest[1][0] != nil {
		t.Fatalf("the copy still holds objects: %+v", got)
	}
	// Encode and decode the entries as a message does, then restore.
	b2 := AppendEntries(AppendTable(nil, &tab), entries)
	r := NewReader(b2)
	descs, _ := r.Table(tab.Fds())
	back := r.Entries(len(descs))
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	if err := Restore(got, back, NewImports(descs)); err != nil {
		t.Fatal(err)
	}
	ids := func(ts ...*token) []int {
		var out []int
		for _, t := range ts {
			if t == nil {
				out = append(out, 0)
			} else {
				out = append(out, t.id)
			}
		}
		return out
	}
	want := []int{1, 0, 2, 3, 1, 2, 0, 3, 1, 2, 3, 1}
	have := ids(got.Toks[0], got.Toks[1], got.Toks[2], got.Arr[0], got.Arr[1], got.M["x"], got.M["y"], got.ByID[-4].T, got.Ptrs[0].T, got.Nest[0][0], got.Nest[1][0], got.Nest[1][1])
	if !reflect.DeepEqual(have, want) {
		t.Fatalf("restored %v, want %v", have, want)
	}
	if got.Toks[0] != got.Arr[1] || got.Toks[0] != got.Nest[1][1] {
		t.Fatal("one object passed three times arrived as several")
	}
	if got.N != 7 || len(got.M) != 2 {
		t.Fatalf("the rest of the value changed: %+v", got)
	}
}

// Keys that cannot be written as text, and objects as keys, are refused
// with an error that names the field; so is a value too large to search.
func TestCollectInContainerRefused(t *testing.T) {
	type key struct{ A, B int }
	type withStructKey struct{ M map[key]*token }
	_, _, err := Collect(&withStructKey{M: map[key]*token{{1, 2}: {1}}}, new(Table))
	if err == nil || !strings.Contains(err.Error(), "field M") || !strings.Contains(err.Error(), "strings, integers or bools") {
		t.Errorf("struct key: %v", err)
	}
	type withTokKey struct{ M map[*token]int }
	_, _, err = Collect(&withTokKey{M: map[*token]int{{1}: 1}}, new(Table))
	if err == nil || !strings.Contains(err.Error(), "cannot be map keys") {
		t.Errorf("object as key: %v", err)
	}
	big := make([]*token, maxVisit+1)
	_, _, err = Collect(&big, new(Table))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("%d elements: %v", len(big), err)
	}
	// A map key that does not fit the receiver's key type fails cleanly.
	var m map[int8]*token
	err = Restore(&m, []Entry{{Path: []int{0}, Keys: []string{"300"}}}, NewImports([]Desc{{Kind: "token", Meta: []byte{1}}}))
	if err == nil {
		t.Error("a key out of int8's range was restored")
	}
}

func TestMayHold(t *testing.T) {
	for _, c := range []struct {
		t    reflect.Type
		want bool
	}{
		{reflect.TypeFor[int](), false},
		{reflect.TypeFor[[]*token](), true},
		{reflect.TypeFor[map[string]int](), false},
		{reflect.TypeFor[*token](), true},
		{reflect.TypeFor[outer](), true},
		{reflect.TypeFor[struct{ X int }](), false},
		{reflect.TypeFor[*inner](), true},
	} {
		if got := MayHold(c.t); got != c.want {
			t.Errorf("MayHold(%v) = %v, want %v", c.t, got, c.want)
		}
	}
}

func TestParseTableCorrupt(t *testing.T) {
	tab := Table{Descs: []Desc{{Kind: "token", Fds: []int{-5, -6}}}}
	b := AppendTable(nil, &tab)
	b = AppendEntries(b, []Entry{{Path: []int{0}, Index: 0}})
	r := NewReader(b)
	if r.Table([]int{-5}); r.Err() == nil {
		t.Fatal("a table naming more fds than arrived parsed")
	}
	// An entry naming an object the table does not hold.
	bad := AppendEntries(AppendTable(nil, &tab), []Entry{{Index: 1}})
	r = NewReader(bad)
	descs, _ := r.Table([]int{-5, -6})
	if r.Entries(len(descs)); r.Err() == nil {
		t.Fatal("an entry out of the table's range parsed")
	}
	// The counts come first, so every truncation must fail.
	for cut := range len(b) {
		r := NewReader(b[:cut])
		descs, _ := r.Table([]int{-5, -6})
		r.Entries(len(descs))
		if r.Err() == nil {
			t.Fatalf("a message cut at %d parsed", cut)
		}
	}
}

// FuzzEntries: a received table and entries, whatever their bytes, parse
// or fail; they never panic, and what parses stays in its bounds.
func FuzzEntries(f *testing.F) {
	tab := Table{Descs: []Desc{{Kind: "token", Meta: []byte{1}, Fds: []int{-2}}}}
	f.Add(AppendEntries(AppendTable(nil, &tab), []Entry{{Path: []int{1, 0, 2}, Keys: []string{"k"}, Index: 0}}))
	f.Add(AppendEntries(AppendTable(nil, &tab), []Entry{{Index: 0}}))
	f.Add([]byte{1, 0, 0, 1, 1, 64, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(in)
		descs, _ := r.Table([]int{-2, -3, -4})
		entries := r.Entries(len(descs))
		if r.Err() != nil {
			return
		}
		for _, e := range entries {
			if e.Index < 0 || e.Index >= len(descs) || len(e.Path) > 64 || len(e.Keys) > len(e.Path) {
				t.Fatalf("an entry out of bounds parsed: %+v", e)
			}
		}
		// Restoring into a type the entries do not fit fails cleanly.
		var v struct {
			M map[string][]*token
			T *token
		}
		Restore(&v, entries, NewImports(descs))
	})
}
