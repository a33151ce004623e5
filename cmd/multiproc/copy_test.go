package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	mediumSize = 100<<20 + 12345 // not a multiple of anything the copy aligns to
	largeSize  = 300<<20 + 4321
)

func TestCopyJobs(t *testing.T) {
	src := bigFile(t, mediumSize)
	for _, j := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("j%d", j), func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "dst")
			r := runCLI(t, 0, "copy", "-v", "-j", fmt.Sprint(j), src.path, dst)
			plural := "es"
			if j == 1 {
				plural = ""
			}
			want := regexp.MustCompile(fmt.Sprintf(`^copied %d bytes in \d+\.\d\ds \(\d+(\.\d)? MB/s\) with %d process%s\n$`, src.size, j, plural))
			if !want.MatchString(r.stdout) {
				t.Errorf("stdout %q does not match %v", r.stdout, want)
			}
			if r.stderr != "" {
				t.Errorf("stderr is not a terminal, yet it got %q", r.stderr)
			}
			if fileSum(t, dst) != src.sum {
				t.Fatal("the copy differs from the source")
			}
			st, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want the source's -rw-r-----", st.Mode())
			}
			onlyFiles(t, dir, "dst")
		})
	}
}

// TestCopySilent: like cp, a copy that succeeds prints nothing, unless
// -v; -q (the default) overrides -v.
func TestCopySilent(t *testing.T) {
	src := bigFile(t, mediumSize)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"copy", src.path, filepath.Join(dir, "a")},
		{"copy", src.path, filepath.Join(dir, "b"), "-v", "-q"}, // flags after the operands work too
	} {
		r := runCLI(t, 0, args...)
		if r.stdout != "" || r.stderr != "" {
			t.Errorf("%q: stdout %q, stderr %q; want both empty", args, r.stdout, r.stderr)
		}
		if fileSum(t, args[2]) != src.sum {
			t.Fatal("the copy differs from the source")
		}
	}
	// "--" ends the flags: a file named -v is copied.
	runCLI(t, 0, "copy", "--", src.path, filepath.Join(dir, "-v"))
	onlyFiles(t, dir, "-v", "a", "b")
}

func TestCopySmallFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "small")
	data := []byte("a small file, smaller than a process's share\n")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, 0, "copy", "-v", "-j", "8", src, filepath.Join(dir, "copy"))
	if !strings.HasSuffix(r.stdout, " with 1 process\n") {
		t.Errorf("stdout %q: want one process for a small file", r.stdout)
	}
	got, err := os.ReadFile(filepath.Join(dir, "copy"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("copy holds %q (%v), want %q", got, err, data)
	}
}

func TestCopyIntoDirectory(t *testing.T) {
	src := bigFile(t, mediumSize)
	dir := t.TempDir()
	runCLI(t, 0, "copy", "-q", "-j", "2", src.path, dir)
	if fileSum(t, filepath.Join(dir, filepath.Base(src.path))) != src.sum {
		t.Fatal("the copy differs from the source")
	}
	onlyFiles(t, dir, filepath.Base(src.path))
	// With a trailing slash too, replacing the first copy.
	runCLI(t, 0, "copy", "-q", src.path, dir+"/")
	onlyFiles(t, dir, filepath.Base(src.path))
}

func TestCopyEmptyFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "empty")
	if err := os.WriteFile(src, nil, 0o604); err != nil {
		t.Fatal(err)
	}
	os.Chmod(src, 0o604)
	r := runCLI(t, 0, "copy", "-v", src, filepath.Join(dir, "copy"))
	if !strings.HasPrefix(r.stdout, "copied 0 bytes in ") {
		t.Errorf("stdout %q", r.stdout)
	}
	st, err := os.Stat(filepath.Join(dir, "copy"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 0 || st.Mode().Perm() != 0o604 {
		t.Errorf("copy: size %d, mode %v; want 0, -rw----r--", st.Size(), st.Mode())
	}
	onlyFiles(t, dir, "copy", "empty")
}

func TestCopyReplacesDestination(t *testing.T) {
	src := bigFile(t, mediumSize)
	dir := t.TempDir()
	dst := filepath.Join(dir, "dst")
	if err := os.WriteFile(dst, []byte("old contents"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Through a symbolic link: the file it points to is replaced.
	link := filepath.Join(dir, "link")
	if err := os.Symlink("dst", link); err != nil {
		t.Fatal(err)
	}
	runCLI(t, 0, "copy", "-q", "-j", "2", src.path, link)
	if fileSum(t, dst) != src.sum {
		t.Fatal("the copy differs from the source")
	}
	if st, _ := os.Lstat(link); st.Mode()&os.ModeSymlink == 0 {
		t.Error("the symbolic link was replaced")
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the source's", st.Mode())
	}
	onlyFiles(t, dir, "dst", "link")
}

func TestCopyErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		name     string
		src, dst string
		want     string // in stderr
	}{
		{"missing source", missing, filepath.Join(sub, "dst"), missing + ": no such file or directory"},
		{"directory as source", sub, filepath.Join(sub, "dst"), sub + ": is a directory"},
		{"destination in a missing directory", file, filepath.Join(missing, "dst"), "cannot create " + filepath.Join(missing, "dst") + ": no such file or directory"},
		{"destination with a slash, not a directory", file, missing + "/", missing + "/: no such file or directory"},
		{"same file", file, dir, "are the same file"},
		{"device as source", "/dev/null", filepath.Join(sub, "dst"), "/dev/null: not a regular file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, 1, "copy", c.src, c.dst)
			if !strings.Contains(r.stderr, c.want) || !strings.HasPrefix(r.stderr, "multiproc copy: ") {
				t.Errorf("stderr %q, want it to hold %q", r.stderr, c.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			onlyFiles(t, dir, "file", "sub")
			onlyFiles(t, sub)
		})
	}
}

func TestCopyUsageErrors(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte("x"), 0o644)
	for _, args := range [][]string{
		{"copy", "-j", "0", src, dir + "/d"},
		{"copy", "-j", "-3", src, dir + "/d"},
		{"copy", "-j", "many", src, dir + "/d"},
		{"copy", "-x", src, dir + "/d"},
		{"copy", src},
		{"copy"},
	} {
		r := runCLI(t, 2, args...)
		if !strings.Contains(r.stderr, "usage: multiproc copy") {
			t.Errorf("%q: stderr %q lacks the usage line", args, r.stderr)
		}
	}
	onlyFiles(t, dir, "src")
	// Several sources go into a directory: DST must be one.
	r := runCLI(t, 1, "copy", src, dir+"/d", dir+"/e")
	if want := "target " + dir + "/e"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q, want it to hold %q", r.stderr, want)
	}
	onlyFiles(t, dir, "src")
}

func TestCopyUnwritableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores permissions (the missing-directory case of TestCopyErrors covers the path)")
	}
	src := bigFile(t, mediumSize)
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o555)
	r := runCLI(t, 1, "copy", src.path, ro)
	if want := "cannot create " + filepath.Join(ro, filepath.Base(src.path)) + ": permission denied"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	onlyFiles(t, ro)
}

// inTmpfs runs script with sh in a user and mount namespace of its own,
// where $1 is a fresh tmpfs of the given size (a mount point made here) and
// $2 the command; it skips the test where that cannot be done.
func inTmpfs(t *testing.T, size string, script string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) to mount a small tmpfs")
	}
	mnt := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := `mount -t tmpfs -o size=` + size + ` none "$1" || exit 97` + "\n" + script
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"-Urm", "sh", "-c", full, "sh", mnt, binPath}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 97:
		t.Skipf("cannot mount a tmpfs here: %s", e.String())
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		t.Fatalf("unshare: %v\n%s", err, e.String())
	}
	if ee != nil && strings.Contains(e.String(), "unshare:") {
		t.Skipf("cannot make a namespace here: %s", e.String())
	}
	return code, o.String(), e.String()
}

func TestCopyDiskFull(t *testing.T) {
	src := bigFile(t, mediumSize)
	code, stdout, stderr := inTmpfs(t, "8m", `"$2" copy -j 2 "$3" "$1/dst"; rc=$?; echo "left: $(ls -A "$1")"; exit $rc`, src.path)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if want := "multiproc copy: writing /"; !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "/dst: no space left on device") {
		t.Errorf("stderr %q, want %q…/dst: no space left on device", stderr, want)
	}
	if stdout != "left: \n" {
		t.Errorf("the tmpfs holds %q after the failed copy, want nothing", stdout)
	}
}

