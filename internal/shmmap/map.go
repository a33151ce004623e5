//go:build linux && (amd64 || arm64)

package shmmap

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/shm"
	"golang.org/x/sys/unix"
)

// Header offsets (see doc.go).
const (
	hdrSize  = 4096
	offLock  = 0
	offMagic = 64
	offRoot  = 72
	offDesc  = 128 // two descriptors of descSize bytes
	descSize = 64

	// descriptor fields, in words
	dBase   = 0
	dCapLog = 1
	dTop    = 2
	dEnd    = 3
	dCount  = 4
	dTombs  = 5

	magic = 0x3130746369647070 // "ppdict01", little-endian

	minCapLog = 4
	maxCapLog = 40
	minHeap   = 16 << 10
	maxArea   = 1 << 46
	recHdr    = 16
	slotEmpty = 0
	slotDel   = 1
	relMask   = 1<<48 - 1

	// punchMin: a retired area at least this large gives its pages back.
	punchMin = 256 << 10
)

var (
	// ErrCorrupt: the segment holds what no operation writes.
	ErrCorrupt = errors.New("shared dict memory is corrupt")
	// ErrClosed: the Map was closed in this process.
	ErrClosed = errors.New("use of closed shared dict")
	// ErrTooLarge: an entry or the whole table exceeds the limits.
	ErrTooLarge = errors.New("shared dict entry or table too large")
)

// Map is one process's handle on the table. Its methods are safe for
// concurrent use; they take the table's lock, so a goroutine of this
// process waits in the Go scheduler (mu) while another holds it.
type Map struct {
	mu     sync.Mutex // this process's goroutines, one at a time
	seg    *shm.Segment
	closed bool
	sess   session // the locked operation of this process (mu held)

	// Takeovers counts the times this process took the lock over from a
	// dead holder (and repaired the counters).
	Takeovers atomic.Int64
}

// Create makes an empty table in a new segment.
func Create() (*Map, error) {
	capLog := uint64(minCapLog)
	area := roundPage(8<<capLog + minHeap)
	seg, err := shm.Create("dict", int(hdrSize+area))
	if err != nil {
		return nil, err
	}
	mem := seg.Bytes()
	m := &Map{seg: seg}
	d := descAt(mem, 0)
	store(d, dBase, hdrSize)
	store(d, dCapLog, capLog)
	store(d, dTop, hdrSize+8<<capLog)
	store(d, dEnd, uint64(len(mem)))
	atomic.StoreUint64(word(mem, offRoot), 0)
	atomic.StoreUint64(word(mem, offMagic), magic)
	return m, nil
}

// Open takes fd, a segment that Create made (in any process), which the
// Map then owns.
func Open(fd int) (*Map, error) {
	seg, err := shm.Open(fd)
	if err != nil {
		return nil, err
	}
	if seg.Size() < hdrSize || atomic.LoadUint64(word(seg.Bytes(), offMagic)) != magic {
		seg.Close()
		return nil, fmt.Errorf("%w: not a shared dict segment", ErrCorrupt)
	}
	return &Map{seg: seg}, nil
}

// DupFd is a duplicate of the segment's descriptor (close-on-exec), which
// the caller owns, for passing the table to another process. It is made
// holding mu, so that a Close racing it cannot close the descriptor (whose
// number another file could then get) before it is duplicated.
func (m *Map) DupFd() (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return -1, ErrClosed
	}
	return unix.FcntlInt(uintptr(m.seg.Fd()), unix.F_DUPFD_CLOEXEC, 0)
}

// Close unmaps the table in this process. It is idempotent.
func (m *Map) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.seg.Close()
}

func word(mem []byte, off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&mem[off])) }

func descAt(mem []byte, i uint64) []byte {
	return mem[offDesc+i*descSize : offDesc+(i+1)*descSize : offDesc+(i+1)*descSize]
}

func load(d []byte, f int) uint64     { return atomic.LoadUint64((*uint64)(unsafe.Pointer(&d[f*8]))) }
func store(d []byte, f int, v uint64) { atomic.StoreUint64((*uint64)(unsafe.Pointer(&d[f*8])), v) }

func roundPage(n uint64) uint64 { p := uint64(shm.PageSize); return (n + p - 1) &^ (p - 1) }
func pad8(n uint64) uint64      { return (n + 7) &^ 7 }

// area is the live area, read and checked once the lock is held.
type area struct {
	mem      []byte
	root     uint64
	d        []byte // its descriptor
	base     uint64
	mask     uint64 // slots - 1
	tableEnd uint64
	top, end uint64
}

func (a *area) slot(i uint64) *uint64 { return word(a.mem, a.base+8*i) }

// session is one locked operation.
type session struct {
	m *Map
	a area
}

