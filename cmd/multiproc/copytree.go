package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multiproc-go/multiproc"
	"golang.org/x/sys/unix"
)

// The tree copy (several sources, or -r).
//
// The parent walks the sources (never following a symbolic link inside a
// tree), refusing a copy into itself before it writes anything. It makes
// the directories, symbolic links and special files itself, as it walks:
// they are metadata, one system call each. The regular files of a
// directory become Names batches, known from the directory's entries
// alone (no stat each: the walk of 5000 files took 25 ms of CPU with one,
// 7 without), a task per up to 64 files of one directory. The process that
// copies a file learns its size and mode as it opens it, and hands back
// to the parent what needs the whole tree's view: a big file, split in
// ranges of one hidden file made at its full size, sparse; a file with
// several names, copied once and linked at the end.
//
// -j N processes take the tasks from one queue: the parent itself, from
// the first batch on, and a Pool of N-1 workers, started when the walk
// has queued a second task (a small tree is copied before a process
// could start; a big one is copied by the parent while they start). One
// process copies a big file's ranges one after the other; an idle one
// takes a big file nobody has started (claimRange).
//
// A directory made where none was starts a new tree, made under a hidden
// name (copytemp.go) and renamed to its final name once all of it is
// copied: nothing inside it is seen before it is complete, so its files
// are written under their final names. A file written into a directory
// that was there already goes under a hidden name and is renamed when
// complete, replacing an older one atomically. Hard links inside the tree
// are made at the end, once the file they link to is complete; then the
// directories get their final modes (and, with -p, owners and times),
// deepest first, after their contents; then the new trees are put in
// place.
//
// Errors are per file: one line on stderr each, the copy goes on, and the
// exit status is 1. An interrupt (SIGINT, SIGTERM, SIGHUP) stops the
// parent's own task between two files (or two chunks of a big one: the
// file being written is removed) and kills the pool's workers (a Pool's
// workers are in a process group of their own, so Ctrl-C reaches the
// parent only, which decides); then the parent removes the files of
// every task not known to be complete, and puts the new trees in place
// with what is left: complete files.

const (
	bigFileMin    = 32 << 20 // bytes: a file at least this big is split in ranges
	rangeMax      = 32 << 20 // bytes: the most one range task copies (the last task's length is time the other processes may idle)
	batchMaxFiles = 64       // files in one batch task
	batchMaxBytes = 8 << 20  // bytes in one batch task
)

// treeOptions are the tree copy's flags.
type treeOptions struct {
	recursive, preserve, noClobber bool
	jobs                           int
	verbose, bar                   bool
}

// FileJob is one regular file for a worker: copy Src to Tmp, set its
// mode (and, with CopyBatch.Preserve, owner and times), rename it to Dst.
type FileJob struct {
	Src, Tmp, Dst string
	Size          int64  // at the walk: for the batches' sizes
	Mode          uint32 // the permission bits (with setuid, setgid, sticky when preserving)
	UID, GID      int32
	Atime, Mtime  int64 // ns since the epoch
}

// CopyBatch is one task of small files, given one of two ways:
//
//   - Files: each file known by a stat of the walk (a source named on the
//     command line, the first name of a file with several);
//   - Names: regular files of the directory SrcDir, as the walk read them
//     from the directory (its entries' types, no stat each), copied into
//     DstDir under the same names. The worker learns each one's size and
//     mode when it opens it, and hands back uncopied (Deferred) the ones
//     the parent must see to: big files, which are split in ranges, and
//     files with several names, which are linked. The hidden name of
//     Names[i] is tempBase(Names[i], Writer, Seq+i), so that the parent
//     can remove it after an interrupt.
type CopyBatch struct {
	Files []FileJob

	SrcDir, DstDir string
	Names          []string
	Writer         string // "PID-START" of the hidden names (tempWriter): the parent's
	Seq            uint64
	Umask          uint32 // taken off a copy's mode, unless Preserve
	// Direct: DstDir is inside a new tree, still under its hidden name
	// (makeDir): each copy is written under its final name at once.
	Direct bool

	Preserve  bool // owner, group and times too
	NoClobber bool // never replace an existing Dst
}

// BatchResult is what a batch did: the bytes copied and, per file that
// failed, its index in Files (or Names) and one line saying why. Skipped
// counts the files left alone because Dst existed (-n); Deferred, the
// files of Names handed back uncopied (the parent looks at each itself:
// what a worker says of a file is not taken on trust).
type BatchResult struct {
	Bytes    int64
	Failed   []int32
	Errs     []string
	Skipped  int32
	Deferred []int32 // indexes in Names
	// Rest: Names[Rest:] were not gone through, the batch having copied
	// batchMaxBytes (0: all were). The parent queues them again, so that a
	// directory of big-ish files is shared out as evenly as small ones.
	Rest int32
}

