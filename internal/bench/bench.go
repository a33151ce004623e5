// Package bench measures multiproc's processes and IPC mechanisms, and
// python3's multiprocessing doing the same things, for `multiproc bench`
// and `go test -bench`.
//
// Every scenario is defined once, here: the CLI runs it with Scenario.Run
// (a few repetitions, a median and a spread), the Benchmark functions of
// this package with Scenario.Measure (b.N operations). The python3 twin of
// every scenario, with the same name and unit, is the embedded script
// PythonScript (internal/bench/python/bench.py), run by RunPython.
//
// A program that runs scenarios must call multiproc.Main first in main (or
// TestMain): the functions the scenarios run in child processes are
// registered by this package.
//
// The package is internal: it imports testing (to cut sizes down inside a
// test binary) and its API follows the CLI's needs. The targets the bench
// prints are explained for users in TARGETS.md, beside this file.
package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// Scenario is one measurement.
type Scenario struct {
	Name           string // short and stable: the CLI's -only, the python twin's name, the JSON key
	Title          string // one line: what is measured
	Unit           string // of the figure: "ms", "µs" (per operation) or "MB/s", "msgs/s", ... (a rate)
	HigherIsBetter bool   // true for rates, false for latencies and times
	Mechanism      string // "process", "pipe", "queue", "shared memory", "pool", "signal"
	Python         string // what the python3 twin does
	// Target is this scenario's goal against python3 (TARGETS.md), or nil.
	Target *Target
	// FloorRef names the floor program's metric for the same work, or is
	// nil where C has no equivalent (see Floor).
	FloorRef *FloorRef

	full, quick sizes
	// pyFull and pyQuick are the python twin's sizes, where python is
	// too slow for ours (zero: the same as ours). Rates and times per
	// operation do not depend on the size, once it is large enough.
	pyFull, pyQuick sizes
	// perOp: batch is the size of one operation (the elements of
	// array-fill), not a count of the units the figure counts.
	perOp bool
	// measure runs n operations of batch units each and returns the time
	// they took (setup, such as starting the child processes, excluded).
	measure func(ctx context.Context, n, batch int) (time.Duration, error)
}

// sizes is how much one repetition does: n operations of batch units
// each (a unit is what the figure counts: a task, a message, a byte...).
type sizes struct {
	n, batch, reps int
}

// Target is a performance goal relative to python3, as TARGETS.md (beside
// this file) states it for users.
type Target struct {
	// Factor is how many times better than python3's figure ours must be:
	// for a rate, ours ≥ Factor × python's; for a time, ours ≤ python's / Factor.
	Factor float64
	Text   string // the goal as TARGETS.md states it: "≤ 0.5× python"
	// Against names python's scenario to compare with, when it is not the
	// one of the same name.
	Against string
	// Within, if set, is a second bound of the same run: ours at most
	// Within.Times as slow as our own figure of scenario Within.Of.
	Within *Within
}

// Within bounds a scenario by another of ours in the same run: "≤ 2×
// event-rt" is Within{Of: "event-rt", Times: 2}.
type Within struct {
	Of    string
	Times float64
}

// Slower returns how many times slower (worse) ours is than other, both
// of the same unit: above 1, ours is worse.
func Slower(ours, other Result) float64 {
	if ours.HigherIsBetter {
		return other.Median / ours.Median
	}
	return ours.Median / other.Median
}

// Met reports whether ratio (ours over python's, as Ratio returns it)
// reaches the target.
func (t *Target) Met(ratio float64) bool { return ratio >= t.Factor*(1-1e-9) }

// Result is the outcome of a Scenario.Run (or of its python3 twin, which
// prints the same fields).
type Result struct {
	Name           string    `json:"name"`
	Unit           string    `json:"unit"`
	HigherIsBetter bool      `json:"higher_is_better"`
	Median         float64   `json:"median"`
	Min            float64   `json:"min"`
	Max            float64   `json:"max"`
	Samples        []float64 `json:"samples"` // one figure per repetition
	N              int       `json:"n"`       // operations per repetition
	Batch          int       `json:"batch"`   // units per operation
	Note           string    `json:"note,omitempty"`
	// CPU is the CPU time (user + system, of every process taking part:
	// this one and its children, from their start to their exit) per
	// million units of the figure (messages, round trips, tasks, bytes,
	// starts), in seconds: the median over the repetitions. It shows what
	// waiting costs: a waiter that spins instead of sleeping spends CPU
	// time that a figure of speed alone hides. 0 when not measured.
	CPU float64 `json:"cpu_s_per_million,omitempty"`
}

