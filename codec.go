package multiproc

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"reflect"

	"github.com/multiproc-go/multiproc/internal/handle"
)

// envelope lets gob carry any T, nil pointers and zero values included.
type envelope[T any] struct{ V T }

// encodeArg turns v into bytes plus the table of shareable objects found
// in it (which travel beside the bytes, as file descriptors).
func encodeArg[T any](v *T) ([]byte, []handle.Entry, error) {
	cp, entries, err := handle.Collect(v)
	if err != nil {
		return nil, nil, err
	}
	b, err := encodeValue(cp.(*T))
	if err != nil {
		return nil, nil, err
	}
	return b, entries, nil
}

// decodeArg reverses encodeArg in the receiving process.
func decodeArg[T any](b []byte, entries []handle.Entry) (T, error) {
	var v T
	if err := decodeValue(b, &v); err != nil {
		handle.CloseFds(entries)
		return v, err
	}
	if err := handle.Restore(&v, entries); err != nil {
		return v, err
	}
	return v, nil
}

// encodeValue encodes a value that holds no shareable objects.
func encodeValue[T any](v *T) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(envelope[T]{*v}); err != nil {
		return nil, fmt.Errorf("multiproc: encoding %T: %w", *v, err)
	}
	return buf.Bytes(), nil
}

func decodeValue[T any](b []byte, v *T) error {
	var e envelope[T]
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&e); err != nil {
		return fmt.Errorf("multiproc: decoding %T: %w", *v, err)
	}
	*v = e.V
	return nil
}

// gobEncodeReflect encodes a struct value known only by reflection.
func gobEncodeReflect(v reflect.Value) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).EncodeValue(v); err != nil {
		return nil, fmt.Errorf("multiproc: encoding %v: %w", v.Type(), err)
	}
	return buf.Bytes(), nil
}

// gobDecodeReflect decodes into the value pv points to.
func gobDecodeReflect(b []byte, pv reflect.Value) error {
	if err := gob.NewDecoder(bytes.NewReader(b)).DecodeValue(pv); err != nil {
		return fmt.Errorf("multiproc: decoding %v: %w", pv.Type().Elem(), err)
	}
	return nil
}