// files is how many files b holds.
func (b *CopyBatch) files() int { return len(b.Files) + len(b.Names) }

// src, dst and tmp are the paths of b's file i: its source, its copy, and
// the name it is written under (the copy's hidden name, or, Direct, its
// final one).
func (b *CopyBatch) src(i int) string {
	if b.Names != nil {
		return filepath.Join(b.SrcDir, b.Names[i])
	}
	return b.Files[i].Src
}

func (b *CopyBatch) dst(i int) string {
	if b.Names != nil {
		return filepath.Join(b.DstDir, b.Names[i])
	}
	return b.Files[i].Dst
}

func (b *CopyBatch) tmp(i int) string {
	if b.Direct {
		return b.dst(i)
	}
	if b.Names != nil {
		return filepath.Join(b.DstDir, tempBase(b.Names[i], b.Writer, b.Seq+uint64(i)))
	}
	return b.Files[i].Tmp
}

// RangeJob is one range of a big file: bytes [Offset, Offset+Length) of
// Src into Tmp, which the parent made at its full size.
type RangeJob struct {
	Src, Tmp, Dst  string
	Offset, Length int64
}

var (
	copyBatchFunc = multiproc.Register("multiproc.cmd.copyBatch", copyBatch)
	copySpanFunc  = multiproc.Register("multiproc.cmd.copySpan", copyRangeJob)
)

// copyBatch runs in a worker (or in the parent, which copies too): it
// copies each file of b in turn.
func copyBatch(ctx context.Context, b CopyBatch) (BatchResult, error) {
	if b.Names != nil {
		return copyNames(ctx, b)
	}
	var res BatchResult
	var dirs dirCache
	defer dirs.close()
	for i, j := range b.Files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n, skipped, err := copyOneFile(ctx, &dirs, j, b.Preserve, b.NoClobber)
		res.Bytes += n
		if skipped {
			res.Skipped++
		}
		if err != nil {
			res.Failed = append(res.Failed, int32(i))
			res.Errs = append(res.Errs, err.Error())
		}
	}
	return res, nil
}

// copyNames copies the files of a Names batch: each looked up in the two
// directories, held open, by its name.
func copyNames(ctx context.Context, b CopyBatch) (BatchResult, error) {
	var res BatchResult
	failAll := func(err func(i int) error) (BatchResult, error) {
		for i := range b.Names {
			res.Failed = append(res.Failed, int32(i))
			res.Errs = append(res.Errs, err(i).Error())
		}
		return res, nil
	}
	sdir, err := openRetry(b.SrcDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return failAll(func(i int) error { return readError(b.src(i), err) })
	}
	defer unix.Close(sdir)
	ddir, err := openRetry(b.DstDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return failAll(func(i int) error { return fmt.Errorf("cannot create %s: %v", b.dst(i), err) })
	}
	defer unix.Close(ddir)
	for i, name := range b.Names {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n, skipped, deferred, err := copyNamed(ctx, &b, i, sdir, ddir, name)
		res.Bytes += n
		switch {
		case err != nil:
			res.Failed = append(res.Failed, int32(i))
			res.Errs = append(res.Errs, err.Error())
		case skipped:
			res.Skipped++
		case deferred:
			res.Deferred = append(res.Deferred, int32(i))
		}
		if res.Bytes >= batchMaxBytes && i+1 < len(b.Names) {
			res.Rest = int32(i + 1)
			break
		}
	}
	return res, nil
}

// copyNamed copies file i of a Names batch, name in the directories sdir
// and ddir; or, big or with several names, hands it back (deferred).
func copyNamed(ctx context.Context, b *CopyBatch, i, sdir, ddir int, name string) (n int64, skipped, deferred bool, err error) {
	if b.NoClobber {
		var st unix.Stat_t
		if unix.Fstatat(ddir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			return 0, true, false, nil // cp -n: an existing file is left alone, silently
		}
	}
	sfd, st, err := openSource(sdir, name, func() string { return b.src(i) })
	if err != nil {
		return 0, false, false, err
	}
	defer unix.Close(sfd)
	if st.Size >= bigFileMin || st.Nlink > 1 {
		return 0, false, true, nil
	}
	mode := st.Mode & 0o777 &^ b.Umask
	if b.Preserve {
		mode = st.Mode & 0o7777
	}
	j := FileJob{Src: b.src(i), Dst: b.dst(i), Mode: mode, UID: int32(st.Uid), GID: int32(st.Gid), Atime: st.Atim.Nano(), Mtime: st.Mtim.Nano()}
	tmp := name
	if !b.Direct {
		tmp = tempBase(name, b.Writer, b.Seq+uint64(i))
	}
	n, skipped, err = writeCopy(ctx, sfd, &st, ddir, tmp, name, j, b.Preserve, b.NoClobber)
	return n, skipped, false, err
}

