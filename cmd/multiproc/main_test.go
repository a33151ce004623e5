package main

// These tests run the built command, end to end: TestMain builds it once
// with `go build` (with -race when the tests run with -race) and every test
// runs it with os/exec under a deadline.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// helperEnv runs the test binary as a helper process instead of the tests.
const helperEnv = "MULTIPROC_CLI_TEST_HELPER"

var (
	binPath string // the built multiproc command
	workDir string // a directory for the whole run: the binary, the big random files
)

func TestMain(m *testing.M) {
	multiproc.Main()
	switch os.Getenv(helperEnv) {
	case "signals":
		os.Exit(signalHelper())
	case "exit":
		os.Exit(0)
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "multiproc-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	workDir = dir
	binPath = filepath.Join(dir, "multiproc")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
		// A race-enabled program sleeps 1 s when it exits, by default, to
		// let other goroutines report: not worth it for each process here.
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build of the multiproc command failed: %v\n%s", err, out)
		return 1
	}
	// The start floor of bench -floor starts the command, not this test
	// binary (which would run the tests).
	floorExecTarget = func() []string { return []string{binPath, "help"} }
	return m.Run()
}

// signalHelper prints "ready", then one line per SIGUSR1, SIGUSR2 or
// SIGTERM it receives ("got user defined signal 1"), for 20 s at most.
func signalHelper() int {
	c := make(chan os.Signal, 8)
	signal.Notify(c, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
	fmt.Println("ready")
	deadline := time.After(20 * time.Second)
	for {
		select {
		case s := <-c:
			fmt.Println("got", s)
		case <-deadline:
			return 0
		}
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command with args and a deadline.
func cli(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("multiproc %q: %v (ctx: %v)\nstdout: %s\nstderr: %s", args, err, ctx.Err(), r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "DATA RACE") {
		t.Errorf("multiproc %q reported a data race:\n%s", args, r.stderr)
	}
	return r
}

// runCLI is cli checking the exit code.
func runCLI(t *testing.T, wantCode int, args ...string) result {
	t.Helper()
	r := cli(t, args...)
	if r.code != wantCode {
		t.Fatalf("multiproc %q: exit code %d, want %d\nstdout: %s\nstderr: %s", args, r.code, wantCode, r.stdout, r.stderr)
	}
	return r
}

// randomFile is a file of random bytes, made once per test run.
type randomFile struct {
	path string
	size int64
	sum  [sha256.Size]byte
}

var (
	filesMu sync.Mutex
	files   = map[int64]*randomFile{}
)

// bigFile returns a random file of size bytes (mode 0640), shared by the
// tests that ask for the same size.
func bigFile(t *testing.T, size int64) *randomFile {
	t.Helper()
	filesMu.Lock()
	defer filesMu.Unlock()
	if f := files[size]; f != nil {
		return f
	}
	f := &randomFile{path: filepath.Join(workDir, fmt.Sprintf("random-%d", size)), size: size}
	out, err := os.OpenFile(f.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(out, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	h.Sum(f.sum[:0])
	files[size] = f
	return f
}

func fileSum(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [sha256.Size]byte
	h.Sum(s[:0])
	return s
}

// dirNames lists dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// onlyFiles checks that dir holds exactly the names given (no temporary
// file left behind).
func onlyFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	got := dirNames(t, dir)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

// noProcessesLeft waits until no process runs the built binary.
func noProcessesLeft(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := processesOf(binPath)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes of %s still running: %v", binPath, pids)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func processesOf(exe string) []int {
	es, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range es {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && p == exe {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestUsage(t *testing.T) {
	r := runCLI(t, 2)
	if !strings.Contains(r.stderr, "usage: multiproc COMMAND") {
		t.Errorf("no arguments: stderr %q lacks the usage", r.stderr)
	}
	r = runCLI(t, 2, "frobnicate")
	if !strings.Contains(r.stderr, `unknown command "frobnicate"`) || !strings.Contains(r.stderr, "usage: multiproc COMMAND") {
		t.Errorf("unknown command: stderr %q", r.stderr)
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r = runCLI(t, 0, args...)
		for _, name := range []string{"copy", "bench", "signals", "kill", "help"} {
			if !strings.Contains(r.stdout, "\n  "+name+" ") {
				t.Errorf("%q: usage lacks the command %s:\n%s", args, name, r.stdout)
			}
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "copy"}, "usage: multiproc copy [-r] [-p] [-n] [-j N] [-v] SRC... DST"},
		{[]string{"copy", "-h"}, "usage: multiproc copy"},
		{[]string{"copy", "--help"}, "usage: multiproc copy"},
		{[]string{"help", "kill"}, "usage: multiproc kill"},
		{[]string{"kill", "-h"}, "usage: multiproc kill"},
		{[]string{"help", "signals"}, "usage: multiproc signals"},
		{[]string{"signals", "--help"}, "usage: multiproc signals"},
		{[]string{"help", "help"}, "usage: multiproc help"},
	} {
		r := runCLI(t, 0, c.args...)
		if !strings.Contains(r.stdout, c.want) {
			t.Errorf("%q: stdout %q lacks %q", c.args, r.stdout, c.want)
		}
	}
	r = runCLI(t, 2, "help", "nosuch")
	if !strings.Contains(r.stderr, `unknown command "nosuch"`) {
		t.Errorf("help nosuch: stderr %q", r.stderr)
	}
	runCLI(t, 2, "signals", "extra")
	runCLI(t, 2, "signals", "-x")
}
