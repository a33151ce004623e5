package pickle

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// Marshal encodes v as a protocol-4 pickle that python3's recv
// (pickle.loads) reads. Go maps to Python as: nil → None, bool → bool,
// every integer type → int (uint64 beyond int64 too), *big.Int → int (of
// any size, in binary), float32/64 → float, string → str, []byte → bytes,
// Tuple → tuple, Set → set, FrozenSet → frozenset, any other slice or
// array → list, any map → dict (an array key, as Unmarshal makes of a
// tuple key, → tuple; in a key any slice or array is a tuple). A map's
// entries go in the order of their keys, so equal maps pickle to equal
// bytes.
//
// It is an error matching ErrUnsupported, and nothing is written, for
// anything else (structs, pointers, channels, functions), for a value
// nested deeper than MaxDepth or containing itself, for a string that is
// not UTF-8 (a lone surrogate encoded as Unmarshal returns it excepted),
// for a NaN dict key or set element, and for two keys that are different
// in Go but equal in Python (int64(1), 1.0 and true; "a" as string and as
// a named string type), which Python would merge into one.
func Marshal(v any) ([]byte, error) {
	return AppendMarshal(nil, v)
}

// AppendMarshal is Marshal appending the pickle to dst; on an error it
// returns dst as it was.
func AppendMarshal(dst []byte, v any) ([]byte, error) {
	e := encoders.Get().(*encoder)
	e.buf, e.fs, e.memoN = append(dst, 0x80, Protocol), -1, 0
	if len(dst) == 0 && cap(dst) == 0 {
		e.buf = append(make([]byte, 0, 256), 0x80, Protocol)
	}
	err := e.save(v, 0, false)
	if err == nil {
		e.op('.')
		e.commit()
		dst = e.buf
	}
	e.reset()
	encoders.Put(e)
	return dst, err
}

// encoders keeps encoders (their memo of containers, their key buffers)
// from one Marshal to the next.
var encoders = sync.Pool{New: func() any { return new(encoder) }}

func (e *encoder) reset() {
	clear(e.seen)
	clear(e.skeys)
	e.buf, e.seen, e.index, e.skeys = nil, e.seen[:0], nil, e.skeys[:0]
	if cap(e.seen) > 1024 {
		e.seen = nil
	}
	if cap(e.skeys) > 1024 {
		e.skeys = nil
	}
}

const (
	frameTarget = 64 << 10 // CPython's _FRAME_SIZE_TARGET
	frameMin    = 4        // _FRAME_SIZE_MIN
	batchSize   = 1000     // _BATCHSIZE
)

// ident is a container's identity: a Go value shared by two parts of v
// is written once and referred to again, as Python does with an object.
type ident struct {
	p unsafe.Pointer
	n int
	k uint8
}

type memoEnt struct {
	id   ident
	idx  uint32
	open bool // being written: met again, it contains itself
}

type encoder struct {
	buf   []byte
	fs    int // where the open frame's header is, -1 if none
	memoN uint32
	seen  []memoEnt
	index map[ident]int // into seen, once it is long
	skeys []strKV       // map[string]any's entries, sorted
}

type strKV struct {
	k string
	v any
}

