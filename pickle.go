//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"sync"

	"github.com/multiproc-go/multiproc/internal/pickle"
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
	// or build (a class, a function such as os.system): it is refused at
	// that opcode, before anything it names is used.
	ErrPickleUnsafe = pickle.ErrUnsafe
	// ErrNotPickle: a received message is not a well-formed pickle.
	ErrNotPickle = pickle.ErrNotPickle
	// ErrPickleUnsupported: a value with no counterpart on the other side
	// (a Go struct to send; a dict key of bytes received; a structure
	// that contains itself; see SendPickle and RecvPickle).
	ErrPickleUnsupported = pickle.ErrUnsupported
	// ErrPickleLimit: a received pickle would cross one of RecvPickle's
	// decoding limits (nesting, size of what it builds, digits of an int).
	ErrPickleLimit = pickle.ErrLimit
)

// SendPickle sends v as python3's conn.send(obj) does: a pickle (protocol
// 4, python3's default from 3.8 to 3.13, framed as python3 frames it) in
// one message, which a python3 peer receives with conn.recv().
//
// Go values map to Python as: nil → None; bool → bool; every integer type
// → int (a uint64 beyond int64 too); *big.Int → int, of any size (sent in
// binary, so Python's 4300-digit limit does not apply); float32, float64
// → float; string → str; []byte → bytes; Tuple → tuple; Set → set;
// FrozenSet → frozenset; any other slice or array → list; any map → dict
// (an array-typed key, as RecvPickle makes of a tuple key, → tuple). A
// slice or map that occurs twice in v is sent once and referred to again,
// as Python sends a shared object, so python3 gets one shared object.
//
// What Python would read as something else is an error matching
// ErrPickleUnsupported, and nothing is sent: a string that is not UTF-8
// (except lone surrogates in the form RecvPickle gives them), a NaN dict
// key or set element, two keys that differ in Go but are one in Python
// (int64(1), 1.0 and true, or the tuples (1, "a") and (1.0, "a")), and
// anything without a counterpart: a struct, a pointer, a channel, a value
// nested deeper than 1000 levels or containing itself.
func (c *Conn) SendPickle(v any) error {
	return c.SendPickleContext(context.Background(), v)
}

// SendPickleContext is SendPickle, giving up when ctx ends (see Conn for
// what a send cut short leaves). The error then matches ctx.Err().
func (c *Conn) SendPickleContext(ctx context.Context, v any) error {
	if ctx == nil {
		return errNilContext
	}
	if err := c.check(true); err != nil {
		return err
	}
	bp := pickleBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 { // a big message's buffer is not kept
			pickleBufs.Put(bp)
		}
	}()
	b, err := pickle.AppendMarshal((*bp)[:0], v)
	if err != nil {
		return own(err)
	}
	*bp = b
	if err := c.wmu.Enter(ctx, nil); err != nil {
		return ctxErr(ctx, "send")
	}
	defer c.wmu.Leave()
	return c.writeFrameContext(ctx, b)
}

// pickleBufs keeps SendPickle's buffers: a pickle is written out before
// SendPickle returns, so its buffer serves the next one.
var pickleBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// RecvPickle receives one object sent by python3's conn.send(obj) (or by
// SendPickle), of any protocol from 0 to 5, and returns it as a Go value:
// None → nil; bool → bool; int → int64, or *big.Int beyond int64; float
// → float64; str → string; bytes and bytearray → []byte; list → []any;
// tuple → Tuple; dict → map[any]any; set → Set; frozenset → FrozenSet. A
// dict key or set element must be None, a bool, an int within int64, a
// float, a str, or a tuple of those, which becomes an array ([2]any for a
// pair, so m[[2]any{int64(1), "a"}] finds Python's (1, "a")); another key
// (bytes, a frozenset) is an error matching ErrPickleUnsupported.
//
// A str holding a lone surrogate (Python's str allows one, as in
// "\ud800") becomes a Go string holding the surrogate's 3-byte form, the
// bytes Python's "utf-8"/"surrogatepass" makes: not valid UTF-8, so Go
// code can tell, and SendPickle sends it back as the same str.
//
// An object the pickle holds more than once is one Go value, as in
// Python: a list holding one tuple 100 times is a []any holding one Tuple
// 100 times, and one bytes object referred to twice is one []byte (do not
// modify it in one place expecting the other to stay). A structure that
// contains itself (a list holding itself) is an error matching
// ErrPickleUnsupported.
//
// It never imports, calls or builds anything a pickle names but what
// python3 writes for bytes, bytearray, set and frozenset at low protocols
// (builtins.set, frozenset, bytearray, bytes, _codecs.encode, called as
// python3 calls them): a pickle of any other object (a class instance, a
// function, a complex number) is an error matching ErrPickleUnsafe, one
// that is not a pickle matches ErrNotPickle. Decoding is bounded as it
// goes (ErrPickleLimit): nesting of 1000 levels, ints of 4300 decimal
// digits (binary ints of any size), and what it builds — values,
// references, bytes, memo, the hashing of dict keys — to about 256 times
// the message's size, so its time and memory are linear in that size.
//
// After any of these errors the message was read whole, so the Conn
// stays usable and the next receive reads the next message. A message
// longer than SetMaxMessage's limit is different: it is an error matching
// ErrMessageTooLarge before any of it is read, and every later receive
// returns that error again until the limit is raised (the framing gives
// no way to skip it unread). It returns io.EOF once the peer is closed
// and drained.
func (c *Conn) RecvPickle() (any, error) {
	return c.RecvPickleContext(context.Background())
}

// RecvPickleContext is RecvPickle, giving up when ctx ends; the error then
// matches ctx.Err(), and the part of a message read so far is kept for the
// next receive. Once the message is read whole, decoding it runs to the
// end (it is bounded in time by the message's size).
func (c *Conn) RecvPickleContext(ctx context.Context) (any, error) {
	if ctx == nil {
		return nil, errNilContext
	}
	if err := c.check(false); err != nil {
		return nil, err
	}
	if err := c.rmu.Enter(ctx, nil); err != nil {
		return nil, ctxErr(ctx, "receive")
	}
	defer c.rmu.Leave()
	b, err := c.readFrameContext(ctx, c.rbuf[:0])
	if err != nil {
		return nil, err
	}
	v, err := pickle.Unmarshal(b) // copies what it keeps: the buffer is reused
	c.rbuf = b[:0]
	if cap(c.rbuf) > 1<<20 {
		c.rbuf = nil // do not keep a big message's buffer
	}
	if err != nil {
		return nil, own(err)
	}
	return v, nil
}
