//go:build linux && (amd64 || arm64)

package wire

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sync"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/handle"
)

// Codec encodes and decodes values of type T, one value per message. Both
// ends know T statically, so no type information travels: a message is
// only meaningful to a Codec of the same T in the same binary. The format
// is not portable across architectures or builds; it is meant for
// processes spawned from one executable on one machine.
//
// The encoding is chosen once per type, when the codec is built:
//
//   - A type whose pointer implements both encoding.BinaryMarshaler and
//     encoding.BinaryUnmarshaler (time.Time, for one) is encoded by those
//     methods, wherever it appears. Methods a struct has only because a
//     field embedded in it has them do not count (unlike gob and
//     encoding/json, which then encode the embedded field alone): a struct
//     embedding time.Time is encoded field by field, its Time field
//     through time.Time's methods (an embedded field of such a type is
//     encoded even when its type is unexported). A struct declaring one
//     of the pair while the other is promoted is refused.
//   - []byte and string (including named types) at the top level are sent
//     as their raw bytes, since the frame already carries the length. A nil
//     and an empty []byte both decode as nil.
//   - "Plain" types, which hold no pointers and whose struct fields are all
//     exported (blank _ fields allowed), are copied as raw memory in host
//     byte order: bools, integers, floats, complex numbers and arrays and
//     structs of them.
//   - Anything else is compiled into a field-by-field encoder: integers as
//     varints, floats as fixed little-endian 4 or 8 bytes, strings with a
//     length prefix, pointers behind a presence byte, structs as their
//     exported fields in order (unexported fields are skipped, like gob),
//     maps as a count and entries in iteration order, and arrays and slices
//     element by element, except that a slice or array of a plain type is
//     copied as one block of raw memory. Slices and maps keep the
//     difference between nil and empty; pointers keep nil.
//   - Interface values are encoded as the registered name of their concrete
//     type (see Register; common built-in types are registered already)
//     followed by the value's own encoding.
//
// Channels, functions, unsafe.Pointer and structs that have data but no
// exported fields (sync.Mutex, say) are rejected by NewCodec. Recursive
// types are supported; a value may nest its recursive type at most 10000
// deep, which also turns cyclic data into an error instead of a crash.
//
// A Codec is safe for concurrent use.
type Codec[T any] struct {
	c *compiled
}

// NewCodec returns the codec for T, compiling it on first use and caching
// it for the life of the process. The error names the type, and the field,
// that cannot be encoded.
func NewCodec[T any]() (*Codec[T], error) {
	c, err := compiledFor(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	return &Codec[T]{c: c}, nil
}

// Append appends the encoding of *v to dst and returns the extended slice.
// On error it returns dst unchanged in length.
func (c *Codec[T]) Append(dst []byte, v *T) ([]byte, error) {
	if v == nil {
		return dst, fmt.Errorf("encoding %v: nil pointer", c.c.typ)
	}
	return c.c.append(dst, unsafe.Pointer(v))
}

// Decode sets *v to the value encoded in b, which must hold exactly one
// message. *v is first reset to the zero value, so nothing from a previous
// use of *v survives, and it is zero again if Decode fails. Decoded values
// never alias b. Malformed input yields an error, never a panic, and no
// allocation is sized from a length prefix before checking that the input
// can hold that many elements; truncation errors match io.ErrUnexpectedEOF.
func (c *Codec[T]) Decode(b []byte, v *T) error {
	if v == nil {
		return fmt.Errorf("decoding %v: nil pointer", c.c.typ)
	}
	return c.c.decode(b, unsafe.Pointer(v), func() { var zero T; *v = zero })
}

// AppendAny is Append for a type known only at run time: v must be a
// non-nil pointer, and the value it points to is encoded.
func AppendAny(dst []byte, v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return dst, fmt.Errorf("encoding needs a non-nil pointer, not %T", v)
	}
	cc, err := compiledFor(rv.Type().Elem())
	if err != nil {
		return dst, err
	}
	return cc.append(dst, rv.UnsafePointer())
}

// DecodeAny is Decode for a type known only at run time: v must be a
// non-nil pointer to a value of the encoded type.
func DecodeAny(b []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("decoding needs a non-nil pointer, not %T", v)
	}
	cc, err := compiledFor(rv.Type().Elem())
	if err != nil {
		return err
	}
	elem := rv.Elem()
	return cc.decode(b, rv.UnsafePointer(), elem.SetZero)
}

func (cc *compiled) append(dst []byte, p unsafe.Pointer) ([]byte, error) {
	return cc.appendAt(dst, p, 0)
}

