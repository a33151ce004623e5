// Package pickle converts between Go values and Python pickles of plain
// data — what python3's multiprocessing Connection.send and recv carry —
// on top of github.com/kisielk/og-rek, never running or constructing
// anything a stream names.
//
// Decoding goes in three steps: a scan of the opcodes that refuses every
// opcode that would import, call or fetch something (GLOBAL, REDUCE,
// BUILD, ...) and checks every length against the stream's size; og-rek's
// decoder; and a conversion of its result to the package's Go types. The
// scan also fills og-rek's gaps: it has no set opcodes (EMPTY_SET,
// ADDITEMS, FROZENSET), which the scan rewrites into list opcodes with a
// marker, and it decodes a second reference to one list wrong (its memo
// keeps the list as it was when memoized), which the scan refuses.
package pickle

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"

	ogórek "github.com/kisielk/og-rek"
)

// Protocol is the pickle protocol Marshal writes: python3's
// Connection.send uses pickle.DEFAULT_PROTOCOL, which is 4 in 3.8 to 3.13.
const Protocol = 4

var (
	// ErrUnsafe: the pickle names something to import, call or build.
	ErrUnsafe = errors.New("multiproc: pickle refused: it would construct an object the stream names")
	// ErrNotPickle: the message is not a well-formed pickle.
	ErrNotPickle = errors.New("multiproc: not a pickle")
	// ErrUnsupported: a value (or a shape of value) that has no Go
	// counterpart here, either way.
	ErrUnsupported = errors.New("multiproc: value cannot cross to or from Python")
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

// markers stand for the set opcodes in what og-rek decodes (see scan).
type setMarker struct{}
type frozenMarker struct{}

func persistentLoad(ref ogórek.Ref) (any, error) {
	switch ref.Pid {
	case int64(0):
		return setMarker{}, nil
	case int64(1):
		return frozenMarker{}, nil
	}
	return nil, fmt.Errorf("%w: persistent reference", ErrUnsafe)
}

// Unmarshal decodes one pickle of plain data. Python maps to Go as:
// None → nil, bool → bool, int → int64 (*big.Int beyond int64), float →
// float64, str → string, bytes (and bytearray) → []byte, list → []any,
// tuple → Tuple, dict → map[any]any, set → Set, frozenset → FrozenSet.
// Dict keys and set elements become comparable Go values: None, bool,
// int64, float64, string, and a tuple of those as an array [n]any; any
// other key (bytes, a big int, a frozenset) is an error matching
// ErrUnsupported.
func Unmarshal(data []byte) (any, error) {
	src, err := scan(data)
	if err != nil {
		return nil, err
	}
	d := ogórek.NewDecoderWithConfig(bytes.NewReader(src), &ogórek.DecoderConfig{
		PersistentLoad: persistentLoad,
		StrictUnicode:  true,
		PyDict:         true,
	})
	v, err := d.Decode()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPickle, err)
	}
	budget := 4*len(data) + 1024 // a stream that shares one tuple many times cannot explode
	return fromOg(v, 0, &budget)
}

