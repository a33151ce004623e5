//go:build linux && (amd64 || arm64)

package multiproc

import (
	"sync/atomic"
	"unsafe"
)

// Atomic access to one Scalar in shared memory. Go's sync/atomic has no
// 8- or 16-bit operations, so those go through the aligned 32-bit word
// that contains them (little-endian hosts: amd64, arm64). Floats go through
// their bits. Every access is sequentially consistent, which is what makes
// it correct across processes (the Go memory model does not cover them).
//
// loadAt, storeAt and addAt reach the number at offset off of a shared
// object's mapping and fail (panic) as the object's methods do when it is
// zero or closed: one call per Load, Store or Add, with the methods
// themselves small enough to be inlined into the caller's loop.

func sizeOf[T Scalar]() uintptr { var z T; return unsafe.Sizeof(z) }

func isFloat[T Scalar]() bool {
	var x T = 1
	x /= 2
	return x != 0
}

func word32(p unsafe.Pointer) (w *uint32, shift uint) {
	off := uintptr(p) & 3
	return (*uint32)(unsafe.Add(p, -int(off))), uint(off) * 8
}

func loadAt[T Scalar](o *object, k *kind, off uintptr) T {
	return atomicLoad[T](unsafe.Add(o.mem(k), off))
}

func atomicLoad[T Scalar](p unsafe.Pointer) T {
	switch sizeOf[T]() {
	case 8:
		u := atomic.LoadUint64((*uint64)(p))
		return *(*T)(unsafe.Pointer(&u))
	case 4:
		u := atomic.LoadUint32((*uint32)(p))
		return *(*T)(unsafe.Pointer(&u))
	default:
		w, shift := word32(p)
		u := atomic.LoadUint32(w) >> shift
		return *(*T)(unsafe.Pointer(&u))
	}
}

func storeAt[T Scalar](o *object, k *kind, off uintptr, x T) {
	p := unsafe.Add(o.mem(k), off)
	switch sizeOf[T]() {
	case 8:
		atomic.StoreUint64((*uint64)(p), *(*uint64)(unsafe.Pointer(&x)))
	case 4:
		atomic.StoreUint32((*uint32)(p), *(*uint32)(unsafe.Pointer(&x)))
	default:
		for old := atomicLoad[T](p); !atomicCAS(p, old, x); old = atomicLoad[T](p) {
		}
	}
}

// atomicCAS compares bit patterns (so a NaN compares equal to itself).
func atomicCAS[T Scalar](p unsafe.Pointer, old, new T) bool {
	switch sz := sizeOf[T](); sz {
	case 8:
		return atomic.CompareAndSwapUint64((*uint64)(p), *(*uint64)(unsafe.Pointer(&old)), *(*uint64)(unsafe.Pointer(&new)))
	case 4:
		return atomic.CompareAndSwapUint32((*uint32)(p), *(*uint32)(unsafe.Pointer(&old)), *(*uint32)(unsafe.Pointer(&new)))
	default:
		w, shift := word32(p)
		mask := uint32(1)<<(8*sz) - 1
		var o, n uint32
		if sz == 1 {
			o, n = uint32(*(*uint8)(unsafe.Pointer(&old))), uint32(*(*uint8)(unsafe.Pointer(&new)))
		} else {
			o, n = uint32(*(*uint16)(unsafe.Pointer(&old))), uint32(*(*uint16)(unsafe.Pointer(&new)))
		}
		for {
			cur := atomic.LoadUint32(w)
			if (cur>>shift)&mask != o {
				return false
			}
			if atomic.CompareAndSwapUint32(w, cur, cur&^(mask<<shift)|n<<shift) {
				return true
			}
		}
	}
}

func addAt[T Scalar](o *object, k *kind, off uintptr, d T) T {
	p := unsafe.Add(o.mem(k), off)
	if !isFloat[T]() {
		switch sizeOf[T]() {
		case 8:
			u := atomic.AddUint64((*uint64)(p), *(*uint64)(unsafe.Pointer(&d)))
			return *(*T)(unsafe.Pointer(&u))
		case 4:
			u := atomic.AddUint32((*uint32)(p), *(*uint32)(unsafe.Pointer(&d)))
			return *(*T)(unsafe.Pointer(&u))
		}
	}
	for {
		old := atomicLoad[T](p)
		if n := old + d; atomicCAS(p, old, n) {
			return n
		}
	}
}
