package bench

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// PythonScript is internal/bench/python/bench.py, python3's twin of every scenario
// (standard library only): run it with python3, or through RunPython.
//
//go:embed python/bench.py
var PythonScript []byte

// PythonReport is what the python twin prints.
type PythonReport struct {
	Version        string            `json:"python"`
	Implementation string            `json:"implementation"`
	Results        []Result          `json:"results"`
	Errors         map[string]string `json:"errors"` // scenario → error text, for those that failed
}

// Result returns the result of the named scenario, if python has one.
func (r *PythonReport) Result(name string) (Result, bool) {
	if r == nil {
		return Result{}, false
	}
	for _, x := range r.Results {
		if x.Name == name {
			return x, true
		}
	}
	return Result{}, false
}

// PythonOptions tunes RunPython.
type PythonOptions struct {
	Quick bool
	// Progress, if not nil, is called before each repetition of each
	// scenario, as Options.Progress is (rep 0 is the warm-up).
	Progress func(name string, rep, reps int)
}

// RunPython runs the python twins of the given scenarios with the python3
// interpreter at path (exec.LookPath("python3") finds it), with the sizes
// of Scenario.PythonPlan, one scenario after another. A scenario that fails
// in python is in the report's Errors; an error return means the script
// could not run or printed no report.
func RunPython(ctx context.Context, python string, scenarios []*Scenario, o PythonOptions) (*PythonReport, error) {
	dir, err := os.MkdirTemp("", "multiproc-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "bench.py")
	if err := os.WriteFile(script, PythonScript, 0o644); err != nil {
		return nil, err
	}
	plan := map[string]Plan{}
	var names []string
	for _, s := range scenarios {
		plan[s.Name] = s.PythonPlan(o.Quick)
		names = append(names, s.Name)
	}
	planJSON, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	args := []string{script, "--only", strings.Join(names, ","), "--plan", string(planJSON)}
	if o.Quick {
		args = append(args, "--quick")
	}
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	pr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Progress lines are taken out of stderr; the rest is kept for errors.
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "progress" {
			rep, err1 := strconv.Atoi(f[2])
			reps, err2 := strconv.Atoi(f[3])
			if err1 == nil && err2 == nil {
				if o.Progress != nil {
					o.Progress(f[1], rep, reps)
				}
				continue
			}
		}
		stderr.WriteString(line + "\n")
	}
	werr := cmd.Wait()
	var rep PythonReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		if werr != nil {
			return nil, fmt.Errorf("%s: %v%s", python, werr, tail(stderr.String()))
		}
		return nil, fmt.Errorf("%s printed no report: %v%s", python, err, tail(stderr.String()))
	}
	if werr != nil {
		return &rep, fmt.Errorf("%s: %v%s", python, werr, tail(stderr.String()))
	}
	return &rep, nil
}

// tail returns the last lines of a process's stderr, for an error message.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return "\n\t" + strings.Join(lines, "\n\t")
}
