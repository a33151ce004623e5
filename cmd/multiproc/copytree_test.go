package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mathrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// writeFile writes data to path with mode (exactly, whatever the umask),
// making its directory.
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// sparseFile makes a file of size bytes with data only at the offsets
// given (4 KiB of it each), holes elsewhere.
func sparseFile(t *testing.T, path string, size int64, at ...int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, off := range at {
		if _, err := f.WriteAt(bytes.Repeat([]byte{byte(off>>12) | 1}, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
}

// makeTree builds a tree with one of everything the copy handles: nested
// and empty directories, files of several modes and sizes, a file big
// enough to be split in ranges, a sparse file, symbolic links (relative,
// absolute, dangling, to a directory), hard links across directories, a
// FIFO, and a directory without write permission that has contents.
// Without big, the big and sparse files are left out (cheaper).
func makeTree(t *testing.T, root string, big bool) {
	t.Helper()
	writeFile(t, filepath.Join(root, "a.txt"), []byte("alpha\n"), 0o644)
	writeFile(t, filepath.Join(root, "exec.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	writeFile(t, filepath.Join(root, "private"), []byte("secret\n"), 0o600)
	writeFile(t, filepath.Join(root, "empty-file"), nil, 0o640)
	writeFile(t, filepath.Join(root, "sub", "deeper", "deepest", "leaf"), bytes.Repeat([]byte("leaf"), 3000), 0o644)
	for i := range 40 {
		writeFile(t, filepath.Join(root, "many", fmt.Sprintf("f%02d", i)), bytes.Repeat([]byte{byte(i)}, i*300), 0o644)
	}
	if err := os.MkdirAll(filepath.Join(root, "empty", "also-empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if big {
		// Big enough for ranges (bigFileMin), linked from the shared
		// random file so that it costs nothing to make.
		if err := os.Link(bigFile(t, bigFileMin+4321).path, filepath.Join(root, "big")); err != nil {
			t.Fatal(err)
		}
		sparseFile(t, filepath.Join(root, "sparse"), bigFileMin+8<<20, 0, 8<<20, bigFileMin+8<<20-4096)
	}
	sparseFile(t, filepath.Join(root, "sub", "small-sparse"), 1<<20, 512<<10)
	for _, l := range [][2]string{
		{"a.txt", "link-rel"},
		{"/etc/hostname", "link-abs"},
		{"no/such/target", "link-dangling"},
		{"sub", "link-dir"},
	} {
		if err := os.Symlink(l[0], filepath.Join(root, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(root, "a.txt"), filepath.Join(root, "sub", "hard-a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "sub", "deeper", "deepest", "leaf"), filepath.Join(root, "many", "hard-leaf")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "readonly-dir", "inside"), []byte("in a directory without write permission\n"), 0o444)
	os.Chmod(filepath.Join(root, "readonly-dir"), 0o555)
	os.Chmod(filepath.Join(root, "sub"), 0o750)
	// Times in the past, directories last, so that -p has something to keep.
	old := time.Date(2001, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
	var dirs []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, p)
		case d.Type()&fs.ModeSymlink != 0:
			unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}, unix.AT_SYMLINK_NOFOLLOW)
		default:
			os.Chtimes(p, old, old.Add(time.Duration(len(p))*time.Second))
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chtimes(dirs[i], old, old.Add(time.Hour))
	}
}

// entry is what compareTrees compares of one name.
type entry struct {
	mode  fs.FileMode
	link  string
	sum   [sha256.Size]byte
	mtime time.Time
	ino   uint64
}

// scanTree lists every name under root, with its type, mode, contents or
// target, and inode.
func scanTree(t *testing.T, root string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{mode: info.Mode(), mtime: info.ModTime(), ino: info.Sys().(*syscall.Stat_t).Ino}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			e.link, _ = os.Readlink(p)
		case info.Mode().IsRegular():
			e.sum = fileSum(t, p)
		}
		m[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// compareTrees checks that dst is a copy of src: the same names, types,
// contents, link targets and hard links, and, with preserve, the same
// modes and modification times; without, modes less the umask.
func compareTrees(t *testing.T, src, dst string, preserve bool) {
	t.Helper()
	s, d := scanTree(t, src), scanTree(t, dst)
	umask := fs.FileMode(unix.Umask(0))
	unix.Umask(int(umask))
	var names []string
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		se, de := s[n], d[n]
		if _, ok := d[n]; !ok {
			t.Errorf("%s: missing from the copy", n)
			continue
		}
		if se.mode.Type() != de.mode.Type() {
			t.Errorf("%s: type %v, want %v", n, de.mode.Type(), se.mode.Type())
			continue
		}
		if se.link != de.link || se.sum != de.sum {
			t.Errorf("%s: contents or target differ (%q, want %q)", n, de.link, se.link)
		}
		if se.mode.Type()&fs.ModeSymlink != 0 {
			continue
		}
		want := se.mode.Perm()
		if !preserve {
			want &^= umask
		}
		if de.mode.Perm() != want {
			t.Errorf("%s: mode %v, want %v", n, de.mode.Perm(), want)
		}
		if preserve && !de.mtime.Equal(se.mtime) {
			t.Errorf("%s: modified %v, want %v", n, de.mtime, se.mtime)
		}
	}
	for n := range d {
		if _, ok := s[n]; !ok {
			t.Errorf("%s: in the copy, not in the source", n)
		}
	}
	// Names that share an inode in src share one in dst, and only those.
	for _, a := range names {
		for _, b := range names {
			if a < b && s[a].mode.IsRegular() && (s[a].ino == s[b].ino) != (d[a].ino == d[b].ino) {
				t.Errorf("%s and %s: linked %v in the source, %v in the copy", a, b, s[a].ino == s[b].ino, d[a].ino == d[b].ino)
			}
		}
	}
}

// noTemps checks that no temporary file of a copy is left under root.
func noTemps(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), tempMark) {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// writing returns the directory a tree copy into dst writes into: dst
// once it is in place, before that the hidden directory of the new tree
// (makeDir), or "" while there is neither.
func writing(dst string) string {
	if _, err := os.Stat(dst); err == nil {
		return dst
	}
	ms, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+tempMark+"*"))
	if len(ms) == 1 {
		return ms[0]
	}
	return ""
}

func TestCopyTree(t *testing.T) {
	for _, preserve := range []bool{true, false} {
		t.Run(fmt.Sprintf("p=%v", preserve), func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			makeTree(t, src, preserve)
			args := []string{"copy", "-r", "-v", "-j", "3", src, filepath.Join(dir, "dst")}
			if preserve {
				args = append(args, "-p")
			}
			r := runCLI(t, 0, args...)
			if want := regexp.MustCompile(`^copied \d+ files, \d+ bytes in \d+\.\d\ds \(.*MB/s\) with \d process(es)?\n$`); !want.MatchString(r.stdout) {
				t.Errorf("stdout %q does not match %v", r.stdout, want)
			}
			if r.stderr != "" {
				t.Errorf("stderr %q", r.stderr)
			}
			dst := filepath.Join(dir, "dst") // DST did not exist: it is the copy of src
			compareTrees(t, src, dst, preserve)
			for _, f := range []string{"sparse", "sub/small-sparse"} {
				if f == "sparse" && !preserve {
					continue // made with the big files only
				}
				if b, sb := blocks(t, filepath.Join(dst, f)), blocks(t, filepath.Join(src, f)); b > sb {
					t.Errorf("%s: the copy takes %d blocks, the source %d: holes were filled", f, b, sb)
				}
			}
			noTemps(t, dst)
			if preserve {
				return
			}
			// Again into the existing copy: DST is a directory now, so the
			// copy goes to dst/src.
			runCLI(t, 0, append(args[:len(args):len(args)], "-q")...)
			compareTrees(t, src, filepath.Join(dst, "src"), preserve)
		})
	}
}

// TestCopySeveralSources: files and trees go into the directory DST; a
// directory without -r is one line and exit status 1, the rest is copied.
func TestCopySeveralSources(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "one"), []byte("1\n"), 0o644)
	writeFile(t, filepath.Join(dir, "two"), []byte("22\n"), 0o600)
	writeFile(t, filepath.Join(dir, "tree", "x", "y"), []byte("y\n"), 0o644)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	r := runCLI(t, 1, "copy", filepath.Join(dir, "one"), filepath.Join(dir, "tree"), filepath.Join(dir, "two"), out)
	if want := "multiproc copy: " + filepath.Join(dir, "tree") + ": is a directory (use -r to copy it)\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	onlyFiles(t, out, "one", "two")
	runCLI(t, 0, "copy", "-r", filepath.Join(dir, "one"), filepath.Join(dir, "tree"), filepath.Join(dir, "two"), out)
	onlyFiles(t, out, "one", "tree", "two")
	compareTrees(t, filepath.Join(dir, "tree"), filepath.Join(out, "tree"), false)
	// Several sources need a directory.
	r = runCLI(t, 1, "copy", filepath.Join(dir, "one"), filepath.Join(dir, "two"), filepath.Join(out, "one"))
	if !strings.Contains(r.stderr, "is not a directory") {
		t.Errorf("stderr %q", r.stderr)
	}
}

// TestCopyIntoItself: a directory copied into itself is refused before
// anything is written.
func TestCopyIntoItself(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "sub", "f"), []byte("f\n"), 0o644)
	if err := os.Symlink(src, filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	before := scanTree(t, src)
	for _, c := range [][]string{
		{"copy", "-r", src, filepath.Join(src, "sub", "new")},
		{"copy", "-r", src, src},                                                     // into src/src
		{"copy", "-r", filepath.Join(dir, "alias") + "/", filepath.Join(src, "sub")}, // through a link
		{"copy", "-r", filepath.Join(dir, "alias", "sub", "f"), src, filepath.Join(src, "sub")},
	} {
		r := runCLI(t, 1, c...)
		if !strings.Contains(r.stderr, "into itself") {
			t.Errorf("%q: stderr %q, want it refused", c, r.stderr)
		}
		if after := scanTree(t, src); len(after) != len(before) {
			t.Fatalf("%q wrote into the source: %d names, had %d", c, len(after), len(before))
		}
	}
}

// TestCopyNoClobber: -n leaves existing files alone; without it they are
// replaced, through a rename.
func TestCopyNoClobber(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "old"), []byte("new contents\n"), 0o644)
	writeFile(t, filepath.Join(src, "new"), []byte("fresh\n"), 0o644)
	if err := os.Symlink("old", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")
	writeFile(t, filepath.Join(dst, "old"), []byte("kept\n"), 0o600)
	if err := os.Symlink("elsewhere", filepath.Join(dst, "link")); err != nil {
		t.Fatal(err)
	}
	runCLI(t, 0, "copy", "-r", "-n", src+"/.", dst)
	if got, _ := os.ReadFile(filepath.Join(dst, "old")); string(got) != "kept\n" {
		t.Errorf("-n overwrote old: %q", got)
	}
	if got, _ := os.Readlink(filepath.Join(dst, "link")); got != "elsewhere" {
		t.Errorf("-n replaced the link: %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "new")); string(got) != "fresh\n" {
		t.Errorf("new: %q", got)
	}
	// One file, -n.
	runCLI(t, 0, "copy", "-n", filepath.Join(src, "old"), filepath.Join(dst, "old"))
	if got, _ := os.ReadFile(filepath.Join(dst, "old")); string(got) != "kept\n" {
		t.Errorf("-n overwrote old: %q", got)
	}
	// Without -n: replaced.
	runCLI(t, 0, "copy", "-r", src+"/.", dst)
	compareTrees(t, src, dst, false)
	noTemps(t, dst)
}

// TestCopySpecialFiles: a device node is recreated where permitted (here,
// as root) and skipped with one line where not (in a user namespace,
// where mknod of a device is refused); a FIFO is recreated, never read.
func TestCopySpecialFiles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "file"), []byte("data\n"), 0o644)
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("cannot make a device node to copy: %v", err)
	}
	runCLI(t, 0, "copy", "-r", src, filepath.Join(dir, "dst"))
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "dst", "null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("the device node was not recreated: %v, mode %o", err, st.Mode)
	}
	if err := unix.Lstat(filepath.Join(dir, "dst", "fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("the FIFO was not recreated: %v, mode %o", err, st.Mode)
	}
	// Where mknod of a device is refused: one line, exit 1, the rest copied.
	code, stdout, stderr := inTmpfs(t, "16m", `"$2" copy -r "$3" "$1/dst"; rc=$?; ls -A "$1/dst"; exit $rc`, src)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if want := regexp.MustCompile(`^multiproc copy: cannot create character device /\S+/dst/null: operation not permitted \(skipped\)\n$`); !want.MatchString(stderr) {
		t.Errorf("stderr %q, want %v", stderr, want)
	}
	if stdout != "fifo\nfile\n" {
		t.Errorf("the copy holds %q", stdout)
	}
}