// dirCache holds descriptors (O_PATH) of the source and destination
// directories of the files being copied, so that each file's system
// calls look up its name in its directory, not its whole path: a batch's
// files mostly share their directories.
type dirCache struct {
	src, dst   string // the directories held, "" for none
	sfd, dfd   int
	srcOK, dOK bool
}

// dirAt returns a descriptor for path's directory (the one cached in
// *name, *fd, *ok, opened if it is another) and path's name in it; or,
// when the directory cannot be opened, AT_FDCWD and path itself.
func dirAt(path string, name *string, fd *int, ok *bool) (int, string) {
	dir, base := filepath.Split(path)
	if dir == "" || base == "" {
		return unix.AT_FDCWD, path
	}
	if dir != *name {
		if *ok {
			unix.Close(*fd)
		}
		*name = dir
		nfd, err := openRetry(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		*fd, *ok = nfd, err == nil
	}
	if !*ok {
		return unix.AT_FDCWD, path
	}
	return *fd, base
}

func (d *dirCache) close() {
	if d.srcOK {
		unix.Close(d.sfd)
	}
	if d.dOK {
		unix.Close(d.dfd)
	}
	*d = dirCache{}
}

// copyRangeJob runs in a worker (or in the parent): one range of a big
// file of a tree, its name never followed.
func copyRangeJob(ctx context.Context, r RangeJob) (int64, error) {
	return copyRangeOf(ctx, r.Src, r.Tmp, r.Dst, r.Offset, r.Length, false, nil)
}

// readError is the line for a source that cannot be opened.
func readError(src string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot read %s: it vanished while copying (%v)", src, errText(err))
	}
	return fmt.Errorf("cannot read %s: %v", src, errText(err))
}

// copyOneFile copies one regular file to its hidden name and renames it
// to its final name. It returns the bytes copied, and whether the file
// was left alone because its destination exists (noClobber). On failure
// the hidden file is removed.
func copyOneFile(ctx context.Context, dirs *dirCache, j FileJob, preserve, noClobber bool) (n int64, skipped bool, err error) {
	sdir, sname := dirAt(j.Src, &dirs.src, &dirs.sfd, &dirs.srcOK)
	sfd, st, err := openSource(sdir, sname, func() string { return j.Src })
	if err != nil {
		return 0, false, err
	}
	defer unix.Close(sfd)
	// The hidden name and the final one are in the same directory.
	ddir, tmpName := dirAt(j.Tmp, &dirs.dst, &dirs.dfd, &dirs.dOK)
	dstName := j.Dst
	if ddir != unix.AT_FDCWD {
		dstName = filepath.Base(j.Dst)
	}
	return writeCopy(ctx, sfd, &st, ddir, tmpName, dstName, j, preserve, noClobber)
}

