package bench

// The report of `multiproc bench`: the comparisons (ratios to python3,
// met or MISSED, ×floor) and the tables. The command only parses flags,
// runs the scenarios and prints what is here.

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Report is the bench's outcome: the -json document, and what the
// tables print.
type Report struct {
	Quick      bool              `json:"quick"`
	GoVersion  string            `json:"go_version"`
	OS         string            `json:"os"`
	Arch       string            `json:"arch"`
	CPUs       int               `json:"cpus"`
	Linking    string            `json:"linking,omitempty"` // "static" or "dynamic": see Linking
	Results    []Result          `json:"results"`
	Errors     map[string]string `json:"errors,omitempty"` // scenario → error, ours
	Python     *PythonSection    `json:"python,omitempty"` // only with -python
	Comparison []Comparison      `json:"comparison,omitempty"`
	Floor      *FloorSection     `json:"floor,omitempty"` // only with -floor
	// FloorComparison is every scenario of ours that has a floor, with -floor.
	FloorComparison []FloorComparison `json:"floor_comparison,omitempty"`
	IPC             []IPCRow          `json:"ipc_table"`
}

// FloorSection is the floor program's part of a Report (-floor).
type FloorSection struct {
	Compiler   string        `json:"compiler,omitempty"`
	ExecTarget string        `json:"exec_target,omitempty"` // the program the start floor starts
	Results    []FloorMetric `json:"results,omitempty"`     // every figure of the floor program
	Note       string        `json:"note,omitempty"`        // why there are no results (no C compiler, ...)
	Missing    string        `json:"missing,omitempty"`     // which floors are missing from Results, and why
}

// FloorComparison is one scenario, ours against its floor.
type FloorComparison struct {
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

// PythonSection is python3's part of a Report (-python).
type PythonSection struct {
	Path           string            `json:"path,omitempty"`
	Version        string            `json:"version,omitempty"`
	Implementation string            `json:"implementation,omitempty"`
	Results        []Result          `json:"results,omitempty"`
	Errors         map[string]string `json:"errors,omitempty"`
	Note           string            `json:"note,omitempty"` // why there are no results (python3 missing, ...)
}

// Comparison is one scenario, ours against python3's.
type Comparison struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Go     float64 `json:"go"`
	Python float64 `json:"python"`
	// Ratio is how many times better ours is (ours/python's for a rate,
	// python's/ours for a time): above 1, ours is better.
	Ratio      float64 `json:"ratio"`
	Target     float64 `json:"target,omitempty"` // the ratio internal/bench/TARGETS.md asks for
	TargetText string  `json:"target_text,omitempty"`
	TargetMet  *bool   `json:"target_met,omitempty"`
	// WithinOf and WithinTimes are the target's bound by another scenario
	// of ours (Target.Within), when it has one and both ran: how many
	// times slower ours was than that one. TargetMet includes it.
	WithinOf    string  `json:"within_of,omitempty"`
	WithinTimes float64 `json:"within_times,omitempty"`
	// BeyondFloor: python's figure times the target is beyond the C floor
	// of the same run (faster than the machine allows a C program), so the
	// floor's target counts instead: TargetMet is the floor's verdict.
	BeyondFloor  bool   `json:"beyond_floor,omitempty"`
	PythonRemark string `json:"python_remark,omitempty"`
}

// IPCRow is a row of the lesson's comparison table.
type IPCRow struct {
	Mechanism  string      `json:"mechanism"`
	DataLives  string      `json:"data_lives"`
	Mode       string      `json:"mode"`
	Speed      []IPCFigure `json:"speed"` // from this run
	TypicalUse string      `json:"typical_use"`
	Locking    string      `json:"locking"`
}

// IPCFigure is one measured speed of a mechanism.
type IPCFigure struct {
	What     string  `json:"what"`
	Scenario string  `json:"scenario"`
	Unit     string  `json:"unit"`
	Go       float64 `json:"go,omitempty"`     // 0: not run or failed
	Python   float64 `json:"python,omitempty"` // 0: not run, failed, or no such thing in python
}

// FloorTable compares each scenario of ours that has a floor with it.
func FloorTable(scenarios []*Scenario, ours map[string]Result, sec *FloorSection) []FloorComparison {
	if sec == nil || len(sec.Results) == 0 {
		return nil
	}
	fr := &FloorReport{Tool: "c_limits", Results: sec.Results, ExecTarget: sec.ExecTarget}
	var out []FloorComparison
	for _, s := range scenarios {
		o, ok := ours[s.Name]
		if !ok {
			continue
		}
		f, ok := s.Floor(fr)
		if !ok {
			continue
		}
		c := FloorComparison{Name: s.Name, Unit: s.Unit, Go: o.Median, Floor: f.Value, FloorMetric: f.Metric, TimesFloor: s.TimesFloor(o.Median, f)}
		if s.FloorRef.Max > 0 {
			met := c.TimesFloor <= s.FloorRef.Max*(1+1e-9)
			c.Target, c.TargetMet = s.FloorRef.Max, &met
		}
		out = append(out, c)
	}
	return out
}