func TestCopyAcrossFileSystems(t *testing.T) {
	// copy_file_range fails with EXDEV between ext4 and tmpfs: the copy
	// goes through read and write instead.
	src := bigFile(t, mediumSize)
	out := filepath.Join(t.TempDir(), "back")
	code, stdout, stderr := inTmpfs(t, "256m", `"$2" copy -q -j 3 "$3" "$1/there" && "$2" copy -q -j 2 "$1/there" "$4"`, src.path, out)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if fileSum(t, out) != src.sum {
		t.Fatal("the copy differs from the source")
	}
}

func TestCopyInterrupted(t *testing.T) {
	src := bigFile(t, largeSize)
	for _, c := range []struct {
		name     string
		sig      syscall.Signal
		existing bool // DST exists before the copy
		midCopy  bool // signal once a copy process is stopped in its copy, not as soon as the temporary file exists
	}{
		{"SIGINT", syscall.SIGINT, false, false},
		{"SIGTERM", syscall.SIGTERM, false, false},
		{"SIGINT existing DST", syscall.SIGINT, true, false},
		{"SIGINT mid-copy", syscall.SIGINT, false, true},
		{"SIGTERM mid-copy existing DST", syscall.SIGTERM, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "dst")
			old := []byte("the old contents of dst\n")
			if c.existing {
				if err := os.WriteFile(dst, old, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run := startCLI(t, "copy", "-j", "2", src.path, dst)
			if c.midCopy {
				// A copy process stopped inside its copy: the copy cannot
				// complete before the signal.
				if _, ok := stopMidCopy(t, run, tempIn(dir)); !ok {
					t.Fatalf("the copy ended before a copy process was seen copying: %v\nstderr: %s", run.err, run.stderr.String())
				}
			} else {
				// As soon as the temporary file exists: the copy processes
				// may not have started yet.
				waitFor(t, run, func() bool {
					ms, _ := filepath.Glob(filepath.Join(dir, ".dst.multiproc-*"))
					return len(ms) > 0
				})
			}
			if err := run.cmd.Process.Signal(c.sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Fatal(err)
			}
			code := run.wait(t)
			if code == 0 && !c.midCopy {
				if fileSum(t, dst) != src.sum {
					t.Fatal("the copy differs from the source")
				}
				onlyFiles(t, dir, "dst")
				t.Skip("the race was lost: the copy finished between the temporary file's appearance and the signal")
			}
			// A shell reports a command ended by signal N as 128+N.
			if want := 128 + int(c.sig); code != want {
				t.Fatalf("exit code %d, want %d\nstderr: %s", code, want, run.stderr.String())
			}
			want := fmt.Sprintf("multiproc copy: interrupted (%v signal received): partial copy removed, %s left as it was\n", c.sig, dst)
			if got := run.stderr.String(); got != want {
				t.Errorf("stderr %q, want %q", got, want)
			}
			if c.existing {
				got, _ := os.ReadFile(dst)
				if !bytes.Equal(got, old) {
					t.Errorf("dst was changed by an interrupted copy (%d bytes)", len(got))
				}
				onlyFiles(t, dir, "dst")
			} else {
				onlyFiles(t, dir)
			}
			noProcessesLeft(t)
		})
	}
}

// cliRun is the built command running in the background.
type cliRun struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{} // closed when it has exited; err is then set
	err            error
}

