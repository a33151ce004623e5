package bench

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// FloorSource is floor/c_limits.c, the C program that measures the
// machine's floor for each mechanism (the same work with no runtime in the
// way): a copy of the project's ../shared/floor/c_limits.c, embedded so
// that `multiproc bench -floor` works in any clone (TestFloorSourceIsShared
// keeps the copy in step where shared/ is beside the repository). It is a
// measuring tool, not part of the library.
//
//go:embed floor/c_limits.c
var FloorSource []byte

// FloorSocketsSource is floor/c_sockets.c, this repository's own small C
// program for what c_limits.c lacks: round trips over a connected socket
// (TCP loopback and a unix socket, made with listen/connect/accept), the
// floor of the socket rows. RunFloor runs it after c_limits and merges its
// figures into the report.
//
//go:embed floor/c_sockets.c
var FloorSocketsSource []byte

// FloorMetric is one figure of the floor program.
type FloorMetric struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`   // "us", "ms", "ms/process", "MB/s", "msgs/s", "ops/s", "round trips/s", "GB/s"
	Better string    `json:"better"` // "lower" or "higher"
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Reps   []float64 `json:"reps"`
	Notes  string    `json:"notes"`
}

// FloorReport is the floor program's JSON document.
type FloorReport struct {
	Tool    string        `json:"tool"` // "c_limits" (RunFloor's merged report), or "c_sockets"
	Reps    int           `json:"reps"`
	NProc   int           `json:"nproc"`
	Results []FloorMetric `json:"results"`
	// ExecTarget is the command line the program also started with
	// posix_spawn (the floor of starting this program), or "" (RunFloor
	// sets it; the program's JSON does not carry it).
	ExecTarget string `json:"exec_target,omitempty"`
	// Missing says which floors RunFloor could not measure, and why, or
	// is "".
	Missing string `json:"missing,omitempty"`
}

// maxFloorOutput bounds what is read of the floor program's output.
const maxFloorOutput = 1 << 20

// ParseFloor decodes the output of a floor program (c_limits or
// c_sockets).
func ParseFloor(b []byte) (*FloorReport, error) {
	var r FloorReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("the floor program's output is not its JSON document: %v", err)
	}
	if (r.Tool != "c_limits" && r.Tool != "c_sockets") || len(r.Results) == 0 {
		return nil, fmt.Errorf("the floor program's output has tool %q and %d results: not c_limits's or c_sockets's report", r.Tool, len(r.Results))
	}
	for _, m := range r.Results {
		if m.Name == "" || !(m.Median > 0) || (m.Better != "lower" && m.Better != "higher") {
			return nil, fmt.Errorf("the floor program's result %+v is incomplete", m)
		}
	}
	return &r, nil
}

// Metric returns the named figure, if the report has it.
func (r *FloorReport) Metric(name string) (FloorMetric, bool) {
	if r == nil {
		return FloorMetric{}, false
	}
	for _, m := range r.Results {
		if m.Name == name {
			return m, true
		}
	}
	return FloorMetric{}, false
}

// FloorRef names the floor program's metric that is the floor of a
// scenario.
type FloorRef struct {
	// Metric is the metric's name; "{exec}" stands for the command line
	// started by posix_spawn (FloorReport.ExecTarget, or /bin/true).
	Metric string
	// Inverse: the metric is a rate of the scenario's operations (round
	// trips/s) where the scenario's unit is µs per operation.
	Inverse bool
	// Max is the goal (TARGETS.md): at most Max times slower than the
	// floor (TimesFloor ≤ Max); 0 for none.
	Max float64
}

// FloorFigure is a scenario's floor, in the scenario's unit.
type FloorFigure struct {
	Metric string  `json:"metric"` // the floor program's metric
	Value  float64 `json:"value"`  // in the scenario's unit
}

// Floor returns the scenario's floor in the report, in the scenario's
// unit; false when the scenario has no floor or the report lacks it.
func (s *Scenario) Floor(r *FloorReport) (FloorFigure, bool) {
	if s.FloorRef == nil || r == nil {
		return FloorFigure{}, false
	}
	name := s.FloorRef.Metric
	if strings.Contains(name, "{exec}") {
		target := r.ExecTarget
		if _, ok := r.Metric(strings.ReplaceAll(name, "{exec}", target)); target == "" || !ok {
			target = "/bin/true"
		}
		name = strings.ReplaceAll(name, "{exec}", target)
	}
	m, ok := r.Metric(name)
	if !ok {
		return FloorFigure{}, false
	}
	v := m.Median
	switch {
	case s.FloorRef.Inverse && s.Unit == "µs" && m.Unit == "round trips/s":
		v = 1e6 / v
	case s.Unit == m.Unit, s.Unit == "µs" && m.Unit == "us", s.Unit == "ms" && m.Unit == "ms/process":
	default:
		return FloorFigure{}, false // units that do not convert: no floor rather than a wrong one
	}
	return FloorFigure{Metric: name, Value: v}, true
}

// TimesFloor says how many times slower than its floor a figure is
// (ours/floor for a time, floor/ours for a rate): 1 is the floor itself.
// It is 0 when either figure is missing.
func (s *Scenario) TimesFloor(ours float64, f FloorFigure) float64 {
	if ours <= 0 || f.Value <= 0 {
		return 0
	}
	if s.HigherIsBetter {
		return f.Value / ours
	}
	return ours / f.Value
}

// ErrNoCompiler is RunFloor's error when no C compiler is found.
var ErrNoCompiler = errors.New("no C compiler found: -floor needs cc, gcc or clang in PATH, or CC set to one")

// FloorOptions tunes RunFloor.
type FloorOptions struct {
	Quick bool // the program's --quick: 3 repetitions, smaller sizes (about 30 s)
	// CC is the C compiler; "" means $CC, else the first of cc, gcc and
	// clang in PATH.
	CC string
	// ExecTarget, if not empty, is a command line (no spaces in its
	// words) that the program also starts and waits for with posix_spawn:
	// the floor of starting this program. Started with stdout and stderr
	// on /dev/null.
	ExecTarget []string
	// Progress, if not nil, gets each line the program prints on stderr.
	Progress func(line string)
}

// FindCC returns the C compiler RunFloor would use.
func FindCC(cc string) (string, error) {
	if cc == "" {
		cc = os.Getenv("CC")
	}
	if cc != "" {
		path, err := exec.LookPath(cc)
		if err != nil {
			return "", fmt.Errorf("the C compiler %q: %w", cc, ErrNoCompiler)
		}
		return path, nil
	}
	for _, name := range []string{"cc", "gcc", "clang"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", ErrNoCompiler
}

// RunFloor compiles FloorSource and FloorSocketsSource with a C compiler
// in a temporary directory, runs them one after the other, and returns
// c_limits's report with c_sockets's figures added (without them, and a
// progress line saying why, if c_sockets fails: a sandbox may have no
// loopback network). An error wrapping
// ErrNoCompiler means there is no compiler; a compiler that fails (the
// program needs Linux on x86-64: it uses PAUSE) is an error quoting its
// first lines.
func RunFloor(ctx context.Context, o FloorOptions) (*FloorReport, error) {
	cc, err := FindCC(o.CC)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "multiproc-floor-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var quick []string // both programs' flag
	if o.Quick {
		quick = []string{"--quick"}
	}
	args := quick
	target := strings.Join(o.ExecTarget, " ")
	if target != "" && execTargetOK(o.ExecTarget) {
		args = append(slices.Clip(quick), target)
	} else {
		target = ""
	}
	rep, err := runFloorProgram(ctx, cc, dir, "c_limits", FloorSource, args, o.Progress)
	if err != nil {
		return nil, err
	}
	rep.ExecTarget = target
	sock, err := runFloorProgram(ctx, cc, dir, "c_sockets", FloorSocketsSource, quick, o.Progress)
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	rep.addSockets(sock, err)
	if rep.Missing != "" && o.Progress != nil {
		o.Progress(rep.Missing)
	}
	return rep, nil
}

// addSockets adds c_sockets's figures to r, or, if c_sockets failed,
// says so in r.Missing: a machine without a loopback network (a sandbox)
// still has every other floor, and the socket rows go without one.
func (r *FloorReport) addSockets(sock *FloorReport, err error) {
	if err != nil {
		r.Missing = fmt.Sprintf("no floor for the socket rows: %v", err)
		return
	}
	r.Results = append(r.Results, sock.Results...)
}

// runFloorProgram compiles src as dir/name.c and runs it with args.
func runFloorProgram(ctx context.Context, cc, dir, name string, src []byte, args []string, progress func(string)) (*FloorReport, error) {
	srcPath, bin := filepath.Join(dir, name+".c"), filepath.Join(dir, name)
	if err := os.WriteFile(srcPath, src, 0o644); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, cc, "-O2", "-o", bin, srcPath, "-lpthread").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("compiling the floor program with %s: %v%s", cc, err, tail(string(out)))
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	// Killed with this process, whatever kills it: it runs for a while.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedBuffer{buf: &stdout, max: maxFloorOutput}
	pr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if progress != nil {
			progress(line)
		}
		if stderr.Len() < maxFloorOutput {
			stderr.WriteString(line + "\n")
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("the floor program %s: %v%s", name, err, tail(stderr.String()))
	}
	return ParseFloor(stdout.Bytes())
}

// execTargetOK: the floor program splits its exec target at spaces, with
// no quoting, and prints it into its JSON unescaped.
func execTargetOK(words []string) bool {
	for _, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\n\"\\") {
			return false
		}
		for _, r := range w {
			if r < 0x20 {
				return false
			}
		}
	}
	return true
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