// appendAt is append at nesting depth (interface values re-enter the
// codec, so a cyclic value is stopped there too).
func (cc *compiled) appendAt(dst []byte, p unsafe.Pointer, depth int) ([]byte, error) {
	if depth >= maxDepth {
		return dst, errDepth
	}
	switch cc.mode {
	case modeBytes:
		return append(dst, *(*[]byte)(p)...), nil
	case modeString:
		return append(dst, *(*string)(p)...), nil
	case modePlain:
		return append(dst, unsafe.Slice((*byte)(p), cc.size)...), nil
	case modeMarshal:
		b, err := appendMarshal(dst, cc.typ, p, cc.appender)
		if err != nil {
			return dst, wrapf(err, "encoding %v", cc.typ)
		}
		return b, nil
	}
	b, err := cc.enc(dst, p, depth)
	if err != nil && depth == 0 { // wrap once, not at every nested interface
		return dst, wrapf(err, "encoding %v", cc.typ)
	}
	return b, err
}

// decode decodes b into the value at p; zero resets that value.
func (cc *compiled) decode(b []byte, p unsafe.Pointer, zero func()) error {
	switch cc.mode {
	case modeBytes:
		if len(b) == 0 {
			*(*[]byte)(p) = nil
		} else {
			*(*[]byte)(p) = bytes.Clone(b)
		}
		return nil
	case modeString:
		*(*string)(p) = string(b)
		return nil
	case modePlain:
		if uintptr(len(b)) != cc.size {
			zero()
			return fmt.Errorf("decoding %v: got %d bytes, want %d", cc.typ, len(b), cc.size)
		}
		copy(unsafe.Slice((*byte)(p), cc.size), b)
		if cc.check != nil && !cc.check(p) {
			zero()
			return fmt.Errorf("decoding %v: %w", cc.typ, errBool)
		}
		return nil
	case modeMarshal:
		zero()
		if err := reflect.NewAt(cc.typ, p).Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
			zero()
			return wrapf(err, "decoding %v", cc.typ)
		}
		return nil
	}
	zero()
	rest, err := cc.dec(b, p, 0)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%d trailing bytes after the value", len(rest))
	}
	if err != nil {
		zero()
		return wrapf(err, "decoding %v", cc.typ)
	}
	return nil
}

// maxDepth bounds re-entries of a recursive type while encoding or
// decoding, so cyclic data or a hostile message cannot exhaust the stack.
const maxDepth = 10000

// wrapErr gives a decode failure its own text while letting callers match
// the standard error it amounts to.
type wrapErr struct {
	msg string
	err error
}

func (e *wrapErr) Error() string { return e.msg }
func (e *wrapErr) Unwrap() error { return e.err }

// prefixErr is an error with its context before the wrapped error's text
// (a user's MarshalBinary error, a nested value's codec error), which it
// quotes as it is.
type prefixErr struct {
	context string
	err     error
}

func (e *prefixErr) Error() string {
	return e.context + ": " + e.err.Error()
}

func (e *prefixErr) Unwrap() error { return e.err }

// wrapf wraps err under the formatted context.
func wrapf(err error, format string, args ...any) error {
	return &prefixErr{fmt.Sprintf(format, args...), err}
}

// These are static so the hot paths return errors without allocating; the
// public methods add the type name (and the package, its prefix).
var (
	errTruncated = &wrapErr{"input ends in the middle of a value", io.ErrUnexpectedEOF}
	errTooLong   = &wrapErr{"length exceeds the remaining input", io.ErrUnexpectedEOF}
	errVarint    = errors.New("varint overflows 64 bits")

	// ErrShareable refuses a shared object (a *Value, *Queue, *Conn, ...)
	// anywhere the codec would copy it: it can only travel as the same
	// object, as a Func argument or a field of one.
	ErrShareable = errors.New("a shared object (*Value, *Array, *Queue, *Conn, *Lock, ...) cannot travel this way: pass it as a Func argument, a Runner or a struct field of one, to a process or a Pool on this machine")
	errRange     = errors.New("integer out of range for its type")
	errBool      = errors.New("bool byte is neither 0 nor 1")
	errPresence  = errors.New("pointer presence byte is neither 0 nor 1")
	errDupKey    = errors.New("duplicate map keys")
	errKeyType   = errors.New("map key of a type that cannot be a map key")
	errDepth     = fmt.Errorf("recursive type nested more than %d deep (cyclic value?)", maxDepth)
)

