package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
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

// benchReport is the -json document.
type benchReport struct {
	Quick      bool                `json:"quick"`
	GoVersion  string              `json:"go_version"`
	OS         string              `json:"os"`
	Arch       string              `json:"arch"`
	CPUs       int                 `json:"cpus"`
	Results    []bench.Result      `json:"results"`
	Errors     map[string]string   `json:"errors,omitempty"` // scenario → error, ours
	Python     *benchPythonSection `json:"python,omitempty"` // only with -python
	Comparison []benchComparison   `json:"comparison,omitempty"`
	Floor      *benchFloorSection  `json:"floor,omitempty"` // only with -floor
	// FloorComparison is every scenario of ours that has a floor, with -floor.
	FloorComparison []benchFloorComparison `json:"floor_comparison,omitempty"`
	IPC             []benchIPCRow          `json:"ipc_table"`
}

type benchFloorSection struct {
	Compiler   string              `json:"compiler,omitempty"`
	ExecTarget string              `json:"exec_target,omitempty"` // the program the start floor starts
	Results    []bench.FloorMetric `json:"results,omitempty"`     // every figure of the floor program
	Note       string              `json:"note,omitempty"`        // why there are no results (no C compiler, ...)
}

// benchFloorComparison is one scenario, ours against its floor.
type benchFloorComparison struct {
	Name        string  `json:"name"`
	Unit        string  `json:"unit"`
	Go          float64 `json:"go"`
	Floor       float64 `json:"floor"`        // in Unit
	FloorMetric string  `json:"floor_metric"` // the floor program's metric
	// TimesFloor is how many times slower than the floor ours is (ours /
	// floor for a time, floor / ours for a rate): 1 is the floor itself.
	TimesFloor float64 `json:"times_floor"`
	Target     float64 `json:"target,omitempty"` // TimesFloor at most this (TARGETS.md)
	TargetMet  *bool   `json:"target_met,omitempty"`
}

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

type benchPythonSection struct {
	Path           string            `json:"path,omitempty"`
	Version        string            `json:"version,omitempty"`
	Implementation string            `json:"implementation,omitempty"`
	Results        []bench.Result    `json:"results,omitempty"`
	Errors         map[string]string `json:"errors,omitempty"`
	Note           string            `json:"note,omitempty"` // why there are no results (python3 missing, ...)
}

// benchComparison is one scenario, ours against python3's.
type benchComparison struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Go     float64 `json:"go"`
	Python float64 `json:"python"`
	// Ratio is how many times better ours is (ours/python's for a rate,
	// python's/ours for a time): above 1, ours is better.
	Ratio        float64 `json:"ratio"`
	Target       float64 `json:"target,omitempty"` // the ratio internal/bench/TARGETS.md asks for
	TargetText   string  `json:"target_text,omitempty"`
	TargetMet    *bool   `json:"target_met,omitempty"`
	PythonRemark string  `json:"python_remark,omitempty"`
}

// benchIPCRow is a row of the lesson's comparison table.
type benchIPCRow struct {
	Mechanism  string           `json:"mechanism"`
	DataLives  string           `json:"data_lives"`
	Mode       string           `json:"mode"`
	Speed      []benchIPCFigure `json:"speed"` // from this run
	TypicalUse string           `json:"typical_use"`
	Locking    string           `json:"locking"`
}

// benchIPCFigure is one measured speed of a mechanism.
type benchIPCFigure struct {
	What     string  `json:"what"`
	Scenario string  `json:"scenario"`
	Unit     string  `json:"unit"`
	Go       float64 `json:"go,omitempty"`     // 0: not run or failed
	Python   float64 `json:"python,omitempty"` // 0: not run, failed, or no such thing in python
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
		CPUs: runtime.NumCPU(), Errors: map[string]string{},
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

	for _, s := range scenarios {
		o, ok := ours[s.Name]
		if !ok || py == nil {
			continue
		}
		p, ok := py.Result(s.Name)
		if !ok {
			continue
		}
		c := benchComparison{Name: s.Name, Unit: s.Unit, Go: o.Median, Python: p.Median, Ratio: bench.Ratio(o, p), PythonRemark: p.Note}
		if s.Target != nil {
			met := s.Target.Met(c.Ratio)
			c.Target, c.TargetText, c.TargetMet = s.Target.Factor, s.Target.Text, &met
		}
		rep.Comparison = append(rep.Comparison, c)
	}
	rep.FloorComparison = benchFloorTable(scenarios, ours, rep.Floor)
	rep.IPC = benchIPCTable(ours, py)

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
	sec.ExecTarget, sec.Results = fr.ExecTarget, fr.Results
	return sec
}

