package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc"
	"golang.org/x/sys/unix"
)

var copyCommand = command{
	name:    "copy",
	summary: "copy files and directory trees with at most N processes, like cp",
	run:     runCopy,
}

const copyUsage = `usage: multiproc copy [-r] [-p] [-n] [-j N] [-v] SRC... DST

Copy SRC to DST, or several SRCs into the directory DST, as cp does, with
up to N processes. With -r a directory is copied with everything in it:
directories (empty ones too), regular files, symbolic links as symbolic
links (never followed inside the tree), hard links as hard links, and
FIFOs, sockets and device nodes recreated (a device node needs the
permission to make one: where it is refused, the file is skipped with a
message and the exit status is 1; such files are never read as data).
DST is made if it does not exist (one SRC); if DST is a directory, the
copy of SRC is DST/basename(SRC). A copy of a directory into itself is
refused before anything is written.

The files are spread over N processes, this one and a pool of N-1
(started only when there is more than one task): small files in
batches, so that one task carries many files, and big files in ranges
copied in parallel; one big file alone is cut into N ranges. Holes in sparse files
stay holes. Like cp, the copy prints nothing when it succeeds; an error
about one file is one line on stderr naming it, and the copy of the rest
goes on (exit status 1).

Every file is written to a hidden temporary file beside its final name,
.NAME.multiproc-PID-START-SEQ, and renamed to its name when complete: a
file is never seen half-written under its name, and an existing file is
replaced only by a complete copy. Ctrl-C (SIGINT, SIGTERM, SIGHUP) stops
every process, removes the temporary files of the files being copied and
leaves every file already copied complete. A copy killed with SIGKILL
cannot clean up: the next copy into the same directory removes the
temporary files whose copier (process PID started at START) is dead.

options:
  -r     copy directories recursively
  -p     keep the mode (setuid and all), the owner and group where
         permitted, and the access and modification times (a directory's
         are set after its contents). Without -p a new file gets SRC's
         permission bits less the umask, as with cp.
  -n     never overwrite an existing file (it is left alone, silently)
  -j N   at most N processes (default N: the number of CPUs); one file
         alone uses processes of at least 4 MiB each
  -v     verbose: a progress bar (files and bytes) on stderr when it is a
         terminal, and a one-line summary on stdout at the end: files,
         bytes, time, rate
  -q     quiet: the default, kept for scripts that pass it (overrides -v)

Exit status: 0 copied, 1 failed (some file could not be copied), 2 usage
error, 128+N interrupted by signal N (130: Ctrl-C).
`

const (
	minPerProcess = 4 << 20 // bytes: a process is worth starting for at least this much
	copyChunk     = 8 << 20 // bytes per copy_file_range call, and between progress updates
	rangeAlign    = 1 << 20 // boundaries between the processes' ranges
	bufSize       = 1 << 20 // the pread/pwrite fallback's buffer
	pollInterval  = 100 * time.Millisecond
)

// CopyRange is the task of one copy process: copy bytes [Offset,
// Offset+Length) of Src into the same range of Tmp, which exists and has
// its final size. Dst, the final name, is for error messages. The process
// stores how many bytes it has copied in Progress[Slot], shared memory
// that the parent polls.
type CopyRange struct {
	Src, Tmp, Dst  string
	Offset, Length int64
	Slot           int
	Progress       *multiproc.Array[int64]
}

// copyRangeFunc runs in the child processes.
var copyRangeFunc = multiproc.Register("multiproc.cmd.copyRange", copyRange)

// copyRange is the body of a copy process (and of the parent's own range).
// It returns the bytes copied.
func copyRange(ctx context.Context, r CopyRange) (int64, error) {
	return copyRangeOf(ctx, r.Src, r.Tmp, r.Dst, r.Offset, r.Length, true, func(n int64) { r.Progress.Store(r.Slot, n) })
}

