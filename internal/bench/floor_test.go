package bench

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sampleFloor is the output of real quick runs of the floor programs on a
// 2-CPU VM, merged as RunFloor merges them, with this command as
// c_limits's exec target:
//
//	c_limits --quick "/tmp/floortest/mp help"
//	c_sockets --quick
func sampleFloor(t *testing.T) *FloorReport {
	t.Helper()
	var reps []*FloorReport
	for _, name := range []string{"testdata/floor-quick.json", "testdata/floor-sockets-quick.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseFloor(b)
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, r)
	}
	if reps[0].Tool != "c_limits" || reps[1].Tool != "c_sockets" {
		t.Fatalf("samples of %s and %s", reps[0].Tool, reps[1].Tool)
	}
	reps[0].Results = append(reps[0].Results, reps[1].Results...)
	return reps[0]
}

// TestFloorMapping: every scenario with a floor finds its metric in the
// floor program's real output, converted to the scenario's unit; the
// others have none.
func TestFloorMapping(t *testing.T) {
	r := sampleFloor(t)
	r.ExecTarget = "/tmp/floortest/mp help"
	median := func(name string) float64 {
		m, ok := r.Metric(name)
		if !ok {
			t.Fatalf("the sample has no %q", name)
		}
		return m.Median
	}
	want := map[string]struct {
		metric string
		value  float64
	}{
		"start":          {"posix_spawn+wait /tmp/floortest/mp help", median("posix_spawn+wait /tmp/floortest/mp help")},
		"start-cold":     {"posix_spawn+wait /tmp/floortest/mp help", median("posix_spawn+wait /tmp/floortest/mp help")},
		"pipe-rt-bytes":  {"socketpair ping-pong RTT 64B", median("socketpair ping-pong RTT 64B")},
		"pipe-rt-struct": {"socketpair ping-pong RTT 64B", median("socketpair ping-pong RTT 64B")},
		"pipe-1mib":      {"socketpair one-way 1MiB msgs", median("socketpair one-way 1MiB msgs")},
		"queue-1p1c":     {"SPSC shm ring 64B (spin+futex, batched)", median("SPSC shm ring 64B (spin+futex, batched)")},
		"value-lock":     {"pshared mutex counter 2x200k", median("pshared mutex counter 2x200k")},
		"value-lock-e2e": {"pshared mutex counter 2x200k", median("pshared mutex counter 2x200k")},
		"queue-1p1c-e2e": {"SPSC shm ring 64B (spin+futex, batched)", median("SPSC shm ring 64B (spin+futex, batched)")},
		"value-add":      {"atomic fetch_add counter 2x200k", median("atomic fetch_add counter 2x200k")},
		"array-fill":     {"child sums shared double[1e6] (fork+sum+wait)", median("child sums shared double[1e6] (fork+sum+wait)")},
		"pool-apply":     {"futex ping-pong RTT", median("futex ping-pong RTT")},
		"signal-rt":      {"signal round trip", 1e6 / median("signal round trip")}, // round trips/s → µs
		"socket-unix":    {"unix socket ping-pong RTT 64B", median("unix socket ping-pong RTT 64B")},
		"socket-tcp":     {"tcp loopback ping-pong RTT 64B", median("tcp loopback ping-pong RTT 64B")},
	}
	for _, s := range Scenarios() {
		f, ok := s.Floor(r)
		w, has := want[s.Name]
		switch {
		case ok != has:
			t.Errorf("%s: floor %v (%+v), want %v", s.Name, ok, f, has)
		case has && (f.Metric != w.metric || math.Abs(f.Value-w.value) > 1e-9*w.value):
			t.Errorf("%s: floor %+v, want %s = %v %s", s.Name, f, w.metric, w.value, s.Unit)
		}
	}
	// Without an exec target, process start is measured on /bin/true.
	r.ExecTarget = ""
	s, _ := Lookup("start")
	if f, ok := s.Floor(r); !ok || f.Metric != "posix_spawn+wait /bin/true" || f.Value != median("posix_spawn+wait /bin/true") {
		t.Errorf("start without an exec target: %+v %v", f, ok)
	}
	// How many times slower than the floor, for a time and for a rate.
	pipe, _ := Lookup("pipe-rt-bytes")
	if x := pipe.TimesFloor(30, FloorFigure{Value: 10}); x != 3 {
		t.Errorf("a 30 µs round trip against a 10 µs floor: %v× the floor, want 3", x)
	}
	q, _ := Lookup("queue-1p1c")
	if x := q.TimesFloor(5e6, FloorFigure{Value: 10e6}); x != 2 {
		t.Errorf("5M msgs/s against a 10M floor: %v× the floor, want 2", x)
	}
}