// benchFloorTable compares each scenario of ours that has a floor with it.
func benchFloorTable(scenarios []*bench.Scenario, ours map[string]bench.Result, sec *benchFloorSection) []benchFloorComparison {
	if sec == nil || len(sec.Results) == 0 {
		return nil
	}
	fr := &bench.FloorReport{Tool: "c_limits", Results: sec.Results, ExecTarget: sec.ExecTarget}
	var out []benchFloorComparison
	for _, s := range scenarios {
		o, ok := ours[s.Name]
		if !ok {
			continue
		}
		f, ok := s.Floor(fr)
		if !ok {
			continue
		}
		c := benchFloorComparison{Name: s.Name, Unit: s.Unit, Go: o.Median, Floor: f.Value, FloorMetric: f.Metric, TimesFloor: s.TimesFloor(o.Median, f)}
		if s.FloorRef.Max > 0 {
			met := c.TimesFloor <= s.FloorRef.Max*(1+1e-9)
			c.Target, c.TargetMet = s.FloorRef.Max, &met
		}
		out = append(out, c)
	}
	return out
}

func benchIndexOf(ss []*bench.Scenario, name string) int {
	for i, s := range ss {
		if s.Name == name {
			return i
		}
	}
	return 0
}

// benchIPCTable fills the lesson's comparison table with the figures of this run.
func benchIPCTable(ours map[string]bench.Result, py *bench.PythonReport) []benchIPCRow {
	fig := func(what, name string) benchIPCFigure {
		f := benchIPCFigure{What: what, Scenario: name}
		if s, ok := bench.Lookup(name); ok {
			f.Unit = s.Unit
		}
		if r, ok := ours[name]; ok {
			f.Go = r.Median
		}
		// python has no atomic add: its value-add twin is value-lock again.
		if r, ok := py.Result(name); ok && name != "value-add" {
			f.Python = r.Median
		}
		return f
	}
	return []benchIPCRow{
		{Mechanism: "pipe", DataLives: "kernel buffer", Mode: "byte stream, one-way or two-way",
			Speed:      []benchIPCFigure{fig("round trip, 64 B", "pipe-rt-bytes"), fig("1 MiB messages", "pipe-1mib")},
			TypicalUse: "two processes talking: a stream, request and reply", Locking: "no"},
		{Mechanism: "message queue", DataLives: "shared ring in memory", Mode: "message at a time, any number of readers and writers",
			Speed:      []benchIPCFigure{fig("1 producer, 1 consumer", "queue-1p1c"), fig("2 producers, 2 consumers", "queue-2p2c")},
			TypicalUse: "handing out work, collecting results", Locking: "no"},
		{Mechanism: "shared memory", DataLives: "shared memory mapping", Mode: "random access, in place",
			Speed:      []benchIPCFigure{fig("lock+load+store+unlock", "value-lock"), fig("atomic add", "value-add")},
			TypicalUse: "large arrays, counters, state read in place", Locking: "yes"},
	}
}

// benchWrap splits s into lines of at most width bytes, at spaces.
func benchWrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// benchRows prints one table row whose cells may span several lines.
func benchRows(w io.Writer, cells ...[]string) {
	n := 0
	for _, c := range cells {
		n = max(n, len(c))
	}
	for i := range n {
		for j, c := range cells {
			if j > 0 {
				fmt.Fprint(w, "\t")
			}
			if i < len(c) {
				fmt.Fprint(w, c[i])
			}
		}
		fmt.Fprintln(w)
	}
}