// lock takes the table's lock and checks (and maps) the live area.
func (m *Map) lock() (*session, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	mu := futex.Mutex{W: (*uint32)(unsafe.Pointer(&m.seg.Bytes()[offLock]))}
	recovered, _ := mu.LockContext(context.Background())
	s := &m.sess
	*s = session{m: m}
	if err := s.load(); err != nil {
		s.unlock()
		return nil, err
	}
	if recovered {
		m.Takeovers.Add(1)
		if err := s.repair(); err != nil {
			s.unlock()
			return nil, err
		}
	}
	return s, nil
}

func (s *session) unlock() {
	(futex.Mutex{W: (*uint32)(unsafe.Pointer(&s.m.seg.Bytes()[offLock]))}).Unlock()
	s.m.mu.Unlock()
}

// load reads root and the live descriptor, remaps if the area ends past
// this process's mapping, and checks every field.
func (s *session) load() error {
	mem := s.m.seg.Bytes()
	root := atomic.LoadUint64(word(mem, offRoot))
	d := descAt(mem, root&1)
	base, capLog, top, end := load(d, dBase), load(d, dCapLog), load(d, dTop), load(d, dEnd)
	if base < hdrSize || base > 1<<47 || base%8 != 0 || capLog < minCapLog || capLog > maxCapLog ||
		end < base || end-base > maxArea {
		return fmt.Errorf("%w: bad area descriptor", ErrCorrupt)
	}
	if end > uint64(len(mem)) {
		if err := s.m.seg.Remap(); err != nil {
			return err
		}
		mem = s.m.seg.Bytes()
		if end > uint64(len(mem)) {
			return fmt.Errorf("%w: area ends past the segment", ErrCorrupt)
		}
		d = descAt(mem, root&1)
	}
	tableEnd := base + 8<<capLog
	if tableEnd > top || top > end || top%8 != 0 {
		return fmt.Errorf("%w: bad area bounds", ErrCorrupt)
	}
	s.a = area{mem: mem, root: root, d: d, base: base, mask: 1<<capLog - 1, tableEnd: tableEnd, top: top, end: end}
	return nil
}

// record returns the key and value of the record a slot word points to,
// checked to lie in the used heap.
func (a *area) record(sw uint64) (h uint64, k, v []byte, err error) {
	off := a.base + sw&relMask
	if off < a.tableEnd || off%8 != 0 || off > a.top-recHdr {
		return 0, nil, nil, fmt.Errorf("%w: slot points outside the heap", ErrCorrupt)
	}
	h = atomic.LoadUint64(word(a.mem, off))
	kl := uint64(atomic.LoadUint32((*uint32)(unsafe.Pointer(&a.mem[off+8]))))
	vl := uint64(atomic.LoadUint32((*uint32)(unsafe.Pointer(&a.mem[off+12]))))
	if kl+vl > a.top-off-recHdr {
		return 0, nil, nil, fmt.Errorf("%w: record runs past the heap", ErrCorrupt)
	}
	p := off + recHdr
	return h, a.mem[p : p+kl : p+kl], a.mem[p+kl : p+kl+vl : p+kl+vl], nil
}

// find looks key up: the slot index holding it (found), else where it
// would go (the first deleted slot on its probe path, or the empty slot
// that ends it; ok false if the table has neither).
func (a *area) find(key []byte, h uint64) (idx uint64, found, ok bool, err error) {
	tag := h >> 48
	i := h & a.mask
	ins, haveIns := uint64(0), false
	for range a.mask + 1 {
		sw := atomic.LoadUint64(a.slot(i))
		switch {
		case sw == slotEmpty:
			if !haveIns {
				ins = i
			}
			return ins, false, true, nil
		case sw == slotDel:
			if !haveIns {
				ins, haveIns = i, true
			}
		case sw>>48 == tag:
			rh, k, _, err := a.record(sw)
			if err != nil {
				return 0, false, false, err
			}
			if rh == h && string(k) == string(key) {
				return i, true, true, nil
			}
		}
		i = (i + 1) & a.mask
	}
	return ins, false, haveIns, nil
}

// Hash is the table's hash of a key: the same in every process.
func Hash(key []byte) uint64 {
	const m1, m2 = 0x9e3779b97f4a7c15, 0xbf58476d1ce4e5b9
	h := uint64(len(key)) * m1
	for len(key) >= 8 {
		x := uint64(key[0]) | uint64(key[1])<<8 | uint64(key[2])<<16 | uint64(key[3])<<24 |
			uint64(key[4])<<32 | uint64(key[5])<<40 | uint64(key[6])<<48 | uint64(key[7])<<56
		hi, lo := bits.Mul64(h^x, m2)
		h = hi ^ lo
		key = key[8:]
	}
	var x uint64
	for i, c := range key {
		x |= uint64(c) << (8 * i)
	}
	hi, lo := bits.Mul64(h^x^m1, m2)
	h = hi ^ lo
	h ^= h >> 31
	h *= m1
	h ^= h >> 29
	return h
}