// startCLI starts the built command with args; it is killed when the test
// ends, if it still runs.
func startCLI(t *testing.T, args ...string) *cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	r := &cliRun{cmd: exec.CommandContext(ctx, binPath, args...), done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	// Wait returns even if a child left behind holds the output pipes.
	r.cmd.WaitDelay = 5 * time.Second
	if err := r.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func (r *cliRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// wait waits for the command to exit and returns its exit status.
func (r *cliRun) wait(t *testing.T) int {
	t.Helper()
	<-r.done // startCLI's context bounds it
	var ee *exec.ExitError
	switch {
	case r.err == nil:
		return 0
	case errors.As(r.err, &ee) && ee.Exited():
		return ee.ExitCode()
	}
	t.Fatalf("%v: %v\nstderr: %s", r.cmd.Args, r.err, r.stderr.String())
	return -1
}

// waitFor polls cond until it holds or the command has exited (60 s at most).
func waitFor(t *testing.T, r *cliRun, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() && !r.exited() {
		if time.Now().After(deadline) {
			t.Fatal("the awaited condition did not come within 60 s")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// stopMidCopy waits until a copy process of the command run has a file
// that writes accepts open for writing only (it is past its start and
// inside its copy), stopped with SIGSTOP, and returns its pid: from then on, that part of
// the copy cannot complete, whatever the timing. Each child is stopped as
// soon as it is seen, then let go on in short bursts, stopped again
// before each look, so that its copy cannot run to its end between two
// looks. ok is false if the command exited first. The stopped process is
// killed when the test ends, if it is still there.
func stopMidCopy(t *testing.T, run *cliRun, writes func(path string) bool) (pid int, ok bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	seen := map[int]bool{}
	for !run.exited() {
		if time.Now().After(deadline) {
			t.Fatal("no copy process was seen copying within 30 s")
		}
		for _, kid := range childrenOf(run.cmd.Process.Pid) {
			if !seen[kid] {
				seen[kid] = true
				t.Cleanup(func() { syscall.Kill(kid, syscall.SIGKILL) })
			}
			for stopProcess(kid, deadline) {
				if writesTo(kid, writes) {
					return kid, true
				}
				// A burst: from here to the SIGSTOP of the next stop.
				syscall.Kill(kid, syscall.SIGCONT)
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	t.Logf("copy processes seen: %v", seen)
	return 0, false
}

// tempIn matches the copy's temporary files in dir.
func tempIn(dir string) func(path string) bool {
	return func(p string) bool {
		return filepath.Dir(p) == dir && strings.Contains(filepath.Base(p), ".multiproc-")
	}
}

// writesTo reports whether process pid has a file that match accepts open
// for writing only: as a copy process opens it in its task. A read-write
// descriptor does not count: the parent's of a big file's temporary file,
// which a child between fork and exec still has.
func writesTo(pid int, match func(path string) bool) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil || !match(target) {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
				if err == nil && flags&unix.O_ACCMODE == unix.O_WRONLY {
					return true
				}
			}
		}
	}
	return false
}

// stopProcess sends pid SIGSTOP and waits, until deadline at most, for
// it to be stopped; it reports whether it is (false: gone, a zombie, or
// not stopped in time). The copy's workers are the test's grandchildren,
// so no wait call reports their stop, and /proc has no event to wait on:
// it is polled.
func stopProcess(pid int, deadline time.Time) bool {
	if syscall.Kill(pid, syscall.SIGSTOP) != nil {
		return false
	}
	for time.Now().Before(deadline) {
		switch procState(pid) {
		case 'T':
			return true
		case 'R', 'S', 'D':
			time.Sleep(20 * time.Microsecond)
			continue
		}
		return false // gone, or a zombie: its copy is over
	}
	return false
}

// procState is the state letter of /proc/pid/stat (R, S, D, T, Z, ...), or
// 0 when the process is gone.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// openPty opens a pseudo-terminal of 100×30 characters, or skips the test.
func openPty(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var n uint32
	var ioErr error
	rc, err := m.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr == nil {
				n, ioErr = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN)
			}
		})
	}
	if err = errors.Join(err, ioErr); err != nil {
		m.Close()
		t.Skipf("cannot set up a pseudo-terminal: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("cannot open the pseudo-terminal: %v", err)
	}
	rc, _ = s.SyscallConn()
	rc.Control(func(fd uintptr) {
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 100})
	})
	if ioErr != nil {
		t.Fatalf("setting the terminal size: %v", ioErr)
	}
	return m, s
}

// runOnTerminal runs the command with stderr on a new pseudo-terminal
// (60 s at most) and returns what it printed to stdout and to the
// terminal; a failing command fails the test.
func runOnTerminal(t *testing.T, args ...string) (stdout, screen string) {
	t.Helper()
	master, tty := openPty(t)
	defer master.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	scr := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(master) // ends with EIO once no process holds the terminal
		scr <- string(b)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	select {
	case screen = <-scr:
	case <-time.After(10 * time.Second):
		master.SetReadDeadline(time.Now())
		screen = <-scr
	}
	return out.String(), screen
}

