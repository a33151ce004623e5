//go:build linux && (amd64 || arm64)

package ring

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// Header offsets. Each word has its own 64-byte cache line.
const (
	hdrSize = 4096

	offMagic    = 0  // uint64
	offVersion  = 8  // uint32
	offMaxMsgs  = 16 // int64
	offLayout   = 64
	offTail     = 128
	offHead     = 192
	offProdLock = 256
	offConsLock = 320
	offDataBell = 384
	offSpaceBel = 448
	hdrUsed     = 512
)

const (
	magic   = 0x31676e697271706d // "mpqring1", little-endian
	version = 1
)

// Position words: low cntBits hold a message count, the rest the byte
// position in units of 8 bytes. Both wrap; differences are taken modulo.
const (
	cntBits  = 30
	cntMask  = 1<<cntBits - 1
	posBits  = 64 - cntBits + 3 // byte positions are modulo 2^posBits
	posMask  = 1<<posBits - 1
	cntLimit = cntMask // at most this many messages queued at once

	minCapLog = 12             // 4 KiB
	maxCapLog = posBits - 1    // 64 GiB: a used size always fits the position range
	maxCap    = 1 << maxCapLog // largest data area
	frameHdr  = 8              // length word before each payload
	maxMsgLen = maxCap - frameHdr
)

func pack(cnt, pos uint64) uint64 { return (pos>>3)<<cntBits | cnt&cntMask }

func unpack(w uint64) (cnt, pos uint64) { return w & cntMask, (w >> cntBits) << 3 }

// queued is the number of messages between head word h and tail word t.
func queued(h, t uint64) uint64 { return (t - h) & cntMask }

// used is the number of bytes between head word h and tail word t.
func used(h, t uint64) uint64 {
	_, hp := unpack(h)
	_, tp := unpack(t)
	return (tp - hp) & posMask
}

// frameLen is the bytes a message of n payload bytes takes in the ring.
func frameLen(n uint64) uint64 { return frameHdr + (n+7)&^7 }

func layoutWord(gen uint64, capLog uint) uint64 { return gen<<8 | uint64(capLog) }

func layoutCap(lw uint64) (capLog uint, ok bool) {
	capLog = uint(lw & 0xff)
	return capLog, capLog >= minCapLog && capLog <= maxCapLog
}

func capLogFor(n uint64) uint { // smallest power of two >= n, as a log
	if n <= 1 {
		return 0
	}
	return uint(bits.Len64(n - 1))
}

func word64(mem []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&mem[off])) }
func word32(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

// dataMap is one mapping of the whole segment, valid for one layout word.
type dataMap struct {
	mem    []byte // [0, hdrSize+cap) of the file
	data   []byte // mem[hdrSize:]
	layout uint64
	mask   uint64 // cap-1
	own    bool   // this mapping was made by the ring (else it is the shm.Segment's)
}

func (m *dataMap) cap() uint64 { return m.mask + 1 }

// write copies p to the data area at ring offset idx, wrapping.
func (m *dataMap) write(idx uint64, p []byte) {
	n := copy(m.data[idx:], p)
	if n < len(p) {
		copy(m.data, p[n:])
	}
}

// appendTo appends n bytes at ring offset idx to dst, wrapping.
func (m *dataMap) appendTo(dst []byte, idx, n uint64) []byte {
	end := idx + n
	if end <= m.cap() {
		return append(dst, m.data[idx:end]...)
	}
	dst = append(dst, m.data[idx:]...)
	return append(dst, m.data[:end-m.cap()]...)
}

func (m *dataMap) putLen(idx, n uint64) { binary.LittleEndian.PutUint64(m.data[idx:], n) }
func (m *dataMap) getLen(idx uint64) uint64 {
	return binary.LittleEndian.Uint64(m.data[idx : idx+8])
}

func load64(w *uint64) uint64     { return atomic.LoadUint64(w) }
func store64(w *uint64, v uint64) { atomic.StoreUint64(w, v) }

var _ [hdrSize - hdrUsed]byte // the header fits its page
