package cluster

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/multiproc-go/multiproc"
)

// Messages come from the network: every length is checked, nothing
// panics, and what was encoded decodes to the same.
func TestWireRoundTripAndCorrupt(t *testing.T) {
	args := [][]byte{[]byte("a"), nil, bytes.Repeat([]byte{7}, 300)}
	got, err := decodeArgs(encodeArgs(args))
	if err != nil || len(got) != 3 || !bytes.Equal(got[2], args[2]) || len(got[1]) != 0 {
		t.Fatalf("decodeArgs = %q, %v", got, err)
	}
	calls := []*call{{seq: 5, fn: "f", secret: newSecret(), body: encodeArgs(args)}, {seq: 9, fn: "g", batch: true, secret: newSecret(), body: encodeArgs(args[:1])}}
	ms, err := decodeMulti(encodeMulti(calls))
	if err != nil || len(ms) != 2 || ms[1].seq != 9 || !ms[1].batch || ms[0].fn != "f" || len(ms[0].args) != 3 || !bytes.Equal(ms[0].secret, calls[0].secret) {
		t.Fatalf("decodeMulti = %+v, %v", ms, err)
	}
	rs := []multiproc.Result{{Value: []byte("v")}, {Err: &multiproc.RemoteError{Text: "boom", Panic: true}}}
	back, err := decodeResults(encodeResults(rs, nil), 2, "f", "h")
	var re *multiproc.RemoteError
	if err != nil || string(back[0].Value) != "v" || !errors.As(back[1].Err, &re) || !re.Panic || re.Text != "boom" {
		t.Fatalf("decodeResults = %+v, %v", back, err)
	}
	if _, err := decodeResults(encodeResults(rs, nil), 3, "f", "h"); err == nil {
		t.Fatal("a result with the wrong count was accepted")
	}
	// Every truncation and a few corruptions of each encoding fail cleanly.
	for _, b := range [][]byte{encodeArgs(args), encodeMulti(calls), encodeResults(rs, nil)} {
		for i := range len(b) {
			decodeArgs(b[:i])
			decodeMulti(b[:i])
			decodeResults(b[:i], 2, "f", "h")
			c := bytes.Clone(b)
			c[i] ^= 0xff
			decodeArgs(c)
			decodeMulti(c)
			decodeResults(c, 2, "f", "h")
		}
	}
	if _, err := decodeArgs([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Fatal("a huge item count was accepted")
	}
}

// FuzzWire feeds every decoder of what crosses the network (task
// arguments, messages of several tasks, results, sealed payloads) with
// arbitrary bytes: none may panic or claim more than it was given.
func FuzzWire(f *testing.F) {
	args := [][]byte{[]byte("a"), nil, bytes.Repeat([]byte{7}, 40)}
	calls := []*call{{seq: 5, fn: "f", secret: newSecret(), body: encodeArgs(args)}}
	rs := []multiproc.Result{{Value: []byte("v")}, {Err: &multiproc.RemoteError{Text: "boom"}}}
	sealed, _ := seal(calls[0].secret, 0, []byte("payload"))
	for _, b := range [][]byte{encodeArgs(args), encodeMulti(calls), encodeResults(rs, nil), sealed, {}, {0xff}} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := decodeArgs(b); err == nil && len(a) > len(b) {
			t.Fatalf("decodeArgs: %d items from %d bytes", len(a), len(b))
		}
		if ms, err := decodeMulti(b); err == nil {
			for _, m := range ms {
				if len(m.secret) != secretLen || m.fn == "" {
					t.Fatalf("decodeMulti accepted %+v", m)
				}
			}
		}
		decodeResults(b, 2, "f", "h")
		if _, err := unseal(calls[0].secret, 0, b); err == nil && !bytes.Equal(b, sealed) {
			t.Fatal("unseal accepted bytes it did not seal")
		}
	})
}

// FuzzOwnKey: a cancel or purge request names tasks of its sender only.
// Whatever key a member sends, ownKey accepts it only if it is one of
// the sender's keys or key prefixes, and the purge filter made from it
// then covers that client's task subjects only.
func FuzzOwnKey(f *testing.F) {
	for _, k := range []string{"abc.", "abc.0.", "abc.0.7", "abc.0.m7", "abc.>", "abc.*.1", "abd.0.1", "abc..1", "abc", "abc.0.1.2", "abc.0 .1"} {
		f.Add("abc", k)
	}
	s := newSubjects("multiproc", "b1")
	f.Fuzz(func(t *testing.T, client, key string) {
		if !ownKey(client, key) {
			return
		}
		if !strings.HasPrefix(key, client+".") || strings.ContainsAny(key, "*> \t\r\n") {
			t.Fatalf("ownKey(%q, %q) accepted another's or a wildcard key", client, key)
		}
		f := purgeFilter(s, key)
		if !strings.HasPrefix(f, s.allTasks+"*."+client+".") || strings.Count(f, "*") != 1 || strings.Count(f, ">") > 1 {
			t.Fatalf("purge filter %q for %q reaches beyond client %q", f, key, client)
		}
	})
}