// Spread is (max−min)/median, as a fraction.
func (r Result) Spread() float64 {
	if r.Median == 0 {
		return 0
	}
	return (r.Max - r.Min) / r.Median
}

// Ratio says how many times better ours is than python's, whichever way
// the unit goes: ours/python's for a rate, python's/ours for a time. More
// than 1 means ours is better. It is 0 when either figure is missing.
func Ratio(ours, python Result) float64 {
	if ours.Median <= 0 || python.Median <= 0 {
		return 0
	}
	if ours.HigherIsBetter {
		return ours.Median / python.Median
	}
	return python.Median / ours.Median
}

// Options tunes Scenario.RunWith.
type Options struct {
	Quick bool
	// Progress, if not nil, is called before each repetition: rep 0 is the
	// warm-up, then 1..reps.
	Progress func(rep, reps int)
}

// Run warms the scenario up, runs it for several repetitions (5, or 3 in
// quick mode) and returns the median figure and its spread.
func (s *Scenario) Run(ctx context.Context, quick bool) (Result, error) {
	return s.RunWith(ctx, Options{Quick: quick})
}

// RunWith is Run with a progress callback.
func (s *Scenario) RunWith(ctx context.Context, o Options) (Result, error) {
	z := s.Plan(o.Quick)
	res := Result{Name: s.Name, Unit: s.Unit, HigherIsBetter: s.HigherIsBetter, N: z.N, Batch: z.Batch}
	if o.Progress != nil {
		o.Progress(0, z.Reps)
	}
	if _, err := s.measure(ctx, max(1, z.N/10), z.Batch); err != nil {
		return res, fmt.Errorf("%s: warm-up: %w", s.Name, err)
	}
	var cpu []float64
	for i := range z.Reps {
		if o.Progress != nil {
			o.Progress(i+1, z.Reps)
		}
		cpu0 := cpuTime()
		d, err := s.measure(ctx, z.N, z.Batch)
		if err != nil {
			return res, fmt.Errorf("%s: %w", s.Name, err)
		}
		cpu = append(cpu, (cpuTime()-cpu0).Seconds()/s.units(z.N, z.Batch)*1e6)
		res.Samples = append(res.Samples, s.figure(z.N, z.Batch, d))
	}
	res.Median, res.Min, res.Max = summarize(res.Samples)
	res.CPU, _, _ = summarize(cpu)
	return res, nil
}

// Measure runs n operations of the scenario at full size (as the
// Benchmark functions do, with n = b.N) and returns the time they took,
// setup excluded.
func (s *Scenario) Measure(ctx context.Context, n int) (time.Duration, error) {
	return s.measure(ctx, n, max(1, s.full.batch))
}

// Figure converts n operations of full size that took d (Measure's
// result) to the scenario's figure, in its Unit.
func (s *Scenario) Figure(n int, d time.Duration) float64 {
	return s.figure(n, max(1, s.full.batch), d)
}

// units is how many units the figure counts in n operations of batch.
func (s *Scenario) units(n, batch int) float64 {
	if s.perOp {
		return float64(n)
	}
	return float64(n) * float64(batch)
}

// cpuTime is the CPU time (user + system) this process has used, and its
// children that have been waited for (multiproc reaps its own): the
// difference over a repetition counts every process of the scenario,
// since each is started and joined within it.
func cpuTime() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration {
		return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
	}
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

func (s *Scenario) figure(n, batch int, d time.Duration) float64 {
	units := s.units(n, batch)
	secs := d.Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	switch s.Unit {
	case "ms":
		return secs / units * 1e3
	case "µs":
		return secs / units * 1e6
	case "MB/s":
		return units / secs / 1e6
	default: // msgs/s, ops/s, tasks/s
		return units / secs
	}
}

// Plan is how much one run of a scenario does.
type Plan struct {
	N     int `json:"n"`     // operations per repetition
	Batch int `json:"batch"` // units per operation
	Reps  int `json:"reps"`  // repetitions (after one warm-up of N/10 operations)
}