// copyRangeOf copies bytes [off, off+n) of the file src into the same
// range of tmp, which exists at its full size (dst, its final name, is for
// the messages). A symbolic link src is followed only if follow. progress,
// if not nil, gets the bytes done so far. It returns the bytes copied.
func copyRangeOf(ctx context.Context, src, tmp, dst string, off, n int64, follow bool, progress func(int64)) (int64, error) {
	// O_NONBLOCK: a source replaced by a FIFO is refused below, not
	// waited on for ever (it changes nothing for a file).
	flags := os.O_RDONLY | unix.O_NONBLOCK
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	in, err := os.OpenFile(src, flags, 0)
	if err != nil {
		return 0, readError(src, err)
	}
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return 0, fmt.Errorf("cannot read %s: %v", src, err)
	} else if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, fmt.Errorf("%s: no longer a regular file", src)
	}
	out, err := os.OpenFile(tmp, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("cannot write %s: %v", dst, errText(err))
	}
	defer out.Close()
	// Holes are looked for only in a file with fewer blocks than bytes,
	// as cp does: in a dense file, SEEK_HOLE would walk the page cache
	// from off to the end of the file for each range, for nothing.
	return copySpan(ctx, int(in.Fd()), int(out.Fd()), off, off+n, isSparse(&st), src, dst, progress)
}

// copySpan copies bytes [off, end) of the file sfd into the same range of
// the file dfd (raw descriptors: the tree copy opens its many small files
// without the os package's poller bookkeeping),
// with copy_file_range (or pread and pwrite where the kernel cannot copy
// between the two files). With holes, it skips src's holes: dst must
// then exist at its full size already, sparse, so that a hole left alone
// stays a hole. progress, if not nil, gets the bytes done so far. The
// names are for error messages. It returns the bytes copied.
func copySpan(ctx context.Context, sfd, dfd int, off, end int64, holes bool, srcName, dstName string, progress func(int64)) (int64, error) {
	begin := off
	dataEnd := end // the end of the data extent being copied: [off, dataEnd) is data
	if holes {
		dataEnd = off
	}
	kernelCopy := true
	var buf []byte
	var err error
	for off < end {
		if err := ctx.Err(); err != nil {
			return off - begin, err // the parent is gone
		}
		if off == dataEnd {
			// Skip the hole at off, if any.
			start, stop, err := dataExtent(sfd, off, end)
			if err != nil {
				return off - begin, fmt.Errorf("reading %s: %v", srcName, err)
			}
			off, dataEnd = start, stop
			if progress != nil {
				progress(off - begin)
			}
			continue
		}
		var n int
		if kernelCopy {
			roff, woff := off, off
			n, err = unix.CopyFileRange(sfd, &roff, dfd, &woff, int(min(copyChunk, dataEnd-off)), 0)
			if err == unix.EINTR {
				continue
			}
			if err == unix.EXDEV || err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP {
				// Not between these two files (other file systems on an
				// old kernel, or a file system without support): copy
				// through a buffer instead.
				kernelCopy = false
				continue
			}
		} else {
			if buf == nil {
				buf = make([]byte, min(bufSize, end-begin))
			}
			n, err = copyBuffered(sfd, dfd, off, buf[:min(int64(len(buf)), dataEnd-off)])
		}
		if err != nil {
			return off - begin, copyError(srcName, dstName, err)
		}
		if n == 0 {
			return off - begin, fmt.Errorf("%s ended at byte %d while it was being copied: did it shrink?", srcName, off)
		}
		off += int64(n)
		if progress != nil {
			progress(off - begin)
		}
	}
	return off - begin, nil
}

// isSparse reports whether a file may have holes: it takes fewer blocks
// than its size needs (cp's test).
func isSparse(st *unix.Stat_t) bool {
	return st.Blocks*512 < st.Size
}