// openSource opens the source file name in the directory dir, never
// following a symbolic link, and stats it: it must be a regular file.
// path names it in the errors (made only for one). A raw descriptor: an
// os.File would try to add each to the poller and, for Fd, set it
// blocking again, three system calls more a file. O_NONBLOCK: a source
// replaced by a FIFO since the walk is refused, not waited on for ever
// (it changes nothing for a file).
func openSource(dir int, name string, path func() string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	sfd, err := openatRetry(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, readError(path(), err)
	}
	err = unix.Fstat(sfd, &st)
	switch {
	case err != nil:
		err = fmt.Errorf("cannot read %s: %v", path(), err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("%s: no longer a regular file", path())
	}
	if err != nil {
		unix.Close(sfd)
		return -1, st, err
	}
	return sfd, st, nil
}

// writeCopy copies the open regular file sfd (its stat st) to tmpName in
// the directory ddir, gives it j's mode (and, with preserve, j's owner and
// times), and renames it to dstName there (unless they are one name: a
// file of a new tree). It returns the bytes copied, and whether the file
// was left alone because dstName exists (noClobber). On failure the
// file written is removed. j's Src and Dst name the files in messages.
func writeCopy(ctx context.Context, sfd int, st *unix.Stat_t, ddir int, tmpName, dstName string, j FileJob, preserve, noClobber bool) (n int64, skipped bool, err error) {
	perm := j.Mode & 0o777
	if preserve {
		perm = 0o600 // the final mode is set once the owner is
	}
	dfd, err := openatRetry(ddir, tmpName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, perm)
	if err != nil {
		return 0, false, fmt.Errorf("cannot create %s: %v", j.Dst, err)
	}
	open := true
	defer func() {
		if open {
			unix.Close(dfd)
			unix.Unlinkat(ddir, tmpName, 0)
		}
	}()
	size := st.Size
	if size > 0 {
		sparse := isSparse(st)
		if sparse {
			if err := unix.Ftruncate(dfd, size); err != nil {
				return 0, false, fmt.Errorf("writing %s: %v", j.Dst, err)
			}
		}
		if n, err = copySpan(ctx, sfd, dfd, 0, size, sparse, j.Src, j.Dst, nil); err != nil {
			return n, false, err
		}
	}
	if preserve {
		if err := setAttrs(dfd, j); err != nil {
			return n, false, err
		}
	}
	open = false
	if err := unix.Close(dfd); err != nil {
		unix.Unlinkat(ddir, tmpName, 0)
		return n, false, fmt.Errorf("writing %s: %v", j.Dst, err)
	}
	if tmpName == dstName {
		return n, false, nil
	}
	placed, err := placeAt(ddir, tmpName, dstName, j.Dst, noClobber)
	if err != nil {
		unix.Unlinkat(ddir, tmpName, 0)
		return n, false, err
	}
	return n, !placed, nil
}

// openRetry is open(2), again on EINTR.
func openRetry(path string, flags int, mode uint32) (int, error) {
	return openatRetry(unix.AT_FDCWD, path, flags, mode)
}

// openatRetry is openat(2), again on EINTR.
func openatRetry(dir int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dir, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// setAttrs gives the open file fd j's owner (where permitted), mode and
// times: -p.
func setAttrs(fd int, j FileJob) error {
	if err := unix.Fchown(fd, int(j.UID), int(j.GID)); err != nil && err != unix.EPERM {
		return fmt.Errorf("cannot keep the owner of %s: %v", j.Dst, err)
	}
	if err := unix.Fchmod(fd, j.Mode); err != nil {
		return fmt.Errorf("cannot set the mode of %s: %v", j.Dst, err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(j.Atime), unix.NsecToTimespec(j.Mtime)}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		if err := unix.Futimes(fd, []unix.Timeval{unix.NsecToTimeval(j.Atime), unix.NsecToTimeval(j.Mtime)}); err != nil {
			return fmt.Errorf("cannot set the times of %s: %v", j.Dst, err)
		}
	}
	return nil
}

// place renames tmp to dst: atomically replacing dst, or, with noClobber,
// only if dst does not exist (it then reports false and removes tmp).
func place(tmp, dst string, noClobber bool) (bool, error) {
	return placeAt(unix.AT_FDCWD, tmp, dst, dst, noClobber)
}

// placeAt is place for the names tmp and dst in directory dir (dstPath
// is dst's path, for the messages). It renames with rename(2) itself:
// os.Rename would first lstat dst, a path look-up more for every file.
func placeAt(dir int, tmp, dst, dstPath string, noClobber bool) (bool, error) {
	if !noClobber {
		if err := unix.Renameat(dir, tmp, dir, dst); err != nil {
			return false, fmt.Errorf("cannot create %s: %v", dstPath, err)
		}
		return true, nil
	}
	err := unix.Renameat2(dir, tmp, dir, dst, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL || err == unix.ENOSYS {
		// No RENAME_NOREPLACE on this file system: link fails on an
		// existing name as well.
		if err = unix.Linkat(dir, tmp, dir, dst, 0); err == nil {
			unix.Unlinkat(dir, tmp, 0)
		}
	}
	switch {
	case err == nil:
		return true, nil
	case err == unix.EEXIST:
		unix.Unlinkat(dir, tmp, 0)
		return false, nil
	}
	return false, fmt.Errorf("cannot create %s: %v", dstPath, err)
}

// treeDir is a directory the copy made or wrote into: its final mode (and
// owner and times with -p) are set after its contents.
type treeDir struct {
	dst     string
	st      unix.Stat_t
	created bool // made by this copy: its mode is set even without -p
	modeSet bool // made with its final mode already
}

// splitFile is a big file, copied in ranges of one hidden file. It is
// one task: the process that takes it copies its ranges one after the
// other, and a process that finds the queue empty takes a big file no
// process has started (claimRange). Two processes write one file at once
// only at the end, when nothing else is left (see claimRange).
type splitFile struct {
	job     FileJob
	size    int64
	data    int64 // bytes of data: less than size in a sparse file
	ranges  []byteRange
	next    int // ranges[next:] are not claimed yet
	failed  bool
	pending int // ranges not done: claimed and running, or not claimed
}

// dataBytes is how much data a file holds: its size, or, sparse, the
// blocks it takes.
func dataBytes(st *unix.Stat_t) int64 {
	return min(st.Size, st.Blocks*512)
}

// linkJob is a hard link to make at the end: dst, to the first copy of
// the same source file.
type linkJob struct {
	dst, src string
	first    *fileRef
}

// treeCopy is one run of the tree copy.
type treeCopy struct {
	opts    treeOptions
	umask   uint32
	errs    int // lines printed
	errMu   sync.Mutex
	errOut  []string // lines held while the progress bar is drawn
	holdErr bool
	stages  []stage // the new trees, guarded by errMu (fail shows their final names)

	// mu guards the hard links' state, the tasks, their finished and the
	// split files' state, which the walk and the tasks' results share.
	mu sync.Mutex

	dirs   []treeDir
	batch  *CopyBatch // the batch being filled
	bbytes int64      // its bytes
	big    []*splitFile
	submit chan<- *treeTask // the queue of tasks
	tasks  []*treeTask      // every task sent
	// pending counts the tasks sent and not done (taskDone); moreBig is
	// signalled when it falls or a big file is added, for the processes
	// waiting at the end for work (awaitWork).
	pending int
	moreBig *sync.Cond
	// extra holds the rests of Names batches that reached batchMaxBytes,
	// queued again (requeue), ahead of the queue; extraReady wakes a
	// process waiting for the queue.
	extra      []*treeTask
	extraReady chan struct{}
	// startPool starts the pool's workers and their consumers of the
	// queue; maybeStartPool calls it once.
	startPool func()
	poolOnce  sync.Once
	links     []linkJob              // guarded by mu
	seen      map[[2]uint64]*fileRef // hard links: (dev, ino) of the source → its first copy; guarded by mu
	refs      map[string]*fileRef    // the same, by the first copy's name; guarded by mu
	files     atomic.Int64           // regular files to copy
	bytes     atomic.Int64           // their bytes
	others    int64                  // directories, links, special files made
}

// fileRef is the first copy of a file with several links: which job, and
// whether it failed.
type fileRef struct {
	dst    string
	failed bool
}

// fail prints one error line (or holds it while the bar is drawn). A
// path inside a new tree is shown under its final name.
func (c *treeCopy) fail(format string, a ...any) {
	c.failLine("multiproc copy: "+fmt.Sprintf(format, a...), true)
}

// failRaw prints line as it is.
func (c *treeCopy) failRaw(line string) { c.failLine(line, false) }

func (c *treeCopy) failLine(line string, show bool) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if show {
		for _, s := range c.stages {
			line = strings.ReplaceAll(line, s.hidden, s.final)
		}
	}
	c.errs++
	if c.holdErr {
		c.errOut = append(c.errOut, line)
		return
	}
	fmt.Fprintln(os.Stderr, line)
}

// treeResult sums up a tree copy.
type treeResult struct {
	files, bytes int64
	procs        int
	elapsed      time.Duration
}

func (r treeResult) summary() string {
	plural := "s"
	if r.files == 1 {
		plural = ""
	}
	s := fmt.Sprintf("copied %d file%s, %d bytes in %.2fs", r.files, plural, r.bytes, r.elapsed.Seconds())
	if r.bytes > 0 && r.elapsed > 0 {
		mbs := float64(r.bytes) / r.elapsed.Seconds() / 1e6
		if mbs >= 100 {
			s += fmt.Sprintf(" (%.0f MB/s)", mbs)
		} else {
			s += fmt.Sprintf(" (%.1f MB/s)", mbs)
		}
	}
	plural = "es"
	if r.procs == 1 {
		plural = ""
	}
	return s + fmt.Sprintf(" with %d process%s", r.procs, plural)
}

// copyTarget is one source and where it goes.
type copyTarget struct {
	src, dst string
	st       unix.Stat_t
}

// planTargets resolves each source's destination, as cp does: into DST
// when it is a directory, else DST itself (one source only). It refuses,
// before anything is written, a directory copied into itself. Sources
// that cannot be copied get their error line and are left out.
func (c *treeCopy) planTargets(srcs []string, dst string) ([]copyTarget, bool) {
	di, derr := os.Stat(dst)
	dstIsDir := derr == nil && di.IsDir()
	if len(srcs) > 1 && !dstIsDir {
		if derr != nil {
			c.fail("target %s: %v", dst, errText(derr))
		} else {
			c.fail("target %s is not a directory", dst)
		}
		return nil, false
	}
	var ts []copyTarget
	for _, src := range srcs {
		var st unix.Stat_t
		var err error
		if c.opts.recursive {
			err = unix.Lstat(src, &st)
		} else {
			err = unix.Stat(src, &st)
		}
		if err != nil {
			c.fail("%s: %v", src, err)
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR && !c.opts.recursive {
			c.fail("%s: is a directory (use -r to copy it)", src)
			continue
		}
		target := dst
		if dstIsDir {
			// cp's meaning: SRC/. (or .) copies the contents of SRC into
			// DST itself.
			switch base := filepath.Base(src); base {
			case ".":
			case "..":
				abs, _ := filepath.Abs(src)
				target = filepath.Join(dst, filepath.Base(abs))
			default:
				target = filepath.Join(dst, base)
			}
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if into, err := isInside(src, target); err != nil {
				c.fail("%s: %v", src, err)
				continue
			} else if into {
				c.fail("cannot copy a directory, %s, into itself, %s (nothing was copied)", src, target)
				return nil, false
			}
		} else if ti, err := os.Stat(target); err == nil {
			if si, err := os.Stat(src); err == nil && os.SameFile(si, ti) {
				c.fail("%s and %s are the same file", src, target)
				continue
			}
		}
		ts = append(ts, copyTarget{src: src, dst: target, st: st})
	}
	return ts, true
}

// isInside reports whether target (which may not exist yet) is the
// directory src or lies inside it, symbolic links resolved.
func isInside(src, target string) (bool, error) {
	rs, err := filepath.EvalSymlinks(src)
	if err != nil {
		return false, errText(err)
	}
	rs, _ = filepath.Abs(rs)
	at, err := filepath.Abs(target)
	if err != nil {
		return false, err
	}
	// Resolve the longest existing prefix of target.
	rest := ""
	for {
		if r, err := filepath.EvalSymlinks(at); err == nil {
			at = filepath.Join(r, rest)
			break
		}
		parent := filepath.Dir(at)
		if parent == at {
			break
		}
		rest = filepath.Join(filepath.Base(at), rest)
		at = parent
	}
	return at == rs || strings.HasPrefix(at, rs+string(filepath.Separator)), nil
}

// walk plans the copy of t, making the directories, symbolic links and
// special files as it goes. It walks with a stack of its own: the tree's
// depth does not deepen this goroutine's stack. A directory's files are
// planned as its entries are read, so that a batch holds files of one
// directory (a worker then opens each directory once a batch), its
// subdirectories after them.
func (c *treeCopy) walk(ctx context.Context, t copyTarget) {
	type dirItem struct {
		src, dst string
		st       unix.Stat_t
		staged   bool // dst's parent is a directory this copy made
	}
	if t.st.Mode&unix.S_IFMT != unix.S_IFDIR {
		c.planEntry(t.src, t.dst, &t.st)
		return
	}
	stack := []dirItem{{t.src, t.dst, t.st, false}}
	for len(stack) > 0 {
		if ctx.Err() != nil {
			return
		}
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		var ok bool
		// it.dst becomes the path written to: a new tree's hidden name.
		if it.dst, it.staged, ok = c.makeDir(it.src, it.dst, &it.st, it.staged); !ok {
			continue
		}
		f, err := os.Open(it.src)
		if err != nil {
			c.fail("cannot read directory %s: %v", it.src, errText(err))
			continue
		}
		dfd := int(f.Fd())
		var names *CopyBatch // this directory's regular files, in a batch
		for ctx.Err() == nil {
			ents, err := f.ReadDir(1024)
			for _, e := range ents {
				name := e.Name()
				if e.Type().IsRegular() {
					// Known from the directory's entry: no stat here, the
					// worker that copies it learns its size and mode.
					if names == nil {
						names = &CopyBatch{SrcDir: it.src, DstDir: it.dst, Names: make([]string, 0, batchMaxFiles),
							Direct: it.staged, Umask: c.umask, Preserve: c.opts.preserve, NoClobber: c.opts.noClobber}
					}
					names.Names = append(names.Names, name)
					c.files.Add(1)
					if c.opts.bar {
						// The bar's total: the bytes, as the walk goes.
						var st unix.Stat_t
						if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
							c.bytes.Add(st.Size)
						}
					}
					if len(names.Names) == batchMaxFiles {
						c.sendNames(names)
						names = nil
					}
					continue
				}
				s := filepath.Join(it.src, name)
				var st unix.Stat_t
				// Looked up in the directory: not the whole path again.
				if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					c.fail("cannot read %s: %v", s, err)
					continue
				}
				d := filepath.Join(it.dst, name)
				if st.Mode&unix.S_IFMT == unix.S_IFDIR {
					stack = append(stack, dirItem{s, d, st, it.staged})
					continue
				}
				c.planEntry(s, d, &st)
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					c.fail("cannot read directory %s: %v", it.src, errText(err))
				}
				break
			}
		}
		f.Close()
		if names != nil {
			c.sendNames(names)
		}
	}
}