type mode uint8

const (
	modeGeneral mode = iota
	modeBytes
	modeString
	modePlain
	modeMarshal
)

// encFn appends the value at p to b. decFn decodes one value from the
// front of b into the zeroed memory at p and returns the rest of b. Depth
// counts recursive re-entries. Both take and return plain values so that
// no per-call state escapes to the heap.
type (
	encFn func(b []byte, p unsafe.Pointer, depth int) ([]byte, error)
	decFn func(b []byte, p unsafe.Pointer, depth int) ([]byte, error)
)

// compiled is the type-erased codec shared by every Codec of one type.
type compiled struct {
	typ      reflect.Type
	mode     mode
	size     uintptr                   // modePlain
	check    func(unsafe.Pointer) bool // modePlain: validates bools, nil if none
	appender bool                      // modeMarshal: has AppendBinary
	enc      encFn                     // modeGeneral
	dec      decFn                     // modeGeneral
}

var codecCache sync.Map // reflect.Type -> *compiled

func compiledFor(t reflect.Type) (*compiled, error) {
	if c, ok := codecCache.Load(t); ok {
		return c.(*compiled), nil
	}
	c, err := compileTop(t)
	if err != nil {
		return nil, wrapf(err, "cannot build codec for %v", t)
	}
	actual, _ := codecCache.LoadOrStore(t, c)
	return actual.(*compiled), nil
}

func compileTop(t reflect.Type) (*compiled, error) {
	c := &compiled{typ: t}
	self := selfCodingOf(t)
	switch {
	case self.err != nil:
		return nil, self.err
	case self.marshal:
		c.mode = modeMarshal
		c.appender = self.appender
	case t.Kind() == reflect.String:
		c.mode = modeString
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 && isPlain(t.Elem()):
		c.mode = modeBytes
	case isPlain(t):
		c.mode = modePlain
		c.size = t.Size()
		c.check = boolCheck(t)
	default:
		cc := compiler{seen: make(map[reflect.Type]*typeInfo)}
		ti, err := cc.compile(t)
		if err != nil {
			return nil, err
		}
		c.enc, c.dec = ti.enc, ti.dec
	}
	return c, nil
}

// isPlain reports whether t can be copied as raw memory: no pointers, and
// no field that the field-by-field encoding would skip or treat specially,
// so that copying memory is never observably different from it.
func isPlain(t reflect.Type) bool {
	if s := selfCodingOf(t); s.marshal || s.err != nil {
		return false
	}
	if t.Size() == 0 {
		return true
	}
	switch t.Kind() {
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return isPlain(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if (!f.IsExported() && f.Name != "_") || !isPlain(f.Type) {
				return false
			}
		}
		return true
	}
	return false
}

// boolCheck returns a validator for the bools inside plain type t, or nil
// if it has none: raw memory from a garbled message could otherwise hold a
// bool that is neither true nor false.
func boolCheck(t reflect.Type) func(unsafe.Pointer) bool {
	switch t.Kind() {
	case reflect.Bool:
		return func(p unsafe.Pointer) bool { return *(*uint8)(p) <= 1 }
	case reflect.Array:
		ec := boolCheck(t.Elem())
		n, size := t.Len(), t.Elem().Size()
		if ec == nil || n == 0 {
			return nil
		}
		if t.Elem().Kind() == reflect.Bool {
			return func(p unsafe.Pointer) bool { return bytesAreBools(unsafe.Slice((*byte)(p), n)) }
		}
		return func(p unsafe.Pointer) bool {
			for i := range n {
				if !ec(unsafe.Add(p, uintptr(i)*size)) {
					return false
				}
			}
			return true
		}
	case reflect.Struct:
		type fieldCheck struct {
			off   uintptr
			check func(unsafe.Pointer) bool
		}
		var fcs []fieldCheck
		for i := range t.NumField() {
			f := t.Field(i)
			if ec := boolCheck(f.Type); ec != nil {
				fcs = append(fcs, fieldCheck{f.Offset, ec})
			}
		}
		if len(fcs) == 0 {
			return nil
		}
		return func(p unsafe.Pointer) bool {
			for _, fc := range fcs {
				if !fc.check(unsafe.Add(p, fc.off)) {
					return false
				}
			}
			return true
		}
	}
	return nil
}

func bytesAreBools(b []byte) bool {
	for _, c := range b {
		if c > 1 {
			return false
		}
	}
	return true
}

