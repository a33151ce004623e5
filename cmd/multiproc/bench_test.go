package main

// The bench tests call benchMain in this process (not the built binary):
// inside a test binary the bench package cuts every scenario down to a
// test size, so even -race runs take seconds. No timing is asserted.

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc/internal/bench"
)

// benchRun runs benchMain with args and fails the test if it takes longer
// than limit.
func benchRun(t *testing.T, limit time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- benchMain(args, &out, &errb) }()
	select {
	case code = <-done:
	case <-time.After(limit):
		t.Fatalf("multiproc bench %q still running after %v", args, limit)
	}
	return code, out.String(), errb.String()
}

func benchDecode(t *testing.T, stdout string) benchReport {
	t.Helper()
	var rep benchReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("-json output is not one JSON document: %v\n%s", err, stdout)
	}
	return rep
}

// jsonScenarios are the scenarios TestBenchQuickJSON runs through the
// command: one of each mechanism. Every scenario runs (through the same
// Scenario.RunWith) in internal/bench's TestScenarios; running them all
// again here doubled the suite's time and tested nothing more of the CLI.
var jsonScenarios = []string{"start", "pipe-rt-bytes", "queue-1p1c", "value-lock", "pool-apply", "signal-rt", "socket-unix", "wait-1000", "dict-load"}

func TestBenchQuickJSON(t *testing.T) {
	code, stdout, stderr := benchRun(t, 3*time.Minute, "-quick", "-json", "-only", strings.Join(jsonScenarios, ","))
	rep := benchDecode(t, stdout)
	got := map[string]bench.Result{}
	for _, r := range rep.Results {
		got[r.Name] = r
	}
	for _, name := range jsonScenarios {
		s, ok := bench.Lookup(name)
		if !ok {
			t.Fatalf("no scenario %q", name)
		}
		r, ok := got[s.Name]
		if !ok {
			t.Errorf("%s: no result (error: %q)", s.Name, rep.Errors[s.Name])
			continue
		}
		if !(r.Median > 0 && r.Min > 0 && r.Max >= r.Median) || r.Unit != s.Unit {
			t.Errorf("%s: %+v", s.Name, r)
		}
	}
	if len(rep.Errors) > 0 || code != exitOK {
		t.Errorf("exit status %d, errors %v; stderr:\n%s", code, rep.Errors, stderr)
	}
	if !rep.Quick || rep.CPUs < 1 || rep.GoVersion == "" || len(rep.IPC) != 3 || rep.Python != nil {
		t.Errorf("report header: quick %v cpus %d go %q, %d IPC rows, python %v", rep.Quick, rep.CPUs, rep.GoVersion, len(rep.IPC), rep.Python)
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("progress written with -json to a non-terminal: %q", stderr)
	}
}

func TestBenchOnly(t *testing.T) {
	code, stdout, stderr := benchRun(t, time.Minute, "-quick", "-json", "-only", "pool-apply, start")
	if code != exitOK {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
	}
	rep := benchDecode(t, stdout)
	if len(rep.Results) != 2 || rep.Results[0].Name != "start" || rep.Results[1].Name != "pool-apply" {
		t.Errorf("-only pool-apply,start ran %+v", rep.Results)
	}
	for _, row := range rep.IPC {
		for _, f := range row.Speed {
			if f.Go != 0 {
				t.Errorf("IPC table has %s although it did not run", f.Scenario)
			}
		}
	}
}

func TestBenchTable(t *testing.T) {
	code, stdout, stderr := benchRun(t, time.Minute, "-quick", "-only", "pipe-rt-bytes,value-lock")
	if code != exitOK {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"MECHANISM", "pipe", "kernel buffer", "message queue", "shared ring in memory", "shared memory mapping",
		"random access, in place", "round trip, 64 B: ", "not run", "SCENARIO", "pipe-rt-bytes", "value-lock", "ops/s",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "start-cold") {
		t.Errorf("a scenario that was not selected is listed:\n%s", stdout)
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("progress written to a non-terminal: %q", stderr)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-only", "nosuch"},
		{"-only", "start,nosuch", "-json"},
		{"-only", ","},
		{"-bogus"},
		{"extra"},
	} {
		code, stdout, stderr := benchRun(t, 10*time.Second, args...)
		if code != exitUsage {
			t.Errorf("bench %q: exit status %d, want %d", args, code, exitUsage)
		}
		if stdout != "" || !strings.Contains(stderr, "usage: multiproc bench") {
			t.Errorf("bench %q: stdout %q, stderr %q", args, stdout, stderr)
		}
	}
	code, stdout, _ := benchRun(t, 10*time.Second, "-h")
	if code != exitOK || !strings.Contains(stdout, "-python") || !strings.Contains(stdout, "pool-apply-async") {
		t.Errorf("bench -h: exit status %d, usage:\n%s", code, stdout)
	}
}

