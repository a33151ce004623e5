//go:build linux && (amd64 || arm64)

package multiproc

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/multiproc-go/multiproc/internal/handle"
)

// ShareableList is Python's multiprocessing.shared_memory.ShareableList:
// a fixed-length list of nil, bool, int64, float64, string and []byte
// values in a SharedMemory block, in CPython's exact layout, so a Go
// process and a python3 process each create or open one by name and read
// and write the other's items.
//
// The layout written is that of Python 3.9 and later (3.9 to 3.13 share
// it). A list that Python 3.8 created (its header holds item sizes, not
// offsets) is read and written too; 3.8 itself cannot open a list made by
// 3.9 or later, nor by this package.
//
// The rules are Python's: every item has a slot fixed at creation (8
// bytes for a number, bool or nil; for a string or bytes, its length
// rounded up to the next multiple of 8 past it, so there is always room
// for a NUL); Set may put any type into any slot, but a string or []byte
// longer than its slot is an error and leaves the slot as it was. As in
// Python, trailing NUL bytes of a string or []byte are lost (gh-96779).
// Unlike Python, which sizes a string's slot by its characters (and
// silently truncates a non-ASCII one), NewShareableList sizes it by its
// UTF-8 bytes.
//
// The block is untrusted: its header is checked in full when the list is
// opened, and each item's format and code when it is read, so a corrupt
// list (a buggy or hostile process) is an error matching ErrCorrupt,
// never a crash or a read out of range. Python takes no lock around an
// item, and neither does another process: a Get racing a Set elsewhere
// may see a mix of old and new; within this process the methods are safe
// for concurrent use.
//
// It travels to children and pool tasks as SharedMemory does; Close,
// Unlink and the resource tracker's ways are SharedMemory's.
type ShareableList struct {
	noCopy noCopy
	mu     sync.Mutex
	shm    *SharedMemory
	mem    []byte // nil once closed
	lay    slLayout
}

// slLayout is where a list's regions lie, from its header.
type slLayout struct {
	n         int
	dataStart int
	offs      []int // n+1 offsets from dataStart: slot i is [offs[i], offs[i+1])
	fmtStart  int
	codeStart int
	v38       bool
}

// Item codes (Python's back-transforms) and formats.
const (
	slCodePlain = 0 // int, float, bool
	slCodeStr   = 1
	slCodeBytes = 2
	slCodeNone  = 3

	slFmtBool = "xxxxxxx?"
	slFmtNone = "xxxxxx?x"
	slMaxSlot = 9999999 // "%ds" must fit the 8-byte format field
)

// parseShareableList reads and checks the header of a list in b: every
// count and offset is bounded by len(b) before it is used.
func parseShareableList(b []byte) (slLayout, error) {
	var l slLayout
	size := uint64(len(b))
	if size < 8 {
		return l, errorf("%w: ShareableList block of %d bytes has no header", ErrCorrupt, size)
	}
	n := binary.LittleEndian.Uint64(b)
	if n > size/8 { // every item takes at least 9 bytes
		return l, errorf("%w: ShareableList header says %d items in %d bytes", ErrCorrupt, int64(n), size)
	}
	if n > 0 && size < 16 {
		return l, errorf("%w: ShareableList header runs past its %d-byte block", ErrCorrupt, size)
	}
	// 3.9+: n+1 offsets, the first 0. 3.8: n sizes, each at least 8.
	l.v38 = n == 0 && size < 16 || n > 0 && binary.LittleEndian.Uint64(b[8:]) != 0
	hdr := (n + 2) * 8
	if l.v38 {
		hdr = (n + 1) * 8
	}
	if hdr > size {
		return l, errorf("%w: ShareableList header runs past its %d-byte block", ErrCorrupt, size)
	}
	l.n = int(n)
	l.offs = make([]int, n+1)
	var off uint64
	for i := range n + 1 {
		var o uint64
		if l.v38 {
			if i > 0 {
				sz := binary.LittleEndian.Uint64(b[8*i:])
				if sz > size {
					return l, errorf("%w: ShareableList item %d size %d", ErrCorrupt, i-1, int64(sz))
				}
				off += sz
			}
			o = off
		} else {
			o = binary.LittleEndian.Uint64(b[8+8*i:])
			if i == 0 && o != 0 || i > 0 && o < uint64(l.offs[i-1]) {
				return l, errorf("%w: ShareableList offset %d out of order", ErrCorrupt, i)
			}
		}
		if o > size {
			return l, errorf("%w: ShareableList offset %d past the block", ErrCorrupt, i)
		}
		l.offs[i] = int(o)
	}
	end := hdr + uint64(l.offs[n]) + 9*n
	if end > size {
		return l, errorf("%w: ShareableList of %d items needs %d bytes, block has %d", ErrCorrupt, n, end, size)
	}
	l.dataStart = int(hdr)
	l.fmtStart = l.dataStart + l.offs[n]
	l.codeStart = l.fmtStart + 8*l.n
	return l, nil
}

