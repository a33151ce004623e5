//go:build linux && (amd64 || arm64)

package multiproc

import (
	"sync/atomic"
	"unsafe"
)

// CondWaiting is the number of waiters registered in c's shared table, in
// every process (dead ones not yet reclaimed included): for tests that
// must know a child waits.
func CondWaiting(c *Condition) int {
	return int(atomic.LoadUint32(condWord(unsafe.Pointer(c.base.Load()), offCondWaiting)))
}