// TestCopyUnreadable: a file that cannot be read is one line naming it
// and the reason; the rest is copied; exit status 1. The copy runs as
// nobody (root reads everything), in a child with dropped privileges.
func TestCopyUnreadable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the copy as another user")
	}
	const nobody = 65534
	base, err := os.MkdirTemp("", "multiproc-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	// The binary where nobody can run it.
	bin := filepath.Join(base, "multiproc")
	in, err := os.Open(binPath)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(out, in)
	in.Close()
	if err = errors.Join(err, out.Close()); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(base, "src")
	writeFile(t, filepath.Join(src, "readable"), []byte("ok\n"), 0o644)
	writeFile(t, filepath.Join(src, "secret"), []byte("root only\n"), 0o600)
	writeFile(t, filepath.Join(src, "z", "also-readable"), []byte("ok\n"), 0o644)
	dst := filepath.Join(base, "dst")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(dst, nobody, nobody)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "copy", "-r", src, dst)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\nstderr: %s", err, e.String())
	}
	if want := "multiproc copy: cannot read " + filepath.Join(src, "secret") + ": permission denied\n"; e.String() != want {
		t.Errorf("stderr %q, want %q", e.String(), want)
	}
	onlyFiles(t, filepath.Join(dst, "src"), "readable", "z")
	onlyFiles(t, filepath.Join(dst, "src", "z"), "also-readable")
}

