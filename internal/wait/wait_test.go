//go:build linux && (amd64 || arm64)

package wait

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// fake is a deterministic machine: a clock that only the test moves, a
// record of the yields, and a CPU count.
type fake struct {
	t       int64
	yields  []bool // true: sched_yield, false: runtime.Gosched
	yieldT  []int64
	oneCPU  bool
	typical int64 // the measured wake-up latency, ns
}

func newSpinner(f *fake) *Spinner {
	return &Spinner{
		clock: func() int64 { return f.t },
		typ:   func() int64 { return f.typical },
		yield: func(os bool) { f.yields = append(f.yields, os); f.yieldT = append(f.yieldT, f.t) },
		cpus:  func() bool { return !f.oneCPU },
	}
}

// pollFor is a condition that takes cost ns a look and becomes true after
// after ns (never when after < 0).
func (f *fake) pollFor(cost, after int64, calls *int) func() bool {
	start := f.t
	return func() bool {
		*calls++
		f.t += cost
		return after >= 0 && f.t-start >= after
	}
}

func TestZeroValue(t *testing.T) {
	var s Spinner
	// Before any park, a wake-up is believed to take initWake, or what
	// this process measured (another test may have measured it).
	wantPark := min(parkFactor*max(initWake, time.Duration(measured.Load())), maxPark)
	if s.Budget() != initBudget || s.ParkCost() != wantPark {
		t.Fatalf("zero Spinner: budget %v park %v, want %v %v", s.Budget(), s.ParkCost(), initBudget, wantPark)
	}
	if !s.Spin(func() bool { return true }) {
		t.Fatal("Spin of a true condition returned false")
	}
}

func TestNoSpinOnOneCPU(t *testing.T) {
	f := &fake{oneCPU: true}
	s := newSpinner(f)
	calls := 0
	if s.Spin(f.pollFor(100, -1, &calls)) {
		t.Fatal("Spin returned true for a false condition")
	}
	if calls != 1 || len(f.yields) != 0 {
		t.Fatalf("one CPU: %d looks and %d yields, want 1 and 0", calls, len(f.yields))
	}
	if sp, _, _ := s.Stats(); sp != 0 {
		t.Fatalf("one CPU: %d spins counted", sp)
	}
}

func TestSpinBoundedByTime(t *testing.T) {
	for _, cost := range []int64{1, 50, 1000, 5000} { // an atomic load … a slow system call
		f := &fake{}
		s := newSpinner(f)
		calls := 0
		if s.Spin(f.pollFor(cost, -1, &calls)) {
			t.Fatal("Spin returned true for a false condition")
		}
		b := int64(initBudget)
		if f.t < b || f.t > b+b/4+2*cost+int64(time.Microsecond) {
			t.Fatalf("look cost %d ns: spun %d ns, budget %d", cost, f.t, b)
		}
		// The clock is read about once a microsecond, not once a look.
		if cost == 1 && calls < 1000 {
			t.Fatalf("cheap looks: only %d in %d ns", calls, f.t)
		}
	}
}

func TestSpinWins(t *testing.T) {
	f := &fake{}
	s := newSpinner(f)
	calls := 0
	if !s.Spin(f.pollFor(100, 3000, &calls)) {
		t.Fatal("Spin gave up on a condition that became true within the budget")
	}
	if sp, w, _ := s.Stats(); sp != 1 || w != 1 {
		t.Fatalf("stats: %d spins %d wins", sp, w)
	}
	// A win at 3 µs of a 20 µs budget pulls the budget down (towards 12 µs).
	if b := s.Budget(); b >= initBudget || b < 12*time.Microsecond {
		t.Fatalf("budget after an early win: %v", b)
	}
}

func TestLateWinGrowsBudget(t *testing.T) {
	f := &fake{}
	s := newSpinner(f)
	calls := 0
	if !s.Spin(f.pollFor(100, int64(initBudget)*3/4, &calls)) {
		t.Fatal("Spin gave up within its budget")
	}
	if b := s.Budget(); b <= initBudget {
		t.Fatalf("budget after a late win: %v, want more than %v", b, initBudget)
	}
}

