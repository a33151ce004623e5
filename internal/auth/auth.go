// Package auth is the authentication handshake of Python's
// multiprocessing.connection (deliver_challenge / answer_challenge), byte
// for byte, for python3 3.8 to 3.13 and for Go peers.
//
// Python 3.11 and older send a 20-byte challenge and answer with a raw
// 16-byte HMAC-MD5 of it; 3.12 and newer send "{sha256}" + 40 random bytes
// and answer "{sha256}" + HMAC-SHA256 of the whole prefixed payload, and
// still accept a raw HMAC-MD5 answer (from an older peer). This package
// sends the 3.12 challenge and accepts both kinds of answer, so every one
// of those versions, on either side, agrees with it.
//
// Every message is read with a bound of MaxMessage bytes (as Python's
// recv_bytes(256)), before anything is allocated for it, and digests are
// compared in constant time. The caller sets the deadline on the
// connection.
package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// MaxMessage bounds every handshake message, as Python's recv_bytes(256).
const MaxMessage = 256

// The handshake's fixed messages (Python's _CHALLENGE, _WELCOME, _FAILURE).
var (
	challengePrefix = []byte("#CHALLENGE#")
	welcome         = []byte("#WELCOME#")
	failure         = []byte("#FAILURE#")
)

const (
	legacyLength = 20 // a ≤3.11 challenge; answered with a raw HMAC-MD5
	md5Length    = 16 // a raw HMAC-MD5 answer
	randomLength = 40 // the random part of a 3.12+ challenge
	maxNameLen   = 20 // Python's _MAX_DIGEST_LEN: bounds the search for '}'
)

// ErrAuth is the error of a failed handshake: a wrong key on either side,
// or a peer that does not speak the protocol. Every error of Deliver and
// Answer about the peer's messages wraps it; I/O errors (EOF, a deadline)
// do not.
var ErrAuth = errors.New("authentication failed")

// digests are the names Python 3.12+ accepts in "{name}" (its
// _ALLOWED_DIGESTS), with Go's implementation of each.
var digests = map[string]func() hash.Hash{
	"md5":      md5.New,
	"sha256":   sha256.New,
	"sha384":   sha512.New384,
	"sha3_256": func() hash.Hash { return sha3.New256() },
	"sha3_384": func() hash.Hash { return sha3.New384() },
}

// Deliver sends a challenge and checks the peer's answer, then tells the
// peer whether it passed: Python's deliver_challenge, run first by a
// Listener and second by a Client.
func Deliver(rw io.ReadWriter, key []byte) error {
	msg := make([]byte, 0, 8+randomLength)
	msg = append(msg, "{sha256}"...)
	random := make([]byte, randomLength)
	if _, err := rand.Read(random); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	msg = append(msg, random...)
	if err := writeMsg(rw, append(append([]byte{}, challengePrefix...), msg...)); err != nil {
		return err
	}
	resp, err := readMsg(rw)
	if err != nil {
		return err
	}
	if verr := verify(key, msg, resp); verr != nil {
		writeMsg(rw, failure) // best effort: the peer learns why we hang up
		return verr
	}
	return writeMsg(rw, welcome)
}

// Answer answers the peer's challenge and reads its verdict: Python's
// answer_challenge, run first by a Client and second by a Listener.
func Answer(rw io.ReadWriter, key []byte) error {
	m, err := readMsg(rw)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(m, challengePrefix) {
		return fmt.Errorf("%w: the peer sent no challenge (%d bytes without #CHALLENGE#)", ErrAuth, len(m))
	}
	payload := m[len(challengePrefix):]
	if len(payload) < legacyLength {
		return fmt.Errorf("%w: challenge too short: %d bytes", ErrAuth, len(payload))
	}
	resp, err := response(key, payload)
	if err != nil {
		return err
	}
	if err := writeMsg(rw, resp); err != nil {
		return err
	}
	verdict, err := readMsg(rw)
	if err != nil {
		return err
	}
	if !bytes.Equal(verdict, welcome) {
		return fmt.Errorf("%w: digest sent was rejected (wrong authkey?)", ErrAuth)
	}
	return nil
}

// digestOf splits a challenge or an answer into its digest name and MAC
// (Python's _get_digest_name_and_payload): 16 or 20 bytes are a raw MD5
// exchange, otherwise a "{name}" prefix names the digest.
func digestOf(m []byte) (name string, mac []byte, err error) {
	if len(m) == legacyLength || len(m) == md5Length {
		return "md5", m, nil
	}
	if len(m) > 0 && m[0] == '{' {
		end := bytes.IndexByte(m[1:min(len(m), maxNameLen+2)], '}')
		if end > 0 {
			name := string(m[1 : 1+end])
			if _, ok := digests[name]; ok {
				return name, m[end+2:], nil
			}
		}
	}
	return "", nil, fmt.Errorf("%w: unsupported message length, missing digest prefix, or unsupported digest", ErrAuth)
}

// response is Python's _create_response: the MAC of the whole challenge
// payload, raw for a 20-byte (≤3.11) challenge, "{name}"-prefixed otherwise.
func response(key, payload []byte) ([]byte, error) {
	name, _, err := digestOf(payload)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(digests[name], key)
	mac.Write(payload)
	sum := mac.Sum(nil)
	if len(payload) == legacyLength {
		return sum, nil
	}
	return append([]byte("{"+name+"}"), sum...), nil
}

// verify is Python's _verify_challenge, with a constant-time comparison.
func verify(key, challenge, resp []byte) error {
	name, got, err := digestOf(resp)
	if err != nil {
		return err
	}
	mac := hmac.New(digests[name], key)
	mac.Write(challenge)
	want := mac.Sum(nil)
	if !hmac.Equal(want, got) {
		return fmt.Errorf("%w: digest received was wrong (wrong authkey?)", ErrAuth)
	}
	return nil
}

// writeMsg sends one framed message (Python's send_bytes) in one write.
func writeMsg(w io.Writer, b []byte) error {
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	buf = append(buf, b...)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	return nil
}

// readMsg reads one framed message of at most MaxMessage bytes, refusing
// a longer one from its header alone (nothing is allocated or read for
// it). It reads exactly the message's bytes: what follows the handshake
// stays in the connection.
func readMsg(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("handshake: %w", eof(err))
	}
	n := int32(binary.BigEndian.Uint32(hdr[:]))
	if n < 0 || n > MaxMessage {
		// -1 announces a long (≥ 2 GiB) frame: never a handshake message.
		return nil, fmt.Errorf("%w: handshake message of length %d (limit %d)", ErrAuth, n, MaxMessage)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("handshake: %w", eof(err))
	}
	return b, nil
}

// eof makes a peer's hanging up mid-handshake an unexpected EOF.
func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