// minSize is the fewest bytes any value of t encodes to in the general
// encoding. Decoders use it to refuse element counts the remaining input
// cannot hold before allocating for them. It never recurses through a
// pointer, slice, map or interface, so recursive types terminate.
func minSize(t reflect.Type) uint64 {
	if hasMarshal(t) {
		return 1
	}
	switch t.Kind() {
	case reflect.Float32:
		return 4
	case reflect.Float64, reflect.Complex64:
		return 8
	case reflect.Complex128:
		return 16
	case reflect.Array:
		if isPlain(t) {
			return uint64(t.Size())
		}
		return uint64(t.Len()) * minSize(t.Elem())
	case reflect.Struct:
		var n uint64
		for i := range t.NumField() {
			if f := t.Field(i); encoded(f) {
				n += minSize(f.Type)
			}
		}
		return n
	case reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return 0
	}
	return 1 // bool, integers (varint), string, slice, map, pointer, interface
}

// emptyBase gives decoded empty-but-not-nil slices a non-nil data pointer.
var emptyBase byte

// sliceHeader mirrors the runtime layout of every slice type, letting one
// decoder fill slices whose element type is only known at run time.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

type typeInfo struct {
	enc encFn
	dec decFn
}

// compiler builds the general encoding; seen holds finished types and the
// ones being built, whose second appearance marks a recursive type.
type compiler struct {
	seen map[reflect.Type]*typeInfo
}

func (c *compiler) compile(t reflect.Type) (*typeInfo, error) {
	if ti, ok := c.seen[t]; ok {
		if ti.enc != nil {
			return ti, nil
		}
		// t contains itself (through a pointer, slice, map): call through ti,
		// which is filled in once t is built, and count the depth there.
		return &typeInfo{
			enc: func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
				if depth >= maxDepth {
					return b, errDepth
				}
				return ti.enc(b, p, depth+1)
			},
			dec: func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
				if depth >= maxDepth {
					return b, errDepth
				}
				return ti.dec(b, p, depth+1)
			},
		}, nil
	}
	ti := &typeInfo{}
	c.seen[t] = ti
	enc, dec, err := c.build(t)
	if err != nil {
		return nil, err
	}
	ti.enc, ti.dec = enc, dec
	return ti, nil
}

func (c *compiler) build(t reflect.Type) (encFn, decFn, error) {
	if handle.IsShareable(t) {
		return shareableCodec(t)
	}
	if self := selfCodingOf(t); self.err != nil {
		return nil, nil, self.err
	} else if self.marshal {
		return marshalCodec(t, self.appender)
	}
	switch t.Kind() {
	case reflect.Bool:
		return encUint8, decBool, nil
	case reflect.Int8, reflect.Uint8:
		return encUint8, decUint8, nil
	case reflect.Int, reflect.Int16, reflect.Int32, reflect.Int64:
		switch t.Size() {
		case 2:
			return intCodec[int16]()
		case 4:
			return intCodec[int32]()
		default:
			return intCodec[int64]()
		}
	case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		switch t.Size() {
		case 2:
			return uintCodec[uint16]()
		case 4:
			return uintCodec[uint32]()
		default:
			return uintCodec[uint64]()
		}
	case reflect.Float32:
		return wordsCodec[uint32](1)
	case reflect.Float64:
		return wordsCodec[uint64](1)
	case reflect.Complex64:
		return wordsCodec[uint32](2)
	case reflect.Complex128:
		return wordsCodec[uint64](2)
	case reflect.String:
		return encString, decString, nil
	case reflect.Slice:
		return c.slice(t)
	case reflect.Array:
		return c.array(t)
	case reflect.Map:
		return c.mapCodec(t)
	case reflect.Pointer:
		return c.pointer(t)
	case reflect.Struct:
		return c.structCodec(t)
	case reflect.Interface:
		enc, dec := ifaceCodec(t)
		return enc, dec, nil
	}
	return nil, nil, fmt.Errorf("unsupported type %v", t)
}

// varintErr turns binary.Uvarint's failure code into an error.
func varintErr(n int) error {
	if n == 0 {
		return errTruncated
	}
	return errVarint
}

func encUint8(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
	return append(b, *(*uint8)(p)), nil
}

func decUint8(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
	if len(b) < 1 {
		return b, errTruncated
	}
	*(*uint8)(p) = b[0]
	return b[1:], nil
}

func decBool(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
	if len(b) < 1 {
		return b, errTruncated
	}
	if b[0] > 1 {
		return b, errBool
	}
	*(*uint8)(p) = b[0]
	return b[1:], nil
}

