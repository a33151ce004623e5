//go:build linux && (amd64 || arm64)

package ring

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/multiproc-go/multiproc/internal/futex"
	"github.com/multiproc-go/multiproc/internal/gate"
	"github.com/multiproc-go/multiproc/internal/shm"
	"github.com/multiproc-go/multiproc/internal/wait"
)

// Errors of the ring's operations; the Queue maps them to the package's.
var (
	ErrFull   = errors.New("queue is full")
	ErrEmpty  = errors.New("queue is empty")
	ErrClosed = errors.New("queue is closed")

	// ErrTooLarge is returned by Put for a message that cannot fit even in
	// the largest ring.
	ErrTooLarge = errors.New("message too large for a queue")
	// ErrCorrupt means the shared memory holds something no queue
	// operation writes (another process scribbled on it).
	ErrCorrupt = errors.New("queue memory is corrupt")
)

// DefaultRingBytes is the initial data capacity when Create gets 0.
const DefaultRingBytes = 1 << 20

// Ring is one process's handle on a shared queue. It may be used by many
// goroutines at once.
type Ring struct {
	seg     *shm.Segment
	hdr     []byte // the segment's first mapping: never moves until Close
	fd      int
	maxMsgs int
	limit   uint64 // effective message limit

	layout, tail, head *uint64
	prodLock, consLock futex.Mutex
	prodSpin, consSpin wait.Spinner // the locks' waiting policies
	prod, cons         side

	cur   atomic.Pointer[dataMap]
	mapMu sync.Mutex // serialises remapping (stores of cur) in this process

	closed  atomic.Bool
	done    chan struct{}
	closeMu sync.RWMutex // Len and WithFd (readers) against Close's unmap and close of fd (writer)

	recovered atomic.Int64 // side locks taken over from dead holders (diagnostics)
}

// side is one end of the queue as seen by its waiters.
type side struct {
	bell *uint32   // doorbell this side's waiters sleep on
	op   gate.Gate // held around the critical section in this process
	wait gate.Gate // held by the one goroutine of this process that sleeps
	spin wait.Spinner

	// Under op and the side's lock: last is the word this process last
	// committed on its side (tail for producers, head for consumers), seen
	// the other side's word as it last read it. While this side's word is
	// still last, no other process of this side has committed since, so
	// seen is exact or behind: the other side's word only grows, and a
	// word behind shows less room (producers) or fewer messages
	// (consumers), never more. So each side reads the other's word, the
	// cache line the other writes on every message, only when seen says
	// full or empty, not on every message. (When another process of this
	// side did commit, seen may be more than a count's wrap behind, and
	// the word is read; and before this process's first commit, ok false.)
	last, seen uint64
	ok         bool
}

// Create makes a new queue. maxMsgs <= 0: bounded only by memory.
// ringBytes is the initial data capacity (0: DefaultRingBytes); it is
// rounded up to a power of two of at least 4 KiB.
func Create(maxMsgs int, ringBytes int) (*Ring, error) {
	if ringBytes <= 0 {
		ringBytes = DefaultRingBytes
	}
	if uint64(ringBytes) > maxCap {
		return nil, fmt.Errorf("queue ring of %d bytes is too large", ringBytes)
	}
	capLog := max(capLogFor(uint64(ringBytes)), minCapLog)
	if maxMsgs < 0 {
		maxMsgs = 0
	}
	seg, err := shm.Create("queue", hdrSize+1<<capLog)
	if err != nil {
		return nil, err
	}
	mem := seg.Bytes()
	atomic.StoreUint32(word32(mem, offVersion), version)
	store64(word64(mem, offMaxMsgs), uint64(maxMsgs))
	store64(word64(mem, offLayout), layoutWord(1, capLog))
	store64(word64(mem, offMagic), magic) // last: a valid magic means a complete header
	return newRing(seg, maxMsgs)
}

