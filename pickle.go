//go:build linux && (amd64 || arm64)

package multiproc

import (
	"errors"

	"github.com/multiproc-go/multiproc/internal/pickle"
	"github.com/multiproc-go/multiproc/internal/wire"
)

// Tuple is Python's tuple in SendPickle and RecvPickle.
type Tuple = pickle.Tuple

// Set is Python's set in SendPickle and RecvPickle: its elements are the
// comparable Go values a dict key may be.
type Set = pickle.Set

// FrozenSet is Python's frozenset in SendPickle and RecvPickle, as Set.
type FrozenSet = pickle.FrozenSet

// Errors of SendPickle and RecvPickle, matched with errors.Is.
var (
	// ErrPickleUnsafe: a received pickle names something to import, call
	// or build (a class, a function such as os.system): it is refused
	// before anything is decoded.
	ErrPickleUnsafe = pickle.ErrUnsafe
	// ErrNotPickle: a received message is not a well-formed pickle.
	ErrNotPickle = pickle.ErrNotPickle
	// ErrPickleUnsupported: a value with no counterpart on the other side
	// (a Go struct to send; a dict key of bytes received; see SendPickle).
	ErrPickleUnsupported = pickle.ErrUnsupported
)

// SendPickle sends v as python3's conn.send(obj) does: a pickle (protocol
// 4, python3's default from 3.8 to 3.13) in one message, which a python3
// peer receives with conn.recv().
//
// Go values map to Python as: nil → None; bool → bool; every integer type
// → int (a uint64 beyond int64 too); *big.Int → int; float32, float64 →
// float; string → str; []byte → bytes; Tuple → tuple; Set → set;
// FrozenSet → frozenset; any other slice or array → list; any map →
// dict (an array-typed key, as RecvPickle makes of a tuple key, → tuple).
// Anything else (a struct, a pointer, a channel, a value nested deeper
// than 1000 levels or containing itself) is an error matching
// ErrPickleUnsupported, and nothing is sent.
func (c *Conn) SendPickle(v any) error {
	if err := c.check(true); err != nil {
		return err
	}
	b, err := pickle.Marshal(v) // its errors say "multiproc: ..." already
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeFrame(b)
}

// RecvPickle receives one object sent by python3's conn.send(obj) (or by
// SendPickle) and returns it as a Go value: None → nil; bool → bool; int →
// int64, or *big.Int beyond int64; float → float64; str → string; bytes
// (and bytearray) → []byte; list → []any; tuple → Tuple; dict →
// map[any]any; set → Set; frozenset → FrozenSet. A dict key or set
// element must be None, a bool, an int within int64, a float, a str, or a
// tuple of those, which becomes an array ([2]any for a pair, so
// m[[2]any{int64(1), "a"}] finds Python's (1, "a")); another key (bytes,
// a frozenset) is an error matching ErrPickleUnsupported.
//
// It never imports, calls or builds anything a pickle names: a pickle of
// any other object (a class instance, a function, a complex number) is an
// error matching ErrPickleUnsafe, one that is not a pickle matches
// ErrNotPickle, and so does a list or set that occurs twice in the object
// (Python's [x, x]: ErrPickleUnsupported; send copies). After any of
// these the message was read whole, so the Conn stays usable. A message
// longer than SetMaxMessage's limit is an error before anything is read
// for it; the stream is then out of step, and the Conn is closed.
// It returns io.EOF once the peer is closed and drained.
func (c *Conn) RecvPickle() (any, error) {
	if err := c.check(false); err != nil {
		return nil, err
	}
	c.rmu.Lock()
	b, err := c.readFrame(c.rbuf[:0])
	if err != nil {
		c.rmu.Unlock()
		if errors.Is(err, wire.ErrFrameTooLarge) {
			c.Close()
		}
		return nil, err
	}
	v, err := pickle.Unmarshal(b)
	c.rbuf = b[:0]
	if cap(c.rbuf) > 1<<20 {
		c.rbuf = nil // do not keep a big message's buffer
	}
	c.rmu.Unlock()
	if err != nil {
		return nil, err // "multiproc: ..." already
	}
	return v, nil
}
