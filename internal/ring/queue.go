//go:build linux && (amd64 || arm64)

package ring

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/multiproc-go/multiproc/internal/shm"
)

// hookPoint names a place inside a critical section where tests kill the
// process (testHook is nil outside tests).
type hookPoint int

const (
	hookPutWritten hookPoint = iota + 1 // frame written, tail not yet committed
	hookGrowCopied                      // grow: data moved, layout not yet published
	hookGetCopied                       // message copied out, head not yet committed
	hookPutHalfway                      // half of the payload written
)

var testHook func(p hookPoint, msg []byte)

// Put stores msg, waiting only while the queue holds MaxMsgs messages. It
// returns ctx's error if ctx ends first. The ring grows when msg does not
// fit, so Put never waits for a reader otherwise.
func (r *Ring) Put(ctx context.Context, msg []byte) error {
	for {
		if err := r.enter(ctx, r.prod.op); err != nil {
			return err
		}
		err := r.tryPut(msg)
		r.prod.op.Leave()
		if err != ErrFull {
			return err
		}
		if err := r.enter(ctx, r.prod.wait); err != nil {
			return err
		}
		err = r.await(ctx, &r.prod, r.hasSpace)
		r.prod.wait.Leave()
		if err != nil {
			return err
		}
	}
}

// TryPut stores msg or returns ErrFull at once.
func (r *Ring) TryPut(msg []byte) error {
	if err := r.enter(context.Background(), r.prod.op); err != nil {
		return err
	}
	defer r.prod.op.Leave()
	return r.tryPut(msg)
}

// Get waits for a message and appends it to dst[:0]. It returns ctx's
// error if ctx ends first.
func (r *Ring) Get(ctx context.Context, dst []byte) ([]byte, error) {
	for {
		if err := r.enter(ctx, r.cons.op); err != nil {
			return dst[:0], err
		}
		out, err := r.tryGet(dst)
		r.cons.op.Leave()
		if err != ErrEmpty {
			return out, err
		}
		if err := r.enter(ctx, r.cons.wait); err != nil {
			return dst[:0], err
		}
		err = r.await(ctx, &r.cons, r.hasData)
		r.cons.wait.Leave()
		if err != nil {
			return dst[:0], err
		}
	}
}

// TryGet appends a message to dst[:0], or returns ErrEmpty at once.
func (r *Ring) TryGet(dst []byte) ([]byte, error) {
	if err := r.enter(context.Background(), r.cons.op); err != nil {
		return dst[:0], err
	}
	defer r.cons.op.Leave()
	return r.tryGet(dst)
}

func (r *Ring) hasData() bool { return queued(load64(r.head), load64(r.tail)) != 0 }

func (r *Ring) hasSpace() bool { return queued(load64(r.head), load64(r.tail)) < r.limit }

// tryPut runs with r.prod.op held.
func (r *Ring) tryPut(msg []byte) error {
	n := uint64(len(msg))
	if n > maxMsgLen {
		return ErrTooLarge
	}
	need := frameLen(n)
	r.lockSide(r.prodLock)
	m, err := r.ensureMap()
	if err != nil {
		r.prodLock.Unlock()
		return err
	}
	t := load64(r.tail)
	// The consumers' head word is the line they write on every Get: read
	// it only when the head this process saw last says there may be no
	// room (see seen).
	h := r.prod.seen
	if !r.prod.ok || t != r.prod.last || queued(h, t) >= r.limit || used(h, t)+need > m.cap() {
		h = load64(r.head)
		r.prod.seen = h
	}
	if queued(h, t) >= r.limit {
		r.prodLock.Unlock()
		return ErrFull
	}
	if used(h, t)+need > m.cap() {
		if m, err = r.grow(m, t, need); err != nil {
			r.prodLock.Unlock()
			return err
		}
	}
	cnt, pos := unpack(t)
	idx := pos & m.mask
	m.putLen(idx, n)
	if testHook != nil {
		half := len(msg) / 2
		m.write((idx+frameHdr)&m.mask, msg[:half])
		testHook(hookPutHalfway, msg)
		m.write((idx+frameHdr+uint64(half))&m.mask, msg[half:])
		testHook(hookPutWritten, msg)
	} else {
		m.write((idx+frameHdr)&m.mask, msg)
	}
	r.prod.last, r.prod.ok = pack(cnt+1, pos+need), true
	store64(r.tail, r.prod.last) // the commit
	r.prodLock.Unlock()
	wake(&r.cons)
	return nil
}

