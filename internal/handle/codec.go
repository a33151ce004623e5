//go:build linux && (amd64 || arm64)

package handle

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

var errShort = errors.New("truncated control message")

func closeFd(fd int) { unix.Close(fd) }

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendBytes appends a length-prefixed byte string.
func AppendBytes(b, s []byte) []byte { return appendBytes(b, s) }

// AppendString appends a length-prefixed string.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Reader reads what the Append functions wrote; the first error sticks in Err.
type Reader struct {
	b   []byte
	err error
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err is the first error met.
func (d *Reader) Err() error { return d.err }

// Rest is what is left unread.
func (d *Reader) Rest() []byte { return d.b }

func (d *Reader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Uvarint reads a varint.
func (d *Reader) Uvarint() uint64 { return d.uvarint() }

func (d *Reader) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

// Bytes1 reads one byte.
func (d *Reader) Bytes1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// Bytes reads a length-prefixed byte string (aliasing the input).
func (d *Reader) Bytes() []byte { return d.bytes() }

// String reads a length-prefixed string.
func (d *Reader) String() string { return string(d.bytes()) }

func (d *Reader) fail() {
	if d.err == nil {
		d.err = errShort
	}
}