// TestCopyTreeDiskFull: on a full file system each file that does not fit
// is one line (no space left on device); no file is left half-written
// under its name, no temporary file is left, the exit status is 1.
func TestCopyTreeDiskFull(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for i := range 12 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%02d", i)), bytes.Repeat([]byte{byte('a' + i)}, 700<<10), 0o644)
	}
	// 4 MiB hold some of the 12 files of 700 KiB, not all.
	script := `"$2" copy -r -j 2 "$3" "$1/dst"; rc=$?
echo "temps: $(find "$1" -name '*.multiproc-*' | wc -l)"
cd "$1/dst" && for f in */*; do cmp -s "$f" "$3/$f" || echo "differs: $f"; done
echo "copied: $(ls "$1"/dst/* | grep -c '^f')"
exit $rc`
	code, stdout, stderr := inTmpfs(t, "4m", script, src)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	for _, l := range lines {
		if !regexp.MustCompile(`^multiproc copy: writing /\S+/dst/d\d/f\d\d: no space left on device$`).MatchString(l) {
			t.Errorf("stderr line %q", l)
		}
	}
	if !strings.HasPrefix(stdout, "temps: 0\n") || strings.Contains(stdout, "differs") {
		t.Errorf("after the copy: %s", stdout)
	}
	var copied int
	fmt.Sscanf(stdout[strings.Index(stdout, "copied: "):], "copied: %d", &copied)
	if copied+len(lines) != 12 || copied == 0 {
		t.Errorf("%d files copied, %d failed, want 12 in all, some of each\n%s", copied, len(lines), stdout)
	}
}