// TestBenchNoPython: with no python3 in PATH, -python is a note, not a
// failure.
func TestBenchNoPython(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	code, stdout, stderr := benchRun(t, time.Minute, "-quick", "-python", "-only", "start")
	if code != exitOK {
		t.Fatalf("exit status %d without python3; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "python3 not found") || !strings.Contains(stdout, "start") {
		t.Errorf("no note about python3:\n%s", stdout)
	}
	code, stdout, stderr = benchRun(t, time.Minute, "-quick", "-python", "-json", "-only", "start")
	if code != exitOK {
		t.Fatalf("-json: exit status %d without python3; stderr:\n%s", code, stderr)
	}
	rep := benchDecode(t, stdout)
	if rep.Python == nil || !strings.Contains(rep.Python.Note, "python3 not found") || len(rep.Results) != 1 {
		t.Errorf("-json without python3: python %+v, %d results", rep.Python, len(rep.Results))
	}
}

func TestBenchPython(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	code, stdout, stderr := benchRun(t, 2*time.Minute, "-quick", "-python", "-json", "-only", "start,pipe-rt-bytes,value-lock,value-add")
	if code != exitOK {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
	}
	rep := benchDecode(t, stdout)
	if rep.Python == nil || rep.Python.Version == "" || rep.Python.Note != "" || len(rep.Python.Results) != 4 {
		t.Fatalf("python section: %+v", rep.Python)
	}
	if len(rep.Comparison) != 4 {
		t.Fatalf("%d comparisons, want 4: %+v", len(rep.Comparison), rep.Comparison)
	}
	for _, c := range rep.Comparison {
		if !(c.Go > 0 && c.Python > 0 && c.Ratio > 0) {
			t.Errorf("comparison %+v", c)
		}
		if (c.TargetMet != nil) != (c.Name != "value-add") {
			t.Errorf("%s: target %v", c.Name, c.TargetMet)
		}
	}
	// CPU per million units, both sides: thousands of round trips take
	// CPU time that even a tick-based accounting sees.
	for _, rs := range [][]bench.Result{rep.Results, rep.Python.Results} {
		for _, r := range rs {
			if r.Name == "pipe-rt-bytes" && !(r.CPU > 0) {
				t.Errorf("%s: no CPU figure: %+v", r.Name, r)
			}
		}
	}
	code, stdout, stderr = benchRun(t, 2*time.Minute, "-quick", "-python", "-only", "pipe-rt-bytes")
	if code != exitOK || !strings.Contains(stdout, "PYTHON3") || !strings.Contains(stdout, "RATIO") || !strings.Contains(stdout, "PY CPU") || !strings.Contains(stdout, "≤ 0.5× python") {
		t.Errorf("exit status %d, table:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestBenchFloorNoCompiler: with no C compiler, -floor is a note, not a
// failure, in the table and in the JSON.
func TestBenchFloorNoCompiler(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CC", "")
	code, stdout, stderr := benchRun(t, time.Minute, "-quick", "-floor", "-only", "start")
	if code != exitOK {
		t.Fatalf("exit status %d without a C compiler; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"FLOOR", "×FLOOR", "Note: no floor figures: no C compiler found: -floor needs cc, gcc or clang in PATH, or CC set to one\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = benchRun(t, time.Minute, "-quick", "-floor", "-json", "-only", "start")
	if code != exitOK {
		t.Fatalf("-json: exit status %d; stderr:\n%s", code, stderr)
	}
	rep := benchDecode(t, stdout)
	if rep.Floor == nil || !strings.Contains(rep.Floor.Note, "no C compiler") || len(rep.Floor.Results) != 0 || len(rep.FloorComparison) != 0 || len(rep.Results) != 1 {
		t.Errorf("-json without a C compiler: floor %+v, comparison %+v, %d results", rep.Floor, rep.FloorComparison, len(rep.Results))
	}
}

// TestBenchFloorTable: this run's figures beside the floor program's (a
// saved real run): the floor and how many times slower than it each row
// is, "-" for a row without a floor, in the table and the JSON.
func TestBenchFloorTable(t *testing.T) {
	code, stdout, stderr := benchRun(t, time.Minute, "-quick", "-json", "-only", "start,pipe-rt-bytes,queue-2p2c,signal-rt")
	if code != exitOK {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
	}
	rep := benchDecode(t, stdout)
	b, err := os.ReadFile("../../internal/bench/testdata/floor-quick.json")
	if err != nil {
		t.Fatal(err)
	}
	fr, err := bench.ParseFloor(b)
	if err != nil {
		t.Fatal(err)
	}
	scenarios, _ := bench.Select("start,pipe-rt-bytes,queue-2p2c,signal-rt")
	ours := map[string]bench.Result{}
	for _, r := range rep.Results {
		ours[r.Name] = r
	}
	// The saved run started /tmp/floortest/mp with "help".
	rep.Floor = &benchFloorSection{Compiler: "cc", Results: fr.Results, ExecTarget: "/tmp/floortest/mp help"}
	rep.FloorComparison = benchFloorTable(scenarios, ours, rep.Floor)
	if len(rep.FloorComparison) != 3 || rep.FloorComparison[0].Name != "start" {
		t.Fatalf("floor comparison %+v, want start, pipe-rt-bytes and signal-rt", rep.FloorComparison)
	}
	spawn, _ := fr.Metric("posix_spawn+wait /tmp/floortest/mp help")
	if c := rep.FloorComparison[0]; c.FloorMetric != spawn.Name || c.Floor != spawn.Median || c.Target != 1 || c.TargetMet == nil || *c.TargetMet != (c.TimesFloor <= 1) {
		t.Errorf("start's floor %+v, want %s = %v ms, target ≤ 1× (a Go program's start cannot beat an exec of it)", c, spawn.Name, spawn.Median)
	}
	comps := rep.FloorComparison[1:] // pipe-rt-bytes, signal-rt
	sock, _ := fr.Metric("socketpair ping-pong RTT 64B")
	sig, _ := fr.Metric("signal round trip")
	for i, want := range []benchFloorComparison{
		{Name: "pipe-rt-bytes", Unit: "µs", Go: ours["pipe-rt-bytes"].Median, Floor: sock.Median, FloorMetric: sock.Name, TimesFloor: ours["pipe-rt-bytes"].Median / sock.Median, Target: 1.5},
		{Name: "signal-rt", Unit: "µs", Go: ours["signal-rt"].Median, Floor: 1e6 / sig.Median, FloorMetric: sig.Name, TimesFloor: ours["signal-rt"].Median / (1e6 / sig.Median), Target: 2},
	} {
		got := comps[i]
		if got.TargetMet == nil || *got.TargetMet != (got.TimesFloor <= want.Target) {
			t.Errorf("%s: target met %v with %v× the floor", got.Name, got.TargetMet, got.TimesFloor)
		}
		got.TargetMet = nil
		if got.Name != want.Name || got.Unit != want.Unit || got.FloorMetric != want.FloorMetric || got.Target != want.Target ||
			!near(got.Go, want.Go) || !near(got.Floor, want.Floor) || !near(got.TimesFloor, want.TimesFloor) {
			t.Errorf("floor comparison %+v, want %+v", got, want)
		}
	}
	var out bytes.Buffer
	printBench(&out, &rep, scenarios)
	table := out.String()
	for _, want := range []string{
		"SCENARIO       MULTIPROC", "FLOOR", "×FLOOR",
		bench.Format(sock.Median) + " µs  " + bench.Format(comps[0].TimesFloor) + "× (≤ 1.5×: ",
		bench.Format(1e6/sig.Median) + " µs  " + bench.Format(comps[1].TimesFloor) + "× (≤ 2×: ",
		"  floor of start: posix_spawn+wait of this program (mp help)\n",
		"  floor of pipe-rt-bytes: socketpair ping-pong RTT 64B\n",
		"  floor of signal-rt: signal round trip\n",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "queue-2p2c" && (f[len(f)-1] != "-" || f[len(f)-2] != "-") {
			t.Errorf("queue-2p2c has no floor, want \"-\" in both columns: %q", line)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

// TestBenchInterrupted: Ctrl-C (a real SIGINT to the command) stops the
// bench with exit status 130, as shells expect, and leaves no process.
func TestBenchInterrupted(t *testing.T) {
	run := startCLI(t, "bench", "-quick")
	// Once a scenario has started children: the bench is under way.
	waitFor(t, run, func() bool { return len(childrenOf(run.cmd.Process.Pid)) > 0 })
	if err := run.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := run.wait(t)
	if code == 0 {
		t.Skip("the race was lost: the whole bench finished before the signal")
	}
	if code != 130 {
		t.Fatalf("exit status %d, want 130\nstderr: %s", code, run.stderr.String())
	}
	if run.stderr.String() != "multiproc bench: interrupted (interrupt signal received)\n" {
		t.Errorf("stderr %q", run.stderr.String())
	}
	noProcessesLeft(t)
}
