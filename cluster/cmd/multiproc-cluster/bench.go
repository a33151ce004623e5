package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/multiproc-go/multiproc/cluster/internal/clusterbench"
)

//go:embed dask_bench.py
var daskScript string

type sizes struct{ mapN, asyncN, applyN int }

// row is one setup's figures.
type row struct {
	name         string
	mapRate      float64 // tasks/s
	asyncRate    float64 // tasks/s
	applyLatency time.Duration
	mapLarge     time.Duration // Map of 64 x 1 MiB
	sizes        sizes
	err          error
}

func bench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "smaller runs")
	dask := fs.Bool("dask", true, "measure Dask too, where python3 has distributed")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	goSizes := sizes{100_000, 10_000, 2_000}
	daskSizes := sizes{5_000, 2_000, 200}
	if *quick {
		goSizes = sizes{20_000, 2_000, 300}
		daskSizes = sizes{1_000, 500, 50}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	host := func(url string) *exec.Cmd {
		cmd := exec.Command(self, "serve", url)
		cmd.Stderr = os.Stderr
		return cmd
	}
	var rows []row
	for _, s := range []clusterbench.Setup{clusterbench.Local, clusterbench.Embedded, clusterbench.Hosts} {
		r := row{name: s.String(), sizes: goSizes}
		e, closeFn, err := clusterbench.Open(ctx, s, host)
		if err != nil {
			r.err = err
			rows = append(rows, r)
			continue
		}
		r.mapRate, r.err = clusterbench.Map(ctx, e, goSizes.mapN)
		if r.err == nil {
			r.asyncRate, r.err = clusterbench.ApplyAsync(ctx, e, goSizes.asyncN)
		}
		if r.err == nil {
			r.applyLatency, r.err = clusterbench.Apply(ctx, e, goSizes.applyN)
		}
		if r.err == nil {
			r.mapLarge, r.err = clusterbench.MapLarge(ctx, e)
		}
		closeFn()
		rows = append(rows, r)
	}
	if *dask {
		rows = append(rows, runDask(ctx, daskSizes))
	}
	print(rows)
	return 0
}

func runDask(ctx context.Context, s sizes) row {
	r := row{name: "Dask distributed, LocalCluster(2 processes)", sizes: s}
	// Debian's python3-distributed is for the system's python3, which a
	// pyenv python3 earlier in PATH may hide.
	python := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import distributed").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		r.err = fmt.Errorf("no python3 with the distributed package (apt-get install python3-distributed)")
		return r
	}
	r.name += " (" + python + ")"
	dir, err := os.MkdirTemp("", "multiproc-dask-")
	if err != nil {
		r.err = err
		return r
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "dask_bench.py")
	if err := os.WriteFile(script, []byte(daskScript), 0o600); err != nil {
		r.err = err
		return r
	}
	out, err := exec.CommandContext(ctx, python, script, fmt.Sprint(s.mapN), fmt.Sprint(s.asyncN), fmt.Sprint(s.applyN)).Output()
	if err != nil {
		r.err = fmt.Errorf("dask: %w", err)
		return r
	}
	var res struct{ Map, Async, Apply, Large float64 }
	if err := json.Unmarshal(lastLine(out), &res); err != nil {
		r.err = fmt.Errorf("dask output %q: %w", out, err)
		return r
	}
	r.mapRate, r.asyncRate, r.applyLatency = res.Map, res.Async, time.Duration(res.Apply*float64(time.Second))
	r.mapLarge = time.Duration(res.Large * float64(time.Second))
	return r
}

func lastLine(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return b[i+1:]
		}
	}
	return b
}

func print(rows []row) {
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "setup\tMap (tasks/s)\tApplyAsync (tasks/s)\tApply latency\tMap 64 x 1 MiB\tsizes (Map/ApplyAsync/Apply)")
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\t%v\t\t\t\t\n", r.name, r.err)
			continue
		}
		large := "-"
		if r.mapLarge > 0 {
			large = r.mapLarge.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%v\t%s\t%d/%d/%d\n", r.name, r.mapRate, r.asyncRate, r.applyLatency.Round(time.Microsecond), large,
			r.sizes.mapN, r.sizes.asyncN, r.sizes.applyN)
	}
	tw.Flush()
	var dask *row
	for i := range rows {
		if rows[i].err == nil && rows[i].name[:4] == "Dask" {
			dask = &rows[i]
		}
	}
	fmt.Println("\ntargets: cluster Map >= 1M tasks/s, ApplyAsync >= 20k tasks/s, Apply <= 1ms, each >= 10x Dask")
	for _, r := range rows[1:min(3, len(rows))] {
		if r.err != nil {
			continue
		}
		fmt.Printf("%s: Map %s, ApplyAsync %s, Apply %s", r.name,
			verdict(r.mapRate >= 1e6), verdict(r.asyncRate >= 20e3), verdict(r.applyLatency <= time.Millisecond))
		if dask != nil {
			fmt.Printf("; vs Dask: Map %.0fx, ApplyAsync %.0fx, Apply %.0fx", r.mapRate/dask.mapRate, r.asyncRate/dask.asyncRate,
				float64(dask.applyLatency)/float64(r.applyLatency))
			if r.mapLarge > 0 && dask.mapLarge > 0 {
				fmt.Printf(", Map 64 x 1 MiB %.1fx", float64(dask.mapLarge)/float64(r.mapLarge))
			}
		}
		fmt.Println()
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