// manySmall makes n small files in 10 directories under root.
func manySmall(t *testing.T, root string, n int) {
	t.Helper()
	for i := range 10 {
		if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("d%d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%d", i)), bytes.Repeat([]byte{byte(i)}, 1+i%5000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCopyTreeInterrupted: Ctrl-C at random points of a tree copy exits
// 130 with every file in the copy complete and no temporary file left.
func TestCopyTreeInterrupted(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	manySmall(t, src, 600)
	big := bigFile(t, mediumSize)
	if err := os.Link(big.path, filepath.Join(src, "d3", "big")); err != nil {
		t.Fatal(err)
	}
	want := scanTree(t, src)
	for i := range 3 {
		dst := filepath.Join(dir, fmt.Sprintf("dst%d", i))
		run := startCLI(t, "copy", "-r", "-j", "2", src, dst)
		// The first run as soon as the copy has begun (the new tree's
		// hidden directory exists: it is still walking); the others once
		// files are being completed, at a random moment after that.
		waitFor(t, run, func() bool {
			w := writing(dst)
			if i == 0 || w == "" {
				return w != ""
			}
			ms, _ := filepath.Glob(filepath.Join(w, "d*", "f*"))
			return len(ms) > 0
		})
		if i > 0 {
			time.Sleep(time.Duration(mathrand.IntN(50_000)) * time.Microsecond)
		}
		if err := run.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		code := run.wait(t)
		switch code {
		case 130:
			if !strings.Contains(run.stderr.String(), "multiproc copy: interrupted (interrupt signal received)") {
				t.Errorf("stderr %q", run.stderr.String())
			}
		case 0:
			t.Logf("run %d: the copy ended before the signal", i)
		default:
			t.Fatalf("exit code %d\nstderr: %s", code, run.stderr.String())
		}
		// The new tree is in place, under its final name, and no hidden
		// file or directory is left anywhere.
		noTemps(t, dir)
		got := scanTree(t, dst)
		complete := 0
		for name, e := range got {
			if !e.mode.IsRegular() {
				continue
			}
			if w, ok := want[name]; !ok || w.sum != e.sum {
				t.Errorf("run %d: %s is in the copy but not complete", i, name)
			}
			complete++
		}
		t.Logf("run %d: exit %d, %d files complete", i, code, complete)
		noProcessesLeft(t)
	}
}

// TestCopyTreeDirOfBigishFiles: one directory of files below the size
// that splits a file, but more than a batch's bytes together, is one
// Names batch at the walk; the process that copies it hands back what is
// left once it has copied batchMaxBytes, and the rest is shared out as
// several tasks (the trace counts them), each file copied once, whole.
func TestCopyTreeDirOfBigishFiles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for i := range 12 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%02d", i)), bytes.Repeat([]byte{byte(i)}, 1<<20+i), 0o644)
	}
	t.Setenv(traceEnv, "1")
	r := runCLI(t, 0, "copy", "-r", "-j", "2", src, filepath.Join(dir, "dst"))
	compareTrees(t, src, filepath.Join(dir, "dst"), false)
	var here, pool int
	if i := strings.Index(r.stderr, "every task done ("); i < 0 {
		t.Fatalf("no trace of the tasks in %q", r.stderr)
	} else {
		fmt.Sscanf(r.stderr[i:], "every task done (%d here, %d in the pool)", &here, &pool)
	}
	// 12 MiB in batches of 8 MiB: the batch, then its rest in parts.
	if here+pool < 2 {
		t.Errorf("%d tasks (%d here, %d in the pool): the batch was not cut at %d bytes\n%s", here+pool, here, pool, batchMaxBytes, r.stderr)
	}
}

