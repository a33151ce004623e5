package pickle

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
)

// Opcodes this package treats specially (names as in Python's pickletools).
const (
	opMark       = '('
	opStop       = '.'
	opEmptyList  = ']'
	opList       = 'l'
	opAppend     = 'a'
	opAppends    = 'e'
	opBinint1    = 'K'
	opBinpersid  = 'Q'
	opEmptySet   = 0x8f
	opAddItems   = 0x90
	opFrozenSet  = 0x91
	opFrame      = 0x95
	opMemoize    = 0x94
	opProto      = 0x80
	opPut        = 'p'
	opBinput     = 'q'
	opLongBinput = 'r'
	opGet        = 'g'
	opBinget     = 'h'
	opLongBinget = 'j'
)

// argument layouts of the opcodes a value pickle may hold
const (
	argNone  = iota
	argLine  // up to '\n'
	argFixed // n bytes
	argLen1  // 1-byte length, then data
	argLen4  // 4-byte little-endian length, then data
	argLen8  // 8-byte little-endian length, then data
)

type opInfo struct {
	name string
	arg  int
	n    int // argFixed: size
}

// allowed lists every opcode that builds plain data; anything else — an
// opcode that names a callable or class (GLOBAL, STACK_GLOBAL, INST), calls
// or builds one (REDUCE, BUILD, OBJ, NEWOBJ, NEWOBJ_EX), fetches an
// external object (PERSID, BINPERSID, EXT1/2/4, NEXT_BUFFER,
// READONLY_BUFFER) — is refused before decoding starts.
var allowed = [256]*opInfo{
	'(': {"MARK", argNone, 0}, '.': {"STOP", argNone, 0}, '0': {"POP", argNone, 0},
	'1': {"POP_MARK", argNone, 0}, 'N': {"NONE", argNone, 0},
	'a': {"APPEND", argNone, 0}, 'd': {"DICT", argNone, 0}, 'l': {"LIST", argNone, 0},
	's': {"SETITEM", argNone, 0}, 't': {"TUPLE", argNone, 0}, 'e': {"APPENDS", argNone, 0},
	']': {"EMPTY_LIST", argNone, 0}, ')': {"EMPTY_TUPLE", argNone, 0}, '}': {"EMPTY_DICT", argNone, 0},
	'u': {"SETITEMS", argNone, 0}, 0x85: {"TUPLE1", argNone, 0}, 0x86: {"TUPLE2", argNone, 0},
	0x87: {"TUPLE3", argNone, 0}, 0x88: {"NEWTRUE", argNone, 0}, 0x89: {"NEWFALSE", argNone, 0},
	0x8f: {"EMPTY_SET", argNone, 0}, 0x90: {"ADDITEMS", argNone, 0}, 0x91: {"FROZENSET", argNone, 0},
	0x94: {"MEMOIZE", argNone, 0},
	'F':  {"FLOAT", argLine, 0}, 'I': {"INT", argLine, 0}, 'L': {"LONG", argLine, 0},
	'S': {"STRING", argLine, 0}, 'V': {"UNICODE", argLine, 0}, 'g': {"GET", argLine, 0},
	'p': {"PUT", argLine, 0},
	'K': {"BININT1", argFixed, 1}, 'h': {"BINGET", argFixed, 1}, 'q': {"BINPUT", argFixed, 1},
	0x80: {"PROTO", argFixed, 1}, 'M': {"BININT2", argFixed, 2}, 'J': {"BININT", argFixed, 4},
	'j': {"LONG_BINGET", argFixed, 4}, 'r': {"LONG_BINPUT", argFixed, 4},
	'G': {"BINFLOAT", argFixed, 8}, 0x95: {"FRAME", argFixed, 8},
	'U': {"SHORT_BINSTRING", argLen1, 0}, 'C': {"SHORT_BINBYTES", argLen1, 0},
	0x8c: {"SHORT_BINUNICODE", argLen1, 0}, 0x8a: {"LONG1", argLen1, 0},
	'T': {"BINSTRING", argLen4, 0}, 'B': {"BINBYTES", argLen4, 0}, 'X': {"BINUNICODE", argLen4, 0},
	0x8b: {"LONG4", argLen4, 0},
	0x8d: {"BINUNICODE8", argLen8, 0}, 0x8e: {"BINBYTES8", argLen8, 0}, 0x96: {"BYTEARRAY8", argLen8, 0},
}