// Open attaches to a queue made by Create, from its memfd; the Ring owns fd
// afterwards (it is closed on error too).
func Open(fd int) (*Ring, error) {
	seg, err := shm.Open(fd)
	if err != nil {
		return nil, err
	}
	bad := func(why string) (*Ring, error) {
		seg.Close()
		return nil, fmt.Errorf("%w: fd %d is not a queue: %s", ErrCorrupt, fd, why)
	}
	mem := seg.Bytes()
	if len(mem) < hdrSize {
		return bad("too small")
	}
	if load64(word64(mem, offMagic)) != magic {
		return bad("bad magic")
	}
	if v := atomic.LoadUint32(word32(mem, offVersion)); v != version {
		return bad(fmt.Sprintf("version %d, want %d", v, version))
	}
	mm := load64(word64(mem, offMaxMsgs))
	if mm > 1<<62 {
		return bad("bad size limit")
	}
	capLog, ok := layoutCap(load64(word64(mem, offLayout)))
	if !ok {
		return bad("bad layout")
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || uint64(st.Size) < hdrSize+1<<capLog {
		return bad("shorter than its layout")
	}
	return newRing(seg, int(mm))
}

func newRing(seg *shm.Segment, maxMsgs int) (*Ring, error) {
	mem := seg.Bytes()
	r := &Ring{
		seg:      seg,
		hdr:      mem,
		fd:       seg.Fd(),
		maxMsgs:  maxMsgs,
		limit:    cntLimit,
		layout:   word64(mem, offLayout),
		tail:     word64(mem, offTail),
		head:     word64(mem, offHead),
		prodLock: futex.Mutex{W: word32(mem, offProdLock)},
		consLock: futex.Mutex{W: word32(mem, offConsLock)},
		done:     make(chan struct{}),
	}
	if maxMsgs > 0 && uint64(maxMsgs) < cntLimit {
		r.limit = uint64(maxMsgs)
	}
	r.prodLock.Spin, r.consLock.Spin = &r.prodSpin, &r.consSpin
	r.prod = side{bell: word32(mem, offSpaceBel), op: gate.New(), wait: gate.New()}
	r.cons = side{bell: word32(mem, offDataBell), op: gate.New(), wait: gate.New()}
	// The segment's own mapping serves as the first data mapping if it is
	// large enough for the layout it saw; ensureMap replaces it otherwise.
	lw := load64(r.layout)
	capLog, _ := layoutCap(lw)
	m := &dataMap{mem: mem, layout: lw}
	if uint64(len(mem)) >= hdrSize+1<<capLog {
		m.data = mem[hdrSize : hdrSize+1<<capLog]
		m.mask = 1<<capLog - 1
	} else {
		m.layout = ^uint64(0) // never matches: forces a remap
	}
	r.cur.Store(m)
	return r, nil
}

// Fd is the memfd (-1 after Close), for tests and diagnostics: a Close
// racing the caller may close it, and the number may then name another
// file. To send the queue to another process, duplicate it in WithFd.
func (r *Ring) Fd() int {
	if r.closed.Load() {
		return -1
	}
	return r.fd
}

// WithFd runs f with the memfd, which stays open until f returns (f may
// duplicate it to send the queue to another process); ErrClosed without
// running f after Close.
func (r *Ring) WithFd(f func(fd int) error) error {
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed.Load() {
		return ErrClosed
	}
	return f(r.fd)
}

// MaxMsgs is the message limit given to Create (0: none).
func (r *Ring) MaxMsgs() int { return r.maxMsgs }

// Len is the exact number of committed, not yet consumed messages, at one
// instant during the call (0 after Close).
func (r *Ring) Len() int {
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed.Load() {
		return 0
	}
	return int(r.snapshot())
}

func (r *Ring) snapshot() uint64 {
	for {
		h := load64(r.head)
		t := load64(r.tail)
		if load64(r.head) == h {
			return queued(h, t)
		}
	}
}

// Full reports whether the queue holds MaxMsgs messages (never with no limit).
func (r *Ring) Full() bool { return r.maxMsgs > 0 && r.Len() >= r.maxMsgs }

// Empty reports whether the queue holds no message.
func (r *Ring) Empty() bool { return r.Len() == 0 }

// Close releases this handle: later calls on it return ErrClosed; other
// handles and processes are unaffected. Goroutines blocked in Put or Get on
// this handle return ErrClosed. The kernel frees the memory when the last
// holder has closed it (or died). Closing again does nothing and returns nil.
func (r *Ring) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(r.done)
	// Wake our own sleepers (others' wake spuriously and sleep again).
	ringAll(r.prod.bell)
	ringAll(r.cons.bell)
	// Wait for every goroutine to leave the shared memory; the gates stay
	// taken, so nobody enters again.
	for _, g := range []gate.Gate{r.prod.op, r.prod.wait, r.cons.op, r.cons.wait} {
		g.Take()
	}
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	var err error
	if m := r.cur.Load(); m.own {
		err = unix.Munmap(m.mem)
	}
	r.cur.Store(nil)
	if e := r.seg.Close(); err == nil {
		err = e
	}
	return err
}

// ensureMap returns the mapping for the current layout, mapping the
// segment again if it grew. Called holding a side lock, so the layout
// cannot change meanwhile (growth takes both).
func (r *Ring) ensureMap() (*dataMap, error) {
	lw := load64(r.layout)
	if m := r.cur.Load(); m.layout == lw {
		return m, nil
	}
	r.mapMu.Lock()
	defer r.mapMu.Unlock()
	old := r.cur.Load()
	if old.layout == lw {
		return old, nil
	}
	capLog, ok := layoutCap(lw)
	if !ok {
		return nil, ErrCorrupt
	}
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		return nil, fmt.Errorf("queue segment: %w", err)
	}
	if uint64(st.Size) < hdrSize+1<<capLog {
		return nil, ErrCorrupt // mapping it would SIGBUS
	}
	m, err := mapLayout(r.fd, lw, capLog)
	if err != nil {
		return nil, err
	}
	r.install(old, m)
	return m, nil
}

func mapLayout(fd int, lw uint64, capLog uint) (*dataMap, error) {
	size := hdrSize + 1<<capLog
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping a %d-byte queue: %w", size, err)
	}
	return &dataMap{mem: mem, data: mem[hdrSize:], layout: lw, mask: 1<<capLog - 1, own: true}, nil
}

// install makes m the current mapping and unmaps old. Safe: whoever in this
// process still holds old either holds no side lock (and will find the
// layout changed before touching data) or is the caller.
func (r *Ring) install(old, m *dataMap) {
	r.cur.Store(m)
	if old.own {
		unix.Munmap(old.mem)
	}
}

// lockSide takes a side's shared lock (the producers' or the consumers'). A holder that died leaves
// nothing to repair (see the package doc); the takeover is only counted.
func (r *Ring) lockSide(mu futex.Mutex) {
	if mu.Lock() {
		r.recovered.Add(1)
	}
}