// TestCopyTreeWorkerKilled: a pool worker SIGKILLed mid-copy (as by the
// OOM killer) fails the files of the batches it held, one line each, and
// no other: the pool replaces it, the rest is copied, every file in the
// copy is complete, nothing is left behind, and the exit status is 1.
func TestCopyTreeWorkerKilled(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	const n = 2000
	manySmall(t, src, n)
	dst := filepath.Join(dir, "dst")
	run := startCLI(t, "copy", "-r", "-j", "2", src, dst)
	// Killed while provably mid-file: stopped with a file of the new tree
	// (still under its hidden name) open for writing. Not stopMidCopy:
	// the worker runs 100 µs between two looks, or the parent, never
	// stopped, would copy the whole tree meanwhile.
	deadline := time.Now().Add(30 * time.Second)
	killed := false
	for !killed && !run.exited() {
		if time.Now().After(deadline) {
			t.Fatal("no worker was seen writing within 30 s")
		}
		w := writing(dst)
		for _, kid := range childrenOf(run.cmd.Process.Pid) {
			if w == "" || !stopProcess(kid, deadline) {
				continue
			}
			if writesTo(kid, func(p string) bool { return strings.HasPrefix(p, w+"/") }) {
				syscall.Kill(kid, syscall.SIGKILL)
				killed = true
				break
			}
			syscall.Kill(kid, syscall.SIGCONT)
		}
		time.Sleep(100 * time.Microsecond) // the burst the copy runs between two looks
	}
	if !killed {
		run.wait(t)
		t.Skip("the copy ended before its worker was seen writing")
	}
	code := run.wait(t)
	failed := map[string]bool{}
	if stderr := strings.TrimSuffix(run.stderr.String(), "\n"); stderr != "" {
		for _, l := range strings.Split(stderr, "\n") {
			rest, ok := strings.CutPrefix(l, "multiproc copy: cannot copy "+src+"/")
			if !ok {
				t.Errorf("stderr line %q", l)
				continue
			}
			failed[rest[:strings.IndexByte(rest, ':')]] = true
		}
	}
	if (code == 1) != (len(failed) > 0) || code > 1 {
		t.Fatalf("exit code %d with %d files failed\nstderr: %s", code, len(failed), run.stderr.String())
	}
	want, got := scanTree(t, src), scanTree(t, dst)
	copied := 0
	for name, e := range want {
		if !e.mode.IsRegular() {
			continue
		}
		g, ok := got[name]
		switch {
		case ok && failed[name]:
			t.Errorf("%s is said failed, yet it is in the copy", name)
		case ok && g.sum != e.sum:
			t.Errorf("%s is in the copy but not complete", name)
		case ok:
			copied++
		case !failed[name]:
			t.Errorf("%s is neither copied nor said failed", name)
		}
	}
	t.Logf("exit %d: %d files copied, %d failed with the worker", code, copied, len(failed))
	noTemps(t, dir)
	noProcessesLeft(t)
}