// dataExtent returns the first extent of data of the file fd at or after
// off, cut at end: [start, stop). It returns end, end when there is only a
// hole up to end. A file system that does not report holes has one extent,
// all data. It fails if the file ends before end: it shrank.
func dataExtent(fd int, off, end int64) (start, stop int64, err error) {
	start, err = unix.Seek(fd, off, unix.SEEK_DATA)
	switch {
	case err == unix.ENXIO: // no data at or after off
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return 0, 0, err
		}
		if st.Size < end {
			return 0, 0, fmt.Errorf("it ended at byte %d while it was being copied: did it shrink?", st.Size)
		}
		return end, end, nil
	case err == unix.EINVAL || err == unix.EOPNOTSUPP:
		return off, end, nil
	case err != nil:
		return 0, 0, err
	case start >= end:
		return end, end, nil
	}
	stop, err = unix.Seek(fd, start, unix.SEEK_HOLE)
	if err != nil || stop > end {
		stop = end
	}
	return start, stop, nil
}

// copyBuffered copies len(buf) bytes at off from the file sfd to the
// file dfd, or fewer at the end of sfd. Its errors are *fs.PathError: Op
// "read" or "write" tells which file failed.
func copyBuffered(sfd, dfd int, off int64, buf []byte) (int, error) {
	var n int
	var err error
	for {
		n, err = unix.Pread(sfd, buf, off)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return 0, &fs.PathError{Op: "read", Err: err}
	}
	for w := 0; w < n; {
		m, err := unix.Pwrite(dfd, buf[w:n], off+int64(w))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "write", Err: err}
		}
		if m == 0 {
			return 0, &fs.PathError{Op: "write", Err: io.ErrShortWrite}
		}
		w += m
	}
	return n, nil
}

// copyError names the file an error of the copy is about.
func copyError(srcName, dstName string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if pe.Op == "read" {
			return fmt.Errorf("reading %s: %v", srcName, errText(err))
		}
		return fmt.Errorf("writing %s: %v", dstName, errText(err))
	}
	switch err {
	case unix.ENOSPC, unix.EDQUOT, unix.EFBIG, unix.EROFS, unix.EPERM:
		return fmt.Errorf("writing %s: %v", dstName, err)
	}
	return fmt.Errorf("copying %s to %s: %v", srcName, dstName, errText(err))
}

// errText drops the operation and path of a *fs.PathError (the message
// names the path itself) and keeps the reason.
func errText(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

func runCopy(args []string) int {
	fs := newFlags("copy", copyUsage, os.Stdout, os.Stderr)
	recursive := fs.Bool("r", false, "")
	fs.BoolVar(recursive, "R", false, "")
	preserve := fs.Bool("p", false, "")
	noClobber := fs.Bool("n", false, "")
	jobs := fs.Int("j", 0, "")
	verbose := fs.Bool("v", false, "")
	quiet := fs.Bool("q", false, "")
	pos, code := fs.parse(args)
	if code >= 0 {
		return code
	}
	if fs.isSet("j") && *jobs < 1 {
		return fs.usageError("-j must be at least 1, not %d", *jobs)
	}
	if !fs.isSet("j") {
		*jobs = runtime.NumCPU()
	}
	if len(pos) < 2 {
		return fs.usageError("need a source and a destination, got %d argument(s)", len(pos))
	}
	if *quiet {
		*verbose = false
	}
	// A copy starts all its processes at once: no spare process is wanted.
	multiproc.SpareProcesses = false
	raiseProcs()

	ctx, stop := interruptContext(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	srcs, dst := pos[:len(pos)-1], pos[len(pos)-1]
	showBar := *verbose && isTerminal(os.Stderr)
	if len(srcs) > 1 || !oneFile(srcs[0], *recursive) {
		return copyTree(ctx, srcs, dst, treeOptions{recursive: *recursive, preserve: *preserve,
			noClobber: *noClobber, jobs: *jobs, verbose: *verbose, bar: showBar})
	}
	res, err := copyFile(ctx, srcs[0], dst, fileOptions{jobs: *jobs, showBar: showBar, preserve: *preserve, noClobber: *noClobber})
	if err != nil {
		fmt.Fprintf(os.Stderr, "multiproc copy: %v\n", err)
		var ie errInterrupted
		if errors.As(err, &ie) {
			return exitSignalled(ie.sig)
		}
		return exitFail
	}
	if *verbose && !res.skipped {
		fmt.Println(res.summary())
	}
	return exitOK
}

// copyGoProcs is the least GOMAXPROCS of the copy's processes. Their
// goroutines that copy are in system calls nearly all the time, and a Go
// P stays with a goroutine in a system call until the runtime's monitor
// takes it away: with as many Ps as CPUs, the goroutines that exchange
// tasks and results with the workers wait for that (and the monitor then
// wakes every 20 µs, a context switch each time). With Ps to spare they
// run at once. Measured on the 2-core VM under nice -n -20 at load 2:
// the bench tree in 0.24–0.25 s with 4 Ps, 0.24–0.30 s with 2.
const copyGoProcs = 4

// raiseProcs raises GOMAXPROCS to copyGoProcs in this process and, through
// the environment, in the processes it starts, unless the user set it.
func raiseProcs() {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) >= copyGoProcs {
		return
	}
	runtime.GOMAXPROCS(copyGoProcs)
	os.Setenv("GOMAXPROCS", strconv.Itoa(copyGoProcs))
}

// oneFile reports whether src, the only source, is copied by copyFile
// (one file, cut into ranges): it is not a directory, nor, with -r, a
// symbolic link or special file (which the tree copy recreates). A source
// that does not exist goes to copyFile too, which says so.
func oneFile(src string, recursive bool) bool {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return true
	}
	if recursive {
		return st.Mode&unix.S_IFMT == unix.S_IFREG
	}
	if err := unix.Stat(src, &st); err != nil {
		return true
	}
	return st.Mode&unix.S_IFMT != unix.S_IFDIR
}

