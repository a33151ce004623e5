package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestScenarios runs every scenario at its test size (Plan cuts it down in
// a test binary) and checks that each reports positive figures.
func TestScenarios(t *testing.T) {
	for _, s := range Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var reps []int
			res, err := s.RunWith(ctx, Options{Quick: true, Progress: func(rep, n int) { reps = append(reps, rep) }})
			if err != nil {
				t.Fatal(err)
			}
			z := s.Plan(true)
			if len(res.Samples) != z.Reps || !slices.Equal(reps, []int{0, 1, 2, 3}[:z.Reps+1]) {
				t.Errorf("%d samples, progress %v; want %d repetitions", len(res.Samples), reps, z.Reps)
			}
			for _, x := range res.Samples {
				if !(x > 0) {
					t.Errorf("sample %v, want > 0", x)
				}
			}
			if !(res.Min <= res.Median && res.Median <= res.Max && res.Median > 0) {
				t.Errorf("min %v median %v max %v", res.Min, res.Median, res.Max)
			}
			if res.Name != s.Name || res.Unit != s.Unit || res.HigherIsBetter != s.HigherIsBetter || res.N != z.N || res.Batch != z.Batch {
				t.Errorf("result %+v does not describe the scenario", res)
			}
			t.Logf("%s: %s %s (%s–%s)", s.Name, Format(res.Median), res.Unit, Format(res.Min), Format(res.Max))
		})
	}
}

func TestSelect(t *testing.T) {
	all, err := Select("")
	if err != nil || len(all) != len(Names()) || len(all) < 15 {
		t.Fatalf("Select(\"\") = %d scenarios, %v", len(all), err)
	}
	got, err := Select(" pipe-rt-bytes,start ,")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "start" || got[1].Name != "pipe-rt-bytes" {
		t.Errorf("Select picked %v, want start and pipe-rt-bytes in that order", names(got))
	}
	if _, err := Select("start,nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("Select of an unknown name: %v", err)
	}
	seen := map[string]bool{}
	for _, s := range Scenarios() {
		if seen[s.Name] || s.Name == "" || strings.ContainsAny(s.Name, ", ") {
			t.Errorf("bad or duplicate name %q", s.Name)
		}
		seen[s.Name] = true
		if s.Unit == "" || s.Title == "" || s.measure == nil {
			t.Errorf("%s: incomplete", s.Name)
		}
		if want := s.Unit != "ms" && s.Unit != "µs"; s.HigherIsBetter != want {
			t.Errorf("%s: HigherIsBetter %v with unit %s", s.Name, s.HigherIsBetter, s.Unit)
		}
	}
}

func names(ss []*Scenario) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

func TestFigureAndRatio(t *testing.T) {
	lat := &Scenario{Unit: "µs"}
	if got := lat.figure(1000, 1, 20*time.Millisecond); got != 20 {
		t.Errorf("1000 ops in 20 ms: %v µs, want 20", got)
	}
	rate := &Scenario{Unit: "tasks/s", HigherIsBetter: true}
	if got := rate.figure(2, 100000, time.Second); got != 200000 {
		t.Errorf("2×100k in 1 s: %v tasks/s", got)
	}
	mb := &Scenario{Unit: "MB/s", HigherIsBetter: true}
	if got := mb.figure(1000, 1e6, time.Second); got != 1000 {
		t.Errorf("1000 MB in 1 s: %v MB/s", got)
	}
	fill := &Scenario{Unit: "ms", perOp: true}
	if got := fill.figure(4, 1<<20, 40*time.Millisecond); got != 10 {
		t.Errorf("4 fills in 40 ms: %v ms", got)
	}
	if r := Ratio(Result{Median: 10}, Result{Median: 30}); r != 3 {
		t.Errorf("time 10 against 30: ratio %v, want 3", r)
	}
	if r := Ratio(Result{Median: 10, HigherIsBetter: true}, Result{Median: 40, HigherIsBetter: true}); r != 0.25 {
		t.Errorf("rate 10 against 40: ratio %v, want 0.25", r)
	}
	if !(&Target{Factor: 2}).Met(2) || (&Target{Factor: 2}).Met(1.9) {
		t.Error("Target.Met")
	}
	for x, want := range map[float64]string{0.4821: "0.482", 23.44: "23.4", 1250: "1250", 12500: "12.5k", 19.3e6: "19.3M", 2.5e9: "2.50G"} {
		if got := Format(x); got != want {
			t.Errorf("Format(%v) = %q, want %q", x, got, want)
		}
	}
	med, lo, hi := summarize([]float64{3, 1, 2, 10})
	if med != 2.5 || lo != 1 || hi != 10 {
		t.Errorf("summarize: %v %v %v", med, lo, hi)
	}
}

func python3(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	return p
}

// TestPythonPlan checks that bench.py's own plan, used when it runs
// alone, is the one the scenarios give it.
func TestPythonPlan(t *testing.T) {
	py := python3(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "bench.py")
	if err := os.WriteFile(script, PythonScript, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, quick := range []bool{false, true} {
		args := []string{script, "--print-plan"}
		if quick {
			args = append(args, "--quick")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, py, args...).Output()
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]Plan
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if len(got) != len(all) {
			t.Errorf("python has %d scenarios, we have %d", len(got), len(all))
		}
		for _, s := range all {
			full, q := s.pyFull, s.pyQuick
			if full.n == 0 {
				full, q = s.full, s.quick
			}
			want := planFor(full, q, s.Unit, quick, false)
			if got[s.Name] != want {
				t.Errorf("quick=%v %s: python's plan %+v, ours %+v", quick, s.Name, got[s.Name], want)
			}
		}
	}
}