// Integers wider than a byte travel as varints: zig-zag for the signed
// ones, so small magnitudes stay short either way. The coders are closures
// made by generic functions rather than generic functions themselves:
// a generic function used as a value is reached through a wrapper, one
// call more per field, while a closure's code is its shape's own (and each
// width is a shape of its own, so the range check vanishes for 64 bits).
type (
	signed   interface{ int16 | int32 | int64 }
	unsigned interface{ uint16 | uint32 | uint64 }
)

// intErr is the error of a varint decoder that read n bytes (n <= 0: see
// varintErr) of a value out of its type's range.
func intErr(n int) error {
	if n <= 0 {
		return varintErr(n)
	}
	return errRange
}

func intCodec[T signed]() (encFn, decFn, error) {
	enc := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
		return binary.AppendVarint(b, int64(*(*T)(p))), nil
	}
	dec := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
		v, n := binary.Varint(b)
		if n <= 0 || v != int64(T(v)) {
			return b, intErr(n)
		}
		*(*T)(p) = T(v)
		return b[n:], nil
	}
	return enc, dec, nil
}

func uintCodec[T unsigned]() (encFn, decFn, error) {
	enc := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
		return binary.AppendUvarint(b, uint64(*(*T)(p))), nil
	}
	dec := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 || v != uint64(T(v)) {
			return b, intErr(n)
		}
		*(*T)(p) = T(v)
		return b[n:], nil
	}
	return enc, dec, nil
}

// Floats and complex numbers travel as their bits in fixed little-endian
// words: one for a float, two for a complex number, of 4 or 8 bytes.
type word interface{ uint32 | uint64 }

func appendWord[W word](b []byte, w W) []byte {
	if unsafe.Sizeof(w) == 4 {
		return binary.LittleEndian.AppendUint32(b, uint32(w))
	}
	return binary.LittleEndian.AppendUint64(b, uint64(w))
}

func readWord[W word](b []byte) W {
	var w W
	if unsafe.Sizeof(w) == 4 {
		return W(binary.LittleEndian.Uint32(b))
	}
	return W(binary.LittleEndian.Uint64(b))
}

// wordsCodec encodes n (1 or 2) words of type W.
func wordsCodec[W word](n int) (encFn, decFn, error) {
	size := int(unsafe.Sizeof(W(0)))
	if n == 1 {
		enc := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
			return appendWord(b, *(*W)(p)), nil
		}
		dec := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
			if len(b) < size {
				return b, errTruncated
			}
			*(*W)(p) = readWord[W](b)
			return b[size:], nil
		}
		return enc, dec, nil
	}
	enc := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
		c := (*[2]W)(p)
		return appendWord(appendWord(b, c[0]), c[1]), nil
	}
	dec := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
		if len(b) < 2*size {
			return b, errTruncated
		}
		c := (*[2]W)(p)
		c[0], c[1] = readWord[W](b), readWord[W](b[size:])
		return b[2*size:], nil
	}
	return enc, dec, nil
}

func encString(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
	s := *(*string)(p)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...), nil
}

func decString(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
	n, b, err := readSize(b)
	if err != nil {
		return b, err
	}
	*(*string)(p) = string(b[:n])
	return b[n:], nil
}

// readSize reads a byte count and checks that b holds that many bytes.
func readSize(b []byte) (int, []byte, error) {
	u, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, b, varintErr(k)
	}
	b = b[k:]
	if u > uint64(len(b)) {
		return 0, b, errTooLong
	}
	return int(u), b, nil
}

// readCount reads the element count of a slice or map, sent as count+1 so
// that 0 can mean nil (returned as -1). It refuses counts the rest of the
// input cannot hold at elemMin bytes per element; zero-size elements carry no
// bytes, so only the int range limits them.
func readCount(b []byte, elemMin uint64) (int, []byte, error) {
	u, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, b, varintErr(k)
	}
	b = b[k:]
	if u == 0 {
		return -1, b, nil
	}
	u--
	if elemMin > 0 && u > uint64(len(b))/elemMin || u > math.MaxInt {
		return 0, b, errTooLong
	}
	return int(u), b, nil
}

