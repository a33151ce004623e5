package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc/internal/bench"
)

var benchCommand = command{
	name:    "bench",
	summary: "measure pipe, queue and shared memory (and processes, pools, signals), side by side with python3",
	run:     runBench,
}

const benchUsage = `usage: multiproc bench [-python] [-floor] [-quick] [-json] [-only LIST]

Measure the IPC mechanisms of the classic lesson on this machine — pipe,
message queue, shared memory — and process start, the process pool and
signals, and print the lesson's comparison table filled in with the
figures of this run, then every scenario: its median over several
repetitions, their spread (min–max), and its unit.

options:
  -python     also run python3's multiprocessing twin of every scenario
              (after ours, not at the same time) and print its figure, the
              ratio, and the performance targets; python3 is looked up in
              PATH, and its absence is a note, not a failure
  -floor      also compile and run a C program that does the same work
              with no runtime in the way (the machine's floor), and print
              its figure and how many times slower than it ours is; needs
              a C compiler (cc, gcc or clang, or $CC): without one, a note
  -quick      smaller sizes and 3 repetitions instead of 5 (under a minute
              on 2 CPUs, python3 included)
  -json       print one JSON document instead of the tables (no progress)
  -only LIST  run only these scenarios (comma-separated names)

scenarios:
%s
The targets are explained in internal/bench/TARGETS.md of the source.
A live progress line is shown on stderr when it is a terminal.
Exit status: 0 done, 1 a scenario of ours failed, 2 usage error,
128+N interrupted by signal N (130: Ctrl-C).
`

// benchScenarioTimeout bounds each scenario (its warm-up and repetitions):
// a hang is reported, never waited for forever.
const benchScenarioTimeout = 5 * time.Minute

func benchUsageText() string {
	var b strings.Builder
	for _, s := range bench.Scenarios() {
		fmt.Fprintf(&b, "  %-17s %s\n", s.Name, s.Title)
	}
	return fmt.Sprintf(benchUsage, b.String())
}

func runBench(args []string) int {
	return benchMain(args, os.Stdout, os.Stderr)
}

// The report and its tables are internal/bench's (report.go): the
// command parses flags, runs, and prints.
type (
	benchReport          = bench.Report
	benchFloorSection    = bench.FloorSection
	benchFloorComparison = bench.FloorComparison
	benchPythonSection   = bench.PythonSection
)

// floorExecTarget is the program whose start is the floor of the start
// scenarios: this one, doing next to nothing. Tests set it to the built
// command (their own binary would run the tests).
var floorExecTarget = func() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{exe, "help"}
}

func benchMain(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bench", benchUsageText(), stdout, stderr)
	withPython := fs.Bool("python", false, "")
	quick := fs.Bool("quick", false, "")
	asJSON := fs.Bool("json", false, "")
	withFloor := fs.Bool("floor", false, "")
	only := fs.String("only", "", "")
	pos, code := fs.parse(args)
	if code >= 0 {
		return code
	}
	if len(pos) > 0 {
		return fs.usageError("unexpected argument %q", pos[0])
	}
	scenarios, err := bench.Select(*only)
	if err != nil {
		return fs.usageError("-only: %v", err)
	}
	if len(scenarios) == 0 {
		return fs.usageError("-only: no scenario named")
	}

	ctx, stop := interruptContext(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	var prog *benchProgress
	if !*asJSON && isTerminal(stderr) {
		prog = &benchProgress{w: stderr, total: len(scenarios), start: time.Now()}
	}

	rep := &benchReport{
		Quick: *quick, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPUs: runtime.NumCPU(), Linking: bench.Linking(), Errors: map[string]string{},
	}
	ours := map[string]bench.Result{}
	for i, s := range scenarios {
		sctx, cancel := context.WithTimeout(ctx, benchScenarioTimeout)
		res, err := s.RunWith(sctx, bench.Options{Quick: *quick, Progress: prog.forScenario("go", s.Name, i)})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				break // interrupted: not a failure of the scenario
			}
			rep.Errors[s.Name] = err.Error()
			continue
		}
		rep.Results = append(rep.Results, res)
		ours[s.Name] = res
	}

	var py *bench.PythonReport
	if *withPython && ctx.Err() == nil {
		rep.Python = &benchPythonSection{}
		path, err := exec.LookPath("python3")
		if err != nil {
			rep.Python.Note = "python3 not found in PATH: no python3 figures (install python3 to compare)"
		} else {
			rep.Python.Path = path
			pctx, cancel := context.WithTimeout(ctx, time.Duration(len(scenarios))*benchScenarioTimeout)
			py, err = bench.RunPython(pctx, path, scenarios, bench.PythonOptions{
				Quick: *quick,
				Progress: func(name string, r, reps int) {
					prog.update("python3", name, benchIndexOf(scenarios, name), r, reps)
				},
			})
			cancel()
			if py != nil {
				rep.Python.Version, rep.Python.Implementation = py.Version, py.Implementation
				rep.Python.Results, rep.Python.Errors = py.Results, py.Errors
			}
			if err != nil {
				rep.Python.Note = "python3 did not finish: " + err.Error()
			}
		}
	}
	if *withFloor && ctx.Err() == nil {
		rep.Floor = runFloor(ctx, *quick, prog)
	}
	prog.clear()

	rep.Compare(scenarios, ours, py)

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "multiproc bench:", err)
			return exitFail
		}
	} else {
		printBench(stdout, rep, scenarios)
	}
	for _, s := range scenarios {
		if msg, ok := rep.Errors[s.Name]; ok {
			fmt.Fprintf(stderr, "multiproc bench: %s failed: %s\n", s.Name, msg)
		}
	}
	if status, ok := interruptStatus(ctx); ok {
		fmt.Fprintf(stderr, "multiproc bench: interrupted (%v)\n", context.Cause(ctx))
		return status
	}
	if len(rep.Errors) > 0 {
		return exitFail
	}
	return exitOK
}

