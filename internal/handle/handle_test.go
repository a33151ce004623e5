package handle

import (
	"errors"
	"reflect"
	"testing"
)

// token is a shareable type for the tests: its "fd" is its id.
type token struct{ id int }

func (t *token) ExportHandle() (Desc, error) {
	if t.id < 0 {
		return Desc{}, errors.New("refused")
	}
	return Desc{Kind: "token", Meta: []byte{byte(t.id)}, Fds: []int{-1 - t.id}}, nil
}

func (t *token) ImportHandle(d Desc) error {
	if d.Kind != "token" {
		return errors.New("not a token")
	}
	t.id = int(d.Meta[0])
	return nil
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
	cp, entries, err := Collect(&v)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d entries, want 3 (the unexported and nil fields are skipped)", len(entries))
	}
	c := cp.(*outer)
	if c.A != nil || c.In.T != nil || c.Ptr.T != nil || c.In.Other != 5 {
		t.Fatalf("copy still holds handles: %+v", c)
	}
	if v.A == nil || v.In.T == nil || v.Ptr.T == nil || v.Ptr == c.Ptr {
		t.Fatal("Collect changed the original or shared its pointers")
	}
	// The table survives encoding, with the fds handed out in order.
	b := AppendEntries(nil, entries)
	parsed, rest, used, err := ParseEntriesPrefix(b, AllFds(entries))
	if err != nil || len(rest) != 0 || used != 3 {
		t.Fatal(err, len(rest), used)
	}
	var got outer
	got.In.Other = c.In.Other
	got.Ptr = &inner{}
	if err := Restore(&got, parsed); err != nil {
		t.Fatal(err)
	}
	if got.A.id != 1 || got.In.T.id != 2 || got.Ptr.T.id != 3 {
		t.Fatalf("restored %+v %+v %+v", got.A, got.In.T, got.Ptr.T)
	}
}

func TestCollectRoot(t *testing.T) {
	tok := &token{7}
	_, entries, err := Collect(&tok)
	if err != nil || len(entries) != 1 || len(entries[0].Path) != 0 {
		t.Fatal(entries, err)
	}
	var back *token
	if err := Restore(&back, entries); err != nil || back.id != 7 {
		t.Fatal(back, err)
	}
}

func TestCollectExportError(t *testing.T) {
	if _, _, err := Collect(&outer{A: &token{-1}}); err == nil {
		t.Fatal("an export error was not returned")
	}
}

func TestMayHold(t *testing.T) {
	for _, c := range []struct {
		t    reflect.Type
		want bool
	}{
		{reflect.TypeFor[int](), false},
		{reflect.TypeFor[[]*token](), false}, // slices are not searched
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

func TestParseEntriesCorrupt(t *testing.T) {
	entries := []Entry{{Path: []int{0}, Desc: Desc{Kind: "token", Fds: []int{-5, -6}}}}
	b := AppendEntries(nil, entries)
	if _, _, _, err := ParseEntriesPrefix(b, []int{-5}); err == nil {
		t.Fatal("a table naming more fds than arrived parsed")
	}
	// The count comes first, so every truncation must fail.
	for cut := range len(b) {
		if _, _, _, err := ParseEntriesPrefix(b[:cut], []int{-5, -6}); err == nil {
			t.Fatalf("a table cut at %d parsed", cut)
		}
	}
}