// TestFloorWithoutSockets: when c_sockets fails (a sandbox with no
// loopback network), the report keeps c_limits's figures, the socket rows
// have no floor, and the table says why; when it runs, its figures are
// added.
func TestFloorWithoutSockets(t *testing.T) {
	full := sampleFloor(t)
	b, err := os.ReadFile("testdata/floor-quick.json")
	if err != nil {
		t.Fatal(err)
	}
	limits, err := ParseFloor(b)
	if err != nil {
		t.Fatal(err)
	}
	n := len(limits.Results)
	limits.addSockets(nil, errors.New("the floor program c_sockets: exit status 1\nconnect: Network is unreachable"))
	if len(limits.Results) != n || !strings.HasPrefix(limits.Missing, "no floor for the socket rows: ") || !strings.Contains(limits.Missing, "Network is unreachable") {
		t.Fatalf("after a failed c_sockets: %d results (want %d), missing %q", len(limits.Results), n, limits.Missing)
	}
	tcp, _ := Lookup("socket-tcp")
	if f, ok := tcp.Floor(limits); ok {
		t.Errorf("socket-tcp has floor %+v without c_sockets", f)
	}
	if f, ok := tcp.Floor(full); !ok || f.Metric != "tcp loopback ping-pong RTT 64B" {
		t.Errorf("socket-tcp's floor with c_sockets: %+v %v", f, ok)
	}
	pipe, _ := Lookup("pipe-rt-bytes")
	rep := Report{Floor: &FloorSection{Results: limits.Results, Missing: limits.Missing}}
	scenarios := []*Scenario{pipe, tcp}
	ours := map[string]Result{"pipe-rt-bytes": {Name: "pipe-rt-bytes", Unit: "µs", Median: 20}, "socket-tcp": {Name: "socket-tcp", Unit: "µs", Median: 25}}
	rep.Compare(scenarios, ours, nil)
	var out bytes.Buffer
	PrintReport(&out, &rep, scenarios)
	if !strings.Contains(out.String(), "  no floor for the socket rows: ") || !strings.Contains(out.String(), "floor of pipe-rt-bytes: socketpair ping-pong RTT 64B") {
		t.Errorf("the table does not say which floors are missing:\n%s", out.String())
	}
	sock := &FloorReport{Tool: "c_sockets", Results: full.Results[n:]}
	limits.Missing = ""
	limits.addSockets(sock, nil)
	if len(limits.Results) != len(full.Results) || limits.Missing != "" {
		t.Errorf("after c_sockets ran: %d results, want %d; missing %q", len(limits.Results), len(full.Results), limits.Missing)
	}
}

func TestParseFloorRefuses(t *testing.T) {
	for _, in := range []string{
		"",
		"progress only\n",
		`{"tool": "other", "results": [{"name": "x", "unit": "us", "better": "lower", "median": 1}]}`,
		`{"tool": "c_limits", "results": []}`,
		`{"tool": "c_limits", "results": [{"name": "x", "unit": "us", "better": "lower", "median": 0}]}`,
		`{"tool": "c_limits", "results": [{"name": "x", "unit": "us", "better": "lower", "median": 1}`,
	} {
		if r, err := ParseFloor([]byte(in)); err == nil {
			t.Errorf("ParseFloor(%q) = %+v, want an error", in, r)
		}
	}
}

// realFloor is one real quick run of the floor program, shared by the
// repetitions of -count: it takes 30 s on a quiet 2-CPU VM, minutes on a
// loaded one.
var realFloor struct {
	once sync.Once
	rep  *FloorReport
	err  error
	// lines is how many progress lines it printed.
	lines int
}