// planEntry plans the copy of one entry that is not a directory.
func (c *treeCopy) planEntry(src, dst string, st *unix.Stat_t) {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		c.planFile(src, dst, st)
	case unix.S_IFLNK:
		c.makeSymlink(src, dst, st)
	default:
		c.makeSpecial(src, dst, st)
	}
}

// makeDir makes the copy of directory src, or uses an existing directory
// dst (removing the hidden files of dead copies from it). It returns the
// path to write into, whether that is inside a new tree (staged), and
// whether the walk goes into it.
//
// A directory made where none was, in a directory this copy did not make,
// is the root of a new tree: it is made under a hidden name (tempName)
// and renamed to dst once the whole tree is copied (placeStages). Inside
// it, nothing is ever seen half-written under its final name, so files
// are written under their final names at once, not under hidden ones
// renamed one by one: a rename a file, a fifth of the CPU a small file's
// copy takes on tmpfs. A copy SIGKILLed leaves the hidden directory, which
// the next copy into the same directory removes as it does hidden files.
func (c *treeCopy) makeDir(src, dst string, st *unix.Stat_t, staged bool) (string, bool, bool) {
	// Made 0700 while the copy writes into it; or, without -p, at once
	// with its final mode if that lets the copy write into it (mkdir
	// takes the umask off, as finalMode does): no chmod at the end.
	mode, final := uint32(0o700), false
	if m := c.finalMode(st); !c.opts.preserve && m&0o700 == 0o700 {
		mode, final = m, true
	}
	path := dst
	if !staged {
		var dt unix.Stat_t
		err := unix.Stat(dst, &dt)
		if err == nil {
			if dt.Mode&unix.S_IFMT != unix.S_IFDIR {
				c.fail("cannot overwrite non-directory %s with directory %s", dst, src)
				return "", false, false
			}
			removeStaleTemps(dst)
			c.dirs = append(c.dirs, treeDir{dst: dst, st: *st})
			c.others++
			return dst, false, true
		}
		if unix.Lstat(dst, &dt) == nil { // a symbolic link to nothing
			c.fail("cannot overwrite non-directory %s with directory %s", dst, src)
			return "", false, false
		}
		path = tempName(dst)
	}
	if err := unix.Mkdir(path, mode); err != nil {
		c.fail("cannot create directory %s: %v", dst, err)
		return "", false, false
	}
	if !staged {
		c.errMu.Lock()
		c.stages = append(c.stages, stage{hidden: path, final: dst})
		c.errMu.Unlock()
	}
	c.dirs = append(c.dirs, treeDir{dst: path, st: *st, created: true, modeSet: final})
	c.others++
	return path, true, true
}