// slot returns item i's slot; i is in range.
func (l *slLayout) slot(b []byte, i int) []byte {
	lo, hi := l.dataStart+l.offs[i], l.dataStart+l.offs[i+1]
	return b[lo:hi:hi]
}

// format returns item i's format without its NUL padding.
func (l *slLayout) format(b []byte, i int) []byte {
	f := b[l.fmtStart+8*i : l.fmtStart+8*i+8]
	return bytes.TrimRight(f, "\x00")
}

// strLen parses a "<n>s" format: n, or -1.
func strLen(f []byte) int {
	if len(f) < 2 || f[len(f)-1] != 's' {
		return -1
	}
	n, err := strconv.Atoi(string(f[:len(f)-1]))
	if err != nil || n < 0 || f[0] == '+' || f[0] == '-' {
		return -1
	}
	return n
}

// slGet reads item i of the list in b.
func slGet(b []byte, l *slLayout, i int) (any, error) {
	if i < 0 || i >= l.n {
		return nil, errorf("ShareableList index %d out of range [0:%d]", i, l.n)
	}
	f := l.format(b, i)
	slot := l.slot(b, i)
	code := int8(b[l.codeStart+i])
	bad := func(why string) error {
		return errorf("%w: ShareableList item %d: %s (format %q, code %d)", ErrCorrupt, i, why, f, code)
	}
	switch code {
	case slCodeNone:
		return nil, nil
	case slCodePlain:
		if len(slot) < 8 {
			return nil, bad("slot shorter than 8 bytes")
		}
		switch {
		case string(f) == "q":
			return int64(binary.LittleEndian.Uint64(slot)), nil
		case string(f) == "d":
			return math.Float64frombits(binary.LittleEndian.Uint64(slot)), nil
		case len(f) == 8 && bytes.Count(f, []byte("?")) == 1 && bytes.Count(f, []byte("x")) == 7:
			return slot[bytes.IndexByte(f, '?')] != 0, nil
		}
		return nil, bad("unknown format")
	case slCodeStr, slCodeBytes:
		n := strLen(f)
		if n < 0 || n > len(slot) {
			return nil, bad("string format does not fit its slot")
		}
		v := bytes.TrimRight(slot[:n], "\x00")
		if code == slCodeBytes {
			return bytes.Clone(v), nil
		}
		if !utf8.Valid(v) {
			return nil, errorf("ShareableList item %d: not valid UTF-8 (Python's UnicodeDecodeError)", i)
		}
		return string(v), nil
	}
	return nil, bad("unknown code")
}

