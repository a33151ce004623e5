package futex

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Mutex is a lock word in shared memory: 0 when free, else the holder's pid,
// with waitersBit set while someone may sleep on it. Keeping the pid in the
// word lets a waiter see that the holder died and take the lock over instead
// of waiting forever (robust futexes are per thread and do not fit
// goroutines).
type Mutex struct{ W *uint32 }

const waitersBit = 1 << 31

// ownerCheck is how often a sleeping waiter wakes to see whether the holder
// is still alive: the upper bound on how long a dead holder blocks others.
const ownerCheck = 100 * time.Millisecond

var selfPid = uint32(os.Getpid())

// Pid returns this process's pid as lock words store it.
func Pid() uint32 { return selfPid }

// TryLock takes the lock if it is free, or if its holder is gone (a
// zombie holder is left to Lock, whose check reads /proc: too slow here).
func (m Mutex) TryLock() bool {
	if cas(m.W, 0, selfPid) {
		return true
	}
	v := load(m.W)
	if owner := v &^ waitersBit; v != 0 && owner != selfPid && unix.Kill(int(owner), 0) == unix.ESRCH {
		return cas(m.W, v, selfPid|waitersBit)
	}
	return false
}

// Lock blocks until the lock is taken. It returns true when it took the lock
// over from a holder that died while holding it: the data the lock guards
// may be half-updated.
func (m Mutex) Lock() (recovered bool) {
	if cas(m.W, 0, selfPid) {
		return false
	}
	if Spin(SpinTime, func() bool { return load(m.W) == 0 && cas(m.W, 0, selfPid) }) {
		return false
	}
	for {
		v := load(m.W)
		if v == 0 {
			// Others may still sleep on the word: keep the bit so that
			// Unlock wakes one of them.
			if cas(m.W, 0, selfPid|waitersBit) {
				return false
			}
			continue
		}
		if v&waitersBit == 0 {
			if !cas(m.W, v, v|waitersBit) {
				continue
			}
			v |= waitersBit
		}
		if Wait(m.W, v, ownerCheck) == ErrTimeout {
			if owner := v &^ waitersBit; owner != selfPid && !Alive(owner) {
				if cas(m.W, v, selfPid|waitersBit) {
					return true
				}
			}
		}
	}
}

// Unlock frees the lock and wakes one waiter if any may sleep.
func (m Mutex) Unlock() {
	if v := atomic.SwapUint32(m.W, 0); v&waitersBit != 0 {
		Wake(m.W, 1)
	}
}

// Holder returns the pid stored in the word (0 when free).
func (m Mutex) Holder() uint32 { return load(m.W) &^ waitersBit }

// Alive reports whether process pid exists and has not exited. A zombie,
// dead but not yet reaped, counts as dead.
func Alive(pid uint32) bool {
	if pid == 0 {
		return false
	}
	if pid == selfPid {
		return true
	}
	if err := unix.Kill(int(pid), 0); err == unix.ESRCH {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	// The state follows the last ')' (the command name may hold one).
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		switch s[i+2] {
		case 'Z', 'X', 'x':
			return false
		}
	}
	return true
}