func TestYields(t *testing.T) {
	for _, handoff := range []bool{false, true} {
		f := &fake{}
		s := newSpinner(f)
		s.Handoff = handoff
		calls := 0
		s.Spin(f.pollFor(100, -1, &calls))
		if len(f.yields) < 2 {
			t.Fatalf("%d yields in a %v spin", len(f.yields), initBudget)
		}
		os := f.yields
		ts := f.yieldT
		if handoff {
			if f.yields[0] {
				t.Fatal("Handoff: the first yield is sched_yield, want runtime.Gosched")
			}
			os, ts = os[1:], ts[1:]
		}
		for i := range os {
			if !os[i] {
				t.Fatalf("Handoff %v: a runtime.Gosched at %d ns; only a Handoff's first yield may be one", handoff, ts[i])
			}
			if ts[i] < int64(tightSpin) {
				t.Fatalf("sched_yield at %d ns, within the tight spin", ts[i])
			}
			if i > 0 && ts[i]-ts[i-1] < int64(yieldEvery) {
				t.Fatalf("sched_yields at %d and %d ns, closer than %v", ts[i-1], ts[i], yieldEvery)
			}
		}
	}
}

func TestPreemptedSpinParks(t *testing.T) {
	f := &fake{}
	s := newSpinner(f)
	n := 0
	ready := func() bool {
		n++
		if n == 3 {
			f.t += int64(preempted) + 1 // descheduled between two looks
		} else {
			f.t += 100
		}
		return false
	}
	s.Spin(ready)
	if f.t > int64(preempted)+int64(5*time.Microsecond) {
		t.Fatalf("spun on for %d ns after being descheduled", f.t-int64(preempted))
	}
}

func TestShortParksGrowBudgetUpToParkCost(t *testing.T) {
	f := &fake{}
	s := newSpinner(f)
	s.budget.Store(int64(minBudget))
	// Parks of 15 µs: each about a wake-up's latency (the condition came
	// right after the spin gave up).
	for range 100 {
		s.Parked(15 * time.Microsecond)
	}
	p := s.ParkCost()
	if p < parkFactor*14*time.Microsecond || p > parkFactor*16*time.Microsecond {
		t.Fatalf("park cost %v after parks of 15 µs", p)
	}
	if b := s.Budget(); b != p {
		t.Fatalf("budget %v after short parks, want the park cost %v", b, p)
	}
}

func TestLongParksShrinkBudget(t *testing.T) {
	f := &fake{}
	s := newSpinner(f)
	for range 20 {
		s.Parked(30 * time.Microsecond)
	}
	cost := s.ParkCost()
	for range 20 {
		s.Parked(10 * time.Millisecond) // a slow producer: spinning is waste
	}
	if b := s.Budget(); b != minBudget {
		t.Fatalf("budget %v after long parks, want %v", b, minBudget)
	}
	if p := s.ParkCost(); p != cost {
		t.Fatalf("long waits moved the park cost from %v to %v", cost, p)
	}
}

func TestParkCostFollowsSlowerMachine(t *testing.T) {
	f := &fake{}
	s := newSpinner(f)
	for range 20 {
		s.Parked(10 * time.Microsecond)
	}
	// The machine becomes slower: wake-ups now take 18 µs.
	for range 200 {
		s.Parked(18 * time.Microsecond)
	}
	if p := s.ParkCost(); p < parkFactor*17*time.Microsecond {
		t.Fatalf("park cost %v after parks of 18 µs", p)
	}
	// And never past maxPark, however slow.
	for range 5000 {
		s.Parked(2 * time.Duration(s.wakeNs()))
	}
	if p := s.ParkCost(); p > maxPark {
		t.Fatalf("park cost %v past its cap %v", p, maxPark)
	}
	if b := s.Budget(); b > maxPark {
		t.Fatalf("budget %v past the cap %v", b, maxPark)
	}
}

// Waits that come at a steady interval longer than a park costs are not
// mistaken for the cost of a park: the budget shrinks instead of growing
// until it spins through every wait.
func TestSteadyWaitsAreNotParkCost(t *testing.T) {
	for _, wait := range []time.Duration{120 * time.Microsecond, 200 * time.Microsecond, 2 * time.Millisecond} {
		f := &fake{}
		s := newSpinner(f)
		const wake = 20 * time.Microsecond
		for range 1000 {
			calls := 0
			b := int64(s.Budget())
			if !s.Spin(f.pollFor(100, int64(wait), &calls)) {
				s.Parked(wait - time.Duration(b) + wake)
			}
		}
		if b := s.Budget(); b > 8*time.Microsecond {
			t.Fatalf("waits of %v: budget %v (park cost %v)", wait, b, s.ParkCost())
		}
	}
}

// Bimodal waits — half answered at once, half long — keep the budget low:
// the early wins pull it down, the long parks halve it.
func TestBimodalWaitsKeepBudgetLow(t *testing.T) {
	f := &fake{}
	s := newSpinner(f)
	for i := range 200 {
		calls := 0
		if i%2 == 0 {
			s.Spin(f.pollFor(100, 500, &calls))
		} else if !s.Spin(f.pollFor(100, -1, &calls)) {
			s.Parked(5 * time.Millisecond)
		}
	}
	if b := s.Budget(); b > 4*time.Microsecond {
		t.Fatalf("budget %v with bimodal waits (0.5 µs or 5 ms)", b)
	}
}