func appendCount(b []byte, n int, isNil bool) []byte {
	if isNil {
		return append(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

// allocPlain allocates zeroed, pointer-free memory of total bytes with the
// given alignment. Plain elements need no type information for the
// garbage collector, so a uintN slice of matching alignment serves, which
// is cheaper than going through reflect.
func allocPlain(total, align uintptr) unsafe.Pointer {
	switch {
	case total == 0:
		return unsafe.Pointer(&emptyBase)
	case align >= 8:
		return unsafe.Pointer(unsafe.SliceData(make([]uint64, total/8)))
	case align == 4:
		return unsafe.Pointer(unsafe.SliceData(make([]uint32, total/4)))
	case align == 2:
		return unsafe.Pointer(unsafe.SliceData(make([]uint16, total/2)))
	}
	return unsafe.Pointer(unsafe.SliceData(make([]byte, total)))
}

func (c *compiler) slice(t reflect.Type) (encFn, decFn, error) {
	et := t.Elem()
	size := et.Size()
	if isPlain(et) {
		align := uintptr(et.Align())
		check := boolCheck(et)
		enc := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
			s := *(*sliceHeader)(p)
			b = appendCount(b, s.len, s.data == nil)
			if s.data == nil {
				return b, nil
			}
			return append(b, unsafe.Slice((*byte)(s.data), uintptr(s.len)*size)...), nil
		}
		dec := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
			n, b, err := readCount(b, uint64(size))
			if err != nil || n < 0 {
				return b, err
			}
			total := uintptr(n) * size
			data := allocPlain(total, align)
			copy(unsafe.Slice((*byte)(data), total), b)
			if check != nil {
				for i := range n {
					if !check(unsafe.Add(data, uintptr(i)*size)) {
						return b, errBool
					}
				}
			}
			*(*sliceHeader)(p) = sliceHeader{data, n, n}
			return b[total:], nil
		}
		return enc, dec, nil
	}
	ti, err := c.compile(et)
	if err != nil {
		return nil, nil, err
	}
	elemEnc, elemDec, elemMin := ti.enc, ti.dec, minSize(et)
	enc := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		s := *(*sliceHeader)(p)
		b = appendCount(b, s.len, s.data == nil)
		var err error
		for i := range s.len {
			if b, err = elemEnc(b, unsafe.Add(s.data, uintptr(i)*size), depth); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	dec := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		n, b, err := readCount(b, elemMin)
		if err != nil || n < 0 {
			return b, err
		}
		if n == 0 {
			*(*sliceHeader)(p) = sliceHeader{data: unsafe.Pointer(&emptyBase)}
			return b, nil
		}
		// Value.Grow allocates typed, zeroed memory for n elements in place,
		// without the extra allocation reflect.MakeSlice makes.
		reflect.NewAt(t, p).Elem().Grow(n)
		s := (*sliceHeader)(p)
		s.len = n
		for i := range n {
			if b, err = elemDec(b, unsafe.Add(s.data, uintptr(i)*size), depth); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	return enc, dec, nil
}

func (c *compiler) array(t reflect.Type) (encFn, decFn, error) {
	if isPlain(t) {
		size := t.Size()
		check := boolCheck(t)
		enc := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
			return append(b, unsafe.Slice((*byte)(p), size)...), nil
		}
		dec := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
			if uintptr(len(b)) < size {
				return b, errTruncated
			}
			copy(unsafe.Slice((*byte)(p), size), b)
			if check != nil && !check(p) {
				return b, errBool
			}
			return b[size:], nil
		}
		return enc, dec, nil
	}
	ti, err := c.compile(t.Elem())
	if err != nil {
		return nil, nil, err
	}
	elemEnc, elemDec, n, size := ti.enc, ti.dec, t.Len(), t.Elem().Size()
	enc := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		var err error
		for i := range n {
			if b, err = elemEnc(b, unsafe.Add(p, uintptr(i)*size), depth); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	dec := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		var err error
		for i := range n {
			if b, err = elemDec(b, unsafe.Add(p, uintptr(i)*size), depth); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	return enc, dec, nil
}

func (c *compiler) pointer(t reflect.Type) (encFn, decFn, error) {
	et := t.Elem()
	ti, err := c.compile(et)
	if err != nil {
		return nil, nil, err
	}
	elemEnc, elemDec, elemMin := ti.enc, ti.dec, minSize(et)
	enc := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		q := *(*unsafe.Pointer)(p)
		if q == nil {
			return append(b, 0), nil
		}
		return elemEnc(append(b, 1), q, depth)
	}
	dec := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		if len(b) < 1 {
			return b, errTruncated
		}
		switch b[0] {
		case 0:
			return b[1:], nil
		case 1:
		default:
			return b, errPresence
		}
		b = b[1:]
		if uint64(len(b)) < elemMin {
			return b, errTruncated // before allocating a possibly large element
		}
		q := reflect.New(et).UnsafePointer()
		*(*unsafe.Pointer)(p) = q
		return elemDec(b, q, depth)
	}
	return enc, dec, nil
}

// shareableCodec encodes a field that holds a shared object: only nil goes
// on the wire. Where a shared object travels as itself (internal/handle
// cleared it from the copy being encoded and sends its descriptors beside
// the message), the field is nil here; anywhere else a non-nil one is
// refused, since a copy of it would be another object.
func shareableCodec(t reflect.Type) (encFn, decFn, error) {
	enc := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		if *(*unsafe.Pointer)(p) != nil {
			return b, fmt.Errorf("%w (found a %v)", ErrShareable, t)
		}
		return append(b, 0), nil
	}
	dec := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		if len(b) < 1 {
			return b, errTruncated
		}
		if b[0] != 0 {
			return b, errPresence
		}
		return b[1:], nil
	}
	return enc, dec, nil
}