// op writes opcode bytes, in a frame.
func (e *encoder) op(b ...byte) {
	if e.fs < 0 {
		e.fs = len(e.buf)
		e.buf = append(e.buf, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	}
	e.buf = append(e.buf, b...)
}

func (e *encoder) op1(b byte) {
	if e.fs < 0 {
		e.op(b)
		return
	}
	e.buf = append(e.buf, b)
}

// commit closes the open frame: a FRAME header, or none for a frame of
// less than 4 bytes, as CPython's _Pickler_CommitFrame.
func (e *encoder) commit() {
	if e.fs < 0 {
		return
	}
	n := len(e.buf) - e.fs - 9
	if n >= frameMin {
		e.buf[e.fs] = 0x95
		binary.LittleEndian.PutUint64(e.buf[e.fs+1:], uint64(n))
	} else {
		copy(e.buf[e.fs:], e.buf[e.fs+9:])
		e.buf = e.buf[:len(e.buf)-9]
	}
	e.fs = -1
}

// boundary is called before each object: a frame of 64 KiB is closed.
func (e *encoder) boundary() {
	if e.fs >= 0 && len(e.buf)-e.fs-9 >= frameTarget {
		e.commit()
	}
}

// payload writes a str's or bytes' header and data: outside any frame
// when the data is 64 KiB or more, as CPython does.
func (e *encoder) payload(short, long4, long8 byte, data string) {
	n := len(data)
	var h [9]byte
	var hdr []byte
	switch {
	case n <= 0xff:
		hdr = append(h[:0], short, byte(n))
	case uint64(n) > math.MaxUint32:
		hdr = binary.LittleEndian.AppendUint64(append(h[:0], long8), uint64(n))
	default:
		hdr = binary.LittleEndian.AppendUint32(append(h[:0], long4), uint32(n))
	}
	if n >= frameTarget {
		e.commit()
		e.buf = append(e.buf, hdr...)
		e.buf = append(e.buf, data...)
		return
	}
	e.op(hdr...)
	e.buf = append(e.buf, data...)
}

func (e *encoder) memoize() uint32 {
	e.op1(0x94)
	e.memoN++
	return e.memoN - 1
}

func (e *encoder) get(idx uint32) {
	if idx < 256 {
		e.op('h', byte(idx))
		return
	}
	e.op('j', byte(idx), byte(idx>>8), byte(idx>>16), byte(idx>>24))
}

func (e *encoder) lookup(id ident) *memoEnt {
	if e.index != nil {
		if i, ok := e.index[id]; ok {
			return &e.seen[i]
		}
		return nil
	}
	for i := range e.seen {
		if e.seen[i].id == id {
			return &e.seen[i]
		}
	}
	return nil
}

func (e *encoder) remember(id ident, idx uint32, open bool) int {
	e.seen = append(e.seen, memoEnt{id, idx, open})
	i := len(e.seen) - 1
	if e.index != nil {
		e.index[id] = i
	} else if len(e.seen) > 16 {
		e.index = make(map[ident]int, 64)
		for j, m := range e.seen {
			e.index[m.id] = j
		}
	}
	return i
}

// shared writes a reference to a container already written, or says it
// is new (false); a container met while it is being written is an error.
func (e *encoder) shared(id ident) (bool, error) {
	if id.p == nil || id.n == 0 {
		return false, nil
	}
	m := e.lookup(id)
	if m == nil {
		return false, nil
	}
	if m.open {
		return false, fmt.Errorf("%w: a value that contains itself (Python's recursive structure)", ErrUnsupported)
	}
	e.get(m.idx)
	return true, nil
}

const (
	idList uint8 = iota + 1
	idTuple
	idDict
	idSet
	idBytes
)

func (e *encoder) int64(x int64) {
	switch {
	case x >= 0 && x <= 0xff:
		e.op('K', byte(x))
	case x >= 0 && x <= 0xffff:
		e.op('M', byte(x), byte(x>>8))
	case x >= math.MinInt32 && x <= math.MaxInt32:
		e.op('J', byte(x), byte(x>>8), byte(x>>16), byte(x>>24))
	default:
		var t [10]byte
		t[0] = 0x8a
		binary.LittleEndian.PutUint64(t[2:], uint64(x))
		n := 8
		for n > 1 {
			top, next := t[1+n], t[n]
			if top == 0 && next&0x80 == 0 || top == 0xff && next&0x80 != 0 {
				n--
				continue
			}
			break
		}
		t[1] = byte(n)
		e.op(t[:2+n]...)
	}
}

func (e *encoder) bigInt(x *big.Int) {
	if x.IsInt64() {
		e.int64(x.Int64())
		return
	}
	e.op(longBytes(x)...)
}

// longBytes is LONG1 or LONG4 of x: little-endian two's complement of
// minimal length, as Python's encode_long.
func longBytes(x *big.Int) []byte {
	n := x.BitLen()/8 + 1
	var b []byte
	if x.Sign() >= 0 {
		b = x.FillBytes(make([]byte, n))
	} else {
		t := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
		b = t.Add(t, x).FillBytes(make([]byte, n))
	}
	slices.Reverse(b)
	if x.Sign() < 0 && n > 1 && b[n-1] == 0xff && b[n-2]&0x80 != 0 {
		b = b[:n-1]
	}
	if len(b) < 256 {
		return append([]byte{0x8a, byte(len(b))}, b...)
	}
	return append(binary.LittleEndian.AppendUint32([]byte{0x8b}, uint32(len(b))), b...)
}

func (e *encoder) float(f float64) {
	var t [9]byte
	t[0] = 'G'
	binary.BigEndian.PutUint64(t[1:], math.Float64bits(f))
	e.op(t[:]...)
}

func (e *encoder) str(s string) error {
	if !utf8.ValidString(s) && !validSurrogatePass(unsafe.Slice(unsafe.StringData(s), len(s))) {
		return fmt.Errorf("%w: a string that is not UTF-8 (%.40q): Python would refuse it", ErrUnsupported, s)
	}
	e.payload(0x8c, 'X', 0x8d, s)
	e.memoize()
	return nil
}

func (e *encoder) bytes(b []byte) error {
	id := ident{unsafe.Pointer(unsafe.SliceData(b)), len(b), idBytes}
	if ok, err := e.shared(id); ok || err != nil {
		return err
	}
	e.payload('C', 'B', 0x8e, unsafe.String(unsafe.SliceData(b), len(b)))
	idx := e.memoize()
	if len(b) > 0 {
		e.remember(id, idx, false)
	}
	return nil
}

func errDepth() error {
	return fmt.Errorf("%w: nested deeper than %d", ErrUnsupported, MaxDepth)
}

// save writes v; in a key (key), a slice or array is a tuple.
func (e *encoder) save(v any, depth int, key bool) error {
	if depth > MaxDepth {
		return errDepth()
	}
	e.boundary()
	switch x := v.(type) {
	case nil:
		e.op1('N')
	case bool:
		if x {
			e.op1(0x88)
		} else {
			e.op1(0x89)
		}
	case int:
		e.int64(int64(x))
	case int64:
		e.int64(x)
	case int32:
		e.int64(int64(x))
	case float64:
		e.float(x)
	case string:
		return e.str(x)
	case []byte:
		return e.bytes(x)
	case *big.Int:
		if x == nil {
			e.op1('N')
		} else {
			e.bigInt(x)
		}
	case []any:
		if key {
			return e.tuple(x, depth, true)
		}
		return e.list(len(x), ident{unsafe.Pointer(unsafe.SliceData(x)), len(x), idList}, depth, func(i int) error {
			return e.save(x[i], depth+1, false)
		})
	case Tuple:
		return e.tuple(x, depth, key)
	case map[string]any:
		return e.dictStr(x, depth)
	case map[any]any:
		if ok, err := e.shared(mapIdent(x)); ok || err != nil {
			return err
		}
		keys := make([]any, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		if err := sortKeys(keys); err != nil {
			return err
		}
		return e.dict(len(keys), mapIdent(x), func(i int) error {
			if err := e.save(keys[i], depth+1, true); err != nil {
				return err
			}
			return e.save(x[keys[i]], depth+1, false)
		})
	case Set:
		return e.set(map[any]struct{}(x), false, depth)
	case FrozenSet:
		return e.set(map[any]struct{}(x), true, depth)
	default:
		return e.value(reflect.ValueOf(v), depth, key)
	}
	return nil
}

// dictStr writes the commonest map, without reflect or closures.
func (e *encoder) dictStr(x map[string]any, depth int) error {
	id := mapIdent(x)
	if ok, err := e.shared(id); ok || err != nil {
		return err
	}
	at0 := len(e.skeys)
	for k, v := range x {
		e.skeys = append(e.skeys, strKV{k, v})
	}
	kvs := e.skeys[at0:]
	slices.SortFunc(kvs, func(a, b strKV) int { return cmp.Compare(a.k, b.k) })
	e.op1('}')
	at := e.remember(id, e.memoize(), true)
	for lo := 0; lo < len(kvs); lo += batchSize {
		hi := min(len(kvs), lo+batchSize)
		if hi-lo > 1 {
			e.op1('(')
		}
		for i := lo; i < hi; i++ {
			e.boundary()
			if err := e.str(kvs[i].k); err != nil {
				return err
			}
			if err := e.save(kvs[i].v, depth+1, false); err != nil {
				return err
			}
		}
		if hi-lo > 1 {
			e.op1('u')
		} else {
			e.op1('s')
		}
	}
	clear(kvs)
	e.skeys = e.skeys[:at0]
	e.seen[at].open = false
	return nil
}

func mapIdent[M ~map[K]V, K comparable, V any](m M) ident {
	return ident{*(*unsafe.Pointer)(unsafe.Pointer(&m)), 1, idDict}
}

// list writes a list of n items, item(i) writing each.
func (e *encoder) list(n int, id ident, depth int, item func(int) error) error {
	if ok, err := e.shared(id); ok || err != nil {
		return err
	}
	e.op1(']')
	idx := e.memoize()
	at := -1
	if n > 0 {
		at = e.remember(id, idx, true)
	}
	if err := e.batch(n, 'a', 'e', item); err != nil {
		return err
	}
	if at >= 0 {
		e.seen[at].open = false
	}
	return nil
}

// batch writes n items in batches of 1000, as CPython: MARK ... APPENDS
// (or SETITEMS), or one APPEND (SETITEM) for a batch of one.
func (e *encoder) batch(n int, one, many byte, item func(int) error) error {
	for lo := 0; lo < n; lo += batchSize {
		hi := min(n, lo+batchSize)
		if hi-lo > 1 {
			e.op1('(')
		}
		for i := lo; i < hi; i++ {
			if err := item(i); err != nil {
				return err
			}
		}
		if hi-lo > 1 {
			e.op1(many)
		} else {
			e.op1(one)
		}
	}
	return nil
}

func (e *encoder) dict(n int, id ident, item func(int) error) error {
	e.op1('}')
	idx := e.memoize()
	at := e.remember(id, idx, true)
	if err := e.batch(n, 's', 'u', item); err != nil {
		return err
	}
	e.seen[at].open = false
	return nil
}

func (e *encoder) tuple(t []any, depth int, key bool) error {
	return e.tupleOf(len(t), ident{unsafe.Pointer(unsafe.SliceData(t)), len(t), idTuple}, func(i int) error {
		return e.save(t[i], depth+1, key)
	})
}

func (e *encoder) tupleOf(n int, id ident, item func(int) error) error {
	if n == 0 {
		e.op1(')')
		return nil
	}
	if ok, err := e.shared(id); ok || err != nil {
		return err
	}
	at := -1
	if id.p != nil {
		at = e.remember(id, 0, true)
	}
	if n > 3 {
		e.op1('(')
	}
	for i := range n {
		if err := item(i); err != nil {
			return err
		}
	}
	if n > 3 {
		e.op1('t')
	} else {
		e.op1(0x84 + byte(n))
	}
	idx := e.memoize()
	if at >= 0 {
		e.seen[at].idx, e.seen[at].open = idx, false
	}
	return nil
}

func (e *encoder) set(s map[any]struct{}, frozen bool, depth int) error {
	id := mapIdent(s)
	id.k = idSet
	if ok, err := e.shared(id); ok || err != nil {
		return err
	}
	keys := make([]any, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	if err := sortKeys(keys); err != nil {
		return err
	}
	if frozen {
		at := e.remember(id, 0, true)
		e.op1('(')
		for _, k := range keys {
			if err := e.save(k, depth+1, true); err != nil {
				return err
			}
		}
		e.op1(0x91)
		e.seen[at].idx, e.seen[at].open = e.memoize(), false
		return nil
	}
	e.op1(0x8f)
	at := e.remember(id, e.memoize(), true)
	for lo := 0; lo < len(keys); lo += batchSize {
		e.op1('(')
		for _, k := range keys[lo:min(len(keys), lo+batchSize)] {
			if err := e.save(k, depth+1, true); err != nil {
				return err
			}
		}
		e.op1(0x90)
	}
	e.seen[at].open = false
	return nil
}

var (
	bigIntPtr = reflect.TypeFor[*big.Int]()
	tupleT    = reflect.TypeFor[Tuple]()
	setT      = reflect.TypeFor[Set]()
	frozenT   = reflect.TypeFor[FrozenSet]()
)

// value writes what save's fast paths do not cover, through reflect.
func (e *encoder) value(rv reflect.Value, depth int, key bool) error {
	if !rv.IsValid() {
		e.op1('N')
		return nil
	}
	switch rv.Type() {
	case bigIntPtr, tupleT, setT, frozenT:
		return e.save(rv.Interface(), depth, key)
	}
	switch rv.Kind() {
	case reflect.Interface:
		if rv.IsNil() {
			e.op1('N')
			return nil
		}
		return e.value(rv.Elem(), depth, key)
	case reflect.Bool:
		return e.save(rv.Bool(), depth, key)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.int64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u <= math.MaxInt64 {
			e.int64(int64(u))
		} else {
			e.bigInt(new(big.Int).SetUint64(u))
		}
	case reflect.Float32, reflect.Float64:
		e.float(rv.Float())
	case reflect.String:
		return e.str(rv.String())
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			if rv.Kind() == reflect.Slice {
				return e.bytes(rv.Bytes())
			}
			b := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
			return e.bytes(b)
		}
		var id ident
		if rv.Kind() == reflect.Slice {
			id = ident{rv.UnsafePointer(), rv.Len(), idList}
		}
		item := func(i int) error { return e.value(rv.Index(i), depth+1, key) }
		if key || rv.Kind() == reflect.Array && rv.Type().Elem() == anyType {
			id.k = idTuple
		} else {
			return e.list(rv.Len(), id, depth, item)
		}
		return e.tupleOf(rv.Len(), id, item)
	case reflect.Map:
		id := ident{rv.UnsafePointer(), 1, idDict}
		if ok, err := e.shared(id); ok || err != nil {
			return err
		}
		type kv struct{ k, v reflect.Value }
		pairs := make([]kv, 0, rv.Len())
		keys := make([]any, 0, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			pairs = append(pairs, kv{it.Key(), it.Value()})
		}
		for _, p := range pairs {
			keys = append(keys, p.k.Interface())
		}
		if err := checkKeys(keys); err != nil {
			return err
		}
		order := make([]int, len(pairs))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return cmpKey(keys[a], keys[b]) })
		return e.dict(len(pairs), id, func(i int) error {
			p := pairs[order[i]]
			if err := e.value(p.k, depth+1, true); err != nil {
				return err
			}
			return e.value(p.v, depth+1, false)
		})
	default:
		return fmt.Errorf("%w: a Go %s has no Python counterpart here (send None, bool, ints, floats, strings, []byte, slices, Tuple, maps, Set)", ErrUnsupported, rv.Type())
	}
	return nil
}

