//go:build linux && (amd64 || arm64)

// Package wait is the one waiting policy of multiproc: how a waiter spins,
// yields and parks, learned from what waiting costs on the machine it runs
// on instead of fixed spin windows tuned on one box.
//
// A waiter (a Queue's ring, a Conn's read, the pool's control channel, the
// cross-process mutex) first calls Spinner.Spin with its condition; if the
// spin fails it parks (FUTEX_WAIT, poll(2) — see internal/fdwait) and, once woken with its
// condition met, reports how long it was parked with Spinner.Parked. From
// those reports a Spinner learns two things:
//
//   - what a park costs: the shortest parks approach the latency of a
//     wake-up (a futex round trip across CPUs took 255 µs on one 2-vCPU VM,
//     10 µs on another), and a park costs a few of those (the sleeper's late
//     wake-up, the waker's wake-up call, the threads Go's runtime wakes).
//     Spinning longer than a park costs cannot pay (ski rental: spin about
//     as long as a block costs), so that caps the budget. The shortest
//     parks are the wake-ups that land on the waker's CPU, though; where
//     one across CPUs costs ten times more, that estimate cuts spins short
//     and the two sides of an exchange end up parking for each other. So
//     the latency is also measured once per process, in the background,
//     with two threads waking each other (calibrate.go; children inherit
//     the figure), and the estimate is never below that typical one;
//   - how long waits last: a wait that ended soon after the spin gave up
//     would have been caught by a longer spin (the budget grows); a long
//     one was not worth spinning for (the budget shrinks), and spins that
//     succeed early pull the budget down towards a few times their length,
//     as adaptive mutexes do.
//
// While it spins, a waiter lets others run: after a short tight poll, other
// threads on its CPU (sched_yield, so a peer process sharing the CPU runs);
// and, only for a waiter that has just woken a goroutine of its own process
// (Spinner.Handoff), that goroutine first (runtime.Gosched, once: every
// Gosched also makes the Go scheduler wake an idle thread, which on 2 CPUs
// takes the CPU the peer process needs). A spin is bounded by time, never by a count
// of tries, and there is no spinning at all with one CPU or GOMAXPROCS=1,
// or when the spinner finds it was descheduled (the CPUs are
// oversubscribed: the other side may not be running).
package wait