func (c *compiler) mapCodec(t reflect.Type) (encFn, decFn, error) {
	kt, vt := t.Key(), t.Elem()
	kti, err := c.compile(kt)
	if err != nil {
		return nil, nil, err
	}
	vti, err := c.compile(vt)
	if err != nil {
		return nil, nil, err
	}
	entryMin := minSize(kt) + minSize(vt)
	// A key that is or holds an interface may decode to a value whose
	// dynamic type cannot be a map key (a []byte under any): SetMapIndex
	// would panic, so such a key is checked first.
	checkKey := holdsIface(kt)
	enc := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		m := reflect.NewAt(t, p).Elem()
		b = appendCount(b, m.Len(), m.IsNil())
		if m.Len() == 0 {
			return b, nil
		}
		// One key and one value buffer serve every entry: SetIterKey copies
		// into them without the allocation that MapIter.Key would make.
		k, v := reflect.New(kt).Elem(), reflect.New(vt).Elem()
		kp, vp := k.Addr().UnsafePointer(), v.Addr().UnsafePointer()
		var err error
		for it := m.MapRange(); it.Next(); {
			k.SetIterKey(it)
			v.SetIterValue(it)
			if b, err = kti.enc(b, kp, depth); err != nil {
				return b, err
			}
			if b, err = vti.enc(b, vp, depth); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	dec := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		n, b, err := readCount(b, entryMin)
		if err != nil || n < 0 {
			return b, err
		}
		if entryMin == 0 && n > 1 {
			// Entries that encode to nothing have zero-size keys, and all
			// zero-size keys are equal.
			return b, errTooLong
		}
		// The size hint is capped: the map grows as entries really decode.
		m := reflect.MakeMapWithSize(t, min(n, 1024))
		k, v := reflect.New(kt).Elem(), reflect.New(vt).Elem()
		kp, vp := k.Addr().UnsafePointer(), v.Addr().UnsafePointer()
		for range n {
			k.SetZero()
			v.SetZero()
			if b, err = kti.dec(b, kp, depth); err != nil {
				return b, err
			}
			if checkKey && !k.Comparable() {
				return b, fmt.Errorf("%w: a %v key holds a %v", errKeyType, kt, keyDynType(k))
			}
			if b, err = vti.dec(b, vp, depth); err != nil {
				return b, err
			}
			m.SetMapIndex(k, v)
		}
		if m.Len() != n {
			return b, errDupKey
		}
		reflect.NewAt(t, p).Elem().Set(m)
		return b, nil
	}
	return enc, dec, nil
}

