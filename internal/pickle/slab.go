package pickle

import "unsafe"

// slabs box the small values a decode makes in batches: an interface
// holding a string, int64 or float64 needs its value on the heap, and
// Go's boxing makes one allocation for each (two for a string: its
// header and its bytes). A slab holds 32 values, a text arena 4 KiB of
// the bytes of short strings and bytes objects; each value boxed is never
// written again, as the runtime expects of an interface's value. What a
// slab keeps alive for a value the caller keeps is at most its 4 KiB.
type slabs struct {
	strs   []string
	ints   []int64
	floats []float64
	text   []byte
	tuples []Tuple
	lists  [][]any
	bytesH [][]byte
	left   int // bytes of the pickle not yet read: no arena is larger
}

const (
	slabLen = 32
	textLen = 4 << 10
	textMax = 128 // longer strings and bytes get their own allocation
)

type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

func typeOf(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

var (
	stringType = typeOf("")
	int64Type  = typeOf(int64(0))
	floatType  = typeOf(float64(0))
	tupleType  = typeOf(Tuple{})
	listType   = typeOf([]any{})
	bytesType  = typeOf([]byte{})
)

func box(typ, p unsafe.Pointer) any {
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, p
	return v
}

// copyText returns a copy of b, from the arena if it is short.
func (s *slabs) copyText(b []byte) []byte {
	if len(b) > textMax {
		return append([]byte(nil), b...)
	}
	if cap(s.text)-len(s.text) < len(b) {
		s.text = make([]byte, 0, min(textLen, s.left))
	}
	at := len(s.text)
	s.text = append(s.text, b...)
	return s.text[at:len(s.text):len(s.text)] // append to it reallocates: the arena is not shared
}

func (s *slabs) str(b []byte) any {
	if len(b) == 0 {
		return ""
	}
	t := s.copyText(b)
	if len(s.strs) == cap(s.strs) {
		s.strs = make([]string, 0, slabLen)
	}
	s.strs = append(s.strs, unsafe.String(unsafe.SliceData(t), len(t)))
	return box(stringType, unsafe.Pointer(&s.strs[len(s.strs)-1]))
}

// bytes returns a copy of b (a []byte is boxed with one allocation, its
// header, by Go; its data comes from the arena when short).
func (s *slabs) bytes(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	return s.copyText(b)
}

func (s *slabs) int(x int64) any {
	if x >= 0 && x < 256 {
		return x // Go boxes these without allocating
	}
	if len(s.ints) == cap(s.ints) {
		s.ints = make([]int64, 0, slabLen)
	}
	s.ints = append(s.ints, x)
	return box(int64Type, unsafe.Pointer(&s.ints[len(s.ints)-1]))
}

func (s *slabs) float(f float64) any {
	if len(s.floats) == cap(s.floats) {
		s.floats = make([]float64, 0, slabLen)
	}
	s.floats = append(s.floats, f)
	return box(floatType, unsafe.Pointer(&s.floats[len(s.floats)-1]))
}

// tupleAny, listAny and bytesAny box slice headers from slabs.
func (s *slabs) tupleAny(t Tuple) any {
	if len(s.tuples) == cap(s.tuples) {
		s.tuples = make([]Tuple, 0, slabLen)
	}
	s.tuples = append(s.tuples, t)
	return box(tupleType, unsafe.Pointer(&s.tuples[len(s.tuples)-1]))
}

func (s *slabs) listAny(l []any) any {
	if len(s.lists) == cap(s.lists) {
		s.lists = make([][]any, 0, slabLen)
	}
	s.lists = append(s.lists, l)
	return box(listType, unsafe.Pointer(&s.lists[len(s.lists)-1]))
}

func (s *slabs) bytesAny(b []byte) any {
	if len(s.bytesH) == cap(s.bytesH) {
		s.bytesH = make([][]byte, 0, slabLen)
	}
	s.bytesH = append(s.bytesH, b)
	return box(bytesType, unsafe.Pointer(&s.bytesH[len(s.bytesH)-1]))
}