func fromOg(v any, depth int, budget *int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrUnsupported, MaxDepth)
	}
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("%w: too many shared references", ErrUnsupported)
	}
	switch x := v.(type) {
	case ogórek.None:
		return nil, nil
	case bool, int64, float64, string:
		return x, nil
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), nil
		}
		return new(big.Int).Set(x), nil
	case ogórek.Bytes:
		return []byte(x), nil
	case ogórek.ByteString: // a Python 2 str
		return []byte(x), nil
	case []byte: // bytearray
		return bytes.Clone(x), nil
	case ogórek.Tuple:
		t := make(Tuple, len(x))
		for i, e := range x {
			g, err := fromOg(e, depth+1, budget)
			if err != nil {
				return nil, err
			}
			t[i] = g
		}
		return t, nil
	case []any:
		if len(x) > 0 {
			if _, ok := x[0].(setMarker); ok {
				s := make(Set, len(x)-1)
				return s, addAll(s, x[1:], depth, budget)
			}
			if _, ok := x[len(x)-1].(frozenMarker); ok {
				s := make(FrozenSet, len(x)-1)
				return s, addAll(s, x[:len(x)-1], depth, budget)
			}
		}
		l := make([]any, len(x))
		for i, e := range x {
			g, err := fromOg(e, depth+1, budget)
			if err != nil {
				return nil, err
			}
			l[i] = g
		}
		return l, nil
	case ogórek.Dict:
		m := make(map[any]any, x.Len())
		var err error
		x.Iter()(func(k, val any) bool {
			var gk, gv any
			if gk, err = keyOf(k, depth+1, budget); err != nil {
				return false
			}
			if gv, err = fromOg(val, depth+1, budget); err != nil {
				return false
			}
			m[gk] = gv
			return true
		})
		if err != nil {
			return nil, err
		}
		return m, nil
	case ogórek.Call:
		// Only builtins.set / frozenset of a list gets past scan.
		if setNames(x.Callable.Module, x.Callable.Name) {
			var items []any
			switch {
			case len(x.Args) == 0:
			case len(x.Args) == 1:
				l, ok := x.Args[0].([]any)
				if !ok {
					return nil, fmt.Errorf("%w: %s.%s of a %T", ErrUnsafe, x.Callable.Module, x.Callable.Name, x.Args[0])
				}
				items = l
			default:
				return nil, fmt.Errorf("%w: %s.%s with %d arguments", ErrUnsafe, x.Callable.Module, x.Callable.Name, len(x.Args))
			}
			if x.Callable.Name == "set" {
				s := make(Set, len(items))
				return s, addAll(s, items, depth, budget)
			}
			s := make(FrozenSet, len(items))
			return s, addAll(s, items, depth, budget)
		}
		return nil, fmt.Errorf("%w: a call of %s.%s", ErrUnsafe, x.Callable.Module, x.Callable.Name)
	case ogórek.Class:
		return nil, fmt.Errorf("%w: %s.%s", ErrUnsafe, x.Module, x.Name)
	case setMarker, frozenMarker:
		return nil, fmt.Errorf("%w: a set marker outside a set", ErrNotPickle)
	}
	return nil, fmt.Errorf("%w: decoded a %T", ErrUnsupported, v)
}

func addAll(s map[any]struct{}, items []any, depth int, budget *int) error {
	for _, e := range items {
		k, err := keyOf(e, depth+1, budget)
		if err != nil {
			return err
		}
		s[k] = struct{}{}
	}
	return nil
}

var anyType = reflect.TypeFor[any]()

// keyOf converts a dict key or set element to a comparable Go value.
func keyOf(v any, depth int, budget *int) (any, error) {
	g, err := fromOg(v, depth, budget)
	if err != nil {
		return nil, err
	}
	switch x := g.(type) {
	case nil, bool, int64, float64, string:
		return x, nil
	case Tuple:
		a := reflect.New(reflect.ArrayOf(len(x), anyType)).Elem()
		for i, e := range x {
			k, err := comparableKey(e)
			if err != nil {
				return nil, err
			}
			if k != nil {
				a.Index(i).Set(reflect.ValueOf(k))
			}
		}
		return a.Interface(), nil
	}
	return nil, fmt.Errorf("%w: a dict key or set element of Python type %s (keys may be None, bool, int in int64, float, str, or tuples of those)", ErrUnsupported, pyType(g))
}

// comparableKey re-checks an already converted tuple element.
func comparableKey(e any) (any, error) {
	switch x := e.(type) {
	case nil, bool, int64, float64, string:
		return x, nil
	case Tuple:
		a := reflect.New(reflect.ArrayOf(len(x), anyType)).Elem()
		for i, ee := range x {
			k, err := comparableKey(ee)
			if err != nil {
				return nil, err
			}
			if k != nil {
				a.Index(i).Set(reflect.ValueOf(k))
			}
		}
		return a.Interface(), nil
	}
	return nil, fmt.Errorf("%w: a dict key or set element of Python type %s (keys may be None, bool, int in int64, float, str, or tuples of those)", ErrUnsupported, pyType(e))
}

func pyType(v any) string {
	switch v.(type) {
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
	}
	return fmt.Sprintf("%T", v)
}

