package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
			r := runCLI(t, 0, "copy", "-j", fmt.Sprint(j), src.path, dst)
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

func TestCopyDefaultJobsQuiet(t *testing.T) {
	src := bigFile(t, mediumSize)
	dir := t.TempDir()
	dst := filepath.Join(dir, "dst")
	// Flags after the operands work too.
	r := runCLI(t, 0, "copy", src.path, dst, "-q")
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("-q: stdout %q, stderr %q; want both empty", r.stdout, r.stderr)
	}
	if fileSum(t, dst) != src.sum {
		t.Fatal("the copy differs from the source")
	}
}

func TestCopySmallFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "small")
	data := []byte("a small file, smaller than a process's share\n")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, 0, "copy", "-j", "8", src, filepath.Join(dir, "copy"))
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
	r := runCLI(t, 0, "copy", src, filepath.Join(dir, "copy"))
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
		{"copy", src, dir + "/d", dir + "/e"},
	} {
		r := runCLI(t, 2, args...)
		if !strings.Contains(r.stderr, "usage: multiproc copy") {
			t.Errorf("%q: stderr %q lacks the usage line", args, r.stderr)
		}
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
		midCopy  bool // signal once data is being written, not as soon as the temporary file exists
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
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binPath, "copy", "-j", "2", src.path, dst)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			// The temporary file appears when the copy begins, and gets
			// blocks when data is written: signal then (or when the copy
			// is over already).
			deadline := time.After(10 * time.Second)
		wait:
			for {
				ms, _ := filepath.Glob(filepath.Join(dir, ".dst.multiproc-*"))
				if len(ms) > 0 && (!c.midCopy || tempWritten(ms[0])) {
					break
				}
				select {
				case err := <-waited:
					waited <- err
					break wait
				case <-deadline:
					t.Fatal("no temporary file appeared within 10 s")
				case <-time.After(100 * time.Microsecond):
				}
			}
			if err := cmd.Process.Signal(c.sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Fatal(err)
			}
			err := <-waited
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.Exited() {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("copy: %v\nstderr: %s", err, stderr.String())
			}
			switch code {
			case 0:
				t.Log("the copy finished before the signal")
				if fileSum(t, dst) != src.sum {
					t.Fatal("the copy differs from the source")
				}
				onlyFiles(t, dir, "dst")
			case 1:
				if want := "multiproc copy: interrupted ("; !strings.HasPrefix(stderr.String(), want) {
					t.Errorf("stderr %q, want %q…", stderr.String(), want)
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
			default:
				t.Fatalf("exit code %d\nstderr: %s", code, stderr.String())
			}
			noProcessesLeft(t)
		})
	}
}

// tempWritten reports whether the copy's temporary file has data (it is
// made sparse, with its final size: blocks appear as it is written).
func tempWritten(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Sys().(*syscall.Stat_t).Blocks > 0
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

func TestCopyProgressBarOnTerminal(t *testing.T) {
	src := bigFile(t, largeSize)
	master, tty := openPty(t)
	defer master.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "copy", "-j", "2", src.path, filepath.Join(dir, "dst"))
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	screen := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(master) // ends with EIO once no process holds the terminal
		screen <- string(b)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("copy: %v", err)
	}
	var out string
	select {
	case out = <-screen:
	case <-time.After(10 * time.Second):
		master.SetReadDeadline(time.Now())
		out = <-screen
	}
	t.Logf("terminal output: %q", out)
	for _, want := range []string{"dst", "100 %", "MiB", "[", "=]", "/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal output lacks %q: %q", want, out)
		}
	}
	if !strings.HasPrefix(stdout.String(), fmt.Sprintf("copied %d bytes in ", src.size)) {
		t.Errorf("stdout %q", stdout.String())
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
	// fails the copy cleanly: the others are stopped, nothing is left.
	src := bigFile(t, largeSize)
	dir := t.TempDir()
	dst := filepath.Join(dir, "dst")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "copy", "-j", "2", src.path, dst)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var err error
	killed := 0
poll:
	for {
		select {
		case err = <-waited:
			break poll
		case <-time.After(100 * time.Microsecond):
		}
		if ms, _ := filepath.Glob(filepath.Join(dir, ".dst.multiproc-*")); len(ms) == 0 || !tempWritten(ms[0]) {
			continue
		}
		if kids := childrenOf(cmd.Process.Pid); len(kids) > 0 {
			syscall.Kill(kids[0], syscall.SIGKILL)
			killed = kids[0]
			err = <-waited
			break
		}
	}
	if err == nil {
		t.Log("the copy finished before a process could be killed")
		if fileSum(t, dst) != src.sum {
			t.Fatal("the copy differs from the source")
		}
		return
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("copy: %v, want exit status 1\nstderr: %s", err, stderr.String())
	}
	if want := fmt.Sprintf("(pid %d) was killed by signal 9 (killed)", killed); !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	onlyFiles(t, dir)
	noProcessesLeft(t)
}