import (
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of what a Spinner learns. The budget never exceeds the park cost
// (spinning longer than a block costs never pays) nor maxPark.
const (
	minBudget  = 1 * time.Microsecond   // the least a spin tries, so it keeps learning
	initBudget = 20 * time.Microsecond  // before any feedback (the old fixed windows were 8–30 µs)
	minPark    = 4 * time.Microsecond   // the shortest park believed (see Parked)
	initWake   = 10 * time.Microsecond  // a wake-up's latency before any park has been seen
	parkFactor = 4                      // a park's cost, in wake-up latencies (see ParkCost)
	maxPark    = 250 * time.Microsecond // the most a park is believed to cost: the longest spin

	// tightSpin is how long a spin polls without yielding: a peer running
	// on another CPU usually answers within it.
	tightSpin = 2 * time.Microsecond

	// yieldEvery spaces the sched_yields of a longer spin: each one that
	// finds another thread to run costs a context switch, often to a
	// thread of Go's runtime with nothing to do.
	yieldEvery = 10 * time.Microsecond

	// preempted: a gap this long between two looks at the clock means the
	// spinner was descheduled — the CPUs are oversubscribed, and the side it
	// waits for may not be running: it parks rather than spin on.
	preempted = 200 * time.Microsecond
)

// Spinner is the waiting policy of one waiting site (one per Queue side,
// per Conn, per lock...). Its zero value is ready to use, and it is safe
// for concurrent use: concurrent feedback may lose an update, which only
// slows the learning. It is process-local; nothing of it is shared with
// other processes.
type Spinner struct {
	// Handoff makes the first yield of a spin a runtime.Gosched, for a
	// waiter that has just made another goroutine of its process runnable
	// (a result's receiver): that goroutine then runs at once on this
	// thread. Without it a spin leaves the Go scheduler alone, since
	// Gosched also wakes an idle thread, which on 2 CPUs competes with the
	// peer process. Set it before the first Spin.
	Handoff bool

	budget atomic.Int64 // ns; 0 until the first feedback (initBudget)
	wake   atomic.Int64 // ns, the sleeper's wake-up latency; 0 until the first park (initWake)

	// Spins and parks counted for tests and reports.
	spins, wins, parks atomic.Int64

	// Test hooks; nil in production.
	clock func() int64 // monotonic ns
	typ   func() int64 // the typical wake-up latency (measured)
	yield func(os bool)
	cpus  func() bool
}

var epoch = time.Now()

func (s *Spinner) now() int64 {
	if s.clock != nil {
		return s.clock()
	}
	return int64(time.Since(epoch))
}

// Budget is how long the next spin may last.
func (s *Spinner) Budget() time.Duration {
	if b := s.budget.Load(); b > 0 {
		return time.Duration(b)
	}
	return initBudget
}

// ParkCost is the learned cost of a park, the cap of the budget:
// parkFactor times the sleeper's wake-up latency, as a park is paid more
// than once — by the sleeper's late wake-up, by the waker's wake-up call,
// and, in Go, by the threads the runtime wakes for both.
func (s *Spinner) ParkCost() time.Duration {
	return time.Duration(min(parkFactor*s.wakeNs(), int64(maxPark)))
}

// wakeNs is the wake-up latency a park's cost is reckoned from: the
// learned one, never below the measured typical one.
func (s *Spinner) wakeNs() int64 { return max(s.learnedWake(), s.typical()) }

// learnedWake is the wake-up latency learned from parks (see Parked).
func (s *Spinner) learnedWake() int64 {
	if w := s.wake.Load(); w > 0 {
		return w
	}
	return int64(initWake)
}

// typical is the typical wake-up latency of this machine, measured (see
// calibrate), or 0 while it is not known.
func (s *Spinner) typical() int64 {
	if s.typ != nil {
		return s.typ()
	}
	return measured.Load()
}

// Stats returns how many spins were tried, how many of them succeeded and
// how many parks were reported.
func (s *Spinner) Stats() (spins, wins, parks int64) {
	return s.spins.Load(), s.wins.Load(), s.parks.Load()
}

// canSpin reports whether spinning can help at all: with one CPU (or one
// P) the side being waited for cannot run while this waiter spins.
func (s *Spinner) canSpin() bool {
	if s.cpus != nil {
		return s.cpus()
	}
	return numCPU >= 2 && multiP(s.now())
}

var numCPU = runtime.NumCPU()

// multiP reports whether GOMAXPROCS is at least 2, asking the runtime
// (which takes the scheduler's lock) at most every 10 ms: it may change
// while the program runs.
func multiP(now int64) bool {
	if c := procsChecked.Load(); c != 0 && now-c < int64(10*time.Millisecond) && now >= c {
		return procsMulti.Load()
	}
	procsMulti.Store(runtime.GOMAXPROCS(0) >= 2)
	procsChecked.Store(max(now, 1))
	return procsMulti.Load()
}

var (
	procsChecked atomic.Int64
	procsMulti   atomic.Bool
)

func (s *Spinner) doYield(os bool) {
	if s.yield != nil {
		s.yield(os)
		return
	}
	if os {
		OSYield()
	} else {
		runtime.Gosched()
	}
}

// OSYield gives this thread's CPU to another runnable thread, of any
// process, if there is one (sched_yield); it returns at once otherwise.
// Unlike runtime.Gosched it does not make the Go scheduler wake another
// thread, which on a 2-CPU machine would compete with the peer process.
func OSYield() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// Spin polls ready until it reports true or the budget is spent, and
// reports whether it became true. ready is called at least once; it may be
// cheap (an atomic load) or a system call (a non-blocking read): Spin
// adapts how often it reads the clock. After a false return the caller
// parks and, once woken with its condition met, calls Parked.
func (s *Spinner) Spin(ready func() bool) bool {
	if ready() {
		return true
	}
	if !s.canSpin() {
		return false
	}
	s.spins.Add(1)
	budget := int64(s.Budget())
	start := s.now()
	last := start
	n := 1 // polls between looks at the clock: about one look a microsecond
	gosched := s.Handoff
	nextYield := start + int64(tightSpin)
	for {
		for range n {
			if ready() {
				s.won(s.now()-start, budget)
				return true
			}
		}
		t := s.now()
		if t-last > int64(preempted) || t-start >= budget {
			return false // Parked will tell whether the spin was too short
		}
		if t-last < int64(time.Microsecond)/2 && n < 1<<12 {
			n *= 2
		}
		last = t
		switch {
		case gosched:
			// A goroutine this waiter just made runnable (a result's
			// receiver) runs now, on this P, rather than on a woken thread.
			gosched = false
			s.doYield(false)
		case t >= nextYield:
			nextYield = t + int64(yieldEvery)
			s.doYield(true)
		}
	}
}

// won adapts the budget to a spin that succeeded after d ns.
func (s *Spinner) won(d, budget int64) {
	s.wins.Add(1)
	switch {
	case d > budget/2:
		// Caught near the end: a little more would catch more of them.
		s.setBudget(budget + budget/4)
	case 4*d < budget:
		// Caught early: move the budget down towards 4× the spin's
		// length, slowly (1/8 a time), so that a long wait, when it comes,
		// wastes less.
		s.setBudget(budget - (budget-max(4*d, int64(minBudget)))/8)
	}
}

// Parked reports that a waiter whose spin failed parked for d and was
// woken with its condition met (not for a timeout or a cancellation: then
// it reports nothing). A park that ended within about a budget of the
// park's own cost means a spin twice as long would have caught the
// wake-up: the budget grows (up to the park cost). A longer one means
// spinning was wasted: it shrinks.
//
// A "park" shorter than minPark is no evidence of what parking costs: the
// waiter cannot tell it from one that never slept (a FUTEX_WAIT that found
// the word changed, a poller that had the event already). It counts as a
// near miss — the condition came just after the spin gave up — so the
// budget grows and the park cost is left alone.
func (s *Spinner) Parked(d time.Duration) {
	calibrate()
	s.parks.Add(1)
	dn := max(int64(d), 0)
	if dn < int64(minPark) {
		s.setBudget(2 * int64(s.Budget()))
		return
	}
	// wake, the sleeper's own wake-up latency, is a low quantile of the
	// parks: the estimate falls fast (1/4 of the gap) towards a shorter
	// park and rises slowly (1/32) towards one up to 2× longer. Longer
	// parks are waits, not the cost of waiting, and are ignored: waits that
	// come at a steady interval would otherwise pass for the cost of a park
	// and be spun through. An estimate too low only means less spinning,
	// the safe side.
	w := s.learnedWake()
	switch {
	case dn < w:
		w -= (w - dn) / 4
	case dn <= 2*w:
		w += (dn - w) / 32
	}
	w = min(max(w, int64(minPark)), int64(maxPark))
	s.wake.Store(w)
	// The wait went on for about dn-w after the spin gave up. If a budget
	// within the park's cost covers it, spinning it through would have paid
	// (ski rental): grow the budget to cover it next time. If not, the spin
	// was waste: shrink the budget by a quarter. Every 64th park probes
	// with half the park's cost, so that two waiters who made each other
	// park (each one's wait holds the other's wake-up) find out whether
	// spinning pays again.
	b, cost := int64(s.Budget()), int64(s.ParkCost())
	switch rest := max(dn-w, 0); {
	case b+rest <= cost:
		s.setBudget(max(2*b, b+rest+rest/4))
	case s.parks.Load()%64 == 0:
		s.setBudget(max(b, cost/2))
	default:
		s.setBudget(b - b/4)
	}
}

// setBudget stores b within [minBudget, park cost].
func (s *Spinner) setBudget(b int64) {
	b = min(b, int64(s.ParkCost()))
	b = max(b, int64(minBudget))
	s.budget.Store(b)
}