// Marshal encodes v as a protocol-4 pickle that python3's recv (pickle.loads)
// reads. Go maps to Python as: nil → None, bool → bool, every integer type
// → int (uint64 beyond int64 too), *big.Int → int, float32/64 → float,
// string → str, []byte → bytes, Tuple → tuple, Set → set, FrozenSet →
// frozenset, any other slice or array → list, any map → dict (an array
// key, as Unmarshal makes of a tuple key, → tuple). Anything else —
// structs, pointers, channels, functions — is an error matching
// ErrUnsupported, as is a value nested deeper than MaxDepth.
func Marshal(v any) ([]byte, error) {
	o, err := toOg(reflect.ValueOf(v), 0, false)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if b, ok := v.([]byte); ok {
		buf.Grow(len(b) + 32) // one allocation for the common big payload
	}
	enc := ogórek.NewEncoderWithConfig(&buf, &ogórek.EncoderConfig{Protocol: Protocol, StrictUnicode: true})
	if err := enc.Encode(o); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return buf.Bytes(), nil
}

var (
	bigIntPtr = reflect.TypeFor[*big.Int]()
	tupleT    = reflect.TypeFor[Tuple]()
	setT      = reflect.TypeFor[Set]()
	frozenT   = reflect.TypeFor[FrozenSet]()
)

func toOg(rv reflect.Value, depth int, key bool) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d (or it contains itself)", ErrUnsupported, MaxDepth)
	}
	if !rv.IsValid() {
		return ogórek.None{}, nil
	}
	switch rv.Type() {
	case bigIntPtr:
		if rv.IsNil() {
			return ogórek.None{}, nil
		}
		b := rv.Interface().(*big.Int)
		if b.IsInt64() {
			return b.Int64(), nil
		}
		return new(big.Int).Set(b), nil
	case tupleT:
		t := make(ogórek.Tuple, rv.Len())
		for i := range t {
			e, err := toOg(rv.Index(i), depth+1, key)
			if err != nil {
				return nil, err
			}
			t[i] = e
		}
		return t, nil
	case setT, frozenT:
		items := make([]any, 0, rv.Len())
		for _, k := range sortedKeys(rv) {
			e, err := toOg(k, depth+1, true)
			if err != nil {
				return nil, err
			}
			items = append(items, e)
		}
		name := "set"
		if rv.Type() == frozenT {
			name = "frozenset"
		}
		// builtins.set([...]): Python's own encoding of a set before
		// protocol 4; og-rek has no set opcodes to write.
		return ogórek.Call{Callable: ogórek.Class{Module: "builtins", Name: name}, Args: ogórek.Tuple{items}}, nil
	}
	switch rv.Kind() {
	case reflect.Interface:
		return toOg(rv.Elem(), depth, key)
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u <= math.MaxInt64 {
			return int64(u), nil
		}
		return new(big.Int).SetUint64(u), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			if rv.IsNil() && !key {
				return ogórek.Bytes(""), nil
			}
			return ogórek.Bytes(rv.Bytes()), nil
		}
		fallthrough
	case reflect.Array:
		if rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
			return ogórek.Bytes(b), nil
		}
		l := make([]any, rv.Len())
		for i := range l {
			e, err := toOg(rv.Index(i), depth+1, key)
			if err != nil {
				return nil, err
			}
			l[i] = e
		}
		if key || rv.Kind() == reflect.Array && rv.Type().Elem() == anyType {
			return ogórek.Tuple(l), nil // a tuple key, as Unmarshal makes them
		}
		return l, nil
	case reflect.Map:
		d := ogórek.NewDictWithSizeHint(rv.Len())
		for _, k := range sortedKeys(rv) {
			gk, err := toOg(k, depth+1, true)
			if err != nil {
				return nil, err
			}
			gv, err := toOg(rv.MapIndex(k), depth+1, false)
			if err != nil {
				return nil, err
			}
			d.Set(gk, gv)
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w: a Go %s has no Python counterpart here (send None, bool, ints, floats, strings, []byte, slices, Tuple, maps, Set)", ErrUnsupported, rv.Type())
}

// sortedKeys orders a map's keys by their printed form, so that equal maps
// pickle to equal bytes.
func sortedKeys(m reflect.Value) []reflect.Value {
	keys := m.MapKeys()
	if len(keys) < 2 {
		return keys
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = fmt.Sprintf("%T %v", k.Interface(), k.Interface())
	}
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return names[idx[a]] < names[idx[b]] })
	out := make([]reflect.Value, len(keys))
	for i, j := range idx {
		out[i] = keys[j]
	}
	return out
}
