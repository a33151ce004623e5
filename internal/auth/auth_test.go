package auth

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func pair(t *testing.T) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	d := time.Now().Add(30 * time.Second)
	a.SetDeadline(d)
	b.SetDeadline(d)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestHandshake: Deliver against Answer, with equal and different keys.
func TestHandshake(t *testing.T) {
	for _, keys := range [][2]string{{"k", "k"}, {"k", "x"}} {
		a, b := pair(t)
		errc := make(chan error, 1)
		go func() { errc <- Answer(b, []byte(keys[1])) }()
		err := Deliver(a, []byte(keys[0]))
		aerr := <-errc
		if keys[0] == keys[1] && (err != nil || aerr != nil) {
			t.Fatalf("same key: %v, %v", err, aerr)
		}
		if keys[0] != keys[1] && (!errors.Is(err, ErrAuth) || !errors.Is(aerr, ErrAuth)) {
			t.Fatalf("different keys: %v, %v", err, aerr)
		}
	}
}

// TestLegacyPeer: a ≤3.11 listener's 20-byte challenge gets a raw
// HMAC-MD5; a ≤3.11 client's raw HMAC-MD5 of our {sha256} challenge
// is accepted.
func TestLegacyPeer(t *testing.T) {
	key := []byte("key")
	a, b := pair(t)
	challenge := []byte("01234567890123456789")
	go func() {
		writeMsg(a, append([]byte("#CHALLENGE#"), challenge...))
		resp, _ := readMsg(a)
		m := hmac.New(md5.New, key)
		m.Write(challenge)
		if hmac.Equal(resp, m.Sum(nil)) {
			writeMsg(a, welcome)
		} else {
			writeMsg(a, failure)
		}
	}()
	if err := Answer(b, key); err != nil {
		t.Fatalf("answering a 3.11 challenge: %v", err)
	}

	a, b = pair(t)
	go func() {
		m, _ := readMsg(b) // as 3.11's answer_challenge: MD5 of whatever follows #CHALLENGE#
		h := hmac.New(md5.New, key)
		h.Write(m[len("#CHALLENGE#"):])
		writeMsg(b, h.Sum(nil))
		readMsg(b)
	}()
	if err := Deliver(a, key); err != nil {
		t.Fatalf("a 3.11 answer: %v", err)
	}
}

// TestBoundedMessages: a 1 GiB or long-form header is refused from the
// header alone; a peer hanging up is an unexpected EOF; junk is ErrAuth.
func TestBoundedMessages(t *testing.T) {
	for _, hdr := range []uint32{1 << 30, 257, 0xffffffff} {
		a, b := pair(t)
		go func() { b.Write(binary.BigEndian.AppendUint32(nil, hdr)) }()
		if err := Answer(a, []byte("k")); !errors.Is(err, ErrAuth) {
			t.Fatalf("header %#x: %v", hdr, err)
		}
	}
	a, b := pair(t)
	go func() { readMsg(b); b.Close() }()
	if err := Deliver(a, []byte("k")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("hang-up: %v", err)
	}
	for _, junk := range []string{"hello", "#CHALLENGE#short", "#CHALLENGE#{nope}0123456789012345678901234567890123456789"} {
		a, b := pair(t)
		go func() { writeMsg(b, []byte(junk)) }()
		if err := Answer(a, []byte("k")); !errors.Is(err, ErrAuth) {
			t.Fatalf("%q: %v", junk, err)
		}
	}
}