// Load appends the value of key to dst.
func (m *Map) Load(dst, key []byte) ([]byte, bool, error) {
	h := Hash(key)
	s, err := m.lock()
	if err != nil {
		return dst, false, err
	}
	defer s.unlock()
	i, found, _, err := s.a.find(key, h)
	if err != nil || !found {
		return dst, false, err
	}
	_, _, v, err := s.a.record(atomic.LoadUint64(s.a.slot(i)))
	if err != nil {
		return dst, false, err
	}
	return append(dst, v...), true, nil
}

// Store sets key to val.
func (m *Map) Store(key, val []byte) error {
	h := Hash(key)
	s, err := m.lock()
	if err != nil {
		return err
	}
	defer s.unlock()
	return s.put(key, val, h)
}

// Update calls fn with key's value (ok false when absent) under the lock
// and stores what it returns, unless fn returns an error (then nothing
// changes). A panic in fn changes nothing, releases the lock and goes on.
func (m *Map) Update(key []byte, fn func(old []byte, ok bool) ([]byte, error)) error {
	h := Hash(key)
	s, err := m.lock()
	if err != nil {
		return err
	}
	defer s.unlock()
	i, found, _, err := s.a.find(key, h)
	if err != nil {
		return err
	}
	var old []byte
	if found {
		if _, _, old, err = s.a.record(atomic.LoadUint64(s.a.slot(i))); err != nil {
			return err
		}
		old = append([]byte(nil), old...) // fn may keep it; a rebuild may move it
	}
	val, err := fn(old, found)
	if err != nil {
		return err
	}
	return s.put(key, val, h)
}

// put stores key=val under the lock.
func (s *session) put(key, val []byte, h uint64) error {
	if uint64(len(key)) > 1<<32-1 || uint64(len(val)) > 1<<32-1 {
		return ErrTooLarge
	}
	rec := recHdr + pad8(uint64(len(key))+uint64(len(val)))
	i, found, ok, err := s.a.find(key, h)
	if err != nil {
		return err
	}
	d := s.a.d
	count, tombs := load(d, dCount), load(d, dTombs)
	reuse := ok && !found && atomic.LoadUint64(s.a.slot(i)) == slotDel
	full := !found && !reuse && (count+tombs+1)*4 > (s.a.mask+1)*3
	if !ok || full || rec > s.a.end-s.a.top {
		if err := s.rebuild(rec, 1); err != nil {
			return err
		}
		if i, found, ok, err = s.a.find(key, h); err != nil {
			return err
		}
		if !ok || rec > s.a.end-s.a.top {
			return fmt.Errorf("%w: no room after a rebuild", ErrCorrupt)
		}
		d = s.a.d
		count, tombs = load(d, dCount), load(d, dTombs)
		reuse = !found && atomic.LoadUint64(s.a.slot(i)) == slotDel
	}
	// The record, in free space nobody reads.
	off := s.a.top
	mem := s.a.mem
	atomic.StoreUint64(word(mem, off), h)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[off+8])), uint32(len(key)))
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[off+12])), uint32(len(val)))
	copy(mem[off+recHdr:], key)
	copy(mem[off+recHdr+uint64(len(key)):], val)
	// Claim it, then commit: one store of the slot.
	s.a.top = off + rec
	store(d, dTop, s.a.top)
	atomic.StoreUint64(s.a.slot(i), (h>>48)<<48|(off-s.a.base))
	if !found {
		store(d, dCount, count+1)
		if reuse {
			store(d, dTombs, tombs-1)
		}
	}
	return nil
}

// Delete removes key; a missing key is not an error.
func (m *Map) Delete(key []byte) error {
	h := Hash(key)
	s, err := m.lock()
	if err != nil {
		return err
	}
	defer s.unlock()
	i, found, _, err := s.a.find(key, h)
	if err != nil || !found {
		return err
	}
	atomic.StoreUint64(s.a.slot(i), slotDel) // the commit
	store(s.a.d, dCount, load(s.a.d, dCount)-1)
	store(s.a.d, dTombs, load(s.a.d, dTombs)+1)
	return nil
}

// Len returns the number of entries.
func (m *Map) Len() (int, error) {
	s, err := m.lock()
	if err != nil {
		return 0, err
	}
	defer s.unlock()
	n := load(s.a.d, dCount)
	if n > s.a.mask+1 {
		return 0, fmt.Errorf("%w: entry count past the table", ErrCorrupt)
	}
	return int(n), nil
}

