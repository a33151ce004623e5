//go:build linux && (amd64 || arm64)

package wait

// Measuring what a wake-up costs on this machine.

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EnvWake carries the measured wake-up latency (ns) from a parent to the
// children it starts, which then need not measure it again.
const EnvWake = "MULTIPROC_WAKE_NS"

// measured is the wake-up latency this process measured (or inherited),
// in ns; 0 until known.
var measured atomic.Int64

var (
	calibrateOnce sync.Once
	known         = make(chan struct{}) // closed once measured is final
)

func init() {
	if v, err := strconv.ParseInt(os.Getenv(EnvWake), 10, 64); err == nil && v > 0 {
		measured.Store(min(v, int64(maxPark)))
		calibrateOnce.Do(func() { close(known) }) // inherited: nothing to measure
	}
	os.Unsetenv(EnvWake) // ours, not the program's
}

// WakeEnv is the EnvWake=value pair for a child's environment ("" on one
// CPU, where nothing is measured). It waits for this process's
// measurement (once, a few milliseconds, in the background from the first
// wait on): a child started before it, such as the spare child a program
// starts early, would otherwise measure again, and differently.
func WakeEnv() string {
	calibrate()
	<-known
	if v := measured.Load(); v > 0 {
		return EnvWake + "=" + strconv.FormatInt(v, 10)
	}
	return ""
}

// calibrate measures, once per process and in the background, the latency
// of a wake-up between two threads that sleep in the kernel: the median of
// 31 futex round trips, halved. The learned low quantile of parks (see
// Parked) sees the fastest wake-ups, those that land on the waker's CPU; a
// machine where a wake-up across CPUs costs ten times more (255 µs against
// 16 µs on one 2-vCPU VM) needs the typical one, or spinning is cut short
// and both sides of an exchange end up parking for each other.
func calibrate() {
	calibrateOnce.Do(func() {
		if numCPU < 2 {
			close(known) // nothing to measure: spinning is off anyway
			return
		}
		go func() {
			measured.Store(min(measureWake(), int64(maxPark)))
			close(known)
		}()
	})
}

// measureWake times futex ping-pongs between two locked threads, each on
// a CPU of its own where the process may use two: a wake-up across CPUs is
// what the two sides of an exchange pay when one of them parks while the
// other runs (a spinning peer holds its CPU), and the one that varies by
// an order of magnitude from machine to machine.
func measureWake() int64 {
	const trips = 31
	var word uint32 // 0: ping's turn, 1: pong's turn; ends at 2
	cpus := twoCPUs()
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer pin(cpus[1])()
		defer close(done)
		for {
			v := atomic.LoadUint32(&word)
			switch v {
			case 2:
				return
			case 1:
				atomic.StoreUint32(&word, 0)
				futexWake(&word)
				continue
			}
			futexWait(&word, v)
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer pin(cpus[0])()
	rtts := make([]int64, 0, trips)
	for range trips + 3 { // 3 to warm up
		t0 := time.Now()
		atomic.StoreUint32(&word, 1)
		futexWake(&word)
		for atomic.LoadUint32(&word) == 1 {
			futexWait(&word, 1)
		}
		rtts = append(rtts, int64(time.Since(t0)))
	}
	atomic.StoreUint32(&word, 2)
	futexWake(&word)
	<-done
	rtts = rtts[3:]
	slices.Sort(rtts)
	return max(rtts[len(rtts)/2]/2, 1)
}

// FUTEX_WAIT and FUTEX_WAKE with FUTEX_PRIVATE_FLAG (128): the word is
// this process's.
const (
	futexWaitPrivate = 0 | 128
	futexWakePrivate = 1 | 128
)

// twoCPUs returns two CPUs this thread may run on, or -1s.
func twoCPUs() [2]int {
	out := [2]int{-1, -1}
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil || set.Count() < 2 {
		return out
	}
	k := 0
	for c := 0; c < len(set)*64 && k < 2; c++ {
		if set.IsSet(c) {
			out[k] = c
			k++
		}
	}
	return out
}

// pin binds the calling thread, which is locked to its goroutine, to cpu
// (nothing if cpu < 0) and returns the function that restores its mask.
func pin(cpu int) (restore func()) {
	var old, one unix.CPUSet
	if cpu < 0 || unix.SchedGetaffinity(0, &old) != nil {
		return func() {}
	}
	one.Set(cpu)
	if unix.SchedSetaffinity(0, &one) != nil {
		return func() {}
	}
	return func() { unix.SchedSetaffinity(0, &old) }
}

func futexWait(addr *uint32, val uint32) {
	ts := unix.NsecToTimespec(int64(10 * time.Millisecond)) // a safety net
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitPrivate, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
}

func futexWake(addr *uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakePrivate, 1, 0, 0, 0)
}

// Typical returns the measured wake-up latency, measuring it now if this
// process has not yet (0 with one CPU).
func Typical() time.Duration {
	calibrate()
	<-known
	return time.Duration(measured.Load())
}