// runFloor compiles and runs the floor program; its failure, or the lack
// of a C compiler, is a note, not a failure of the bench.
func runFloor(ctx context.Context, quick bool, prog *benchProgress) *benchFloorSection {
	sec := &benchFloorSection{}
	cc, err := bench.FindCC("")
	if err != nil {
		sec.Note = "no floor figures: " + err.Error()
		return sec
	}
	sec.Compiler = cc
	fctx, cancel := context.WithTimeout(ctx, 2*benchScenarioTimeout)
	defer cancel()
	fr, err := bench.RunFloor(fctx, bench.FloorOptions{
		Quick: quick, CC: cc, ExecTarget: floorExecTarget(),
		Progress: func(line string) { prog.note("floor: " + strings.TrimSpace(line)) },
	})
	if err != nil {
		sec.Note = "no floor figures: " + err.Error()
		return sec
	}
	sec.ExecTarget, sec.Results, sec.Missing = fr.ExecTarget, fr.Results, fr.Missing
	return sec
}

// benchFloorTable compares each scenario of ours that has a floor with it.
func benchFloorTable(scenarios []*bench.Scenario, ours map[string]bench.Result, sec *benchFloorSection) []benchFloorComparison {
	return bench.FloorTable(scenarios, ours, sec)
}

// printBench prints the tables.
func printBench(out io.Writer, rep *benchReport, scenarios []*bench.Scenario) {
	bench.PrintReport(out, rep, scenarios)
}

func benchIndexOf(ss []*bench.Scenario, name string) int {
	for i, s := range ss {
		if s.Name == name {
			return i
		}
	}
	return 0
}

// benchProgress is the live line on a terminal's stderr; a nil *benchProgress
// prints nothing.
type benchProgress struct {
	w     io.Writer
	total int
	start time.Time
}

func (p *benchProgress) forScenario(who, name string, i int) func(rep, reps int) {
	if p == nil {
		return nil
	}
	return func(rep, reps int) { p.update(who, name, i, rep, reps) }
}

func (p *benchProgress) update(who, name string, i, rep, reps int) {
	if p == nil {
		return
	}
	step := "warm-up"
	if rep > 0 {
		step = fmt.Sprintf("rep %d/%d", rep, reps)
	}
	fmt.Fprintf(p.w, "\r\033[K[%d/%d] %s %s: %s  (%.0fs)", i+1, p.total, who, name, step, time.Since(p.start).Seconds())
}

// note shows a line of text as the live line.
func (p *benchProgress) note(line string) {
	if p == nil {
		return
	}
	if len(line) > 90 {
		line = line[:90]
	}
	fmt.Fprintf(p.w, "\r\033[K%s  (%.0fs)", line, time.Since(p.start).Seconds())
}

func (p *benchProgress) clear() {
	if p != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