// printBench prints the tables (without tabwriter's trailing blanks).
func printBench(out io.Writer, rep *benchReport, scenarios []*bench.Scenario) {
	var buf bytes.Buffer
	writeBench(&buf, rep, scenarios)
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		io.WriteString(out, strings.TrimRight(line, " \n")+strings.Repeat("\n", strings.Count(line, "\n")))
	}
}

func writeBench(w io.Writer, rep *benchReport, scenarios []*bench.Scenario) {
	mode := "full run"
	if rep.Quick {
		mode = "quick run"
	}
	fmt.Fprintf(w, "multiproc bench: %d scenarios, %s; %s %s/%s, %d CPUs", len(scenarios), mode, rep.GoVersion, rep.OS, rep.Arch, rep.CPUs)
	withPy := rep.Python != nil && rep.Python.Version != ""
	if withPy {
		fmt.Fprintf(w, "; python3 %s (%s)", rep.Python.Version, rep.Python.Implementation)
	}
	fmt.Fprint(w, "\n\nThe IPC comparison, measured in this run")
	if withPy {
		fmt.Fprint(w, " (python3's figure in brackets)")
	}
	fmt.Fprint(w, ":\n\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "MECHANISM\tWHERE THE DATA LIVES\tREAD/WRITE MODE\tSPEED (THIS RUN)\tTYPICAL USE\tNEEDS LOCKING")
	for _, r := range rep.IPC {
		var speed []string
		for _, f := range r.Speed {
			v := "not run"
			if f.Go > 0 {
				v = bench.Format(f.Go) + " " + f.Unit
			}
			if withPy {
				p := "-"
				if f.Python > 0 {
					p = bench.Format(f.Python)
				}
				v += " [" + p + "]"
			}
			speed = append(speed, f.What+": "+v)
		}
		benchRows(tw, []string{r.Mechanism}, benchWrap(r.DataLives, 22), benchWrap(r.Mode, 30), speed,
			benchWrap(r.TypicalUse, 28), []string{r.Locking})
	}
	tw.Flush()

	fmt.Fprint(w, "\nEvery scenario (median of the repetitions; spread: min–max):\n\n")
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	withFloor := rep.Floor != nil
	header := "SCENARIO\tMULTIPROC\tSPREAD\tCPU"
	if withPy {
		header += "\tPYTHON3\tPY CPU\tRATIO\tTARGET"
	}
	if withFloor {
		header += "\tFLOOR\t×FLOOR"
	}
	fmt.Fprintln(tw, header)
	floors := map[string]benchFloorComparison{}
	for _, c := range rep.FloorComparison {
		floors[c.Name] = c
	}
	comp := map[string]benchComparison{}
	for _, c := range rep.Comparison {
		comp[c.Name] = c
	}
	pyRes := map[string]bench.Result{}
	if rep.Python != nil {
		for _, r := range rep.Python.Results {
			pyRes[r.Name] = r
		}
	}
	for _, s := range scenarios {
		var r bench.Result
		found := false
		for _, x := range rep.Results {
			if x.Name == s.Name {
				r, found = x, true
			}
		}
		ourCol, spreadCol, cpuCol := "FAILED", "-", "-"
		if found {
			ourCol = bench.Format(r.Median) + " " + r.Unit
			spreadCol = fmt.Sprintf("%s–%s (±%.0f%%)", bench.Format(r.Min), bench.Format(r.Max), r.Spread()*50)
			cpuCol = benchCPU(r)
		}
		row := s.Name + "\t" + ourCol + "\t" + spreadCol + "\t" + cpuCol
		if withPy {
			row += "\t" + benchPythonCells(rep, s, pyRes, comp)
		}
		if withFloor {
			floorCol, timesCol := "-", "-"
			if c, ok := floors[s.Name]; ok {
				floorCol = bench.Format(c.Floor) + " " + c.Unit
				timesCol = bench.Format(c.TimesFloor) + "×"
				if c.TargetMet != nil {
					verdict := "met"
					if !*c.TargetMet {
						verdict = "MISSED"
					}
					timesCol += fmt.Sprintf(" (≤ %s×: %s)", strconv.FormatFloat(c.Target, 'g', -1, 64), verdict)
				}
			}
			row += "\t" + floorCol + "\t" + timesCol
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	writeBenchNotes(w, rep, scenarios, pyRes)
}

// benchPythonCells is the PYTHON3, RATIO and TARGET cells of a scenario.
func benchPythonCells(rep *benchReport, s *bench.Scenario, pyRes map[string]bench.Result, comp map[string]benchComparison) string {
	pyCol, cpuCol, ratioCol, targetCol := "-", "-", "-", "-"
	if p, ok := pyRes[s.Name]; ok {
		pyCol = bench.Format(p.Median) + " " + p.Unit
		cpuCol = benchCPU(p)
	} else if msg, ok := rep.Python.Errors[s.Name]; ok {
		pyCol = "failed: " + benchFirstLine(msg)
	}
	if c, ok := comp[s.Name]; ok {
		if c.Ratio >= 1 {
			ratioCol = bench.Format(c.Ratio) + "× better"
		} else {
			ratioCol = bench.Format(1/c.Ratio) + "× worse"
		}
		if c.TargetMet != nil {
			verdict := "met"
			if !*c.TargetMet {
				verdict = "MISSED"
			}
			targetCol = fmt.Sprintf("%s: %s", c.TargetText, verdict)
		}
	}
	return pyCol + "\t" + cpuCol + "\t" + ratioCol + "\t" + targetCol
}

// benchCPU is a result's CPU cell: CPU seconds per million units.
func benchCPU(r bench.Result) string {
	if !(r.CPU > 0) {
		return "-"
	}
	return bench.Format(r.CPU) + " s"
}

// writeBenchNotes explains the columns, and says why a comparison is missing.
func writeBenchNotes(w io.Writer, rep *benchReport, scenarios []*bench.Scenario, pyRes map[string]bench.Result) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CPU: CPU seconds (user + system, of every process taking part, their start and exit included) per million")
	fmt.Fprintln(w, "units of the figure (round trips, messages, tasks, bytes, starts): what waiting costs, spinning included.")
	if rep.Python != nil {
		fmt.Fprintln(w, "PY CPU: the same for python3's twin.")
	}
	if rep.Python != nil {
		fmt.Fprintln(w)
		switch {
		case rep.Python.Note != "":
			fmt.Fprintf(w, "Note: %s\n", rep.Python.Note)
		default:
			fmt.Fprintln(w, "RATIO: how many times better multiproc's figure is than python3's (a shorter time or a higher rate).")
		}
		for _, s := range scenarios {
			if p, ok := pyRes[s.Name]; ok && p.Note != "" {
				fmt.Fprintf(w, "  python3 %s: %s\n", s.Name, p.Note)
			}
		}
	}
	if rep.Floor != nil {
		fmt.Fprintln(w)
		if rep.Floor.Note != "" {
			fmt.Fprintf(w, "Note: %s\n", rep.Floor.Note)
		} else {
			fmt.Fprintln(w, "FLOOR: the same work done by a C program on this machine, in this run (the floor program's metric below);")
			fmt.Fprintln(w, "×FLOOR: how many times slower than it multiproc is (1× is the floor); \"-\": C has no equivalent.")
			// One line per metric, naming the rows it is the floor of.
			var metrics []string
			rows := map[string][]string{}
			for _, c := range rep.FloorComparison {
				if rows[c.FloorMetric] == nil {
					metrics = append(metrics, c.FloorMetric)
				}
				rows[c.FloorMetric] = append(rows[c.FloorMetric], c.Name)
			}
			for _, m := range metrics {
				label := m
				if t := rep.Floor.ExecTarget; t != "" && strings.HasSuffix(m, " "+t) {
					// The program's full path, often in a build cache, says little.
					label = strings.TrimSuffix(m, t) + "of this program (" + filepath.Base(t) + ")"
				}
				fmt.Fprintf(w, "  floor of %s: %s\n", strings.Join(rows[m], ", "), label)
			}
		}
	}
	if rep.Python != nil || rep.Floor != nil {
		fmt.Fprintln(w, "The targets are explained in internal/bench/TARGETS.md.")
	}
}

func benchFirstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
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
