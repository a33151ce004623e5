//go:build linux && (amd64 || arm64)

package futex

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/multiproc-go/multiproc/internal/wait"
	"golang.org/x/sys/unix"
)

// Mutex is a lock word in shared memory: 0 when free, else the holder's pid,
// with waitersBit set while someone may sleep on it. Keeping the pid in the
// word lets a waiter see that the holder died and take the lock over instead
// of waiting forever (robust futexes are per thread and do not fit
// goroutines).
type Mutex struct {
	W *uint32
	// Spin is the waiting policy of this lock's waiters in this process
	// (nil: one shared by the locks that have none).
	Spin *wait.Spinner
}

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
	recovered, _ = m.LockContext(context.Background())
	return recovered
}

// TryFast takes the lock if it is free, with one compare-and-swap: the
// uncontended path of a Lock, which callers may take before any gate.
func (m Mutex) TryFast() bool { return cas(m.W, 0, selfPid) }

// LockContext is Lock bounded by ctx: once ctx is done it returns ctx.Err()
// without the lock (a free lock is still taken, even with ctx done).
func (m Mutex) LockContext(ctx context.Context) (recovered bool, err error) {
	if cas(m.W, 0, selfPid) {
		return false, nil
	}
	spin := m.Spin
	if spin == nil {
		spin = &mutexSpin
	}
	if spin.Spin(func() bool { return load(m.W) == 0 && cas(m.W, 0, selfPid) }) {
		return false, nil
	}
	checked := time.Now()
	defer func(parked time.Time) {
		if err == nil {
			spin.Parked(time.Since(parked))
		}
	}(checked)
	for {
		v := load(m.W)
		if v == 0 {
			// Others may still sleep on the word: keep the bit so that
			// Unlock wakes one of them.
			if cas(m.W, 0, selfPid|waitersBit) {
				return false, nil
			}
			continue
		}
		if v&waitersBit == 0 {
			if !cas(m.W, v, v|waitersBit) {
				continue
			}
			v |= waitersBit
		}
		if err := waitCtx(ctx, m.W, v, ownerCheck); err != nil {
			// The Unlock that woke this waiter may have been meant for
			// another: pass it on rather than leave a free lock with
			// sleepers (they would only notice at their next check).
			if load(m.W) == 0 {
				Wake(m.W, 1)
			}
			return false, err
		}
		if time.Since(checked) >= ownerCheck {
			checked = time.Now()
			if owner := v &^ waitersBit; owner != selfPid && !Alive(owner) {
				if cas(m.W, v, selfPid|waitersBit) {
					return true, nil
				}
			}
		}
	}
}

// Unlock frees the lock and wakes one waiter if any may sleep. Any process
// may unlock: the word records who locked, not who may unlock. It reports
// false, changing nothing, if the lock was not held.
func (m Mutex) Unlock() bool {
	v := atomic.SwapUint32(m.W, 0)
	if v&waitersBit != 0 {
		Wake(m.W, 1)
	}
	return v != 0
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