func TestCopyProgressBarOnTerminal(t *testing.T) {
	src := bigFile(t, largeSize)
	dir := t.TempDir()
	stdout, out := runOnTerminal(t, "copy", "-v", "-j", "2", src.path, filepath.Join(dir, "dst"))
	t.Logf("terminal output: %q", out)
	for _, want := range []string{"dst", "100 %", "MiB", "[", "=]", "/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal output lacks %q: %q", want, out)
		}
	}
	if !strings.HasPrefix(stdout, fmt.Sprintf("copied %d bytes in ", src.size)) {
		t.Errorf("stdout %q", stdout)
	}
	if fileSum(t, filepath.Join(dir, "dst")) != src.sum {
		t.Fatal("the copy differs from the source")
	}
}

func TestSplitRanges(t *testing.T) {
	for _, c := range []struct {
		size  int64
		jobs  int
		procs int
	}{
		{0, 4, 0},
		{1, 4, 1},
		{minPerProcess - 1, 8, 1},
		{minPerProcess, 8, 1},
		{2*minPerProcess - 1, 8, 1},
		{2 * minPerProcess, 8, 2},
		{mediumSize, 1, 1},
		{mediumSize, 3, 3},
		{mediumSize, 8, 8},
		{mediumSize, 1000, 25},
		{1 << 30, 2, 2},
		{1<<40 + 7, 64, 64},
	} {
		rs := splitRanges(c.size, c.jobs)
		if len(rs) != c.procs {
			t.Errorf("splitRanges(%d, %d): %d ranges, want %d", c.size, c.jobs, len(rs), c.procs)
			continue
		}
		next := int64(0)
		for i, r := range rs {
			if r.off != next || r.n <= 0 {
				t.Errorf("splitRanges(%d, %d): range %d is %+v after %d", c.size, c.jobs, i, r, next)
			}
			if len(rs) > 1 && r.n < minPerProcess-rangeAlign {
				t.Errorf("splitRanges(%d, %d): range %d has only %d bytes", c.size, c.jobs, i, r.n)
			}
			if i > 0 && r.off%rangeAlign != 0 {
				t.Errorf("splitRanges(%d, %d): range %d starts at %d, not on %d", c.size, c.jobs, i, r.off, rangeAlign)
			}
			next = r.off + r.n
		}
		if next != c.size {
			t.Errorf("splitRanges(%d, %d) covers %d bytes", c.size, c.jobs, next)
		}
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	es, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == fmt.Sprint(pid) {
			var k int
			fmt.Sscan(e.Name(), &k)
			kids = append(kids, k)
		}
	}
	return kids
}

func TestCopyChildKilled(t *testing.T) {
	// A copy process that dies (here SIGKILL, as from the OOM killer)
	// fails the copy cleanly: the others are stopped, nothing is left. It
	// is killed once it is provably inside its copy (stopped there), so
	// that neither an early kill (during its start) nor a late one (after
	// its part is done) can happen.
	src := bigFile(t, largeSize)
	dir := t.TempDir()
	run := startCLI(t, "copy", "-j", "2", src.path, filepath.Join(dir, "dst"))
	pid, ok := stopMidCopy(t, run, tempIn(dir))
	if !ok {
		t.Fatalf("the copy ended before a copy process was seen copying: %v\nstderr: %s", run.err, run.stderr.String())
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := run.wait(t); code != 1 {
		t.Fatalf("exit code %d, want 1\nstderr: %s", code, run.stderr.String())
	}
	want := regexp.MustCompile(fmt.Sprintf(`^multiproc copy: copy process copy-\d \(pid %d\) was killed by signal 9 \(killed\)\n$`, pid))
	if !want.MatchString(run.stderr.String()) {
		t.Errorf("stderr %q, want %v", run.stderr.String(), want)
	}
	onlyFiles(t, dir)
	noProcessesLeft(t)
}

// TestCopyProcFile: a file whose size is 0 but which has contents (all of
// /proc) is read to its end, as cp does; "self" is the copying process.
func TestCopyProcFile(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "status")
	r := runCLI(t, 0, "copy", "-v", "/proc/self/status", dst)
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("Name:\tmultiproc\n")) || !bytes.Contains(got, []byte("\nPid:\t")) {
		t.Errorf("the copy of /proc/self/status holds %q", got)
	}
	if want := fmt.Sprintf("copied %d bytes in ", len(got)); !strings.HasPrefix(r.stdout, want) || !strings.HasSuffix(r.stdout, " with 1 process\n") {
		t.Errorf("stdout %q, want %q… with 1 process", r.stdout, want)
	}
	// A /sys file says 4096 bytes and holds fewer.
	const sys = "/sys/kernel/mm/transparent_hugepage/enabled"
	if want, err := os.ReadFile(sys); err == nil {
		runCLI(t, 0, "copy", sys, filepath.Join(dir, "enabled"))
		if got, _ := os.ReadFile(filepath.Join(dir, "enabled")); !bytes.Equal(got, want) {
			t.Errorf("the copy of %s holds %q, want %q", sys, got, want)
		}
	}
	onlyFiles(t, dir, "enabled", "status")
}