// stage is the root of a new tree: written under its hidden name, renamed
// to its final one at the end (makeDir).
type stage struct{ hidden, final string }

// placeStages renames every new tree to its final name: at the end of the
// copy, or after an interrupt, once the files in flight are removed. It
// never replaces what appeared at the final name meanwhile: it says so and
// where the copy is.
func (c *treeCopy) placeStages() {
	c.errMu.Lock()
	stages := c.stages
	c.errMu.Unlock()
	for _, s := range stages {
		err := unix.Renameat2(unix.AT_FDCWD, s.hidden, unix.AT_FDCWD, s.final, unix.RENAME_NOREPLACE)
		if err == unix.EINVAL || err == unix.ENOSYS {
			// No RENAME_NOREPLACE on this file system: look first.
			var st unix.Stat_t
			if err = unix.Lstat(s.final, &st); err == nil {
				err = unix.EEXIST
			} else if err == unix.ENOENT {
				err = unix.Rename(s.hidden, s.final)
			}
		}
		if err != nil {
			c.failRaw(fmt.Sprintf("multiproc copy: cannot create directory %s: %v (the copy is in %s)", s.final, err, s.hidden))
		}
	}
}

// finalMode is the mode a copy gets: with -p the source's, setuid and all;
// without, its permission bits less the umask, as cp does.
func (c *treeCopy) finalMode(st *unix.Stat_t) uint32 {
	if c.opts.preserve {
		return st.Mode & 0o7777
	}
	return st.Mode & 0o777 &^ c.umask
}

