package main

// The bench tests call benchMain in this process (not the built binary):
// inside a test binary the bench package cuts every scenario down to a
// test size, so even -race runs take seconds. No timing is asserted.

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
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

func TestBenchQuickJSONRunsEveryScenario(t *testing.T) {
	code, stdout, stderr := benchRun(t, 3*time.Minute, "-quick", "-json")
	rep := benchDecode(t, stdout)
	got := map[string]bench.Result{}
	for _, r := range rep.Results {
		got[r.Name] = r
	}
	for _, s := range bench.Scenarios() {
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
	code, stdout, stderr = benchRun(t, 2*time.Minute, "-quick", "-python", "-only", "pipe-rt-bytes")
	if code != exitOK || !strings.Contains(stdout, "PYTHON3") || !strings.Contains(stdout, "RATIO") || !strings.Contains(stdout, "≤ 0.5× python") {
		t.Errorf("exit status %d, table:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