// TestCopySparse: the holes of a sparse source stay holes: the copy takes
// no more blocks than the source, and holds the same bytes.
func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "sparse")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4<<30 + 12345 // 4 GiB apparent size
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	// Data at the start, across the boundary of the two processes' ranges
	// (2 GiB), in the middle of each range, and at the very end.
	data := make([]byte, 3<<20)
	rand.Read(data)
	for _, off := range []int64{0, 2<<30 - 1<<20, 1 << 30, 3<<30 + 4097, size - 1000} {
		if _, err := f.WriteAt(data[:min(int64(len(data)), size-off)], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "copy")
	runCLI(t, 0, "copy", "-j", "2", src, dst)
	sb, db := blocks(t, src), blocks(t, dst)
	t.Logf("source: %d blocks of 512 B, copy: %d (apparent size %d)", sb, db, size)
	// A little slack for the file system's own allocation choices.
	if db > sb+2048 {
		t.Errorf("the copy takes %d blocks of 512 B, the source %d: holes were filled", db, sb)
	}
	sameSparseContents(t, src, dst)
}

// blocks is st_blocks of path: 512-byte units allocated.
func blocks(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}

// sameSparseContents compares two files of the same size by reading only
// their data extents: outside them both read as zeros.
func sameSparseContents(t *testing.T, a, b string) {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	sa, _ := fa.Stat()
	sbs, _ := fb.Stat()
	if sa.Size() != sbs.Size() {
		t.Fatalf("%s has %d bytes, %s %d", a, sa.Size(), b, sbs.Size())
	}
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for _, f := range []*os.File{fa, fb} { // the data of either, compared with the other
		off := int64(0)
		for off < sa.Size() {
			start, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
			if err == unix.ENXIO {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			end, err := unix.Seek(int(f.Fd()), start, unix.SEEK_HOLE)
			if err != nil {
				t.Fatal(err)
			}
			for off = start; off < end; {
				n := int(min(int64(len(ba)), end-off))
				if _, err := fa.ReadAt(ba[:n], off); err != nil {
					t.Fatal(err)
				}
				if _, err := fb.ReadAt(bb[:n], off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(ba[:n], bb[:n]) {
					t.Fatalf("%s and %s differ in [%d, %d)", a, b, off, off+int64(n))
				}
				off += int64(n)
			}
		}
	}
}

// TestCopyStartFailuresOneLine: with far more processes than the limit on
// open files allows, the copy fails with one line that says how many
// processes could not start, why, and what to do, and leaves nothing.
func TestCopyStartFailuresOneLine(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: room for 1000 processes of 4 MiB without writing 4 GB.
	if err := f.Truncate(1000 * minPerProcess); err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("data"), 12345)
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `ulimit -n 64 && exec "$@"`, "sh", binPath, "copy", "-j", "1000", src, filepath.Join(dir, "dst"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("copy -j 1000 under ulimit -n 64: %v, want exit status 1\nstderr: %s", err, stderr.String())
	}
	want := regexp.MustCompile(`^multiproc copy: \d+ of 1000 copy processes could not start: .*too many open files.* \(the limit on open files, ulimit -n, is 64: use a smaller -j\)\n$`)
	if !want.MatchString(stderr.String()) {
		t.Errorf("stderr %q, want one line matching %v", stderr.String(), want)
	}
	onlyFiles(t, dir, "src")
	noProcessesLeft(t)
}