// Plan returns the sizes Run uses. Inside a test binary (testing.Testing)
// they are cut down a lot, so that tests, even under the race detector,
// run every scenario in seconds; Measure always uses full batches.
func (s *Scenario) Plan(quick bool) Plan {
	return planFor(s.full, s.quick, s.Unit, quick, testing.Testing())
}

// PythonPlan returns the sizes of the python twin (RunPython passes them
// to the script): smaller than ours where python is much slower.
func (s *Scenario) PythonPlan(quick bool) Plan {
	full, q := s.pyFull, s.pyQuick
	if full.n == 0 {
		full = s.full
	}
	if q.n == 0 {
		q = s.quick
	}
	return planFor(full, q, s.Unit, quick, testing.Testing())
}

func planFor(full, quickSizes sizes, unit string, quick, tiny bool) Plan {
	z := full
	if quick {
		z = quickSizes
	}
	if tiny {
		z = quickSizes
		z.n = max(1, z.n/20)
		if unit != "MB/s" { // a pipe message stays 1 MiB
			z.batch = max(1, z.batch/20)
		}
	}
	if z.batch == 0 {
		z.batch = 1
	}
	if z.reps == 0 {
		z.reps = 5
		if quick || tiny {
			z.reps = 3
		}
	}
	return Plan{N: z.n, Batch: z.batch, Reps: z.reps}
}

func summarize(xs []float64) (median, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	median = s[m]
	if len(s)%2 == 0 {
		median = (s[m-1] + s[m]) / 2
	}
	return median, s[0], s[len(s)-1]
}

// Scenarios returns every scenario, in the order the CLI prints them.
func Scenarios() []*Scenario { return slices.Clone(all) }

// Lookup finds a scenario by name.
func Lookup(name string) (*Scenario, bool) {
	for _, s := range all {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// Select returns the scenarios a comma-separated list names, in the
// canonical order; every scenario for an empty list. An unknown name is an
// error that lists the known ones.
func Select(list string) ([]*Scenario, error) {
	if strings.TrimSpace(list) == "" {
		return Scenarios(), nil
	}
	want := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, ok := Lookup(name); !ok {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(Names(), ", "))
		}
		want[name] = true
	}
	var out []*Scenario
	for _, s := range all {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}

// Names lists every scenario's name.
func Names() []string {
	var names []string
	for _, s := range all {
		names = append(names, s.Name)
	}
	return names
}

// Format prints a figure with three significant digits and an SI suffix
// for large rates: 0.482, 23.4, 1.25k, 19.3M.
func Format(x float64) string {
	ax := math.Abs(x)
	switch {
	case ax >= 1e9:
		return sig3(x/1e9) + "G"
	case ax >= 1e6:
		return sig3(x/1e6) + "M"
	case ax >= 1e4:
		return sig3(x/1e3) + "k"
	}
	return sig3(x)
}

func sig3(x float64) string {
	ax := math.Abs(x)
	switch {
	case ax == 0:
		return "0"
	case ax >= 100:
		return fmt.Sprintf("%.0f", x)
	case ax >= 10:
		return fmt.Sprintf("%.1f", x)
	case ax >= 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

// timeBetween starts ps as daemon children that each wait on start twice
// (ready, then done), waits with them, and returns the time between the
// two rounds: the work alone, without process start-up. It joins the
// children, or kills them if anything fails.
func timeBetween(ctx context.Context, start *multiproc.Barrier, ps []*multiproc.Process) (d time.Duration, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		if err != nil {
			for _, p := range ps {
				p.Kill()
				p.Join(context.Background())
			}
		}
	}()
	for _, p := range ps {
		p.Daemon = true
		if err := p.Start(); err != nil {
			return 0, err
		}
	}
	if err := start.Wait(ctx); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := start.Wait(ctx); err != nil {
		return 0, err
	}
	d = time.Since(t0)
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			return 0, err
		}
	}
	return d, nil
}

// endToEnd times a whole steady-state measurement as a user's program
// sees it: the shared objects made, the processes started, the work, the
// processes joined (the -e2e rows). The steady-state figure measure
// returns, timed between the barriers, is dropped.
func endToEnd(measure func() (time.Duration, error)) (time.Duration, error) {
	t0 := time.Now()
	if _, err := measure(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}
