package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

var copyCommand = command{
	name:    "copy",
	summary: "copy a file with N processes, each copying one part of it",
	run:     runCopy,
}

const copyUsage = `usage: multiproc copy [-j N] [-q] SRC DST

Copy the file SRC to DST with N child processes, each copying one
contiguous part of it (the lesson's multi-process file copy, on the
multiproc library). DST may be an existing directory: the copy is then
DST/basename(SRC). DST gets SRC's permission bits.

The copy is written to a temporary file beside DST and renamed to DST
when complete, so a copy that fails or is interrupted (Ctrl-C, SIGTERM)
leaves neither a partial DST nor the temporary file. An existing DST is
replaced only by a complete copy.

options:
  -j N   at most N processes (default: the number of CPUs); each process
         gets at least 4 MiB, so a small file uses fewer
  -q     quiet: no progress bar and no summary

A progress bar is shown on stderr when it is a terminal; a one-line
summary is printed on stdout at the end.
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

// copyRange is the body of a copy process. It returns the bytes copied.
func copyRange(ctx context.Context, r CopyRange) (int64, error) {
	src, err := os.Open(r.Src)
	if err != nil {
		return 0, fmt.Errorf("cannot read %s: %v", r.Src, errText(err))
	}
	defer src.Close()
	dst, err := os.OpenFile(r.Tmp, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("cannot write %s: %v", r.Dst, errText(err))
	}
	defer dst.Close()
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	off, end := r.Offset, r.Offset+r.Length
	kernelCopy := true
	var buf []byte
	for off < end {
		if err := ctx.Err(); err != nil {
			return off - r.Offset, err // the parent is gone
		}
		var n int
		if kernelCopy {
			roff, woff := off, off
			n, err = unix.CopyFileRange(sfd, &roff, dfd, &woff, int(min(copyChunk, end-off)), 0)
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
				buf = make([]byte, bufSize)
			}
			n, err = copyBuffered(src, dst, off, buf[:min(bufSize, end-off)])
		}
		if err != nil {
			return off - r.Offset, copyError(r, err)
		}
		if n == 0 {
			return off - r.Offset, fmt.Errorf("%s ended at byte %d while it was being copied: did it shrink?", r.Src, off)
		}
		off += int64(n)
		r.Progress.Store(r.Slot, off-r.Offset)
	}
	return off - r.Offset, nil
}

// copyBuffered copies len(buf) bytes at off from src to dst, or fewer at
// the end of src. Its errors are the *fs.PathError of os.File: Op "read"
// or "write" tells which file failed.
func copyBuffered(src, dst *os.File, off int64, buf []byte) (int, error) {
	n, err := src.ReadAt(buf, off)
	if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		return 0, err
	}
	if _, err := dst.WriteAt(buf[:n], off); err != nil {
		return 0, err
	}
	return n, nil
}

// copyError names the file an error of the copy is about.
func copyError(r CopyRange, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if pe.Op == "read" {
			return fmt.Errorf("reading %s: %v", r.Src, errText(err))
		}
		return fmt.Errorf("writing %s: %v", r.Dst, errText(err))
	}
	switch err {
	case unix.ENOSPC, unix.EDQUOT, unix.EFBIG, unix.EROFS, unix.EPERM:
		return fmt.Errorf("writing %s: %v", r.Dst, err)
	}
	return fmt.Errorf("copying %s to %s: %v", r.Src, r.Dst, errText(err))
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
	fset := newFlagSet("copy")
	jobs := fset.Int("j", 0, "")
	quiet := fset.Bool("q", false, "")
	pos, code := parseFlags(fset, args, copyUsage)
	if code >= 0 {
		return code
	}
	jSet := false
	fset.Visit(func(f *flag.Flag) { jSet = jSet || f.Name == "j" })
	if jSet && *jobs < 1 {
		return usageError(fset.Name(), copyUsage, "-j must be at least 1, not %d", *jobs)
	}
	if !jSet {
		*jobs = runtime.NumCPU()
	}
	if len(pos) != 2 {
		return usageError(fset.Name(), copyUsage, "need a source and a destination, got %d argument(s)", len(pos))
	}
	// A copy starts all its processes at once: no spare process is wanted.
	multiproc.SpareProcesses = false

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	res, err := copyFile(ctx, pos[0], pos[1], *jobs, !*quiet && isTerminal(os.Stderr))
	if err != nil {
		fmt.Fprintf(os.Stderr, "multiproc copy: %v\n", err)
		return exitFail
	}
	if !*quiet {
		fmt.Println(res.summary())
	}
	return exitOK
}

type copyResult struct {
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

// errInterrupted is returned when a signal stopped the copy.
type errInterrupted struct {
	cause error
	dst   string
}

func (e errInterrupted) Error() string {
	return fmt.Sprintf("interrupted (%v): partial copy removed, %s left as it was", e.cause, e.dst)
}

// copyFile copies src to dst with at most jobs processes.
func copyFile(ctx context.Context, src, dst string, jobs int, showBar bool) (copyResult, error) {
	start := time.Now()
	si, err := os.Stat(src)
	if err != nil {
		return copyResult{}, fmt.Errorf("%s: %v", src, errText(err))
	}
	if si.IsDir() {
		return copyResult{}, fmt.Errorf("%s: is a directory (only files are copied)", src)
	}
	if !si.Mode().IsRegular() {
		return copyResult{}, fmt.Errorf("%s: not a regular file", src)
	}
	if f, err := os.Open(src); err != nil {
		return copyResult{}, fmt.Errorf("cannot read %s: %v", src, errText(err))
	} else {
		f.Close()
	}
	dst, err = resolveDst(src, dst, si)
	if err != nil {
		return copyResult{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".multiproc-*")
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
	size := si.Size()
	if err := tmp.Truncate(size); err != nil {
		return copyResult{}, fmt.Errorf("cannot create %s of %d bytes: %v", dst, size, errText(err))
	}
	ranges := splitRanges(size, jobs)
	if len(ranges) > 0 {
		if err := runCopiers(ctx, src, tmp.Name(), dst, ranges, showBar); err != nil {
			return copyResult{}, err
		}
	}
	if ctx.Err() != nil {
		return copyResult{}, errInterrupted{context.Cause(ctx), dst}
	}
	if err := tmp.Chmod(si.Mode().Perm()); err != nil {
		return copyResult{}, fmt.Errorf("cannot set the mode of %s: %v", dst, errText(err))
	}
	if err := tmp.Close(); err != nil {
		return copyResult{}, fmt.Errorf("writing %s: %v", dst, errText(err))
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return copyResult{}, fmt.Errorf("cannot create %s: %v", dst, errText(err))
	}
	done = true
	return copyResult{bytes: size, procs: len(ranges), elapsed: time.Since(start)}, nil
}

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

// runCopiers starts one process per range and waits for them all. If one
// fails, or ctx ends (a signal), it kills the others and returns once all
// are gone.
func runCopiers(ctx context.Context, src, tmp, dst string, ranges []byteRange, showBar bool) error {
	start := time.Now()
	progress, err := multiproc.NewArray[int64](len(ranges))
	if err != nil {
		return err
	}
	// Start every process at once: their start-ups (about a millisecond
	// each, more on a busy machine) overlap.
	procs := make([]*multiproc.Process, len(ranges))
	startErrs := make([]error, len(ranges))
	var wg sync.WaitGroup
	for i, r := range ranges {
		p := copyRangeFunc.Process(CopyRange{Src: src, Tmp: tmp, Dst: dst, Offset: r.off, Length: r.n, Slot: i, Progress: progress})
		p.Name = fmt.Sprintf("copy-%d", i+1)
		p.Daemon = true // dies with this process, whatever kills it
		procs[i] = p
		wg.Go(func() { startErrs[i] = p.Start() })
	}
	wg.Wait()
	killAll := func() {
		for _, p := range procs {
			p.Kill() // ErrNotStarted for one that failed to start; nil for one that has exited
		}
	}
	if err := errors.Join(startErrs...); err != nil {
		killAll()
		for _, p := range procs {
			p.Join(context.Background())
		}
		return fmt.Errorf("starting the copy processes: %v", err)
	}
	type joined struct {
		p   *multiproc.Process
		err error
	}
	results := make(chan joined, len(procs))
	for _, p := range procs {
		go func() { results <- joined{p, p.Join(context.Background())} }()
	}

	var bar *progressBar
	if showBar {
		bar = startProgressBar(filepath.Base(dst), start, ranges, progress)
	}

	var firstErr error
	interrupted := false
	sigDone := ctx.Done()
	for range len(procs) {
		var r joined
		select {
		case r = <-results:
		case <-sigDone:
			interrupted, sigDone = true, nil
			if bar != nil {
				// The terminal echoed ^C after the bar: back to the start
				// of the line, so that the bar's last frame is drawn
				// where it belongs (mpb moves up, not back).
				os.Stderr.WriteString("\r")
			}
			killAll()
			r = <-results
		}
		if r.err == nil || interrupted || firstErr != nil {
			continue
		}
		var ee *multiproc.ExitError
		switch {
		case errors.As(r.err, &ee) && ee.Message != "":
			firstErr = errors.New(ee.Message)
		case errors.As(r.err, &ee) && (ee.Signal() == syscall.SIGINT || ee.Signal() == syscall.SIGTERM || ee.Signal() == syscall.SIGHUP):
			// Ctrl-C reaches the whole process group: the children may
			// die of it before this process hears of it.
			interrupted = true
		case errors.As(r.err, &ee) && ee.Signal() != 0:
			firstErr = fmt.Errorf("copy process %s (pid %d) was killed by signal %d (%v)", ee.Name, ee.Pid, int(ee.Signal()), ee.Signal())
		default:
			firstErr = r.err
		}
		killAll()
	}
	if bar != nil {
		bar.stop(firstErr == nil && !interrupted)
	}
	switch {
	case firstErr != nil:
		return firstErr
	case interrupted:
		cause := context.Cause(ctx)
		if cause == nil || ctx.Err() == nil {
			cause = errors.New("the copy processes were interrupted")
		}
		return errInterrupted{cause, dst}
	}
	return nil
}

// progressBar shows the copy's progress on stderr, a terminal: it polls
// the processes' shared counters every pollInterval.
type progressBar struct {
	p    *mpb.Progress
	bar  *mpb.Bar
	quit chan struct{}
	done chan struct{}
	sum  func() int64
	size int64
}

func startProgressBar(name string, start time.Time, ranges []byteRange, progress *multiproc.Array[int64]) *progressBar {
	var size int64
	for _, r := range ranges {
		size += r.n
	}
	p := mpb.New(mpb.WithOutput(os.Stderr), mpb.WithRefreshRate(pollInterval))
	bar := p.New(size, mpb.BarStyle(),
		mpb.PrependDecorators(
			decor.Name(name, decor.WC{C: decor.DindentRight | decor.DextraSpace}),
			decor.CountersKibiByte("% .1f / % .1f"),
		),
		mpb.AppendDecorators(
			decor.Percentage(decor.WC{W: 6}),
			decor.Name("  "),
			// The average since the start, computed at every frame (mpb's
			// AverageSpeed keeps showing 0 when the first update completes).
			decor.Any(func(st decor.Statistics) string {
				el := time.Since(start).Seconds()
				if el <= 0 {
					return ""
				}
				return fmt.Sprintf("% .1f", decor.FmtAsSpeed(decor.SizeB1000(float64(st.Current)/el)))
			}, decor.WC{W: 11}),
		),
	)
	b := &progressBar{p: p, bar: bar, quit: make(chan struct{}), done: make(chan struct{}), size: size}
	b.sum = func() int64 {
		var s int64
		for i := range progress.Len() {
			s += progress.Load(i)
		}
		return s
	}
	go func() {
		defer close(b.done)
		t := time.NewTicker(pollInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				bar.SetCurrent(b.sum())
			case <-b.quit:
				return
			}
		}
	}()
	return b
}

// stop stops polling, completes (ok) or aborts the bar, and waits until it
// is drawn for the last time. An aborted bar stays on the screen where it
// stopped.
func (b *progressBar) stop(ok bool) {
	close(b.quit)
	<-b.done
	if ok {
		b.bar.SetCurrent(b.size)
	} else {
		b.bar.SetCurrent(b.sum())
		b.bar.Abort(false)
	}
	b.p.Wait()
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	tty := false
	rc.Control(func(fd uintptr) {
		_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		tty = err == nil
	})
	return tty
}
