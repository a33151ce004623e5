package pickle

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Limits bound what one Unmarshal may build. Every bound is checked as
// the opcode that would cross it runs, never afterwards on a result.
type Limits struct {
	// MaxDepth bounds the nesting of containers (0: MaxDepth).
	MaxDepth int
	// MaxDigits bounds the digits of a decimal int (INT, LONG; 0: 4300,
	// Python's own limit for int(str)). Binary ints (LONG1, LONG4) have
	// no digit limit: they cost what their bytes cost.
	MaxDigits int
	// MaxCost bounds, in bytes, the memory a decode builds and the work
	// it does: every value pushed (a memo reference too: a slot), every
	// byte of a str, bytes or int, every container and dict entry, every
	// memo slot, and every byte a dict key or set element makes the map
	// hash (a key of a tuple of tuples counts all it holds, each time it
	// is inserted). 0: 1 MiB + 256 × the pickle's size, so a decode's
	// memory and time are linear in the pickle's size.
	MaxCost int64
}

// cost units of the things a decode builds (bytes, roughly what Go
// allocates for them).
const (
	costSlot  = 16 // an interface value: a stack, memo or container slot
	costNode  = 96 // a list, tuple or dict being built (node)
	costEntry = 48 // a map entry
	costMap   = 64 // an empty map
	costMark  = 8
)

// maxKeyTuple bounds the length of a tuple used as a dict key or set
// element: each length is a Go array type ([n]any), which reflect makes
// once and keeps for the life of the process.
const maxKeyTuple = 4096

// Unmarshal decodes one pickle of plain data, protocols 0 to 5, with the
// default Limits. Python maps to Go as: None → nil, bool → bool, int →
// int64 (*big.Int beyond int64), float → float64, str → string, bytes and
// bytearray → []byte, list → []any, tuple → Tuple, dict → map[any]any,
// set → Set, frozenset → FrozenSet. Dict keys and set elements become
// comparable Go values: None, bool, int64, float64, string, and a tuple of
// those as an array [n]any; any other key (bytes, a big int, a frozenset)
// is an error matching ErrUnsupported.
//
// A str holding a lone surrogate (which Python's str allows) becomes a Go
// string holding that surrogate's 3-byte encoding, as Python's
// "utf-8"/"surrogatepass" writes it (the bytes a pickle carries): such a
// string is not valid UTF-8, and Marshal sends it back as the same str.
//
// Objects the pickle refers to more than once (through its memo) are
// shared, as in Python: a list of 100 references to one tuple is a []any
// holding one Tuple 100 times, and one bytes object referred to twice is
// one []byte, not a copy. A structure that contains itself (a list that
// holds itself) is an error matching ErrUnsupported ("recursive
// structure"). The decoder never imports, calls or builds anything a
// pickle names but set, frozenset, bytearray, bytes and _codecs.encode,
// as Python writes those values (ErrUnsafe otherwise).
func Unmarshal(data []byte) (any, error) {
	return UnmarshalLimits(data, Limits{})
}

// UnmarshalLimits is Unmarshal with other limits.
func UnmarshalLimits(data []byte, lim Limits) (any, error) {
	d := decoders.Get().(*decoder)
	d.data, d.maxDepth, d.maxDigits, d.maxCost = data, lim.MaxDepth, lim.MaxDigits, lim.MaxCost
	if d.maxDepth <= 0 {
		d.maxDepth = MaxDepth
	}
	if d.maxDigits <= 0 {
		d.maxDigits = 4300
	}
	if d.maxCost <= 0 {
		d.maxCost = 1<<20 + 256*int64(len(data))
	}
	v, err := d.run()
	d.reset()
	decoders.Put(d)
	return v, err
}

// decoders keeps decoders (their stack, marks, memo and slabs) from one
// Unmarshal to the next.
var decoders = sync.Pool{New: func() any { return new(decoder) }}

// reset empties d for the next Unmarshal: it keeps no value of this one
// (the slabs' used slots are the values' own; the next decode only
// appends), nor a big stack or memo.
func (d *decoder) reset() {
	clear(d.stack)
	clear(d.memo)
	d.stack, d.marks, d.memo = d.stack[:0], d.marks[:0], d.memo[:0]
	if cap(d.stack) > 1024 {
		d.stack = nil
	}
	if cap(d.marks) > 1024 {
		d.marks = nil
	}
	if cap(d.memo) > 1024 {
		d.memo = nil
	}
	clear(d.nodes)
	if d.nodes == nil {
		d.nodes = make([]node, 0, 64)
	}
	slabs := d.slabs
	*d = decoder{stack: d.stack, marks: d.marks, memo: d.memo, nodes: d.nodes[:0], slabs: slabs}
}

// kind is what a node is.
type kind uint8

const (
	kList kind = iota + 1
	kTuple
	kDict
)

// A node is a list, dict or tuple while the pickle is being decoded: a
// list grows after it was memoized (and maybe referred to from elsewhere),
// so its final []any is made at the end, once, and every reference gets
// that one slice. A tuple is a node when it holds a container (a tuple of
// plain values is a Tuple at once), so that its key form is made once.
type node struct {
	kind    kind
	state   uint8 // of finish: 0 new, 1 on the path, 2 done
	hasNode bool  // items (a dict's values) hold a *node
	depth   int32 // 1 + its deepest child's, as known when it was added
	items   []any // list, tuple
	m       map[any]any
	key     any   // tuple: its key form, once made
	keyCost int64 // tuple: what hashing key costs; 0 until made
	out     any   // the final value
}

