// Package pickle converts between Go values and Python pickles of plain
// data — what python3's multiprocessing Connection.send and recv carry —
// never running or constructing anything a stream names.
//
// # Decoding (decode.go)
//
// Unmarshal is a restricted unpickler for protocols 0 to 5 written for
// this package: one pass over the opcodes that both decides what is
// allowed and builds the values, so there is no second parser whose idea
// of where an opcode begins could differ (the fault that let og-rek, the
// library used before, run bytes a scanner had skipped as data). The
// allow-list is of opcodes that build plain data and of five globals,
// those CPython writes for values it has no opcode for at low protocols:
// builtins.set, builtins.frozenset, builtins.bytearray, builtins.bytes
// (__builtin__ below protocol 3, as Python maps it) and _codecs.encode,
// each callable only (REDUCE) with the arguments CPython gives it. The
// callable may come through the memo, as CPython writes a second set.
//
// Every step is bounded as it runs (Limits): the unpickler's stack is a
// slice, never Go's stack; a container's nesting is known when it is
// built; every value pushed, every byte copied, every container, map
// entry and memo slot is charged to a budget linear in the pickle's size,
// and so is what hashing a dict key costs each time it is inserted — a
// key is the comparable form of a decoded value, made once per tuple
// (bottom-up from its items' forms), so a tuple shared through the memo
// is never walked once per path. A decimal int has at most 4300 digits
// (Python's limit); a binary one (LONG1, LONG4) any length. Objects the
// memo shares stay shared, as in Python: a list is a node while the
// pickle is read (it may grow after it was referred to) and gets its one
// final []any at STOP, in a walk with a stack of its own that also
// measures the nesting exactly and refuses a structure that contains
// itself.
//
// # Encoding (encode.go)
//
// Marshal writes protocol 4 as CPython's pickler does (Connection.send
// uses protocol 4 in 3.8 to 3.13): the same opcodes, MEMOIZE after each
// object, 64 KiB frames, big str and bytes outside frames, and a
// container met twice written once and referred to again (BINGET), so a
// value Unmarshal returned with shared parts goes back at its own size.
// What Python would read as something else is an error: a string that is
// not UTF-8 (lone surrogates as Unmarshal writes them excepted), a NaN
// dict key or set element, two keys Python holds equal (1, 1.0 and True).
package pickle

import (
	"errors"
	"fmt"
	"math/big"
	"reflect"
)

// Protocol is the pickle protocol Marshal writes: python3's
// Connection.send uses pickle.DEFAULT_PROTOCOL, which is 4 in 3.8 to 3.13.
const Protocol = 4

var (
	// ErrUnsafe: the pickle names something to import, call or build.
	ErrUnsafe = errors.New("pickle refused: it would construct an object the stream names")
	// ErrNotPickle: the message is not a well-formed pickle.
	ErrNotPickle = errors.New("not a pickle")
	// ErrUnsupported: a value (or a shape of value) that has no Go
	// counterpart here, either way.
	ErrUnsupported = errors.New("value cannot cross to or from Python")
	// ErrLimit: decoding the pickle would cross a limit (Limits).
	ErrLimit = errors.New("pickle over a decoding limit")
)

// Tuple is Python's tuple.
type Tuple []any

// Set is Python's set; its elements are comparable Go values (as dict keys).
type Set map[any]struct{}

// FrozenSet is Python's frozenset, as Set.
type FrozenSet map[any]struct{}

// MaxDepth bounds the nesting of containers, both ways: deeper data (or a
// Go value that contains itself) is an error rather than a stack overflow.
const MaxDepth = 1000

var anyType = reflect.TypeFor[any]()

// makeArray returns ks as an array value [len(ks)]any, the key form of a
// tuple.
func makeArray(ks []any) any {
	switch len(ks) {
	case 0:
		return [0]any{}
	case 1:
		return [1]any{ks[0]}
	case 2:
		return [2]any{ks[0], ks[1]}
	case 3:
		return [3]any{ks[0], ks[1], ks[2]}
	case 4:
		return [4]any{ks[0], ks[1], ks[2], ks[3]}
	}
	a := reflect.New(reflect.ArrayOf(len(ks), anyType)).Elem()
	for i, k := range ks {
		if k != nil {
			a.Index(i).Set(reflect.ValueOf(k))
		}
	}
	return a.Interface()
}

func pyType(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case *big.Int:
		return "int (beyond int64)"
	case []any:
		return "list"
	case map[any]any:
		return "dict"
	case Set:
		return "set"
	case FrozenSet:
		return "frozenset"
	case Tuple:
		return "tuple"
	case global:
		return "callable " + x.String()
	case *node:
		switch x.kind {
		case kList:
			return "list"
		case kTuple:
			return "tuple"
		}
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}