// planFile queues the copy of a regular file the walk knows by a stat
// (not one of a directory's Names batch), or, for a later name of a file
// already queued, a hard link.
func (c *treeCopy) planFile(src, dst string, st *unix.Stat_t) {
	if c.opts.noClobber {
		if _, err := os.Lstat(dst); err == nil {
			return // cp -n: an existing file is left alone, silently
		}
	}
	if c.linkedCopy(src, dst, st) {
		return
	}
	c.files.Add(1)
	c.bytes.Add(st.Size)
	j := c.fileJob(src, dst, st)
	if st.Size >= bigFileMin {
		c.submitBig(&splitFile{job: j, size: st.Size, data: dataBytes(st)})
		return
	}
	c.addSmall(j)
}

// fileJob is the job of copying the regular file src (its stat st) to dst.
func (c *treeCopy) fileJob(src, dst string, st *unix.Stat_t) FileJob {
	return FileJob{Src: src, Dst: dst, Tmp: tempName(dst), Size: st.Size, Mode: c.finalMode(st),
		UID: int32(st.Uid), GID: int32(st.Gid), Atime: st.Atim.Nano(), Mtime: st.Mtim.Nano()}
}

// linkedCopy sees to a file with several names: it reports false for the
// first name met, which is copied, and true for a later one, which is
// made a hard link to the first one's copy at the end. The walk and the
// tasks' results (Names batches hand such files back) both call it.
func (c *treeCopy) linkedCopy(src, dst string, st *unix.Stat_t) bool {
	if st.Nlink <= 1 {
		return false
	}
	key := [2]uint64{uint64(st.Dev), st.Ino}
	c.mu.Lock()
	defer c.mu.Unlock()
	if first, ok := c.seen[key]; ok {
		c.links = append(c.links, linkJob{dst: dst, src: src, first: first})
		return true
	}
	ref := &fileRef{dst: dst}
	c.seen[key] = ref
	c.refs[dst] = ref
	return false
}