// Range calls fn (under the lock: fn must not use the Map) for up to max
// entries from slot pos on, and returns the slot to go on from (-1 at the
// end) and the area's generation: a caller that sees it change knows the
// entries moved, so slot positions from before mean nothing.
func (m *Map) Range(pos int, max int, fn func(k, v []byte)) (next int, gen uint64, err error) {
	s, err := m.lock()
	if err != nil {
		return -1, 0, err
	}
	defer s.unlock()
	n := 0
	for i := uint64(pos); i <= s.a.mask; i++ {
		sw := atomic.LoadUint64(s.a.slot(i))
		if sw == slotEmpty || sw == slotDel {
			continue
		}
		if n == max {
			return int(i), s.a.root >> 1, nil
		}
		_, k, v, err := s.a.record(sw)
		if err != nil {
			return -1, 0, err
		}
		fn(k, v)
		n++
	}
	return -1, s.a.root >> 1, nil
}

// scan counts the live entries and their records' bytes, checking each.
func (a *area) scan(fn func(sw uint64, k, v []byte) error) (live, tombs, bytes uint64, err error) {
	for i := uint64(0); i <= a.mask; i++ {
		sw := atomic.LoadUint64(a.slot(i))
		switch sw {
		case slotEmpty:
		case slotDel:
			tombs++
		default:
			_, k, v, err := a.record(sw)
			if err != nil {
				return 0, 0, 0, err
			}
			live++
			bytes += recHdr + pad8(uint64(len(k))+uint64(len(v)))
			if fn != nil {
				if err := fn(sw, k, v); err != nil {
					return 0, 0, 0, err
				}
			}
		}
	}
	return live, tombs, bytes, nil
}

// repair recounts the counters after a takeover: the dead holder may have
// committed without updating them.
func (s *session) repair() error {
	live, tombs, _, err := s.a.scan(nil)
	if err != nil {
		return err
	}
	store(s.a.d, dCount, live)
	store(s.a.d, dTombs, tombs)
	return nil
}

// rebuild copies the live entries into a new area with room for one more
// record of rec bytes and extra more entries, and commits it.
func (s *session) rebuild(rec, extra uint64) error {
	old := s.a
	live, _, bytes, err := old.scan(nil)
	if err != nil {
		return err
	}
	if bytes > old.top-old.tableEnd {
		return fmt.Errorf("%w: records overlap", ErrCorrupt)
	}
	capLog := uint64(minCapLog)
	for (uint64(1)<<capLog)/2 < live+extra {
		capLog++
	}
	if capLog > maxCapLog {
		return ErrTooLarge
	}
	heap := max(uint64(minHeap), 2*(bytes+rec))
	size := roundPage(8<<capLog + heap)
	if size > maxArea {
		return ErrTooLarge
	}
	base := uint64(hdrSize)
	if base+size > old.base {
		base = roundPage(old.end)
	}
	if base+size > uint64(len(old.mem)) {
		if err := s.m.seg.Grow(int(base + size)); err != nil {
			return err
		}
	}
	mem := s.m.seg.Bytes()
	old.mem = mem // the old area, at its place in the new mapping
	n := area{mem: mem, base: base, mask: 1<<capLog - 1, tableEnd: base + 8<<capLog, end: base + size}
	clear(mem[base:n.tableEnd])
	n.top = n.tableEnd
	_, _, _, err = old.scan(func(sw uint64, k, v []byte) error {
		h := atomic.LoadUint64(word(mem, old.base+sw&relMask))
		l := recHdr + pad8(uint64(len(k))+uint64(len(v)))
		off := n.top
		if l > n.end-off {
			return fmt.Errorf("%w: records changed during a rebuild", ErrCorrupt)
		}
		copy(mem[off:off+l], mem[old.base+sw&relMask:])
		n.top += l
		i := h & n.mask
		for atomic.LoadUint64(n.slot(i)) != slotEmpty {
			i = (i + 1) & n.mask
		}
		atomic.StoreUint64(n.slot(i), (h>>48)<<48|(off-base))
		return nil
	})
	if err != nil {
		return err
	}
	idx := (old.root&1 ^ 1)
	d := descAt(mem, idx)
	store(d, dBase, base)
	store(d, dCapLog, capLog)
	store(d, dTop, n.top)
	store(d, dEnd, n.end)
	store(d, dCount, live)
	store(d, dTombs, 0)
	root := (old.root>>1+1)<<1 | idx
	atomic.StoreUint64(word(mem, offRoot), root) // the commit
	if old.end-old.base >= punchMin {
		lo, hi := roundPage(old.base), old.end&^uint64(shm.PageSize-1)
		if hi > lo {
			unix.Fallocate(s.m.seg.Fd(), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(lo), int64(hi-lo))
		}
	}
	n.root, n.d = root, d
	s.a = n
	return nil
}