// TestCopyTreeDestinationAppears: a destination made by someone else
// while the new tree is copied under its hidden name is never replaced,
// even empty: the copy says where its tree is, leaves it whole, and
// exits 1. The copy (-j 1, no worker) is stopped as soon as its hidden
// tree exists, in short bursts from its start, and the destination made
// then.
func TestCopyTreeDestinationAppears(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	manySmall(t, src, 600)
	dst := filepath.Join(dir, "dst")
	run := startCLI(t, "copy", "-r", "-j", "1", src, dst)
	pid := run.cmd.Process.Pid
	deadline := time.Now().Add(30 * time.Second)
	hidden := ""
	for hidden == "" && !run.exited() {
		if time.Now().After(deadline) {
			t.Fatal("no hidden tree within 30 s")
		}
		if !stopProcess(pid, deadline) {
			if !run.exited() && time.Now().After(deadline) {
				t.Fatal("the copy did not stop within 30 s")
			}
			break
		}
		if w := writing(dst); w != "" && w != dst {
			hidden = w
			break
		}
		syscall.Kill(pid, syscall.SIGCONT)
		time.Sleep(100 * time.Microsecond) // the burst the copy runs between two looks
	}
	if hidden == "" {
		run.wait(t)
		t.Skip("the copy ended before its hidden tree was seen")
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := run.wait(t); code != 1 {
		t.Fatalf("exit code %d, want 1\nstderr: %s", code, run.stderr.String())
	}
	want := fmt.Sprintf("multiproc copy: cannot create directory %s: file exists (the copy is in %s)\n", dst, hidden)
	if got := run.stderr.String(); got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	onlyFiles(t, dst)
	compareTrees(t, src, hidden, false)
}

// TestCopyTreeKilled: a tree copy SIGKILLed mid-way leaves its new tree
// under a hidden name, never part of a tree under the final one; the next
// copy into the same directory removes it, with all it holds, and copies
// the tree whole.
func TestCopyTreeKilled(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	manySmall(t, src, 600)
	dst := filepath.Join(dir, "dst")
	run := startCLI(t, "copy", "-r", "-j", "2", src, dst)
	waitFor(t, run, func() bool {
		w := writing(dst)
		if w == "" || w == dst {
			return w == dst
		}
		ms, _ := filepath.Glob(filepath.Join(w, "d*", "f*"))
		return len(ms) > 0
	})
	run.cmd.Process.Kill()
	<-run.done // killed: no exit status to check
	noProcessesLeft(t)
	if _, err := os.Lstat(dst); err == nil {
		if got, want := len(scanTree(t, dst)), len(scanTree(t, src)); got != want {
			t.Fatalf("the killed copy left %d of the %d names of the tree under its final name", got, want)
		}
		t.Skip("the copy ended before SIGKILL")
	}
	hidden := writing(dst)
	if hidden == "" {
		t.Fatal("the killed copy left neither its tree nor a hidden one")
	}
	if ms, _ := filepath.Glob(filepath.Join(hidden, "d*", "f*")); len(ms) == 0 {
		t.Fatalf("the hidden tree %s holds no file", hidden)
	}
	runCLI(t, 0, "copy", "-r", src, dst)
	if _, err := os.Lstat(hidden); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s is left after the next copy (%v)", hidden, err)
	}
	noTemps(t, dir)
	compareTrees(t, src, dst, false)
}