// IPCTable fills the lesson's comparison table with the figures of this run.
func IPCTable(ours map[string]Result, py *PythonReport) []IPCRow {
	fig := func(what, name string) IPCFigure {
		f := IPCFigure{What: what, Scenario: name}
		if s, ok := Lookup(name); ok {
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
	return []IPCRow{
		{Mechanism: "pipe", DataLives: "kernel buffer", Mode: "byte stream, one-way or two-way",
			Speed:      []IPCFigure{fig("round trip, 64 B", "pipe-rt-bytes"), fig("1 MiB messages", "pipe-1mib")},
			TypicalUse: "two processes talking: a stream, request and reply", Locking: "no"},
		{Mechanism: "message queue", DataLives: "shared ring in memory", Mode: "message at a time, any number of readers and writers",
			Speed:      []IPCFigure{fig("1 producer, 1 consumer", "queue-1p1c"), fig("2 producers, 2 consumers", "queue-2p2c")},
			TypicalUse: "handing out work, collecting results", Locking: "no"},
		{Mechanism: "shared memory", DataLives: "shared memory mapping", Mode: "random access, in place",
			Speed:      []IPCFigure{fig("lock+load+store+unlock", "value-lock"), fig("atomic add", "value-add")},
			TypicalUse: "large arrays, counters, state read in place", Locking: "yes"},
	}
}

// wrap splits s into lines of at most width bytes, at spaces.
func wrap(s string, width int) []string {
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

// tableRows prints one table row whose cells may span several lines.
func tableRows(w io.Writer, cells ...[]string) {
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

// PrintReport prints the tables (without tabwriter's trailing blanks).
func PrintReport(out io.Writer, rep *Report, scenarios []*Scenario) {
	var buf bytes.Buffer
	writeReport(&buf, rep, scenarios)
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		io.WriteString(out, strings.TrimRight(line, " \n")+strings.Repeat("\n", strings.Count(line, "\n")))
	}
}

func writeReport(w io.Writer, rep *Report, scenarios []*Scenario) {
	mode := "full run"
	if rep.Quick {
		mode = "quick run"
	}
	fmt.Fprintf(w, "multiproc bench: %d scenarios, %s; %s %s/%s, %d CPUs", len(scenarios), mode, rep.GoVersion, rep.OS, rep.Arch, rep.CPUs)
	if rep.Linking != "" {
		fmt.Fprintf(w, ", %s binary", rep.Linking)
	}
	withPy := rep.Python != nil && rep.Python.Version != ""
	if withPy {
		fmt.Fprintf(w, "; python3 %s (%s)", rep.Python.Version, rep.Python.Implementation)
	}
	if rep.Linking == "dynamic" {
		fmt.Fprint(w, "\nEvery child is this program started again, and this one is dynamically linked (cgo):"+
			"\neach start also runs the dynamic loader and libc's start. Built with CGO_ENABLED=0, it starts"+
			"\nprocesses about a fifth faster (internal/bench/TARGETS.md, \"What a start costs\").")
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
				v = Format(f.Go) + " " + f.Unit
			}
			if withPy {
				p := "-"
				if f.Python > 0 {
					p = Format(f.Python)
				}
				v += " [" + p + "]"
			}
			speed = append(speed, f.What+": "+v)
		}
		tableRows(tw, []string{r.Mechanism}, wrap(r.DataLives, 22), wrap(r.Mode, 30), speed,
			wrap(r.TypicalUse, 28), []string{r.Locking})
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
	floors := map[string]FloorComparison{}
	for _, c := range rep.FloorComparison {
		floors[c.Name] = c
	}
	comp := map[string]Comparison{}
	for _, c := range rep.Comparison {
		comp[c.Name] = c
	}
	pyRes := map[string]Result{}
	if rep.Python != nil {
		for _, r := range rep.Python.Results {
			pyRes[r.Name] = r
		}
	}
	for _, s := range scenarios {
		var r Result
		found := false
		for _, x := range rep.Results {
			if x.Name == s.Name {
				r, found = x, true
			}
		}
		ourCol, spreadCol, cpuCol := "FAILED", "-", "-"
		if found {
			ourCol = Format(r.Median) + " " + r.Unit
			spreadCol = fmt.Sprintf("%s–%s (±%.0f%%)", Format(r.Min), Format(r.Max), r.Spread()*50)
			cpuCol = cpuCell(r)
		}
		row := s.Name + "\t" + ourCol + "\t" + spreadCol + "\t" + cpuCol
		if withPy {
			row += "\t" + pythonCells(rep, s, pyRes, comp)
		}
		if withFloor {
			floorCol, timesCol := "-", "-"
			if c, ok := floors[s.Name]; ok {
				floorCol = Format(c.Floor) + " " + c.Unit
				timesCol = Format(c.TimesFloor) + "×"
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
	writeNotes(w, rep, scenarios, pyRes)
}

// pythonCells is the PYTHON3, RATIO and TARGET cells of a scenario.
func pythonCells(rep *Report, s *Scenario, pyRes map[string]Result, comp map[string]Comparison) string {
	pyCol, cpuCol, ratioCol, targetCol := "-", "-", "-", "-"
	if p, ok := pyRes[s.Name]; ok {
		pyCol = Format(p.Median) + " " + p.Unit
		cpuCol = cpuCell(p)
	} else if msg, ok := rep.Python.Errors[s.Name]; ok {
		pyCol = "failed: " + firstLine(msg)
	}
	if c, ok := comp[s.Name]; ok {
		if c.Ratio >= 1 {
			ratioCol = Format(c.Ratio) + "× better"
		} else {
			ratioCol = Format(1/c.Ratio) + "× worse"
		}
		if c.TargetMet != nil {
			verdict := "met"
			if !*c.TargetMet {
				verdict = "MISSED"
			}
			targetCol = fmt.Sprintf("%s: %s", c.TargetText, verdict)
			if c.BeyondFloor {
				targetCol = fmt.Sprintf("%s: beyond the floor; the floor's: %s", c.TargetText, verdict)
			}
			if c.WithinOf != "" {
				targetCol += fmt.Sprintf(" (%s× %s)", Format(c.WithinTimes), c.WithinOf)
			}
		}
	}
	return pyCol + "\t" + cpuCol + "\t" + ratioCol + "\t" + targetCol
}

// cpuCell is a result's CPU cell: CPU seconds per million units.
func cpuCell(r Result) string {
	if !(r.CPU > 0) {
		return "-"
	}
	return Format(r.CPU) + " s"
}

// writeNotes explains the columns, and says why a comparison is missing.
func writeNotes(w io.Writer, rep *Report, scenarios []*Scenario, pyRes map[string]Result) {
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
			if rep.Floor.Missing != "" {
				fmt.Fprintf(w, "  %s\n", rep.Floor.Missing)
			}
		}
	}
	if rep.Python != nil || rep.Floor != nil {
		fmt.Fprintln(w, "The targets are explained in internal/bench/TARGETS.md.")
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Compare fills in the comparisons of ours (by scenario name) with
// python3's (py, nil without -python) and with the floor (rep.Floor, if
// run), and the IPC table: everything the tables and the JSON show
// beside the figures.
func (rep *Report) Compare(scenarios []*Scenario, ours map[string]Result, py *PythonReport) {
	for _, s := range scenarios {
		o, ok := ours[s.Name]
		if !ok || py == nil {
			continue
		}
		p, ok := py.Result(s.Name)
		if !ok {
			continue
		}
		c := Comparison{Name: s.Name, Unit: s.Unit, Go: o.Median, Python: p.Median, Ratio: Ratio(o, p), PythonRemark: p.Note}
		if s.Target != nil {
			met := s.Target.Met(c.Ratio)
			if w := s.Target.Within; w != nil {
				if other, ok := ours[w.Of]; ok && other.Median > 0 && o.Median > 0 {
					c.WithinOf, c.WithinTimes = w.Of, Slower(o, other)
					met = met && c.WithinTimes <= w.Times*(1+1e-9)
				}
			}
			c.Target, c.TargetText, c.TargetMet = s.Target.Factor, s.Target.Text, &met
		}
		rep.Comparison = append(rep.Comparison, c)
	}
	rep.FloorComparison = FloorTable(scenarios, ours, rep.Floor)
	floorTargetCounts(rep.Comparison, rep.FloorComparison, scenarios)
	rep.IPC = IPCTable(ours, py)
}

// floorTargetCounts hands a missed python target over to the floor's
// target where python's figure times the target is beyond the C floor of
// the same run: on a machine where python3 comes that close to the
// floor, the python target asks for more than the machine gives a C
// program, and the floor's target (TARGETS.md) is the one that can be
// held to.
func floorTargetCounts(comps []Comparison, floors []FloorComparison, scenarios []*Scenario) {
	higher := map[string]bool{}
	for _, s := range scenarios {
		higher[s.Name] = s.HigherIsBetter
	}
	byName := map[string]FloorComparison{}
	for _, f := range floors {
		byName[f.Name] = f
	}
	for i := range comps {
		c := &comps[i]
		// A target with a second bound by another row (Within) keeps its
		// verdict: the floor says nothing of that bound.
		if c.TargetMet == nil || *c.TargetMet || c.Target <= 0 || c.WithinOf != "" {
			continue
		}
		f, ok := byName[c.Name]
		if !ok || f.TargetMet == nil || !(f.Floor > 0) {
			continue
		}
		if higher[c.Name] && c.Python*c.Target > f.Floor || !higher[c.Name] && c.Python/c.Target < f.Floor {
			met := *f.TargetMet
			c.BeyondFloor, c.TargetMet = true, &met
		}
	}
}