// slEncode is how v is stored: its format, code, and bytes (str/bytes) or
// 8-byte word.
func slEncode(v any) (fmtStr string, code int8, word uint64, data []byte, isStr bool, err error) {
	switch x := v.(type) {
	case nil:
		return slFmtNone, slCodeNone, 0, nil, false, nil
	case bool:
		var w uint64
		if x {
			w = 1 << 56
		}
		return slFmtBool, slCodePlain, w, nil, false, nil
	case int:
		return "q", slCodePlain, uint64(x), nil, false, nil
	case int64:
		return "q", slCodePlain, uint64(x), nil, false, nil
	case int32:
		return "q", slCodePlain, uint64(int64(x)), nil, false, nil
	case int16:
		return "q", slCodePlain, uint64(int64(x)), nil, false, nil
	case int8:
		return "q", slCodePlain, uint64(int64(x)), nil, false, nil
	case uint8:
		return "q", slCodePlain, uint64(x), nil, false, nil
	case uint16:
		return "q", slCodePlain, uint64(x), nil, false, nil
	case uint32:
		return "q", slCodePlain, uint64(x), nil, false, nil
	case uint:
		return slUint(uint64(x))
	case uint64:
		return slUint(x)
	case float64:
		return "d", slCodePlain, math.Float64bits(x), nil, false, nil
	case float32:
		return "d", slCodePlain, math.Float64bits(float64(x)), nil, false, nil
	case string:
		return "", slCodeStr, 0, []byte(x), true, nil
	case []byte:
		return "", slCodeBytes, 0, x, true, nil
	}
	return "", 0, 0, nil, false, errorf("ShareableList cannot hold a %T: only nil, bool, integers, float64, string and []byte", v)
}

func slUint(w uint64) (string, int8, uint64, []byte, bool, error) {
	if w > math.MaxInt64 {
		return "", 0, 0, nil, false, errorf("ShareableList: %d does not fit an int64 (Python's struct.error)", w)
	}
	return "q", slCodePlain, w, nil, false, nil
}

// slSet writes v into item i of the list in b, or leaves it as it was
// and returns an error.
func slSet(b []byte, l *slLayout, i int, v any) error {
	if i < 0 || i >= l.n {
		return errorf("ShareableList index %d out of range [0:%d]", i, l.n)
	}
	f, code, w, data, isStr, err := slEncode(v)
	if err != nil {
		return err
	}
	slot := l.slot(b, i)
	if isStr {
		if len(data) > len(slot) {
			return errorf("ShareableList item %d: %d bytes exceed the slot's %d (Python's ValueError: bytes/str item exceeds available storage)", i, len(data), len(slot))
		}
		n := strLen(l.format(b, i))
		if n < len(data) || n > len(slot) {
			n = len(slot)
		}
		f = strconv.Itoa(n) + "s"
		if len(f) > 8 {
			return errorf("%w: ShareableList item %d: slot of %d bytes", ErrCorrupt, i, n)
		}
		slot = slot[:n]
	} else if len(slot) < 8 {
		return errorf("%w: ShareableList item %d: slot shorter than 8 bytes", ErrCorrupt, i)
	}
	// Python's order: format and code, then the value.
	fb := b[l.fmtStart+8*i : l.fmtStart+8*i+8]
	clear(fb)
	copy(fb, f)
	b[l.codeStart+i] = byte(code)
	if isStr {
		clear(slot[copy(slot, data):])
	} else {
		binary.LittleEndian.PutUint64(slot, w)
	}
	return nil
}

// NewShareableList creates a list holding items in a new SharedMemory
// block called name ("" picks one, as Python does), as Python's
// ShareableList(items, name=name). Each item is nil, a bool, an integer
// that fits an int64, a float64 (or float32), a string or a []byte; a
// string or []byte may be up to 9,999,991 bytes (Python's limit). Nothing
// is created if an item is refused.
func NewShareableList(name string, items []any) (*ShareableList, error) {
	if err := checkCreate("NewShareableList"); err != nil {
		return nil, err
	}
	n := len(items)
	offs := make([]int, n+1)
	for i, it := range items {
		_, _, _, data, isStr, err := slEncode(it)
		if err != nil {
			return nil, errorf("NewShareableList item %d: %w", i, err)
		}
		sz := 8
		if isStr {
			sz = 8 * (len(data)/8 + 1)
			if sz > slMaxSlot {
				return nil, errorf("NewShareableList item %d: %d bytes exceed Python's limit of 9999991", i, len(data))
			}
		}
		offs[i+1] = offs[i] + sz
	}
	size := 8 + (n+1)*8 + offs[n] + 9*n
	m, err := CreateSharedMemory(name, size)
	if err != nil {
		return nil, err
	}
	b := m.ref.seg.Bytes()
	binary.LittleEndian.PutUint64(b, uint64(n))
	for i, o := range offs {
		binary.LittleEndian.PutUint64(b[8+8*i:], uint64(o))
	}
	lay, err := parseShareableList(b)
	if err != nil { // cannot happen: it is what was just written
		m.Close()
		m.Unlink()
		return nil, err
	}
	for i, it := range items {
		if err := slSet(b, &lay, i, it); err != nil {
			m.Close()
			m.Unlink()
			return nil, err
		}
	}
	return newShareableList(m, lay), nil
}