// sortKeys checks keys (checkKeys) and puts them in a fixed order.
func sortKeys(keys []any) error {
	if err := checkKeys(keys); err != nil {
		return err
	}
	slices.SortFunc(keys, cmpKey)
	return nil
}

// checkKeys refuses a NaN key and two keys Python holds equal: 1, 1.0
// and True, or a string and a named string type of the same text, are
// one key in a Python dict.
func checkKeys(keys []any) error {
	if len(keys) == 0 {
		return nil
	}
	t0 := reflect.TypeOf(keys[0])
	same := true
	for _, k := range keys {
		if reflect.TypeOf(k) != t0 {
			same = false
			break
		}
	}
	if same && t0 != nil {
		switch t0.Kind() {
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			return nil // distinct Go keys of one such type are distinct in Python
		}
	}
	seen := make(map[string]any, len(keys))
	var buf []byte
	for _, k := range keys {
		var err error
		if buf, err = canon(buf[:0], reflect.ValueOf(k), 0); err != nil {
			return err
		}
		if prev, ok := seen[string(buf)]; ok {
			return fmt.Errorf("%w: the keys %#v and %#v are one key in Python", ErrUnsupported, prev, k)
		}
		seen[string(buf)] = k
	}
	return nil
}

// canon appends a form of v that is equal for values Python holds equal.
func canon(b []byte, v reflect.Value, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return nil, errDepth()
	}
	if !v.IsValid() {
		return append(b, 'N'), nil
	}
	if v.Type() == bigIntPtr {
		if v.IsNil() {
			return append(b, 'N'), nil
		}
		return append(append(append(b, 'i'), v.Interface().(*big.Int).String()...), ';'), nil
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return append(b, 'N'), nil
		}
		return canon(b, v.Elem(), depth)
	case reflect.Bool:
		if v.Bool() {
			return append(b, "i1;"...), nil
		}
		return append(b, "i0;"...), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return append(strconv.AppendInt(append(b, 'i'), v.Int(), 10), ';'), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return append(strconv.AppendUint(append(b, 'i'), v.Uint(), 10), ';'), nil
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			return nil, fmt.Errorf("%w: a NaN dict key or set element (Python could never find it again)", ErrUnsupported)
		case !math.IsInf(f, 0) && f == math.Trunc(f):
			i, _ := big.NewFloat(f).Int(nil)
			return append(append(append(b, 'i'), i.String()...), ';'), nil
		}
		return append(strconv.AppendUint(append(b, 'f'), math.Float64bits(f), 16), ';'), nil
	case reflect.String:
		return append(append(strconv.AppendInt(append(b, 's'), int64(v.Len()), 10), ':'), v.String()...), nil
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b = append(strconv.AppendInt(append(b, 'b'), int64(v.Len()), 10), ':')
			for i := range v.Len() {
				b = append(b, byte(v.Index(i).Uint()))
			}
			return b, nil
		}
		b = append(strconv.AppendInt(append(b, 't'), int64(v.Len()), 10), '(')
		for i := range v.Len() {
			var err error
			if b, err = canon(b, v.Index(i), depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ')'), nil
	}
	return append(b, fmt.Sprintf("?%T:%v", v.Interface(), v.Interface())...), nil
}