// refused names the opcodes that would make the unpickler import, call or
// fetch something the stream names: the error says which.
var refused = map[byte]string{
	'c': "GLOBAL", 0x93: "STACK_GLOBAL", 'i': "INST", 'R': "REDUCE", 'b': "BUILD",
	'o': "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 'P': "PERSID", 'Q': "BINPERSID",
	0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
	'2': "DUP",
}

// The byte sequences that stand in for the set opcodes in what og-rek
// decodes: a set becomes a list that starts with the set marker, a
// frozenset a list that ends with the frozenset marker (BINPERSID of 0 or
// 1, which only this package's PersistentLoad answers; the stream's own
// BINPERSID is refused above).
var (
	emptySetSub  = []byte{opEmptyList, opBinint1, 0, opBinpersid, opAppend}
	addItemsSub  = []byte{opAppends}
	frozenSetSub = []byte{opList, opBinint1, 1, opBinpersid, opAppend}
)

// scan checks that data is a pickle of plain data only and returns what
// og-rek should decode: data itself, or a copy with the set opcodes
// replaced (and FRAME opcodes, mere read hints, dropped). Every length in
// the stream is checked against what is left of it, so nothing the
// stream claims is allocated beyond its own size.
func scan(data []byte) ([]byte, error) {
	var out []byte // nil until a rewrite is needed
	copied := 0    // data[:copied] is in out
	rewrite := func(at, end int, sub []byte) {
		if out == nil {
			out = make([]byte, 0, len(data)+64)
		}
		out = append(out, data[copied:at]...)
		out = append(out, sub...)
		copied = end
	}
	// Memo slots that hold a list or set: og-rek keeps a copy of the
	// (then empty) list in its memo, so a second reference to one would
	// decode wrong. Python emits such references for a list that occurs
	// twice (or inside itself): refuse them instead.
	mutable := map[string]bool{}
	memoLen := 0 // og-rek's MEMOIZE index: the memo's size
	memoSeen := map[string]bool{}
	store := func(key string, prev byte) {
		if !memoSeen[key] {
			memoSeen[key] = true
			memoLen++
		}
		mutable[key] = prev == opEmptyList || prev == opList || prev == opEmptySet
	}
	var prev byte
	var strs [2]string // the last two strings pushed: a STACK_GLOBAL's names
	calls := 0         // set or frozenset globals not yet called by REDUCE
	for i := 0; i < len(data); {
		op := data[i]
		info := allowed[op]
		// The one exception to "no globals": builtins.set and
		// builtins.frozenset called on a list (REDUCE), how protocols 2
		// and 3 write a set (and how Marshal does, og-rek having no set
		// opcodes). Unmarshal checks the decoded call again.
		switch {
		case op == 'c' && isSetGlobal(named(data, i, op)):
			info = &opInfo{"GLOBAL", argLine, 0}
		case op == 0x93 && setNames(strs[0], strs[1]):
			info = &opInfo{"STACK_GLOBAL", argNone, 0}
			calls++
		case op == 'R' && calls > 0:
			info = &opInfo{"REDUCE", argNone, 0}
			calls--
		}
		if info == nil {
			if name, ok := refused[op]; ok {
				what := named(data, i, op)
				if op == 0x93 && strs[0] != "" {
					what = fmt.Sprintf(" (%q)", strs[0]+"."+strs[1])
				}
				return nil, fmt.Errorf("%w: opcode %s at offset %d%s", ErrUnsafe, name, i, what)
			}
			return nil, fmt.Errorf("%w: unknown opcode %#x at offset %d", ErrNotPickle, op, i)
		}
		argAt := i + 1
		end := argAt
		switch info.arg {
		case argLine:
			j := argAt
			if op == 'c' {
				calls++
				j = argAt + bytes.IndexByte(data[argAt:], '\n') + 1 // the module line; the name line follows
			}
			for j < len(data) && data[j] != '\n' {
				j++
			}
			if j == len(data) {
				return nil, fmt.Errorf("%w: %s at offset %d: argument runs past the end", ErrNotPickle, info.name, i)
			}
			end = j + 1
		case argFixed:
			end = argAt + info.n
		case argLen1, argLen4, argLen8:
			w := 1
			if info.arg == argLen4 {
				w = 4
			} else if info.arg == argLen8 {
				w = 8
			}
			if argAt+w > len(data) {
				return nil, fmt.Errorf("%w: %s at offset %d: truncated length", ErrNotPickle, info.name, i)
			}
			var n uint64
			switch w {
			case 1:
				n = uint64(data[argAt])
			case 4:
				n = uint64(binary.LittleEndian.Uint32(data[argAt:]))
				if (op == 'T' || op == 0x8b) && int32(n) < 0 {
					return nil, fmt.Errorf("%w: %s at offset %d: negative length", ErrNotPickle, info.name, i)
				}
			case 8:
				n = binary.LittleEndian.Uint64(data[argAt:])
			}
			if n > uint64(len(data)-argAt-w) {
				return nil, fmt.Errorf("%w: %s at offset %d claims %d bytes, %d are left", ErrNotPickle, info.name, i, n, len(data)-argAt-w)
			}
			end = argAt + w + int(n)
		}
		if end > len(data) {
			return nil, fmt.Errorf("%w: %s at offset %d: truncated", ErrNotPickle, info.name, i)
		}
		switch op {
		case opProto:
			if data[argAt] > 5 {
				return nil, fmt.Errorf("%w: protocol %d (5 is the highest)", ErrNotPickle, data[argAt])
			}
		case opMemoize:
			store(strconv.Itoa(memoLen), prev)
		case opPut:
			store(string(data[argAt:end-1]), prev)
		case opBinput:
			store(strconv.Itoa(int(data[argAt])), prev)
		case opLongBinput:
			store(strconv.Itoa(int(binary.LittleEndian.Uint32(data[argAt:]))), prev)
		case opGet, opBinget, opLongBinget:
			var key string
			switch op {
			case opGet:
				key = string(data[argAt : end-1])
			case opBinget:
				key = strconv.Itoa(int(data[argAt]))
			default:
				key = strconv.Itoa(int(binary.LittleEndian.Uint32(data[argAt:])))
			}
			if mutable[key] {
				return nil, fmt.Errorf("%w: a list or set that occurs more than once (or inside itself); send copies", ErrUnsupported)
			}
		case opEmptySet:
			rewrite(i, end, emptySetSub)
		case opAddItems:
			rewrite(i, end, addItemsSub)
		case opFrozenSet:
			rewrite(i, end, frozenSetSub)
		case opFrame:
			rewrite(i, end, nil)
		case 0x8c, 'X', 0x8d:
			if n := end - i; n < 200 {
				w := 2 // SHORT_BINUNICODE: opcode, 1-byte length
				if op == 'X' {
					w = 5
				} else if op == 0x8d {
					w = 9
				}
				strs[0], strs[1] = strs[1], string(data[i+w:end])
			}
		case opStop:
			if end != len(data) {
				return nil, fmt.Errorf("%w: %d bytes after STOP", ErrNotPickle, len(data)-end)
			}
			if out == nil {
				return data, nil
			}
			return append(out, data[copied:]...), nil
		}
		if op != opMemoize && op != opPut && op != opBinput && op != opLongBinput && op != opFrame {
			prev = op
		}
		i = end
	}
	return nil, fmt.Errorf("%w: no STOP opcode", ErrNotPickle)
}

// named returns, for a refused GLOBAL or INST, the name the stream gave:
// it makes the error say what the sender tried to construct.
func named(data []byte, i int, op byte) string {
	if op != 'c' && op != 'i' {
		return ""
	}
	rest := data[i+1:]
	var parts []string
	for range 2 {
		j := 0
		for j < len(rest) && j < 100 && rest[j] != '\n' {
			j++
		}
		if j == len(rest) || rest[j] != '\n' {
			break
		}
		parts = append(parts, string(rest[:j]))
		rest = rest[j+1:]
	}
	if len(parts) != 2 {
		return ""
	}
	return fmt.Sprintf(" (%q)", parts[0]+"."+parts[1])
}

// setNames reports whether module.name is Python's set or frozenset.
func setNames(module, name string) bool {
	return (module == "builtins" || module == "__builtin__") && (name == "set" || name == "frozenset")
}

// isSetGlobal reports whether named's text is a set or frozenset global.
func isSetGlobal(what string) bool {
	for _, m := range []string{"builtins", "__builtin__"} {
		for _, n := range []string{"set", "frozenset"} {
			if what == fmt.Sprintf(" (%q)", m+"."+n) {
				return true
			}
		}
	}
	return false
}