const (
	stNew uint8 = iota
	stOpen
	stDone
)

// global is a callable a pickle may name: the only ones allowed.
type global uint8

const (
	gSet global = iota + 1
	gFrozenSet
	gBytearray
	gBytes
	gEncode
)

func (g global) String() string {
	switch g {
	case gSet:
		return "builtins.set"
	case gFrozenSet:
		return "builtins.frozenset"
	case gBytearray:
		return "builtins.bytearray"
	case gBytes:
		return "builtins.bytes"
	}
	return "_codecs.encode"
}

// unset marks an empty memo slot.
type unsetT struct{}

var unset any = &unsetT{}

var emptyTuple any = Tuple{}

type decoder struct {
	data      []byte
	pos       int
	op        int // offset of the opcode running, for errors
	stack     []any
	marks     []int
	memo      []any
	memoN     int // filled memo slots: Python's len(memo), MEMOIZE's index
	proto     int
	nodes     []node // the first nodes of a decode: dead once it ends, so reused
	cost      int64
	maxCost   int64
	maxDepth  int
	maxDigits int
	slabs
}

func (d *decoder) errf(base error, format string, args ...any) error {
	return fmt.Errorf("%w: at offset %d: %s", base, d.op, fmt.Sprintf(format, args...))
}

func (d *decoder) charge(n int64) error {
	d.cost += n
	if d.cost > d.maxCost {
		return fmt.Errorf("%w: decoding would build more than %d bytes (the limit for a %d-byte pickle)", ErrLimit, d.maxCost, len(d.data))
	}
	return nil
}

func (d *decoder) need(n uint64) ([]byte, error) {
	if n > uint64(len(d.data)-d.pos) {
		return nil, d.errf(ErrNotPickle, "opcode %#x needs %d bytes, %d are left", d.data[d.op], n, len(d.data)-d.pos)
	}
	b := d.data[d.pos : d.pos+int(n)]
	d.left = len(d.data) - d.pos // an arena for what b holds is never larger
	d.pos += int(n)
	return b, nil
}

func (d *decoder) line() ([]byte, error) {
	for i := d.pos; i < len(d.data); i++ {
		if d.data[i] == '\n' {
			b := d.data[d.pos:i]
			d.pos = i + 1
			return b, nil
		}
	}
	return nil, d.errf(ErrNotPickle, "opcode %q: its line has no end", d.data[d.op])
}

func (d *decoder) push(v any) error {
	if err := d.charge(costSlot); err != nil {
		return err
	}
	d.stack = append(d.stack, v)
	return nil
}

// fence is where the values above the last mark begin: no opcode but
// those that take a mark reaches below it (as CPython's unpickler).
func (d *decoder) fence() int {
	if len(d.marks) == 0 {
		return 0
	}
	return d.marks[len(d.marks)-1]
}

func (d *decoder) pop() (any, error) {
	if len(d.stack) <= d.fence() {
		return nil, d.errf(ErrNotPickle, "stack underflow")
	}
	v := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	return v, nil
}

func (d *decoder) top() (any, error) {
	if len(d.stack) <= d.fence() {
		return nil, d.errf(ErrNotPickle, "stack underflow")
	}
	return d.stack[len(d.stack)-1], nil
}

// popMark removes the values above the last mark, and the mark; the
// slice returned is valid until the next push.
func (d *decoder) popMark() ([]any, error) {
	if len(d.marks) == 0 {
		return nil, d.errf(ErrNotPickle, "no MARK before opcode %q", d.data[d.op])
	}
	k := d.marks[len(d.marks)-1]
	d.marks = d.marks[:len(d.marks)-1]
	items := d.stack[k:]
	d.stack = d.stack[:k]
	return items, nil
}

// depthOf is a value's nesting as known now.
func depthOf(v any) int32 {
	switch x := v.(type) {
	case *node:
		return x.depth
	case Tuple, Set, FrozenSet:
		return 1
	}
	return 0
}

// adopt records that container n now holds v.
func (d *decoder) adopt(n *node, v any) error {
	switch x := v.(type) {
	case *node:
		n.hasNode = true
		if x.depth+1 > n.depth {
			n.depth = x.depth + 1
			if int(n.depth) > d.maxDepth {
				return d.errf(ErrLimit, "nested deeper than %d", d.maxDepth)
			}
		}
	case global:
		return d.errf(ErrUnsupported, "the callable %v itself as a value", x)
	case Tuple, Set, FrozenSet:
		if n.depth < 2 {
			n.depth = 2
		}
	}
	return nil
}