// holdsIface reports whether a value of t (a map key type: no slices,
// maps or funcs) can hold an interface value: t is one, or an array or
// struct with one inside.
func holdsIface(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Array:
		return holdsIface(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if holdsIface(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// keyDynType names the dynamic type of a decoded key that is an
// interface, for the error; the key's type otherwise.
func keyDynType(k reflect.Value) reflect.Type {
	if k.Kind() == reflect.Interface && !k.IsNil() {
		return k.Elem().Type()
	}
	return k.Type()
}

func (c *compiler) structCodec(t reflect.Type) (encFn, decFn, error) {
	type field struct {
		off uintptr
		enc encFn
		dec decFn
	}
	var fields []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !encoded(f) {
			continue
		}
		ti, err := c.compile(f.Type)
		if err != nil {
			return nil, nil, fmt.Errorf("field %s.%s: %w", t, f.Name, err)
		}
		fields = append(fields, field{f.Offset, ti.enc, ti.dec})
	}
	if t.Size() > 0 && minSize(t) == 0 {
		// Its data would silently vanish; gob refuses these too.
		return nil, nil, fmt.Errorf("type %v has no exported fields", t)
	}
	enc := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		var err error
		for i := range fields {
			f := &fields[i]
			if b, err = f.enc(b, unsafe.Add(p, f.off), depth); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	dec := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		var err error
		for i := range fields {
			f := &fields[i]
			if b, err = f.dec(b, unsafe.Add(p, f.off), depth); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	return enc, dec, nil
}

// appendMarshal appends t's own binary form of the value at p, preferring
// AppendBinary, which can write straight into b.
func appendMarshal(b []byte, t reflect.Type, p unsafe.Pointer, appender bool) ([]byte, error) {
	m := reflect.NewAt(t, p).Interface()
	if appender {
		return m.(encoding.BinaryAppender).AppendBinary(b)
	}
	data, err := m.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return b, err
	}
	return append(b, data...), nil
}

func marshalCodec(t reflect.Type, appender bool) (encFn, decFn, error) {
	enc := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
		start := len(b)
		b, err := appendMarshal(b, t, p, appender)
		if err != nil {
			return b[:start], err
		}
		// The length goes before the data but is known only after it:
		// shift the data right by the size of its varint.
		n := len(b) - start
		var lenBuf [binary.MaxVarintLen64]byte
		l := binary.PutUvarint(lenBuf[:], uint64(n))
		b = append(b, lenBuf[:l]...)
		copy(b[start+l:], b[start:start+n])
		copy(b[start:], lenBuf[:l])
		return b, nil
	}
	dec := func(b []byte, p unsafe.Pointer, _ int) ([]byte, error) {
		n, b, err := readSize(b)
		if err != nil {
			return b, err
		}
		u := reflect.NewAt(t, p).Interface().(encoding.BinaryUnmarshaler)
		if err := u.UnmarshalBinary(b[:n]); err != nil {
			return b, err
		}
		return b[n:], nil
	}
	return enc, dec, nil
}

// ifaceCodec encodes an interface value as its concrete type's registered
// name and the value's own encoding, length-prefixed.
func ifaceCodec(t reflect.Type) (encFn, decFn) {
	enc := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		v := reflect.NewAt(t, p).Elem()
		if v.IsNil() {
			return append(b, 0), nil
		}
		ct := v.Elem().Type()
		name, ok := registeredName(ct)
		if !ok {
			return b, fmt.Errorf("type %v is not registered (call multiproc.RegisterType for values held in interfaces)", ct)
		}
		cc, err := compiledFor(ct)
		if err != nil {
			return b, err
		}
		cp := reflect.New(ct)
		cp.Elem().Set(v.Elem())
		b = append(b, 1)
		b = appendCount(b, len(name), false)
		b = append(b, name...)
		// The value's length goes in 8 fixed bytes, patched after it is
		// written in place (no copy, however deep values nest).
		at := len(b)
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
		b, err = cc.appendAt(b, cp.UnsafePointer(), depth+1)
		if err != nil {
			return b[:at], err
		}
		binary.LittleEndian.PutUint64(b[at:], uint64(len(b)-at-8))
		return b, nil
	}
	dec := func(b []byte, p unsafe.Pointer, depth int) ([]byte, error) {
		if len(b) < 1 {
			return b, errTruncated
		}
		switch b[0] {
		case 0:
			return b[1:], nil
		case 1:
		default:
			return b, errPresence
		}
		n, b, err := readCount(b[1:], 1)
		if err != nil || n < 0 {
			return b, err
		}
		name := string(b[:n])
		b = b[n:]
		ct, ok := registeredType(name)
		if !ok {
			return b, fmt.Errorf("type %q is not registered in this process", name)
		}
		if !ct.AssignableTo(t) {
			return b, fmt.Errorf("a %v does not fit in a %v", ct, t)
		}
		cc, err := compiledFor(ct)
		if err != nil {
			return b, err
		}
		if len(b) < 8 {
			return b, errTruncated
		}
		m64 := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if m64 > uint64(len(b)) {
			return b, errTruncated
		}
		m := int(m64)
		nv := reflect.New(ct)
		if err := cc.decode(b[:m], nv.UnsafePointer(), func() { nv.Elem().SetZero() }); err != nil {
			return b, err
		}
		reflect.NewAt(t, p).Elem().Set(nv.Elem())
		return b[m:], nil
	}
	return enc, dec
}