// OpenShareableList opens the list in the existing block called name, as
// Python's ShareableList(name=name). A block whose header is not a list's
// is an error matching ErrCorrupt.
func OpenShareableList(name string) (*ShareableList, error) {
	m, err := OpenSharedMemory(name)
	if err != nil {
		return nil, err
	}
	lay, err := parseShareableList(m.ref.seg.Bytes())
	if err != nil {
		m.Close()
		return nil, errorf("OpenShareableList %q: %w", name, err)
	}
	return newShareableList(m, lay), nil
}

func newShareableList(m *SharedMemory, lay slLayout) *ShareableList {
	return &ShareableList{shm: m, mem: m.ref.seg.Bytes(), lay: lay}
}

// Name returns the block's name, as SharedMemory's Name.
func (l *ShareableList) Name() string {
	if l.shm == nil {
		return ""
	}
	return l.shm.Name()
}

// Len returns the number of items, fixed at creation.
func (l *ShareableList) Len() int { return l.lay.n }

func (l *ShareableList) use() ([]byte, error) {
	if l.shm == nil {
		return nil, kShareableList.zero
	}
	if l.mem == nil {
		return nil, kShareableList.closed
	}
	return l.mem, nil
}

var kShareableList = newKind("ShareableList", "NewShareableList or OpenShareableList")

// Get returns item i: nil, a bool, an int64, a float64, a string or a
// []byte (a copy). An index out of range, a corrupt item, or a string
// that is not valid UTF-8 (Python's UnicodeDecodeError) is an error.
func (l *ShareableList) Get(i int) (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := l.use()
	if err != nil {
		return nil, err
	}
	return slGet(b, &l.lay, i)
}

// Set stores v as item i: nil, a bool, an integer that fits an int64 (a Go
// int is one), a float64 (or float32), a string or a []byte. A string or
// []byte longer than the slot, or a value of another type, is an error and
// leaves the item as it was.
func (l *ShareableList) Set(i int, v any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := l.use()
	if err != nil {
		return err
	}
	return slSet(b, &l.lay, i, v)
}

// Close unmaps the list's block in this process, as SharedMemory's Close;
// later Gets and Sets fail with an error matching ErrClosed. Closing again
// does nothing.
func (l *ShareableList) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shm == nil {
		return kShareableList.zero
	}
	l.mem = nil
	return l.shm.Close()
}

// Unlink removes the block's name, as SharedMemory's Unlink.
func (l *ShareableList) Unlink() error {
	if l.shm == nil {
		return kShareableList.zero
	}
	return l.shm.Unlink()
}

// exportHandle is how a ShareableList travels to another process; called by the package.
func (l *ShareableList) exportHandle() (handle.Desc, error) {
	if l.shm == nil {
		return handle.Desc{}, kShareableList.zero
	}
	d, err := l.shm.exportHandle()
	d.Kind = "ShareableList"
	return d, err
}

// importHandle makes l the ShareableList described by d; called by the package.
func (l *ShareableList) importHandle(d handle.Desc) error {
	if d.Kind != "ShareableList" {
		handleCloseFds(d)
		return errorf("a shared %s arrived where a ShareableList was expected", d.Kind)
	}
	d.Kind = "SharedMemory"
	m := &SharedMemory{}
	if err := m.importHandle(d); err != nil {
		return err
	}
	lay, err := parseShareableList(m.ref.seg.Bytes())
	if err != nil {
		m.Close()
		return errorf("receiving a ShareableList: %w", err)
	}
	l.shm, l.mem, l.lay = m, m.ref.seg.Bytes(), lay
	return nil
}
