//go:build linux && (amd64 || arm64)

package multiproc

import (
	"reflect"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/wire"
)

// encodeArg turns v into bytes plus the entries of the shareable objects
// found in it, which go into tab (and travel beside the bytes, as file
// descriptors).
func encodeArg[T any](v *T, tab *handle.Table) ([]byte, []handle.Entry, error) {
	if !handle.MayHold(reflect.TypeFor[T]()) {
		b, err := encodeValue(v)
		return b, nil, own(err)
	}
	cp, entries, err := handle.Collect(v, tab)
	if err != nil {
		return nil, nil, own(err)
	}
	b, err := encodeValue(cp.(*T))
	if err != nil {
		return nil, nil, own(err)
	}
	return b, entries, nil
}

// decodeArg reverses encodeArg in the receiving process.
func decodeArg[T any](b []byte, entries []handle.Entry, im *handle.Imports) (T, error) {
	var v T
	if err := decodeValue(b, &v); err != nil {
		return v, own(err)
	}
	if err := handle.Restore(&v, entries, im); err != nil {
		return v, own(err)
	}
	return v, nil
}

// encodeValue encodes a value that holds no shareable objects, with the
// per-message binary codec (both ends are the same binary: no type
// information travels).
func encodeValue[T any](v *T) ([]byte, error) {
	return appendValue(nil, v)
}

func appendValue[T any](dst []byte, v *T) ([]byte, error) {
	c, err := wire.NewCodec[T]()
	if err != nil {
		return nil, own(err)
	}
	b, err := c.Append(dst, v)
	return b, own(err)
}

func decodeValue[T any](b []byte, v *T) error {
	c, err := wire.NewCodec[T]()
	if err != nil {
		return own(err)
	}
	return own(c.Decode(b, v))
}