// fileOptions are copyFile's flags.
type fileOptions struct {
	jobs                         int
	showBar, preserve, noClobber bool
}

type copyResult struct {
	skipped bool // -n and DST exists: nothing done
	bytes   int64
	procs   int
	elapsed time.Duration
}

func (r copyResult) summary() string {
	s := fmt.Sprintf("copied %d bytes in %.2fs", r.bytes, r.elapsed.Seconds())
	if r.bytes > 0 && r.elapsed > 0 {
		mbs := float64(r.bytes) / r.elapsed.Seconds() / 1e6
		if mbs >= 100 {
			s += fmt.Sprintf(" (%.0f MB/s)", mbs)
		} else {
			s += fmt.Sprintf(" (%.1f MB/s)", mbs)
		}
	}
	plural := "es"
	if r.procs == 1 {
		plural = ""
	}
	return s + fmt.Sprintf(" with %d process%s", r.procs, plural)
}

// errInterrupted is returned when a signal stopped the copy: sig reached
// this process, or the copy processes (Ctrl-C reaches the whole process
// group).
type errInterrupted struct {
	sig syscall.Signal
	dst string
}

func (e errInterrupted) Error() string {
	return fmt.Sprintf("interrupted (%v): partial copy removed, %s left as it was", interruptError{e.sig}, e.dst)
}