// makeSymlink copies a symbolic link as a symbolic link.
func (c *treeCopy) makeSymlink(src, dst string, st *unix.Stat_t) {
	target, err := os.Readlink(src)
	if err != nil {
		c.fail("cannot read %s: %v", src, errText(err))
		return
	}
	tmp := tempName(dst)
	if err := unix.Symlink(target, tmp); err != nil {
		c.fail("cannot create symbolic link %s: %v", dst, err)
		return
	}
	if c.opts.preserve {
		unix.Lchown(tmp, int(st.Uid), int(st.Gid)) // where permitted
		ts := []unix.Timespec{st.Atim, st.Mtim}
		unix.UtimesNanoAt(unix.AT_FDCWD, tmp, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	c.placeMeta(tmp, dst)
}

// makeSpecial recreates a FIFO, socket or device node, as GNU cp -R does,
// or says in one line why it cannot: never is it read as a file.
func (c *treeCopy) makeSpecial(src, dst string, st *unix.Stat_t) {
	kind := "special file"
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO:
		kind = "fifo"
	case unix.S_IFCHR:
		kind = "character device"
	case unix.S_IFBLK:
		kind = "block device"
	case unix.S_IFSOCK:
		kind = "socket"
	}
	tmp := tempName(dst)
	mode := st.Mode&unix.S_IFMT | c.finalMode(st)&0o777
	if err := unix.Mknod(tmp, mode, int(st.Rdev)); err != nil {
		c.fail("cannot create %s %s: %v (skipped)", kind, dst, err)
		return
	}
	if c.opts.preserve {
		unix.Lchown(tmp, int(st.Uid), int(st.Gid))
		unix.Chmod(tmp, c.finalMode(st))
		unix.UtimesNanoAt(unix.AT_FDCWD, tmp, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	}
	c.placeMeta(tmp, dst)
}

// placeMeta renames a link or special file made under its hidden name.
func (c *treeCopy) placeMeta(tmp, dst string) {
	if _, err := place(tmp, dst, c.opts.noClobber); err != nil {
		os.Remove(tmp)
		c.fail("%v", err)
		return
	}
	c.others++
}