// TestCopyRemovesDeadCopiersTemps: the temporary files of a copy that was
// SIGKILLed are removed by the next copy into the same directory, as are
// those of a pid that now names another process (another start time);
// those of a live copier are not.
func TestCopyRemovesDeadCopiersTemps(t *testing.T) {
	dir := t.TempDir()
	src := bigFile(t, mediumSize)
	// A real one: the copy killed while it writes.
	run := startCLI(t, "copy", "-j", "2", src.path, filepath.Join(dir, "big"))
	waitFor(t, run, func() bool {
		ms, _ := filepath.Glob(filepath.Join(dir, ".big.multiproc-*"))
		return len(ms) > 0
	})
	run.cmd.Process.Kill()
	<-run.done // killed: no exit status to check
	noProcessesLeft(t)
	left, _ := filepath.Glob(filepath.Join(dir, ".big.multiproc-*"))
	if len(left) == 0 {
		t.Skip("the copy ended before SIGKILL")
	}
	// Made ones: this test process is alive (its start time is right);
	// the same pid with another start time is a recycled pid; a pid that
	// has exited is dead.
	self := os.Getpid()
	start, ok := procStart(self)
	if !ok {
		t.Fatal("cannot read this process's start time")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	alive := fmt.Sprintf(".x.multiproc-%d-%d-1", self, start)
	recycled := fmt.Sprintf(".y.multiproc-%d-%d-2", self, start+1)
	gone := fmt.Sprintf(".z.multiproc-%d-%d-3", dead.Process.Pid, start)
	other := ".w.multiproc-notours"
	for _, n := range []string{alive, recycled, gone, other} {
		writeFile(t, filepath.Join(dir, n), []byte("partial"), 0o600)
	}
	// A dead copier's new tree (a hidden directory) goes with what it
	// holds.
	goneTree := fmt.Sprintf(".t.multiproc-%d-%d-4", dead.Process.Pid, start)
	writeFile(t, filepath.Join(dir, goneTree, "sub", "f"), []byte("partial"), 0o600)
	writeFile(t, filepath.Join(dir, "small"), []byte("small\n"), 0o644)
	runCLI(t, 0, "copy", filepath.Join(dir, "small"), filepath.Join(dir, "small2"))
	onlyFiles(t, dir, other, alive, "small", "small2")
	// The tree copy cleans the directories it writes into too.
	writeFile(t, filepath.Join(dir, recycled), []byte("partial"), 0o600)
	more := t.TempDir()
	writeFile(t, filepath.Join(more, "s1"), []byte("1\n"), 0o644)
	writeFile(t, filepath.Join(more, "s2"), []byte("2\n"), 0o644)
	runCLI(t, 0, "copy", filepath.Join(more, "s1"), filepath.Join(more, "s2"), dir)
	onlyFiles(t, dir, other, alive, "s1", "s2", "small", "small2")
}

func TestParseTempName(t *testing.T) {
	name := filepath.Base(tempName("/some/dir/file.txt"))
	pid, start, ok := parseTempName(name)
	if !ok || pid != os.Getpid() || !strings.HasPrefix(name, ".file.txt.multiproc-") {
		t.Fatalf("tempName %q parses as %d, %d, %v", name, pid, start, ok)
	}
	if s, _ := procStart(pid); s != start {
		t.Errorf("start %d, want %d", start, s)
	}
	if writerDead(pid, start) {
		t.Error("this process is said dead")
	}
	long := strings.Repeat("n", 255)
	if n := filepath.Base(tempName("/d/" + long)); len(n) > 255 {
		t.Errorf("the temporary name of a 255-byte name has %d bytes", len(n))
	}
	for _, bad := range []string{"file", ".file.multiproc-", ".f.multiproc-1-2", ".f.multiproc-a-2-3", ".f.multiproc-0-2-3", "f.multiproc-1-2-3", ".f.multiproc-1-2-3-4", ".f.multiproc--1-2-3", ".f.multiproc-01-2-3", ".f.multiproc-1-02-3"} {
		if _, _, ok := parseTempName(bad); ok {
			t.Errorf("%q parsed as a temporary name", bad)
		}
	}
}

func FuzzParseTempName(f *testing.F) {
	f.Add(".file.multiproc-12-345-6")
	f.Add(".multiproc-1-1-1")
	f.Add(".a.multiproc-99999999999999999999-1-1")
	f.Add(".multiproc-00000000000001-0-0") // leading zeros: tempName never writes them
	f.Fuzz(func(t *testing.T, name string) {
		pid, start, ok := parseTempName(name)
		if ok && (pid <= 0 || !strings.Contains(name, fmt.Sprintf("%s%d-%d-", tempMark, pid, start))) {
			t.Errorf("%q parsed as pid %d, start %d", name, pid, start)
		}
	})
}

func TestVersion(t *testing.T) {
	want := regexp.MustCompile(`^multiproc \S+( \(\S+\))? go\d+\.\d+\S* linux/\w+\n$`)
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		r := runCLI(t, 0, args...)
		if !want.MatchString(r.stdout) {
			t.Errorf("%q: stdout %q does not match %v", args, r.stdout, want)
		}
	}
	runCLI(t, 2, "version", "extra")
}

// TestCopyTreeProgressBar: on a terminal, -v draws one bar for the whole
// tree, counting files and bytes, complete at the end (its total grows
// while the walk goes on: it must not complete early).
func TestCopyTreeProgressBar(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	manySmall(t, src, 300)
	if err := os.Link(bigFile(t, mediumSize).path, filepath.Join(src, "big")); err != nil {
		t.Fatal(err)
	}
	stdout, out := runOnTerminal(t, "copy", "-r", "-v", "-j", "2", src, filepath.Join(dir, "dst"))
	// The last frame: every file, every byte.
	last := out[strings.LastIndex(strings.TrimRight(out, "\r\n"), "\n")+1:]
	if want := regexp.MustCompile(`301/301 files 100\.\d MiB / 100\.\d MiB \[=+\]\s+100 %`); !want.MatchString(last) {
		t.Errorf("the last frame %q does not match %v\nterminal output: %q", last, want, out)
	}
	if !strings.HasPrefix(stdout, "copied 301 files, ") {
		t.Errorf("stdout %q", stdout)
	}
	compareTrees(t, src, filepath.Join(dir, "dst"), false)
}