// copyFile copies src to dst with at most o.jobs processes.
func copyFile(ctx context.Context, src, dst string, o fileOptions) (copyResult, error) {
	start := time.Now()
	si, err := os.Stat(src)
	if err != nil {
		return copyResult{}, fmt.Errorf("%s: %v", src, errText(err))
	}
	if si.IsDir() {
		return copyResult{}, fmt.Errorf("%s: is a directory (use -r to copy it)", src)
	}
	if !si.Mode().IsRegular() {
		return copyResult{}, fmt.Errorf("%s: not a regular file", src)
	}
	in, err := os.Open(src)
	if err != nil {
		return copyResult{}, fmt.Errorf("cannot read %s: %v", src, errText(err))
	}
	defer in.Close()
	dst, err = resolveDst(src, dst, si)
	if err != nil {
		return copyResult{}, err
	}
	if o.noClobber {
		if _, err := os.Lstat(dst); err == nil {
			return copyResult{skipped: true}, nil
		}
	}
	removeStaleTemps(filepath.Dir(dst))
	var umask uint32
	if !o.preserve {
		umask = uint32(unix.Umask(0))
		unix.Umask(int(umask))
	}
	tmp, err := os.OpenFile(tempName(dst), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return copyResult{}, fmt.Errorf("cannot create %s: %v", dst, errText(err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	size, procs := si.Size(), 1
	if sizeIsContent(in, si) {
		if err := tmp.Truncate(size); err != nil {
			return copyResult{}, fmt.Errorf("cannot create %s of %d bytes: %v", dst, size, errText(err))
		}
		ranges := splitRanges(size, o.jobs)
		if err := runCopiers(ctx, in, tmp, src, dst, ranges, o.showBar); err != nil {
			return copyResult{}, err
		}
		procs = len(ranges)
	} else if size, err = copyToEOF(ctx, in, tmp, src, dst); err != nil {
		return copyResult{}, err
	}
	if ie, ok := context.Cause(ctx).(interruptError); ok {
		return copyResult{}, errInterrupted{ie.sig, dst}
	}
	if o.preserve {
		st := si.Sys().(*syscall.Stat_t)
		j := FileJob{Dst: dst, Mode: st.Mode & 0o7777, UID: int32(st.Uid), GID: int32(st.Gid),
			Atime: unix.TimespecToNsec(unix.Timespec(st.Atim)), Mtime: unix.TimespecToNsec(unix.Timespec(st.Mtim))}
		if err := setAttrs(int(tmp.Fd()), j); err != nil {
			return copyResult{}, err
		}
	} else if err := tmp.Chmod(si.Mode().Perm() &^ os.FileMode(umask)); err != nil {
		return copyResult{}, fmt.Errorf("cannot set the mode of %s: %v", dst, errText(err))
	}
	if err := tmp.Close(); err != nil {
		return copyResult{}, fmt.Errorf("writing %s: %v", dst, errText(err))
	}
	done = true
	placed, err := place(tmp.Name(), dst, o.noClobber)
	if err != nil {
		os.Remove(tmp.Name())
		return copyResult{}, err
	}
	if !placed {
		return copyResult{skipped: true}, nil
	}
	return copyResult{bytes: size, procs: procs, elapsed: time.Since(start)}, nil
}

// pseudoFS are the file systems whose files' sizes say nothing of their
// contents (0 in /proc, 4096 in /sys): they are read to their end.
var pseudoFS = map[int64]bool{
	unix.PROC_SUPER_MAGIC: true, unix.SYSFS_MAGIC: true, unix.DEBUGFS_MAGIC: true,
	unix.TRACEFS_MAGIC: true, unix.SECURITYFS_MAGIC: true, unix.CGROUP_SUPER_MAGIC: true,
	unix.CGROUP2_SUPER_MAGIC: true, unix.EFIVARFS_MAGIC: true,
}

// sizeIsContent reports whether f's size is the length of its contents,
// so that processes can copy ranges of it: not for an empty size (a file
// in /proc says 0 and has contents) or a file of a pseudo file system.
func sizeIsContent(f *os.File, si os.FileInfo) bool {
	if si.Size() == 0 {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return true
	}
	return !pseudoFS[int64(st.Type)]
}

// copyToEOF copies in to out by reading in to its end, in this process:
// for files whose size cannot be split into ranges. It returns the bytes
// copied. A read that blocks (some files of /proc wait for data) does not
// hold up an interrupt.
func copyToEOF(ctx context.Context, in, out *os.File, src, dst string) (int64, error) {
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := io.Copy(onlyWriter{out}, in) // not out's ReadFrom: copy_file_range says 0 bytes for /proc files
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		var pe *fs.PathError
		switch {
		case r.err == nil:
			return r.n, nil
		case errors.As(r.err, &pe) && pe.Op == "read":
			return 0, fmt.Errorf("reading %s: %v", src, errText(r.err))
		default:
			return 0, fmt.Errorf("writing %s: %v", dst, errText(r.err))
		}
	case <-ctx.Done():
		// The copying goroutine is left to the end of the process, which
		// is near: copyFile removes the temporary file and returns.
		return 0, nil
	}
}

// onlyWriter hides every method but Write.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// resolveDst returns the file to write: dst, or dst/basename(src) when dst
// is a directory, or the file a symbolic link dst points to. It refuses a
// destination that is a directory, not a regular file, or src itself.
func resolveDst(src, dst string, si os.FileInfo) (string, error) {
	if di, err := os.Stat(dst); err == nil && di.IsDir() {
		dst = filepath.Join(dst, filepath.Base(src))
	} else if strings.HasSuffix(dst, "/") {
		if err == nil {
			return "", fmt.Errorf("%s: not a directory", dst)
		}
		return "", fmt.Errorf("%s: %v", dst, errText(err))
	}
	fi, err := os.Lstat(dst)
	if err != nil {
		return dst, nil // a new file; the directory is checked when the temporary file is made
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(dst)
		if err != nil {
			return "", fmt.Errorf("%s: not writing through a dangling symbolic link", dst)
		}
		dst = target
		if fi, err = os.Stat(dst); err != nil {
			return "", fmt.Errorf("%s: %v", dst, errText(err))
		}
	}
	switch {
	case fi.IsDir():
		return "", fmt.Errorf("%s: is a directory", dst)
	case os.SameFile(si, fi):
		return "", fmt.Errorf("%s and %s are the same file", src, dst)
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s: exists and is not a regular file", dst)
	}
	return dst, nil
}

type byteRange struct{ off, n int64 }

// splitRanges cuts size bytes into at most jobs contiguous ranges of at
// least minPerProcess bytes (one range when the file is smaller), with
// boundaries on rangeAlign. An empty file has no range.
func splitRanges(size int64, jobs int) []byteRange {
	if size == 0 {
		return nil
	}
	n := int64(max(1, min(int64(jobs), size/minPerProcess)))
	rs := make([]byteRange, 0, n)
	prev := int64(0)
	for i := int64(1); i <= n; i++ {
		b := size
		if i < n {
			b = (size / n * i) &^ (rangeAlign - 1)
		}
		rs = append(rs, byteRange{prev, b - prev})
		prev = b
	}
	return rs
}

// runCopiers copies the first range in this process, from in to out (src
// and its temporary file, open), and starts one process for each other
// range, and waits for them all. If one fails, or
// ctx ends (a signal), it stops the others and returns once all are gone.
func runCopiers(ctx context.Context, in, out *os.File, src, dst string, ranges []byteRange, showBar bool) error {
	tmp := out.Name()
	start := time.Now()
	progress, err := multiproc.NewArray[int64](len(ranges))
	if err != nil {
		return err
	}
	// This process copies the first range itself, from the start, while
	// the processes of the others start: -j N is this one and N-1 more.
	own, stopOwn := context.WithCancel(ctx)
	defer stopOwn()
	ownDone := make(chan error, 1)
	go func() {
		// Through the descriptors copyFile holds: no file opened again.
		r := ranges[0]
		holes := true
		var st unix.Stat_t
		if unix.Fstat(int(in.Fd()), &st) == nil {
			holes = isSparse(&st)
		}
		_, err := copySpan(own, int(in.Fd()), int(out.Fd()), r.off, r.off+r.n, holes, src, dst, func(n int64) { progress.Store(0, n) })
		ownDone <- err
	}()
	// Start every other process at once: their start-ups (about a
	// millisecond each, more on a busy machine) overlap.
	procs := make([]*multiproc.Process, len(ranges)-1)
	startErrs := make([]error, len(ranges)) // [0], this process's, stays nil
	var wg sync.WaitGroup
	for i, r := range ranges[1:] {
		p := copyRangeFunc.Process(CopyRange{Src: src, Tmp: tmp, Dst: dst, Offset: r.off, Length: r.n, Slot: i + 1, Progress: progress})
		p.Name = fmt.Sprintf("copy-%d", i+2)
		p.Daemon = true // dies with this process, whatever kills it
		procs[i] = p
		wg.Go(func() { startErrs[i+1] = p.Start() })
	}
	wg.Wait()
	killAll := func() {
		stopOwn()
		for _, p := range procs {
			p.Kill() // ErrNotStarted for one that failed to start; nil for one that has exited
		}
	}
	if err := startError(startErrs); err != nil {
		killAll()
		for _, p := range procs {
			p.Join(context.Background())
		}
		<-ownDone
		return err
	}
	type joined struct {
		p   *multiproc.Process // nil: this process's own range
		err error
	}
	results := make(chan joined, len(ranges))
	for _, p := range procs {
		go func() { results <- joined{p, p.Join(context.Background())} }()
	}
	go func() { results <- joined{nil, <-ownDone} }()

	var bar *copyBar
	if showBar {
		var size int64
		for _, r := range ranges {
			size += r.n
		}
		name := filepath.Base(dst) + " "
		bar = startCopyBar(start, func() string { return name },
			func() int64 {
				// The processes' counters in shared memory.
				var sum int64
				for i := range progress.Len() {
					sum += progress.Load(i)
				}
				return sum
			},
			func() int64 { return size })
	}

	var firstErr error
	var interrupted syscall.Signal // the signal that ended the copy, or 0
	sigDone := ctx.Done()
	onSignal := func() {
		interrupted, sigDone = syscall.SIGINT, nil
		if ie, ok := context.Cause(ctx).(interruptError); ok {
			interrupted = ie.sig
		}
		if bar != nil {
			// The terminal echoed ^C after the bar: back to the start
			// of the line, so that the bar's last frame is drawn
			// where it belongs (mpb moves up, not back).
			os.Stderr.WriteString("\r")
		}
		killAll()
	}
	for range len(ranges) {
		var r joined
		select {
		case r = <-results:
		case <-sigDone:
			onSignal()
			r = <-results
		}
		if r.err == nil || interrupted != 0 || firstErr != nil {
			continue
		}
		if r.p == nil && ctx.Err() != nil {
			onSignal() // this process's range, stopped by the signal first
			continue
		}
		var ee *multiproc.ExitError
		switch {
		case errors.As(r.err, &ee) && ee.Message != "":
			firstErr = errors.New(ee.Message)
		case errors.As(r.err, &ee) && (ee.Signal() == syscall.SIGINT || ee.Signal() == syscall.SIGTERM || ee.Signal() == syscall.SIGHUP):
			// Ctrl-C reaches the whole process group: the children may
			// die of it before this process hears of it.
			interrupted = ee.Signal()
		case errors.As(r.err, &ee) && ee.Signal() != 0:
			firstErr = fmt.Errorf("copy process %s (pid %d) was killed by signal %d (%v)", ee.Name, ee.Pid, int(ee.Signal()), ee.Signal())
		default:
			firstErr = r.err
		}
		killAll()
	}
	if bar != nil {
		bar.stop(firstErr == nil && interrupted == 0)
	}
	switch {
	case firstErr != nil:
		return firstErr
	case interrupted != 0:
		return errInterrupted{interrupted, dst}
	}
	return nil
}

// startError sums up the processes that failed to start in one line: how
// many, the first error, and, when it is the limit on open files, what to
// do (-j 1000 under ulimit -n 1024 fails hundreds of starts alike).
func startError(errs []error) error {
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if first == nil {
		return nil
	}
	msg, _, _ := strings.Cut(strings.TrimPrefix(first.Error(), "multiproc: "), "\n")
	hint := ""
	var lim unix.Rlimit
	if (errors.Is(first, unix.EMFILE) || errors.Is(first, unix.ENFILE)) && unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		hint = fmt.Sprintf(" (the limit on open files, ulimit -n, is %d: use a smaller -j)", lim.Cur)
	}
	return fmt.Errorf("%d of %d copy processes could not start: %s%s", failed, len(errs), msg, hint)
}