func (d *decoder) newNode(k kind, items []any) (*node, error) {
	if err := d.charge(costNode + costSlot*int64(len(items))); err != nil {
		return nil, err
	}
	var n *node
	if len(d.nodes) < cap(d.nodes) {
		d.nodes = d.nodes[:len(d.nodes)+1]
		n = &d.nodes[len(d.nodes)-1]
	} else {
		n = new(node)
	}
	n.kind, n.depth = k, 1
	if k != kDict && len(items) > 0 {
		n.items = make([]any, len(items))
		copy(n.items, items)
	}
	for _, v := range items {
		if err := d.adopt(n, v); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// tuple builds a tuple of items: a Tuple at once if it holds only plain
// values, else a node.
func (d *decoder) tuple(items []any) (any, error) {
	if len(items) == 0 {
		return emptyTuple, nil
	}
	plain := true
	for _, v := range items {
		switch v.(type) {
		case nil, bool, int64, float64, string, []byte, *big.Int:
		default:
			plain = false
		}
	}
	if plain {
		if err := d.charge(costSlot * int64(1+len(items))); err != nil {
			return nil, err
		}
		t := make(Tuple, len(items))
		copy(t, items)
		return d.tupleAny(t), nil
	}
	n, err := d.newNode(kTuple, items)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// keyOf returns v's form as a dict key or set element, a comparable Go
// value, and charges what hashing it costs.
func (d *decoder) keyOf(v any) (any, error) {
	k, c, err := d.keyForm(v, 0)
	if err != nil {
		return nil, err
	}
	return k, d.charge(c + costEntry)
}

// keyForm returns v's key form and what hashing it costs. Only tuples
// recurse, and a tuple's depth was bounded when it was built; a tuple
// node keeps its key form, so a tuple shared many times (t = (u, u),
// u = (w, w), ...) is made once, while its cost (what Go's map hashes)
// counts every path.
func (d *decoder) keyForm(v any, depth int) (any, int64, error) {
	switch x := v.(type) {
	case nil, bool, int64, float64:
		return x, costSlot, nil
	case string:
		return v, costSlot + int64(len(x)), nil
	case Tuple:
		return d.arrayOf(x, depth)
	case *node:
		if x.kind != kTuple {
			return nil, 0, d.errf(ErrNotPickle, "an unhashable %s as a dict key or set element", pyType(v))
		}
		if x.keyCost == 0 {
			k, c, err := d.arrayOf(x.items, depth)
			if err != nil {
				return nil, 0, err
			}
			x.key, x.keyCost = k, c
		}
		return x.key, x.keyCost, nil
	case Set:
		return nil, 0, d.errf(ErrNotPickle, "an unhashable set as a dict key or set element")
	}
	return nil, 0, d.errf(ErrUnsupported, "a dict key or set element of Python type %s (keys may be None, bool, int in int64, float, str, or tuples of those)", pyType(v))
}

func (d *decoder) arrayOf(items []any, depth int) (any, int64, error) {
	if depth >= d.maxDepth {
		return nil, 0, d.errf(ErrLimit, "a dict key nested deeper than %d", d.maxDepth)
	}
	if len(items) > maxKeyTuple {
		return nil, 0, d.errf(ErrUnsupported, "a tuple of %d items as a dict key or set element (at most %d)", len(items), maxKeyTuple)
	}
	var small [8]any
	ks := small[:0]
	if len(items) > len(small) {
		ks = make([]any, 0, len(items))
	}
	cost := int64(costSlot)
	for _, e := range items {
		k, c, err := d.keyForm(e, depth+1)
		if err != nil {
			return nil, 0, err
		}
		ks = append(ks, k)
		cost += c
		if cost > d.maxCost {
			return nil, 0, fmt.Errorf("%w: a dict key or set element whose hashing would cost more than %d bytes", ErrLimit, d.maxCost)
		}
	}
	return makeArray(ks), cost, nil
}

// memoIndex reads the memo index argument of a PUT or GET opcode: a
// decimal line (PUT, GET), one byte (BINPUT, BINGET) or four little-endian
// bytes (LONG_BINPUT, LONG_BINGET).
func (d *decoder) memoIndex(op byte) (uint64, error) {
	switch op {
	case 'p', 'g':
		b, err := d.line()
		if err != nil {
			return 0, err
		}
		return d.decimalIndex(b)
	case 'q', 'h':
		b, err := d.need(1)
		if err != nil {
			return 0, err
		}
		return uint64(b[0]), nil
	}
	b, err := d.need(4)
	if err != nil {
		return 0, err
	}
	return uint64(binary.LittleEndian.Uint32(b)), nil
}

func (d *decoder) memoPut(idx uint64) error {
	if idx > uint64(len(d.data)) {
		return d.errf(ErrLimit, "memo index %d in a %d-byte pickle", idx, len(d.data))
	}
	v, err := d.top()
	if err != nil {
		return err
	}
	i := int(idx)
	for len(d.memo) <= i {
		if err := d.charge(costSlot); err != nil {
			return err
		}
		d.memo = append(d.memo, unset)
	}
	if d.memo[i] == unset {
		d.memoN++
	}
	d.memo[i] = v
	return nil
}

func (d *decoder) memoGet(idx uint64) error {
	if idx >= uint64(len(d.memo)) || d.memo[idx] == unset {
		return d.errf(ErrNotPickle, "memo key %d not found", idx)
	}
	return d.push(d.memo[idx])
}

// run decodes, opcode by opcode: one pass that checks and builds.
func (d *decoder) run() (any, error) {
	for d.pos < len(d.data) {
		d.op = d.pos
		op := d.data[d.pos]
		d.pos++
		var err error
		switch op {
		case '(': // MARK
			if err = d.charge(costMark); err == nil {
				d.marks = append(d.marks, len(d.stack))
			}
		case '.': // STOP
			var v any
			if v, err = d.pop(); err != nil {
				return nil, err
			}
			if d.pos != len(d.data) {
				return nil, d.errf(ErrNotPickle, "%d bytes after STOP", len(d.data)-d.pos)
			}
			return d.finish(v)
		case '0': // POP
			if len(d.marks) > 0 && d.marks[len(d.marks)-1] == len(d.stack) {
				d.marks = d.marks[:len(d.marks)-1]
			} else {
				_, err = d.pop()
			}
		case '1': // POP_MARK
			_, err = d.popMark()
		case '2': // DUP
			var v any
			if v, err = d.top(); err == nil {
				err = d.push(v)
			}
		case 'N':
			err = d.push(nil)
		case 0x88:
			err = d.push(true)
		case 0x89:
			err = d.push(false)
		case 'K': // BININT1
			var b []byte
			if b, err = d.need(1); err == nil {
				err = d.push(int64(b[0]))
			}
		case 'M': // BININT2
			var b []byte
			if b, err = d.need(2); err == nil {
				err = d.push(d.int(int64(binary.LittleEndian.Uint16(b))))
			}
		case 'J': // BININT
			var b []byte
			if b, err = d.need(4); err == nil {
				err = d.push(d.int(int64(int32(binary.LittleEndian.Uint32(b)))))
			}
		case 'I': // INT
			err = d.loadInt()
		case 'L': // LONG
			err = d.loadLong()
		case 0x8a, 0x8b: // LONG1, LONG4
			var n uint64
			if n, err = d.size(op); err != nil {
				break
			}
			var b []byte
			if b, err = d.need(n); err != nil {
				break
			}
			if err = d.charge(int64(n)); err == nil {
				err = d.push(decodeLong(b))
			}
		case 'G': // BINFLOAT
			var b []byte
			if b, err = d.need(8); err == nil {
				err = d.push(d.float(math.Float64frombits(binary.BigEndian.Uint64(b))))
			}
		case 'F': // FLOAT
			err = d.loadFloat()
		case 0x8c, 'X', 0x8d: // SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
			var n uint64
			if n, err = d.size(op); err != nil {
				break
			}
			var b []byte
			if b, err = d.need(n); err != nil {
				break
			}
			if !validSurrogatePass(b) {
				return nil, d.errf(ErrNotPickle, "a str that is not UTF-8")
			}
			if err = d.charge(int64(n)); err == nil {
				err = d.push(d.str(b))
			}
		case 'V': // UNICODE
			err = d.loadUnicode()
		case 'S', 'T', 'U': // STRING, BINSTRING, SHORT_BINSTRING: Python 2's str
			err = d.loadString(op)
		case 'C', 'B', 0x8e, 0x96: // SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
			var n uint64
			if n, err = d.size(op); err != nil {
				break
			}
			var b []byte
			if b, err = d.need(n); err != nil {
				break
			}
			if err = d.charge(int64(n)); err == nil {
				err = d.push(d.bytesAny(d.bytes(b)))
			}
		case ')': // EMPTY_TUPLE
			err = d.push(emptyTuple)
		case 't', 0x85, 0x86, 0x87: // TUPLE, TUPLE1, TUPLE2, TUPLE3
			err = d.loadTuple(op)
		case ']': // EMPTY_LIST
			var n *node
			if n, err = d.newNode(kList, nil); err == nil {
				err = d.push(n)
			}
		case 'l': // LIST
			var items []any
			if items, err = d.popMark(); err != nil {
				break
			}
			var n *node
			if n, err = d.newNode(kList, items); err == nil {
				err = d.push(n)
			}
		case 'a', 'e': // APPEND, APPENDS
			err = d.loadAppend(op)
		case '}': // EMPTY_DICT
			var n *node
			if n, err = d.newNode(kDict, nil); err == nil {
				err = d.push(n)
			}
		case 'd': // DICT
			var items []any
			if items, err = d.popMark(); err != nil {
				break
			}
			var n *node
			if n, err = d.newNode(kDict, nil); err != nil {
				break
			}
			if err = d.setItems(n, items); err == nil {
				err = d.push(n)
			}
		case 's': // SETITEM
			var k, v, t any
			if v, err = d.pop(); err != nil {
				break
			}
			if k, err = d.pop(); err != nil {
				break
			}
			if t, err = d.top(); err != nil {
				break
			}
			n, ok := t.(*node)
			if !ok || n.kind != kDict {
				return nil, d.errf(ErrNotPickle, "SETITEM into a %s", pyType(t))
			}
			err = d.setItems(n, []any{k, v})
		case 'u': // SETITEMS
			var items []any
			if items, err = d.popMark(); err != nil {
				break
			}
			var t any
			if t, err = d.top(); err != nil {
				break
			}
			n, ok := t.(*node)
			if !ok || n.kind != kDict {
				return nil, d.errf(ErrNotPickle, "SETITEMS into a %s", pyType(t))
			}
			err = d.setItems(n, items)
		case 0x8f: // EMPTY_SET
			if err = d.charge(costMap); err == nil {
				err = d.push(Set{})
			}
		case 0x90: // ADDITEMS
			var items []any
			if items, err = d.popMark(); err != nil {
				break
			}
			var t any
			if t, err = d.top(); err != nil {
				break
			}
			s, ok := t.(Set)
			if !ok {
				return nil, d.errf(ErrNotPickle, "ADDITEMS into a %s", pyType(t))
			}
			err = d.addAll(s, items)
		case 0x91: // FROZENSET
			var items []any
			if items, err = d.popMark(); err != nil {
				break
			}
			s := make(FrozenSet, len(items))
			if err = d.charge(costMap); err != nil {
				break
			}
			if err = d.addAll(s, items); err == nil {
				err = d.push(s)
			}
		case 'p', 'q', 'r': // PUT, BINPUT, LONG_BINPUT
			var idx uint64
			if idx, err = d.memoIndex(op); err == nil {
				err = d.memoPut(idx)
			}
		case 0x94: // MEMOIZE
			err = d.memoPut(uint64(d.memoN))
		case 'g', 'h', 'j': // GET, BINGET, LONG_BINGET
			var idx uint64
			if idx, err = d.memoIndex(op); err == nil {
				err = d.memoGet(idx)
			}
		case 0x80: // PROTO
			var b []byte
			if b, err = d.need(1); err != nil {
				break
			}
			if b[0] > 5 {
				return nil, d.errf(ErrNotPickle, "protocol %d (5 is the highest)", b[0])
			}
			d.proto = int(b[0])
		case 0x95: // FRAME: a read-ahead hint, checked, as CPython does
			var b []byte
			if b, err = d.need(8); err == nil {
				_, err = d.need(binary.LittleEndian.Uint64(b))
				d.pos -= int(binary.LittleEndian.Uint64(b))
			}
		case 'c': // GLOBAL
			var mod, name []byte
			if mod, err = d.line(); err != nil {
				break
			}
			if name, err = d.line(); err != nil {
				break
			}
			var g global
			if g, err = d.global("GLOBAL", string(mod), string(name)); err == nil {
				err = d.push(g)
			}
		case 0x93: // STACK_GLOBAL
			var mod, name any
			if name, err = d.pop(); err != nil {
				break
			}
			if mod, err = d.pop(); err != nil {
				break
			}
			ms, ok1 := mod.(string)
			ns, ok2 := name.(string)
			if !ok1 || !ok2 {
				return nil, d.errf(ErrNotPickle, "STACK_GLOBAL of a %s and a %s (it needs two str)", pyType(mod), pyType(name))
			}
			var g global
			if g, err = d.global("STACK_GLOBAL", ms, ns); err == nil {
				err = d.push(g)
			}
		case 'R': // REDUCE
			err = d.reduce()
		default:
			if name, ok := refused[op]; ok {
				what := ""
				if op == 'i' { // INST names its class the way GLOBAL does
					if mod, err := d.line(); err == nil {
						if name, err := d.line(); err == nil {
							what = fmt.Sprintf(" (%q)", string(mod)+"."+string(name))
						}
					}
				}
				return nil, d.errf(ErrUnsafe, "opcode %s%s", name, what)
			}
			return nil, d.errf(ErrNotPickle, "unknown opcode %#x", op)
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: no STOP opcode", ErrNotPickle)
}

// refused names the opcodes that would make Python's unpickler build an
// object the stream names, or fetch one from outside the stream.
var refused = map[byte]string{
	'i': "INST", 'o': "OBJ", 'b': "BUILD", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX",
	'P': "PERSID", 'Q': "BINPERSID", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
	0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}

// size reads the length argument of op.
func (d *decoder) size(op byte) (uint64, error) {
	switch op {
	case 0x8c, 'C', 0x8a, 'U': // 1 byte, unsigned
		b, err := d.need(1)
		if err != nil {
			return 0, err
		}
		return uint64(b[0]), nil
	case 'X', 'B': // 4 bytes, unsigned
		b, err := d.need(4)
		if err != nil {
			return 0, err
		}
		return uint64(binary.LittleEndian.Uint32(b)), nil
	case 0x8b, 'T': // 4 bytes, signed
		b, err := d.need(4)
		if err != nil {
			return 0, err
		}
		n := int32(binary.LittleEndian.Uint32(b))
		if n < 0 {
			return 0, d.errf(ErrNotPickle, "negative byte count %d", n)
		}
		return uint64(n), nil
	}
	b, err := d.need(8) // BINUNICODE8, BINBYTES8, BYTEARRAY8
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (d *decoder) decimalIndex(b []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return 0, d.errf(ErrNotPickle, "memo index %q", b)
	}
	return n, nil
}

// global resolves a name a pickle gives against the allow-list.
func (d *decoder) global(op, mod, name string) (global, error) {
	ok := mod == "builtins" || mod == "__builtin__" && d.proto < 3 // Python maps __builtin__ only below protocol 3
	if ok {
		switch name {
		case "set":
			return gSet, nil
		case "frozenset":
			return gFrozenSet, nil
		case "bytearray":
			return gBytearray, nil
		case "bytes":
			return gBytes, nil
		}
	}
	if mod == "_codecs" && name == "encode" {
		return gEncode, nil
	}
	return 0, d.errf(ErrUnsafe, "opcode %s (%q)", op, mod+"."+name)
}

// reduce calls one of the allowed callables, as Python writes the values
// it has no opcode for (below protocol 4, 5): set(list), frozenset(list),
// bytearray(bytes), bytes(), _codecs.encode(str, "latin1").
func (d *decoder) reduce() error {
	args, err := d.pop()
	if err != nil {
		return err
	}
	f, err := d.pop()
	if err != nil {
		return err
	}
	g, ok := f.(global)
	if !ok {
		return d.errf(ErrUnsafe, "REDUCE calls a %s", pyType(f))
	}
	var a []any
	switch x := args.(type) {
	case Tuple:
		a = x
	case *node:
		if x.kind != kTuple {
			return d.errf(ErrNotPickle, "REDUCE with arguments in a %s", pyType(args))
		}
		a = x.items
	default:
		return d.errf(ErrNotPickle, "REDUCE with arguments in a %s", pyType(args))
	}
	bad := func() error {
		types := ""
		for i, v := range a {
			if i > 0 {
				types += ", "
			}
			types += pyType(v)
		}
		return d.errf(ErrUnsafe, "a call of %v(%s)", g, types)
	}
	switch g {
	case gSet, gFrozenSet:
		var items []any
		switch {
		case len(a) == 0:
		case len(a) == 1:
			switch it := a[0].(type) {
			case *node:
				if it.kind == kDict {
					return bad()
				}
				items = it.items
			case Tuple:
				items = it
			default:
				return bad()
			}
		default:
			return bad()
		}
		if err := d.charge(costMap); err != nil {
			return err
		}
		if g == gSet {
			s := make(Set, len(items))
			if err := d.addAll(s, items); err != nil {
				return err
			}
			return d.push(s)
		}
		s := make(FrozenSet, len(items))
		if err := d.addAll(s, items); err != nil {
			return err
		}
		return d.push(s)
	case gBytearray, gBytes:
		var b []byte
		switch {
		case len(a) == 0:
		case len(a) == 1 && g == gBytearray:
			src, ok := a[0].([]byte)
			if !ok {
				return bad()
			}
			b = src
		default:
			return bad()
		}
		if err := d.charge(int64(len(b))); err != nil {
			return err
		}
		return d.push(append([]byte{}, b...))
	case gEncode:
		if len(a) != 2 {
			return bad()
		}
		s, ok1 := a[0].(string)
		enc, ok2 := a[1].(string)
		if !ok1 || !ok2 || (enc != "latin1" && enc != "latin-1") {
			return bad()
		}
		if err := d.charge(int64(len(s))); err != nil {
			return err
		}
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 0xff {
				return d.errf(ErrNotPickle, "_codecs.encode(latin1) of a str with U+%04X", r)
			}
			b = append(b, byte(r))
		}
		return d.push(b)
	}
	return bad()
}

func (d *decoder) addAll(s map[any]struct{}, items []any) error {
	for _, v := range items {
		k, err := d.keyOf(v)
		if err != nil {
			return err
		}
		s[k] = struct{}{}
	}
	return nil
}

func (d *decoder) setItems(n *node, items []any) error {
	if len(items)%2 != 0 {
		return d.errf(ErrNotPickle, "an odd number of items for a dict")
	}
	if n.m == nil {
		n.m = make(map[any]any, len(items)/2) // made at the first items, sized for them
	}
	for i := 0; i < len(items); i += 2 {
		k, err := d.keyOf(items[i])
		if err != nil {
			return err
		}
		if err := d.adopt(n, items[i+1]); err != nil {
			return err
		}
		n.m[k] = items[i+1]
	}
	return nil
}

func (d *decoder) loadTuple(op byte) error {
	var items []any
	if op == 't' {
		var err error
		if items, err = d.popMark(); err != nil {
			return err
		}
	} else {
		k := int(op - 0x84)
		if len(d.stack)-k < d.fence() {
			return d.errf(ErrNotPickle, "stack underflow")
		}
		items = d.stack[len(d.stack)-k:]
		d.stack = d.stack[:len(d.stack)-k]
	}
	t, err := d.tuple(items)
	if err != nil {
		return err
	}
	return d.push(t)
}

func (d *decoder) loadAppend(op byte) error {
	var items []any
	if op == 'a' {
		v, err := d.pop()
		if err != nil {
			return err
		}
		var one [1]any
		one[0] = v
		items = one[:]
	} else {
		var err error
		if items, err = d.popMark(); err != nil {
			return err
		}
	}
	t, err := d.top()
	if err != nil {
		return err
	}
	n, ok := t.(*node)
	if !ok || n.kind != kList {
		return d.errf(ErrNotPickle, "APPEND to a %s", pyType(t))
	}
	if err := d.charge(costSlot * int64(len(items))); err != nil {
		return err
	}
	for _, v := range items {
		if err := d.adopt(n, v); err != nil {
			return err
		}
	}
	n.items = append(n.items, items...)
	return nil
}

// decodeLong decodes LONG1/LONG4's payload: little-endian two's
// complement, of any length.
func decodeLong(b []byte) any {
	if len(b) <= 8 {
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		if len(b) > 0 && len(b) < 8 && b[len(b)-1]&0x80 != 0 {
			u |= ^uint64(0) << (8 * len(b)) // sign-extend
		}
		return int64(u)
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	x := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return normInt(x)
}

func normInt(x *big.Int) any {
	if x.IsInt64() {
		return x.Int64()
	}
	return x
}

// decimal parses a protocol-0 int: an optional sign and decimal digits, at
// most maxDigits of them.
func (d *decoder) decimal(s []byte) (any, error) {
	digits := s
	if len(digits) > 0 && (digits[0] == '-' || digits[0] == '+') {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return nil, d.errf(ErrNotPickle, "an int of no digits")
	}
	if len(digits) > d.maxDigits {
		return nil, d.errf(ErrLimit, "an int of %d decimal digits (Python reads at most %d)", len(digits), d.maxDigits)
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, d.errf(ErrNotPickle, "an int %.40q", s)
		}
	}
	if digits[0] == '0' && len(digits) > 1 {
		allZero := true
		for _, c := range digits {
			allZero = allZero && c == '0'
		}
		if !allZero {
			return nil, d.errf(ErrNotPickle, "an int with leading zeros %.40q", s)
		}
	}
	if len(digits) <= 18 {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return nil, d.errf(ErrNotPickle, "an int %.40q", s)
		}
		return n, nil
	}
	if err := d.charge(int64(len(s))); err != nil {
		return nil, err
	}
	x, ok := new(big.Int).SetString(string(s), 10)
	if !ok {
		return nil, d.errf(ErrNotPickle, "an int %.40q", s)
	}
	return normInt(x), nil
}

func (d *decoder) loadInt() error {
	b, err := d.line()
	if err != nil {
		return err
	}
	switch string(b) {
	case "00":
		return d.push(false)
	case "01":
		return d.push(true)
	}
	v, err := d.decimal(b)
	if err != nil {
		return err
	}
	return d.push(v)
}

func (d *decoder) loadLong() error {
	b, err := d.line()
	if err != nil {
		return err
	}
	if len(b) > 0 && b[len(b)-1] == 'L' {
		b = b[:len(b)-1]
	}
	v, err := d.decimal(b)
	if err != nil {
		return err
	}
	return d.push(v)
}

func (d *decoder) loadFloat() error {
	b, err := d.line()
	if err != nil {
		return err
	}
	for _, c := range b {
		if c == 'x' || c == 'X' || c == '_' || c == 'p' || c == 'P' { // Go's hex floats, separators
			return d.errf(ErrNotPickle, "a float %.40q", b)
		}
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
			return d.errf(ErrNotPickle, "a float %.40q", b)
		}
	}
	return d.push(f)
}

// loadUnicode decodes protocol 0's UNICODE: raw-unicode-escape, where only
// \uXXXX and \UXXXXXXXX are escapes (after an odd run of backslashes) and
// every other byte is a Latin-1 code point.
func (d *decoder) loadUnicode() error {
	b, err := d.line()
	if err != nil {
		return err
	}
	if err := d.charge(int64(2 * len(b))); err != nil {
		return err
	}
	out := make([]byte, 0, len(b)+len(b)/4)
	for i := 0; i < len(b); {
		c := b[i]
		if c != '\\' {
			out = utf8.AppendRune(out, rune(c))
			i++
			continue
		}
		// A run of backslashes: an escape follows only an odd run.
		j := i
		for j < len(b) && b[j] == '\\' {
			j++
		}
		run := j - i
		if run%2 == 0 || j == len(b) || (b[j] != 'u' && b[j] != 'U') {
			out = append(out, b[i:j]...)
			i = j
			continue
		}
		out = append(out, b[i:j-1]...) // the even part stays
		n := 4
		if b[j] == 'U' {
			n = 8
		}
		if j+1+n > len(b) {
			return d.errf(ErrNotPickle, "a truncated \\%c escape in a str", b[j])
		}
		cp, err := strconv.ParseUint(string(b[j+1:j+1+n]), 16, 32)
		if err != nil || cp > 0x10ffff {
			return d.errf(ErrNotPickle, "a bad \\%c escape in a str", b[j])
		}
		out = appendCodePoint(out, rune(cp))
		i = j + 1 + n
	}
	return d.push(string(out))
}

// appendCodePoint appends r's UTF-8 encoding, a surrogate's as Python's
// "surrogatepass" writes it.
func appendCodePoint(b []byte, r rune) []byte {
	if r >= 0xd800 && r <= 0xdfff {
		return append(b, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
	}
	return utf8.AppendRune(b, r)
}

// validSurrogatePass reports whether b is UTF-8 in which surrogates
// (U+D800–U+DFFF, each on its own 3 bytes) are allowed: what Python's
// "utf-8"/"surrogatepass" decodes.
func validSurrogatePass(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		if b[i] == 0xed && i+2 < len(b) && b[i+1] >= 0xa0 && b[i+1] <= 0xbf && b[i+2]&0xc0 == 0x80 {
			i += 3
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		i += n
	}
	return true
}

// loadString decodes Python 2's str opcodes as Python 3 does by default:
// as ASCII text (a non-ASCII byte is an error there too).
func (d *decoder) loadString(op byte) error {
	var b []byte
	var err error
	if op == 'S' {
		if b, err = d.line(); err != nil {
			return err
		}
		if len(b) < 2 || b[0] != b[len(b)-1] || (b[0] != '\'' && b[0] != '"') {
			return d.errf(ErrNotPickle, "the STRING opcode argument must be quoted")
		}
		if b, err = d.escapeDecode(b[1 : len(b)-1]); err != nil {
			return err
		}
	} else {
		n, err := d.size(op)
		if err != nil {
			return err
		}
		if b, err = d.need(n); err != nil {
			return err
		}
	}
	for _, c := range b {
		if c >= 0x80 {
			return d.errf(ErrNotPickle, "a Python 2 str that is not ASCII")
		}
	}
	if err := d.charge(int64(len(b))); err != nil {
		return err
	}
	return d.push(string(b))
}

// escapeDecode is Python's codecs.escape_decode, for STRING.
func (d *decoder) escapeDecode(b []byte) ([]byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 == len(b) {
			out = append(out, c)
			continue
		}
		i++
		switch e := b[i]; e {
		case '\n':
		case '\\', '\'', '"':
			out = append(out, e)
		case 'a':
			out = append(out, 7)
		case 'b':
			out = append(out, 8)
		case 'f':
			out = append(out, 12)
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'v':
			out = append(out, 11)
		case 'x':
			if i+2 >= len(b) {
				return nil, d.errf(ErrNotPickle, "an invalid \\x escape")
			}
			v, err := strconv.ParseUint(string(b[i+1:i+3]), 16, 8)
			if err != nil {
				return nil, d.errf(ErrNotPickle, "an invalid \\x escape")
			}
			out = append(out, byte(v))
			i += 2
		default:
			if e >= '0' && e <= '7' {
				v := int(e - '0')
				for k := 0; k < 2 && i+1 < len(b) && b[i+1] >= '0' && b[i+1] <= '7'; k++ {
					i++
					v = v*8 + int(b[i]-'0')
				}
				out = append(out, byte(v))
			} else {
				out = append(out, '\\', e)
			}
		}
	}
	return out, nil
}

// finish makes the final values of the nodes root reaches, depth first
// with a stack of its own (no recursion), each node once: a shared node
// gets one final value that every reference holds. A node met again on
// the path to itself is a cycle: refused. The nesting is measured exactly
// here, whatever order the pickle filled its containers in.
func (d *decoder) finish(root any) (any, error) {
	switch x := root.(type) {
	case global:
		return nil, fmt.Errorf("%w: the pickle is the callable %v itself", ErrUnsupported, x)
	case *node:
	default:
		return root, nil
	}
	type pend struct {
		k any
		n *node
	}
	type frame struct {
		n    *node
		i    int
		deep int32
		dict []pend // a dict's values that are nodes
	}
	var buf [16]frame
	path := append(buf[:0], frame{n: root.(*node)})
	start := func(f *frame) {
		f.n.state = stOpen
		// What construction saw is a lower bound of the depth (children
		// only grow); the children that are nodes are measured below.
		f.deep = f.n.depth - 1
		if f.n.kind == kDict && f.n.hasNode {
			for k, v := range f.n.m {
				if c, ok := v.(*node); ok {
					f.dict = append(f.dict, pend{k, c})
				}
			}
		}
	}
	start(&path[0])
	for len(path) > 0 {
		f := &path[len(path)-1]
		n := f.n
		var next *node
		if n.hasNode {
			if n.kind == kDict {
				for f.i < len(f.dict) {
					c := f.dict[f.i].n
					if c.state != stDone {
						next = c
						break
					}
					n.m[f.dict[f.i].k] = c.out
					f.deep = max(f.deep, c.depth)
					f.i++
				}
			} else {
				for ; f.i < len(n.items); f.i++ {
					c, ok := n.items[f.i].(*node)
					if !ok {
						continue
					}
					if c.state != stDone {
						next = c
						break
					}
					n.items[f.i] = c.out
					f.deep = max(f.deep, c.depth)
				}
			}
		}
		if next != nil {
			if next.state == stOpen {
				return nil, fmt.Errorf("%w: a recursive structure (a %s that contains itself)", ErrUnsupported, pyType(next))
			}
			if len(path) >= d.maxDepth {
				return nil, fmt.Errorf("%w: nested deeper than %d", ErrLimit, d.maxDepth)
			}
			path = append(path, frame{n: next})
			start(&path[len(path)-1])
			continue
		}
		n.depth = f.deep + 1
		if int(n.depth) > d.maxDepth {
			return nil, fmt.Errorf("%w: nested deeper than %d", ErrLimit, d.maxDepth)
		}
		switch n.kind {
		case kList:
			if n.items == nil {
				n.items = []any{}
			}
			n.out = d.listAny(n.items)
		case kTuple:
			n.out = d.tupleAny(n.items)
		case kDict:
			if n.m == nil {
				n.m = map[any]any{}
			}
			n.out = n.m
		}
		n.state = stDone
		path = path[:len(path)-1]
	}
	return root.(*node).out, nil
}