// Spin and the feedback are safe for concurrent use (run under -race).
func TestConcurrent(t *testing.T) {
	var s Spinner
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			n := 0
			for range 200 {
				n++
				if !s.Spin(func() bool { return n%3 == g%3 }) {
					s.Parked(time.Duration(n%7) * time.Microsecond)
				}
			}
		}()
	}
	for range 4 {
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("spinners did not finish")
		}
	}
	if b := s.Budget(); b < minBudget || b > maxPark {
		t.Fatalf("budget %v out of bounds", b)
	}
}

// With GOMAXPROCS=1 a waiter does not spin: the goroutine it waits for may
// need this very thread (the real CPU check, not the test hook).
func TestNoSpinWithOneP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	procsChecked.Store(0) // forget the cached answer
	var s Spinner
	calls := 0
	if s.Spin(func() bool { calls++; return false }) || calls != 1 {
		t.Fatalf("GOMAXPROCS=1: Spin looked %d times", calls)
	}
	procsChecked.Store(0)
}

// Parks too short to tell from no park at all (the futex or the poller
// returned at once) grow the budget but say nothing of the park cost.
func TestNonParksLeaveParkCost(t *testing.T) {
	f := &fake{}
	s := newSpinner(f)
	for range 20 {
		s.Parked(20 * time.Microsecond)
	}
	p, b := s.ParkCost(), s.Budget()
	for range 50 {
		s.Parked(time.Microsecond)
	}
	if s.ParkCost() != p {
		t.Fatalf("1 µs parks moved the park cost from %v to %v", p, s.ParkCost())
	}
	if s.Budget() < b {
		t.Fatalf("near misses shrank the budget from %v to %v", b, s.Budget())
	}
}

// A budget that collapsed (after long waits) comes back once the waits are
// short enough for a spin within the park's cost to catch them.
func TestRecoversFromCollapse(t *testing.T) {
	f := &fake{}
	s := newSpinner(f)
	const wake = 12 * time.Microsecond
	for range 40 {
		s.Parked(wake) // learn the wake-up latency
	}
	s.budget.Store(int64(minBudget)) // collapsed
	const wait = 25 * time.Microsecond
	for range 200 {
		calls := 0
		b := int64(s.Budget())
		if !s.Spin(f.pollFor(100, int64(wait), &calls)) {
			s.Parked(wait - time.Duration(b) + wake)
		}
	}
	if b := s.Budget(); b < wait {
		t.Fatalf("budget %v (park cost %v): waits of %v, which a spin catches, are still parked for", b, s.ParkCost(), wait)
	}
}

// The measured (typical) wake-up latency is a floor under the learned
// one: parks that land on the waker's CPU do not make the park cost look
// small where a wake-up across CPUs is slow.
func TestTypicalWakeFloorsParkCost(t *testing.T) {
	f := &fake{typical: int64(50 * time.Microsecond)}
	s := newSpinner(f)
	for range 200 {
		s.Parked(6 * time.Microsecond) // same-CPU wake-ups
	}
	if p := s.ParkCost(); p != parkFactor*50*time.Microsecond {
		t.Fatalf("park cost %v, want %v (4× the typical 50 µs)", p, parkFactor*50*time.Microsecond)
	}
	// Parks of a round trip (the peer's wake-up, its work, the answer)
	// within that cost grow the budget instead of collapsing it.
	for range 100 {
		s.Parked(120 * time.Microsecond)
	}
	if b := s.Budget(); b < 100*time.Microsecond {
		t.Fatalf("budget %v after parks of 120 µs with a park cost of %v", b, s.ParkCost())
	}
	f.typical = int64(time.Second)
	if p := s.ParkCost(); p != maxPark {
		t.Fatalf("park cost %v, want the cap %v", p, maxPark)
	}
}

// measureWake measures something plausible, and WakeEnv passes it on.
func TestMeasureWake(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: nothing is measured")
	}
	w := measureWake()
	if w <= 0 || w > int64(time.Second) {
		t.Fatalf("wake-up latency %v", time.Duration(w))
	}
	t.Logf("wake-up latency %v", time.Duration(w))
	calibrate()
	select {
	case <-known:
	case <-time.After(30 * time.Second):
		t.Fatal("calibrate measured nothing")
	}
	if kv := WakeEnv(); kv != EnvWake+"="+strconv.FormatInt(measured.Load(), 10) {
		t.Fatalf("WakeEnv = %q", kv)
	}
}