// floorTarget is the exec target of the real run: a small program, whose
// start the floor program measures (this test binary would take longer,
// above all under -race).
var floorTarget = []string{"/bin/echo", "floor"}

// TestRunFloorQuick compiles and runs the floor program in quick mode
// (once per test binary), with an exec target, and finds every scenario's
// floor in its output.
func TestRunFloorQuick(t *testing.T) {
	// The floor program measures for 30–50 s whatever the test's size, on
	// both CPUs: more than the whole suite's budget allows. CI runs it as a
	// step of its own (MULTIPROC_TEST_FLOOR=1 in .ci/run).
	if os.Getenv("MULTIPROC_TEST_FLOOR") != "1" {
		t.Skip("the floor program takes 30 s or more: set MULTIPROC_TEST_FLOOR=1 to run it")
	}
	if _, err := FindCC(""); err != nil {
		t.Skipf("no floor without a C compiler: %v", err)
	}
	if _, err := os.Stat(floorTarget[0]); err != nil {
		t.Skipf("no %s to start: %v", floorTarget[0], err)
	}
	realFloor.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		realFloor.rep, realFloor.err = RunFloor(ctx, FloorOptions{Quick: true, ExecTarget: floorTarget, Progress: func(string) { realFloor.lines++ }})
	})
	r, err := realFloor.rep, realFloor.err
	if err != nil {
		t.Fatal(err)
	}
	target := strings.Join(floorTarget, " ")
	if r.Reps != 3 || r.NProc < 1 || realFloor.lines == 0 || r.ExecTarget != target {
		t.Errorf("report: %d reps, %d CPUs, %d progress lines, exec target %q", r.Reps, r.NProc, realFloor.lines, r.ExecTarget)
	}
	for _, s := range Scenarios() {
		if s.FloorRef == nil {
			continue
		}
		f, ok := s.Floor(r)
		if !ok || !(f.Value > 0) {
			t.Errorf("%s: no floor (%+v) in the real output", s.Name, f)
			continue
		}
		if strings.Contains(s.FloorRef.Metric, "{exec}") && f.Metric != "posix_spawn+wait "+target {
			t.Errorf("%s: floor %q, want the start of %s", s.Name, f.Metric, target)
		}
		t.Logf("%s: %s = %s %s", s.Name, f.Metric, Format(f.Value), s.Unit)
	}
}

// TestRunFloorNoCompiler: without a C compiler RunFloor says so; a
// compiler that fails is an error that names it.
func TestRunFloorNoCompiler(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	falseCmd, falseErr := exec.LookPath("false")
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CC", "")
	if _, err := RunFloor(ctx, FloorOptions{Quick: true}); !errors.Is(err, ErrNoCompiler) {
		t.Errorf("empty PATH: %v, want ErrNoCompiler", err)
	}
	t.Setenv("CC", "/nonexistent/cc")
	if _, err := RunFloor(ctx, FloorOptions{Quick: true}); !errors.Is(err, ErrNoCompiler) || !strings.Contains(err.Error(), "/nonexistent/cc") {
		t.Errorf("CC=/nonexistent/cc: %v, want ErrNoCompiler naming it", err)
	}
	if falseErr != nil {
		t.Skip("no false(1)")
	}
	_, err := RunFloor(ctx, FloorOptions{Quick: true, CC: falseCmd})
	if err == nil || errors.Is(err, ErrNoCompiler) || !strings.HasPrefix(err.Error(), "compiling the floor program with "+falseCmd+": exit status 1") {
		t.Errorf("a compiler that fails: %v", err)
	}
}

// TestFloorSourceIsShared: the embedded floor program is the project's
// (../shared/floor/c_limits.c beside the repository), where that is
// present: a fresh clone for users has only the copy.
func TestFloorSourceIsShared(t *testing.T) {
	for _, dir := range []string{"../../../shared/floor", "../../../../shared/floor"} {
		b, err := os.ReadFile(filepath.Join(dir, "c_limits.c"))
		if err != nil {
			continue
		}
		if !bytes.Equal(b, FloorSource) {
			t.Fatalf("internal/bench/floor/c_limits.c differs from %s/c_limits.c: copy it over", dir)
		}
		return
	}
	t.Skip("no shared/floor beside the repository")
}