// TestCopyOneFilePreserve: -p on one file keeps its mode (setuid too),
// owner and times; without -p the mode loses the umask's bits and the
// setuid bit, and the time is the copy's.
func TestCopyOneFilePreserve(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "tool")
	writeFile(t, src, []byte("#!/bin/sh\n"), 0o777)
	if err := os.Chmod(src, 0o777|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	old := time.Date(1999, 12, 31, 23, 59, 58, 123_000_000, time.UTC)
	if err := os.Chtimes(src, old, old); err != nil {
		t.Fatal(err)
	}
	runCLI(t, 0, "copy", "-p", src, filepath.Join(dir, "kept"))
	runCLI(t, 0, "copy", src, filepath.Join(dir, "plain"))
	umask := fs.FileMode(unix.Umask(0))
	unix.Umask(int(umask))
	for _, c := range []struct {
		name  string
		mode  fs.FileMode
		mtime bool
	}{{"kept", 0o777 | fs.ModeSetuid, true}, {"plain", 0o777 &^ umask, false}} {
		st, err := os.Stat(filepath.Join(dir, c.name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.name, st.Mode(), c.mode)
		}
		if st.ModTime().Equal(old) != c.mtime {
			t.Errorf("%s: modified %v (source: %v), want kept %v", c.name, st.ModTime(), old, c.mtime)
		}
	}
}

// TestCopyTreeSourceChanged: a file removed between the walk and its copy
// (or replaced by a FIFO, which must not be waited on) is one line naming
// it and why; the rest is copied, and the exit status is 1. The change is
// made while the copy is stopped between the two: with -j 1 the parent
// alone runs the tasks, in the order the walk queued them, and src/big's
// task (its ranges, one after the other) is queued as src is read, before
// the batch of src/a/x. Once dst/a/z exists the walk has seen x (a
// directory's files are planned before its subdirectories are made);
// while big's hidden file is there, its ranges are not all done, so x is
// not opened yet.
func TestCopyTreeSourceChanged(t *testing.T) {
	big := bigFile(t, mediumSize)
	for _, c := range []struct {
		name         string
		change       func(path string) error
		before, want string // the line: before the path, after it
	}{
		{"removed", os.Remove, "cannot read ", ": it vanished while copying (no such file or directory)"},
		{"replaced by a FIFO", func(p string) error {
			if err := os.Remove(p); err != nil {
				return err
			}
			return unix.Mkfifo(p, 0o644)
		}, "", ": no longer a regular file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			if err := os.MkdirAll(filepath.Join(src, "a", "z"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(big.path, filepath.Join(src, "big")); err != nil {
				t.Skipf("cannot link the big file into the tree: %v", err)
			}
			for _, name := range []string{"x", "y"} {
				if err := os.WriteFile(filepath.Join(src, "a", name), []byte(name), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			dst := filepath.Join(dir, "dst")
			run := startCLI(t, "copy", "-r", "-j", "1", src, dst)
			// The copy runs in short bursts until the walk has seen x:
			// stopped at once (it is still starting), then let go on for
			// 100 µs at a time, each time stopped again before a look.
			pid := run.cmd.Process.Pid
			deadline := time.Now().Add(30 * time.Second)
			var temps []string
			for {
				if !stopProcess(pid, deadline) {
					if !run.exited() && time.Now().After(deadline) {
						t.Fatal("the copy did not stop within 30 s")
					}
					break // gone: the race is lost (below)
				}
				// The new tree is under its hidden name until the end.
				if w := writing(dst); w != "" {
					_, err := os.Stat(filepath.Join(w, "a", "z"))
					temps, _ = filepath.Glob(filepath.Join(w, ".big.multiproc-*"))
					if err == nil && len(temps) > 0 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("the walk did not reach src/a/z within 30 s")
				}
				syscall.Kill(pid, syscall.SIGCONT)
				time.Sleep(100 * time.Microsecond)
			}
			if run.exited() || len(temps) == 0 {
				syscall.Kill(pid, syscall.SIGCONT)
				run.wait(t)
				t.Skip("the race was lost: big was copied before the copy could be stopped")
			}
			if err := c.change(filepath.Join(src, "a", "x")); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if code := run.wait(t); code != 1 {
				t.Fatalf("exit code %d, want 1\nstderr: %s", code, run.stderr.String())
			}
			want := "multiproc copy: " + c.before + filepath.Join(src, "a", "x") + c.want + "\n"
			if got := run.stderr.String(); got != want {
				t.Errorf("stderr %q, want %q", got, want)
			}
			// Its contents are the other tests' concern: a sum of 100 MiB
			// costs more than this test.
			if st, err := os.Stat(filepath.Join(dst, "big")); err != nil || st.Size() != big.size {
				t.Errorf("big in the copy: %v, want %d bytes", err, big.size)
			}
			if got, err := os.ReadFile(filepath.Join(dst, "a", "y")); err != nil || string(got) != "y" {
				t.Errorf("a/y holds %q (%v), want %q", got, err, "y")
			}
			onlyFiles(t, dst, "a", "big")
			onlyFiles(t, filepath.Join(dst, "a"), "y", "z")
		})
	}
}