// cmpKey orders keys: None, bools, numbers, strings, bytes, tuples, then
// the rest by their printed form.
func cmpKey(a, b any) int {
	ra, rb := keyRank(a), keyRank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch ra {
	case 1:
		return cmp.Compare(boolInt(a), boolInt(b))
	case 2:
		return cmpNum(reflect.ValueOf(a), reflect.ValueOf(b))
	case 3:
		return cmp.Compare(reflect.ValueOf(a).String(), reflect.ValueOf(b).String())
	case 5:
		va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
		for i := 0; i < va.Len() && i < vb.Len(); i++ {
			if c := cmpKey(va.Index(i).Interface(), vb.Index(i).Interface()); c != 0 {
				return c
			}
		}
		return cmp.Compare(va.Len(), vb.Len())
	case 0:
		return 0
	}
	return cmp.Compare(fmt.Sprintf("%T %v", a, a), fmt.Sprintf("%T %v", b, b))
}

func boolInt(v any) int {
	if reflect.ValueOf(v).Bool() {
		return 1
	}
	return 0
}

func keyRank(v any) int {
	if v == nil {
		return 0
	}
	if _, ok := v.(*big.Int); ok {
		return 2
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool:
		return 1
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return 2
	case reflect.String:
		return 3
	case reflect.Array, reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return 4
		}
		return 5
	}
	return 6
}

func cmpNum(a, b reflect.Value) int {
	fa, fb := numFloat(a), numFloat(b)
	if c := cmp.Compare(fa, fb); c != 0 {
		return c
	}
	return cmp.Compare(a.Type().String(), b.Type().String())
}

func numFloat(v reflect.Value) float64 {
	if v.Type() == bigIntPtr {
		f, _ := new(big.Float).SetInt(v.Interface().(*big.Int)).Float64()
		return f
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(v.Uint())
	}
	return v.Float()
}