// tryGet runs with r.cons.op held.
func (r *Ring) tryGet(dst []byte) ([]byte, error) {
	dst = dst[:0]
	r.lockSide(r.consLock)
	m, err := r.ensureMap()
	if err != nil {
		r.consLock.Unlock()
		return dst, err
	}
	h := load64(r.head)
	// The producers' tail word is the line they write on every Put: read
	// it only when the tail this process saw last shows nothing more.
	t := r.cons.seen
	if !r.cons.ok || h != r.cons.last || queued(h, t) == 0 {
		t = load64(r.tail)
		r.cons.seen = t
	}
	if queued(h, t) == 0 {
		r.consLock.Unlock()
		return dst, ErrEmpty
	}
	cnt, pos := unpack(h)
	idx := pos & m.mask
	n := m.getLen(idx)
	avail := used(h, t)
	if n > avail || frameLen(n) > avail {
		r.consLock.Unlock()
		return dst, ErrCorrupt
	}
	if uint64(cap(dst)) < n {
		dst = make([]byte, 0, n)
	}
	dst = m.appendTo(dst, (idx+frameHdr)&m.mask, n)
	if testHook != nil {
		testHook(hookGetCopied, dst)
	}
	r.cons.last, r.cons.ok = pack(cnt+1, pos+frameLen(n)), true
	store64(r.head, r.cons.last) // the commit
	r.consLock.Unlock()
	wake(&r.prod)
	if n >= trimMin {
		r.trim()
	}
	return dst, nil
}

const (
	trimMin  = 1 << 20 // consuming a message this large frees memory
	trimKeep = 1 << 20 // free bytes after tail that keep their pages
)

// trim gives the pages of the free space back to the kernel (hole punch),
// except the first trimKeep bytes after tail, where producers write next:
// without it a queue that once carried a 64 MiB message would pin that
// memory until it is closed. Only free space is punched, and free space is
// written only under prodLock, so trim takes it (if it is free: it is an
// optimisation) after the consumer lock has been released.
func (r *Ring) trim() {
	if !r.prodLock.TryLock() {
		return
	}
	defer r.prodLock.Unlock()
	m, err := r.ensureMap()
	if err != nil {
		return
	}
	t, h := load64(r.tail), load64(r.head)
	free := m.cap() - used(h, t)
	if free <= trimKeep {
		return
	}
	_, tp := unpack(t)
	idx, n := (tp+trimKeep)&m.mask, free-trimKeep
	first := min(n, m.cap()-idx)
	r.punch(idx, first)
	r.punch(0, n-first)
}

// punch makes the whole pages inside data bytes [idx, idx+n) a hole.
func (r *Ring) punch(idx, n uint64) {
	page := uint64(shm.PageSize)
	lo, hi := (idx+page-1)&^(page-1), (idx+n)&^(page-1)
	if hi > lo {
		unix.Fallocate(r.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(hdrSize+lo), int64(hi-lo))
	}
}

// grow enlarges the ring so that need more bytes fit after tail word t.
// Called holding prodLock with m current; takes consLock for the move.
func (r *Ring) grow(m *dataMap, t, need uint64) (*dataMap, error) {
	r.lockSide(r.consLock)
	defer r.consLock.Unlock()
	h := load64(r.head) // stable now: consumers are locked out
	live := used(h, t)
	if live+need <= m.cap() {
		return m, nil // consumers made room meanwhile
	}
	oldLog, _ := layoutCap(m.layout)
	newLog := max(capLogFor(live+need), oldLog+1)
	if newLog > maxCapLog {
		return nil, ErrTooLarge
	}
	newCap := uint64(1) << newLog
	size := int64(hdrSize + newCap)
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		return nil, fmt.Errorf("queue segment: %w", err)
	}
	if st.Size < size { // a grower that died may have left it larger already
		if err := unix.Ftruncate(r.fd, size); err != nil {
			return nil, fmt.Errorf("growing a queue to %d bytes: %w", size, err)
		}
	}
	nm, err := mapLayout(r.fd, layoutWord(m.layout>>8+1, newLog), newLog)
	if err != nil {
		return nil, err
	}
	// Move each live byte p from p&(C-1) to p&(N-1). They differ only where
	// p&(N-1) >= C, so every write lands in [C, N), outside the old area:
	// the old layout stays valid until the store below.
	oldCap := m.cap()
	_, p := unpack(h)
	for rem := live; rem > 0; {
		oi, ni := p&(oldCap-1), p&(newCap-1)
		k := min(rem, oldCap-oi, newCap-ni)
		if oi != ni {
			copy(nm.data[ni:ni+k], nm.data[oi:oi+k])
		}
		p = (p + k) & posMask
		rem -= k
	}
	if testHook != nil {
		testHook(hookGrowCopied, nil)
	}
	store64(r.layout, nm.layout) // the commit
	r.mapMu.Lock()
	r.install(m, nm)
	r.mapMu.Unlock()
	return nm, nil
}