// TestRunPython runs every python twin at its test size.
func TestRunPython(t *testing.T) {
	py := python3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seen := map[string]bool{}
	rep, err := RunPython(ctx, py, Scenarios(), PythonOptions{Quick: true, Progress: func(name string, rep, reps int) { seen[name] = true }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) > 0 {
		t.Errorf("python errors: %v", rep.Errors)
	}
	for _, s := range Scenarios() {
		r, ok := rep.Result(s.Name)
		if !ok {
			t.Errorf("%s: no python result", s.Name)
			continue
		}
		z := s.PythonPlan(true)
		if r.Unit != s.Unit || r.HigherIsBetter != s.HigherIsBetter || r.N != z.N || r.Batch != z.Batch || len(r.Samples) != z.Reps {
			t.Errorf("%s: python's result %+v does not match the scenario (plan %+v)", s.Name, r, z)
		}
		if !(r.Median > 0) {
			t.Errorf("%s: python's median %v", s.Name, r.Median)
		}
		if !seen[s.Name] {
			t.Errorf("%s: no progress from python", s.Name)
		}
		t.Logf("python %s: %s %s", s.Name, Format(r.Median), r.Unit)
	}
	if rep.Version == "" {
		t.Error("no python version")
	}
}

func TestRunPythonFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, _ := Lookup("start")
	if _, err := RunPython(ctx, filepath.Join(t.TempDir(), "no-python"), []*Scenario{s}, PythonOptions{}); err == nil {
		t.Error("RunPython with a missing interpreter: no error")
	}
	// An interpreter that prints no report.
	if _, err := RunPython(ctx, "/bin/true", []*Scenario{s}, PythonOptions{}); err == nil {
		t.Error("RunPython with /bin/true: no error")
	}
}

// A target with a bound by another scenario of the same run is met only
// when both hold: condition-rt 6× better than python3 but 3× event-rt
// misses "≤ 0.2× python (and ≤ 2× event-rt)".
func TestTargetWithin(t *testing.T) {
	cond, ok := Lookup("condition-rt")
	if !ok || cond.Target == nil || cond.Target.Within == nil || cond.Target.Within.Of != "event-rt" {
		t.Fatal("condition-rt has no bound by event-rt")
	}
	us := func(name string, v float64) Result { return Result{Name: name, Unit: "µs", Median: v} }
	py := &PythonReport{Results: []Result{us("condition-rt", 180)}}
	for _, c := range []struct {
		event float64
		met   bool
	}{{10, false}, {15, true}, {0, true}} {
		ours := map[string]Result{"condition-rt": us("condition-rt", 30)}
		if c.event > 0 {
			ours["event-rt"] = us("event-rt", c.event)
		}
		var rep Report
		rep.Compare([]*Scenario{cond}, ours, py)
		if len(rep.Comparison) != 1 || rep.Comparison[0].TargetMet == nil {
			t.Fatalf("event-rt %v: no verdict: %+v", c.event, rep.Comparison)
		}
		got := rep.Comparison[0]
		if *got.TargetMet != c.met {
			t.Errorf("condition-rt 30 µs (python 180), event-rt %v µs: met = %v, want %v", c.event, *got.TargetMet, c.met)
		}
		if c.event > 0 && got.WithinTimes != 30/c.event {
			t.Errorf("event-rt %v: %v× event-rt, want %v", c.event, got.WithinTimes, 30/c.event)
		}
	}
	if s := Slower(Result{Median: 2, HigherIsBetter: true}, Result{Median: 4, HigherIsBetter: true}); s != 2 {
		t.Errorf("a rate of 2 against 4: %v× slower, want 2", s)
	}
}

// TestFloorTargetCounts: a python target that asks for more than the C
// floor of the same run gives way to the floor's target; one within the
// floor keeps its own verdict.
func TestFloorTargetCounts(t *testing.T) {
	s, ok := Lookup("pipe-rt-struct")
	if !ok || s.Target == nil || s.FloorRef == nil || s.FloorRef.Max == 0 {
		t.Fatal("pipe-rt-struct has no python target and floor target")
	}
	us := func(v float64) Result { return Result{Name: s.Name, Unit: "µs", Median: v} }
	for _, c := range []struct {
		ours, python, floor float64
		met, beyond         bool
	}{
		{27, 64, 33, true, true},    // python/3.33 = 19 µs < the floor's 33: the floor's ≤ 1.5× counts, met
		{60, 64, 33, false, true},   // the same, the floor's target missed too (1.8×)
		{70, 200, 33, false, false}, // 200/3.33 = 60 µs is within reach: the python target stands, missed
		{20, 200, 33, true, false},  // met on its own
	} {
		rep := Report{Floor: &FloorSection{Results: []FloorMetric{{Name: s.FloorRef.Metric, Unit: "us", Better: "lower", Median: c.floor}}}}
		rep.Compare([]*Scenario{s}, map[string]Result{s.Name: us(c.ours)}, &PythonReport{Results: []Result{us(c.python)}})
		if len(rep.Comparison) != 1 || rep.Comparison[0].TargetMet == nil {
			t.Fatalf("%+v: no verdict: %+v", c, rep.Comparison)
		}
		got := rep.Comparison[0]
		if *got.TargetMet != c.met || got.BeyondFloor != c.beyond {
			t.Errorf("ours %v µs, python %v, floor %v: met %v, beyond the floor %v; want %v, %v", c.ours, c.python, c.floor, *got.TargetMet, got.BeyondFloor, c.met, c.beyond)
		}
	}
}
