package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// peer is the other side of a handshake that sends in, whatever it is
// asked, and records what it is sent.
type peer struct {
	in   *bytes.Reader
	sent bytes.Buffer
}

func (p *peer) Read(b []byte) (int, error)  { return p.in.Read(b) }
func (p *peer) Write(b []byte) (int, error) { return p.sent.Write(b) }

func frame(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		b = append(b, m...)
	}
	return b
}

// FuzzHandshake: both sides of the handshake against a peer that sends
// any bytes. Neither panics or reads past what the messages announce
// within MaxMessage; Deliver never lets through a peer that cannot know
// its random challenge; Answer succeeds only when the peer said
// #WELCOME#; and every failure is ErrAuth or the stream's end.
func FuzzHandshake(f *testing.F) {
	key := []byte("key")
	legacy := bytes.Repeat([]byte{7}, legacyLength)
	mac := hmac.New(md5.New, key)
	mac.Write(legacy)
	f.Add(frame(append([]byte("#CHALLENGE#"), legacy...), welcome))
	f.Add(frame(append([]byte("#CHALLENGE#{sha256}"), bytes.Repeat([]byte{1}, randomLength)...), failure))
	f.Add(frame(mac.Sum(nil), welcome))
	f.Add(frame(append([]byte("{sha256}"), make([]byte, 32)...)))
	f.Add(frame(append([]byte("#CHALLENGE#{sha3_384"), make([]byte, 40)...)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, deliver := range []bool{true, false} {
			p := &peer{in: bytes.NewReader(in)}
			var err error
			if deliver {
				err = Deliver(p, key)
			} else {
				err = Answer(p, key)
			}
			if consumed := len(in) - p.in.Len(); consumed > 2*(4+MaxMessage) {
				t.Fatalf("read %d bytes for two messages", consumed)
			}
			if err == nil {
				if deliver {
					t.Fatalf("Deliver accepted an answer to a random challenge: %q", in)
				}
				if !bytes.Contains(in, welcome) {
					t.Fatalf("Answer succeeded without #WELCOME#: %q", in)
				}
				continue
			}
			if !errors.Is(err, ErrAuth) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("deliver=%v: %v", deliver, err)
			}
		}
	})
}
