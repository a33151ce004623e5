package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// treeTask is one task sent to the pool, and what the parent needs to
// finish it or, on an interrupt, to remove what it left.
type treeTask struct {
	batch    *CopyBatch // a batch of small files, or
	big      *splitFile // a big file, its ranges claimed one at a time
	finished bool       // a batch's result is in: its files are complete, or reported failed
}

// copyTree copies the sources into dst: the tree copy. It returns the
// exit status.
func copyTree(ctx context.Context, srcs []string, dst string, o treeOptions) int {
	start := time.Now()
	tr := phaseTracer(start)
	c := &treeCopy{opts: o, seen: map[[2]uint64]*fileRef{}, refs: map[string]*fileRef{}}
	c.moreBig = sync.NewCond(&c.mu)
	c.extraReady = make(chan struct{}, 1)
	// An interrupt wakes the processes waiting for work at the end.
	defer context.AfterFunc(ctx, c.moreBig.Broadcast)()
	c.umask = uint32(unix.Umask(0))
	unix.Umask(int(c.umask))
	targets, ok := c.planTargets(srcs, dst)
	if !ok {
		return exitFail
	}
	cleaned := map[string]bool{}
	for _, t := range targets {
		if d := filepath.Dir(t.dst); !cleaned[d] {
			cleaned[d] = true
			removeStaleTemps(d)
		}
	}

	// The parent copies too: it starts on the first batch the walk
	// makes, while the pool's -j - 1 workers start, which then take their
	// share of the tasks from the same queue.
	var doneFiles, doneBytes atomic.Int64
	var bar *copyBar
	if o.bar && ctx.Err() == nil {
		c.errMu.Lock()
		c.holdErr = true
		c.errMu.Unlock()
		bar = startCopyBar(start,
			func() string { return fmt.Sprintf("%d/%d files ", doneFiles.Load(), c.files.Load()) },
			doneBytes.Load, c.bytes.Load)
	}
	taskc := make(chan *treeTask, 1024)
	c.submit = taskc
	var wg, poolWG sync.WaitGroup // the parent's consumer; the pool's
	// consume runs the tasks of the queue until it is closed; after an
	// interrupt it only drains it (copyTree removes what they left).
	var ranHere, ranPool atomic.Int64 // tasks and ranges run here and in the pool
	consume := func(pool *multiproc.Pool, wg *sync.WaitGroup) {
		defer wg.Done()
		ran := &ranHere
		if pool != nil {
			ran = &ranPool
		}
		runTask := func(t *treeTask) {
			if ctx.Err() == nil {
				c.run(ctx, pool, t, &doneFiles, &doneBytes)
				ran.Add(1)
			}
			c.taskDone()
		}
		for {
			// The rest of a batch that reached its bytes goes first.
			if t := c.popExtra(); t != nil {
				runTask(t)
				continue
			}
			var t *treeTask
			var ok bool
			select {
			case t, ok = <-taskc:
			default:
				// Nothing queued: copy a big file no process has
				// started, else wait.
				if b, r, claimed := c.claimRange(false); claimed && ctx.Err() == nil {
					ran.Add(c.copyClaimed(ctx, pool, b, r, &doneFiles, &doneBytes))
					continue
				}
				select {
				case t, ok = <-taskc:
				case <-c.extraReady:
					continue
				}
			}
			if !ok {
				// The walk is over and the queue drained: take the rests
				// of batches and help with the big files' ranges left, for
				// as long as a task still running may hand one back.
				for ctx.Err() == nil {
					if t := c.popExtra(); t != nil {
						runTask(t)
						continue
					}
					b, r, claimed := c.claimRange(true)
					if !claimed {
						if c.awaitWork(ctx) {
							continue
						}
						break
					}
					ran.Add(c.copyClaimed(ctx, pool, b, r, &doneFiles, &doneBytes))
				}
				return
			}
			runTask(t)
		}
	}
	wg.Add(1)
	go consume(nil, &wg)
	// The pool starts once the walk has queued a second task or a big
	// file: a tree of one batch is copied by the parent alone, without a
	// process start.
	var (
		poolMu   sync.Mutex // guards pool and finished
		pool     *multiproc.Pool
		finished bool // the queue is drained: a pool that starts now is not used
	)
	if o.jobs > 1 {
		c.startPool = func() {
			p, err := multiproc.NewPool(multiproc.PoolOptions{Processes: o.jobs - 1})
			tr("pool started")
			if err != nil {
				// The parent copies on alone.
				return
			}
			poolMu.Lock()
			defer poolMu.Unlock()
			if finished {
				p.Terminate()
				return
			}
			pool = p
			// Two tasks in flight a worker: the next one waits in its
			// socket while it runs one, so that it never idles between
			// them.
			for range 2 * (o.jobs - 1) {
				poolWG.Add(1) // before finished: before poolWG.Wait
				go consume(p, &poolWG)
			}
		}
	}
	for _, t := range targets {
		c.walk(ctx, t)
	}
	c.flushBatch()
	c.mu.Lock()
	walked := len(c.tasks)
	c.mu.Unlock()
	tr(fmt.Sprintf("walk done (%d tasks)", walked))
	close(taskc)
	wg.Wait()
	poolMu.Lock()
	finished = true
	poolMu.Unlock()
	poolWG.Wait()
	tr(fmt.Sprintf("every task done (%d here, %d in the pool)", ranHere.Load(), ranPool.Load()))
	// Every worker is gone when Terminate returns: no file is written
	// after. Every task is done or stopped, so the links and directories
	// are finished meanwhile, unless the copy was interrupted.
	poolGone := make(chan struct{})
	go func() {
		defer close(poolGone)
		if pool != nil {
			pool.Terminate()
			tr("pool terminated")
		}
	}()

	ie, interrupted := context.Cause(ctx).(interruptError)
	if interrupted {
		<-poolGone
		c.mu.Lock()
		removed := 0
		for _, t := range c.tasks {
			if t.finished || t.batch == nil {
				continue
			}
			for i := range t.batch.files() {
				if os.Remove(t.batch.tmp(i)) == nil {
					removed++
				}
			}
		}
		for _, b := range c.big {
			if b.pending > 0 && os.Remove(b.job.Tmp) == nil {
				removed++
			}
		}
		c.mu.Unlock()
		c.placeStages() // what is left in the new trees is complete
		if bar != nil {
			os.Stderr.WriteString("\r")
			bar.stop(false)
		}
		c.flushErrs()
		fmt.Fprintf(os.Stderr, "multiproc copy: interrupted (%v): %d files copied complete, %d partial copies removed\n", ie, doneFiles.Load(), removed)
		return exitSignalled(ie.sig)
	}
	links := c.makeLinks()
	c.finishDirs()
	c.placeStages()
	tr("directories' modes and times set, new trees in place")
	<-poolGone
	if bar != nil {
		bar.stop(c.errs == 0)
	}
	c.flushErrs()
	if o.verbose {
		procs := 1 // this one, and the pool's workers if they took tasks
		if pool != nil && ranPool.Load() > 0 {
			procs = min(o.jobs, 1+int(ranPool.Load()))
		}
		fmt.Println(treeResult{files: doneFiles.Load() + links, bytes: doneBytes.Load(), procs: procs, elapsed: time.Since(start)}.summary())
	}
	if c.errs > 0 {
		return exitFail
	}
	return exitOK
}

// traceEnv names the environment variable that makes the tree copy print
// when each of its phases ends, with this process's and its reaped
// children's CPU times: for profiling (testdata/copybench.sh).
const traceEnv = "MULTIPROC_COPY_TRACE"

// phaseTracer returns the function that prints a phase's end on stderr
// when traceEnv is set, and does nothing otherwise.
func phaseTracer(start time.Time) func(phase string) {
	if os.Getenv(traceEnv) == "" {
		return func(string) {}
	}
	return func(phase string) {
		var self, kids unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &self)
		unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
		ms := func(t unix.Timeval) float64 { return float64(t.Nano()) / 1e6 }
		fmt.Fprintf(os.Stderr, "multiproc copy: %8.1f ms  %-36s cpu ms: self user %.0f sys %.0f, reaped children user %.0f sys %.0f\n",
			float64(time.Since(start).Microseconds())/1000, phase, ms(self.Utime), ms(self.Stime), ms(kids.Utime), ms(kids.Stime))
	}
}

// run runs one task, in this process (pool nil) or on the pool, and
// takes in its result.
func (c *treeCopy) run(ctx context.Context, pool *multiproc.Pool, t *treeTask, doneFiles, doneBytes *atomic.Int64) {
	if t.batch != nil {
		b := t.batch
		var r BatchResult
		var err error
		if pool == nil {
			r, err = copyBatch(ctx, *b)
		} else {
			r, err = await(ctx, copyBatchFunc.ApplyAsync(pool, *b))
		}
		c.mu.Lock()
		if err != nil {
			defer c.mu.Unlock()
			if ctx.Err() != nil {
				return // interrupted: cleaned up by copyTree
			}
			for i := range b.files() {
				os.Remove(b.tmp(i))
				c.failFileLocked(b.dst(i))
				c.fail("cannot copy %s: %v", b.src(i), workerError(err))
			}
			t.finished = true
			return
		}
		n := b.files()
		failed := make(map[int32]bool, len(r.Failed))
		for k, i := range r.Failed {
			if i < 0 || int(i) >= n {
				continue
			}
			failed[i] = true
			c.failFileLocked(b.dst(int(i)))
			if k < len(r.Errs) {
				c.fail("%s", r.Errs[k])
			}
		}
		// A worker's answer is checked like any input: a file handed back
		// is one of the batch's names it went through, once, and neither
		// failed nor copied; the rest it did not go through is queued
		// again.
		var deferred []int32
		var rest *CopyBatch
		tried := n
		if b.Names != nil {
			if r.Rest > 0 && int(r.Rest) < n {
				tried = int(r.Rest)
				rb := *b
				rb.Names = b.Names[tried:]
				rb.Seq = b.Seq + uint64(tried)
				rest = &rb
			}
			seen := make(map[int32]bool, len(r.Deferred))
			for _, d := range r.Deferred {
				if d >= 0 && int(d) < tried && !failed[d] && !seen[d] {
					seen[d] = true
					deferred = append(deferred, d)
				}
			}
		}
		doneFiles.Add(int64(tried - len(failed) - int(r.Skipped) - len(deferred)))
		doneBytes.Add(r.Bytes)
		t.finished = true
		c.mu.Unlock()
		if rest != nil {
			// In as many parts as processes: the one that ran the batch
			// takes a part, the others (if idle) take the rest at once.
			parts := min(c.opts.jobs, len(rest.Names))
			for k := range parts {
				lo, hi := k*len(rest.Names)/parts, (k+1)*len(rest.Names)/parts
				part := *rest
				part.Names = rest.Names[lo:hi:hi]
				part.Seq = rest.Seq + uint64(lo)
				c.requeue(&treeTask{batch: &part})
			}
		}
		if len(deferred) > 0 {
			c.takeDeferred(ctx, pool, b, deferred, doneFiles, doneBytes)
		}
		return
	}
	c.copyBig(ctx, pool, t.big, doneFiles, doneBytes)
}

// copyBig copies the ranges of b left, one after the other, and returns
// how many.
func (c *treeCopy) copyBig(ctx context.Context, pool *multiproc.Pool, b *splitFile, doneFiles, doneBytes *atomic.Int64) int64 {
	var n int64
	for ctx.Err() == nil {
		c.mu.Lock()
		r, ok := c.claimRangeLocked(b)
		c.mu.Unlock()
		if !ok {
			break
		}
		c.runRange(ctx, pool, b, r, doneFiles, doneBytes)
		n++
	}
	return n
}

// copyClaimed copies range r of b, just claimed, then the ranges of b
// left: the file is this process's to finish. It returns how many ranges
// it copied.
func (c *treeCopy) copyClaimed(ctx context.Context, pool *multiproc.Pool, b *splitFile, r RangeJob, doneFiles, doneBytes *atomic.Int64) int64 {
	c.runRange(ctx, pool, b, r, doneFiles, doneBytes)
	return 1 + c.copyBig(ctx, pool, b, doneFiles, doneBytes)
}

// taskDone counts a task of the queue as done: run, or drained after an
// interrupt, with the files it handed back.
func (c *treeCopy) taskDone() {
	c.mu.Lock()
	c.pending--
	c.mu.Unlock()
	c.moreBig.Broadcast()
}

// awaitWork waits, once the queue is drained, until there is a rest of a
// batch to take or a big file has a range left to claim (true),
// or no task is left that could make one and no big file is being copied
// (false).
func (c *treeCopy) awaitWork(ctx context.Context) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.extra) == 0 && !c.claimableLocked() && ctx.Err() == nil {
		busy := c.pending > 0
		for _, b := range c.big {
			busy = busy || b.pending > 0
		}
		if !busy {
			return false
		}
		c.moreBig.Wait()
	}
	return ctx.Err() == nil
}

// requeue queues the rest of a batch that reached batchMaxBytes.
func (c *treeCopy) requeue(t *treeTask) {
	c.track(t, true) // pending before it can be taken and done
	c.mu.Lock()
	c.extra = append(c.extra, t)
	c.mu.Unlock()
	c.moreBig.Broadcast()
	select {
	case c.extraReady <- struct{}{}:
	default:
	}
	c.maybeStartPool() // a second task: worth a worker
}

// popExtra takes a requeued rest of a batch, if any.
func (c *treeCopy) popExtra() *treeTask {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.extra) == 0 {
		return nil
	}
	t := c.extra[0]
	c.extra[0] = nil
	c.extra = c.extra[1:]
	return t
}

// claimableLocked reports whether a big file has a range left to claim.
// c.mu is held.
func (c *treeCopy) claimableLocked() bool {
	for _, b := range c.big {
		if b.next < len(b.ranges) && !b.failed {
			return true
		}
	}
	return false
}

// claimRangeLocked claims the next range of b, if any is left. Once a
// range failed, the ones left are not copied: they are done. c.mu is
// held.
func (c *treeCopy) claimRangeLocked(b *splitFile) (RangeJob, bool) {
	if b.failed {
		b.pending -= len(b.ranges) - b.next
		b.next = len(b.ranges)
	}
	if b.next == len(b.ranges) {
		return RangeJob{}, false
	}
	r := b.ranges[b.next]
	b.next++
	return RangeJob{Src: b.job.Src, Tmp: b.job.Tmp, Dst: b.job.Dst, Offset: r.off, Length: r.n}, true
}

// claimRange claims a range of a big file, for a process that found the
// queue empty: the first range of the file with the most data that no
// process has started (the caller then copies the rest of it, copyBig),
// else, if shared, a range of a file another process copies. Where a
// write holds the file's lock, as in the page cache of tmpfs, ext4 or
// xfs, two processes writing one file at once take the time one does,
// and more CPU (128 MiB on tmpfs: 37 ms of CPU in one process, 64 ms in
// two, the same wall time), CPU that the other tasks need. So they share
// a file only at the end, when the process that helps would be idle: it
// costs nothing there, and shortens the tail where ranges do copy in
// parallel (a cold cache, a network file system). On the bench tree's big
// files alone: 104 ms shared at the end, 109 ms not (cp: 106 ms).
func (c *treeCopy) claimRange(shared bool) (*splitFile, RangeJob, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first *splitFile // the unstarted file with the most data
	for _, b := range c.big {
		if b.next == 0 && !b.failed && len(b.ranges) > 0 && (first == nil || b.data > first.data) {
			first = b
		}
	}
	if first != nil {
		if r, ok := c.claimRangeLocked(first); ok {
			return first, r, true
		}
	}
	if !shared {
		return nil, RangeJob{}, false
	}
	for _, b := range c.big {
		if r, ok := c.claimRangeLocked(b); ok {
			return b, r, true
		}
	}
	return nil, RangeJob{}, false
}

// runRange copies one range of b, in this process (pool nil) or on the
// pool, and finishes b when it was the last.
func (c *treeCopy) runRange(ctx context.Context, pool *multiproc.Pool, b *splitFile, r RangeJob, doneFiles, doneBytes *atomic.Int64) {
	var n int64
	var err error
	if pool == nil {
		n, err = copyRangeJob(ctx, r)
	} else {
		n, err = await(ctx, copySpanFunc.ApplyAsync(pool, r))
	}
	defer c.moreBig.Broadcast() // a range fewer: awaitWork looks again
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && ctx.Err() != nil {
		return // interrupted: b is pending, its hidden file removed by copyTree
	}
	b.pending--
	doneBytes.Add(n)
	if err != nil && !b.failed {
		b.failed = true
		c.fail("%v", workerError(err))
	}
	if b.pending == 0 {
		c.finishBig(b, doneFiles)
	}
}

// await waits for a task's result, or for ctx to end (copyTree then
// terminates the pool, which kills the workers). It parks at once: Get's
// spinning before it sleeps pays off for one caller waiting for a quick
// result, not for the many tasks of a copy waiting at once, whose spins
// would take the CPU from the workers.
func await[R any](ctx context.Context, ar *multiproc.AsyncResult[R]) (R, error) {
	select {
	case <-ar.Done():
		return ar.Get(ctx) // ready: Get returns at once
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// workerError is the line for a task that failed as a whole.
func workerError(err error) error {
	var ee *multiproc.ExitError
	if errors.As(err, &ee) && ee.Message != "" {
		return errors.New(ee.Message)
	}
	var re *multiproc.RemoteError
	if errors.As(err, &re) {
		return re
	}
	return err
}

// failFileLocked marks the first copy of a file with several names as
// failed: its other names are not linked to it. c.mu is held.
func (c *treeCopy) failFileLocked(dst string) {
	if r, ok := c.refs[dst]; ok {
		r.failed = true
	}
}

// flushErrs prints the lines held while the bar was drawn.
func (c *treeCopy) flushErrs() {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	for _, l := range c.errOut {
		fmt.Fprintln(os.Stderr, l)
	}
	c.errOut, c.holdErr = nil, false
}

// submitBig queues a big file: its hidden file made, it is a task.
func (c *treeCopy) submitBig(b *splitFile) {
	if c.prepareBig(b) {
		c.send(&treeTask{big: b})
	}
}

// prepareBig makes the hidden file of a big file, sparse at its full
// size, and cuts the file in ranges. It reports false, the error said,
// if the file cannot be made.
func (c *treeCopy) prepareBig(b *splitFile) bool {
	f, err := os.OpenFile(b.job.Tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		c.mu.Lock()
		c.failFileLocked(b.job.Dst)
		c.mu.Unlock()
		c.fail("cannot create %s: %v", b.job.Dst, errText(err))
		return false
	}
	err = f.Truncate(b.size)
	f.Close()
	if err != nil {
		os.Remove(b.job.Tmp)
		c.mu.Lock()
		c.failFileLocked(b.job.Dst)
		c.mu.Unlock()
		c.fail("cannot create %s of %d bytes: %v", b.job.Dst, b.size, errText(err))
		return false
	}
	b.ranges = splitRanges(b.size, max(c.opts.jobs, int((b.size+rangeMax-1)/rangeMax)))
	c.mu.Lock()
	b.pending = len(b.ranges)
	c.big = append(c.big, b)
	c.mu.Unlock()
	c.moreBig.Broadcast()
	return true
}

// takeDeferred copies the files that a Names batch handed back, on the
// consumer that took the batch's result. A later name of a file already
// met becomes a hard link, made at the end; the first name of a file with
// several is copied as a batch of one; big files are split in ranges,
// all of them made ready first, so that an idle process takes one this
// consumer has not started.
func (c *treeCopy) takeDeferred(ctx context.Context, pool *multiproc.Pool, b *CopyBatch, ds []int32, doneFiles, doneBytes *atomic.Int64) {
	var big []*splitFile
	for _, d := range ds {
		if ctx.Err() != nil {
			return
		}
		src, dst := b.src(int(d)), b.dst(int(d))
		var st unix.Stat_t
		if err := unix.Lstat(src, &st); err != nil {
			c.fail("%v", readError(src, err))
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			c.fail("%s: no longer a regular file", src)
			continue
		}
		if c.linkedCopy(src, dst, &st) {
			c.files.Add(-1) // the walk counted a file: it is a link
			if c.opts.bar {
				c.bytes.Add(-st.Size)
			}
			continue
		}
		j := c.fileJob(src, dst, &st)
		if st.Size >= bigFileMin {
			bf := &splitFile{job: j, size: st.Size, data: dataBytes(&st)}
			if c.prepareBig(bf) {
				big = append(big, bf)
			}
			continue
		}
		t := &treeTask{batch: &CopyBatch{Files: []FileJob{j}, Preserve: c.opts.preserve, NoClobber: c.opts.noClobber}}
		c.track(t, false)
		c.run(ctx, pool, t, doneFiles, doneBytes)
	}
	if len(big) > 0 {
		c.maybeStartPool()
	}
	// The most data first: what is left when the other processes run out
	// of work is then the least (claimRange takes them so too).
	slices.SortStableFunc(big, func(a, b *splitFile) int { return cmp.Compare(b.data, a.data) })
	for _, bf := range big {
		c.mu.Lock()
		r, ok := RangeJob{}, false
		if bf.next == 0 { // not taken by an idle process meanwhile
			r, ok = c.claimRangeLocked(bf)
		}
		c.mu.Unlock()
		if ok {
			c.copyClaimed(ctx, pool, bf, r, doneFiles, doneBytes)
		}
	}
}

// addSmall adds a small file to the batch being filled, and submits the
// batch when it is full: batchMaxFiles files or batchMaxBytes bytes.
func (c *treeCopy) addSmall(j FileJob) {
	if c.batch == nil {
		c.batch = &CopyBatch{Files: make([]FileJob, 0, batchMaxFiles), Preserve: c.opts.preserve, NoClobber: c.opts.noClobber}
	}
	c.batch.Files = append(c.batch.Files, j)
	c.bbytes += j.Size
	if len(c.batch.Files) >= batchMaxFiles || c.bbytes >= batchMaxBytes {
		c.flushBatch()
	}
}

// flushBatch submits the batch being filled, if any.
func (c *treeCopy) flushBatch() {
	if c.batch != nil {
		c.send(&treeTask{batch: c.batch})
		c.batch, c.bbytes = nil, 0
	}
}

// sendNames submits a Names batch, its hidden names numbered.
func (c *treeCopy) sendNames(b *CopyBatch) {
	b.Writer = tempWriter()
	b.Seq = tempSeqs(len(b.Names))
	c.send(&treeTask{batch: b})
}

// send queues a task. Only the walk sends.
func (c *treeCopy) send(t *treeTask) {
	n := c.track(t, true)
	c.submit <- t
	// The pool is worth its start at a second task, or at a big file
	// (whose ranges an idle worker helps with).
	if n >= 2 || t.big != nil {
		c.maybeStartPool()
	}
}

// track records t among the tasks (for the cleanup after an interrupt)
// and, if it is queued, among those pending (taskDone). It returns how
// many tasks there are.
func (c *treeCopy) track(t *treeTask, queued bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tasks = append(c.tasks, t)
	if queued {
		c.pending++
	}
	return len(c.tasks)
}

// maybeStartPool starts the pool, once, if there is one to start.
func (c *treeCopy) maybeStartPool() {
	if c.startPool != nil {
		c.poolOnce.Do(func() { go c.startPool() })
	}
}

// finishBig gives a big file, once all its ranges are in, its attributes
// and its final name; or removes it if a range failed. c.mu is held.
func (c *treeCopy) finishBig(b *splitFile, doneFiles *atomic.Int64) {
	j := b.job
	if b.failed {
		os.Remove(j.Tmp)
		c.failFileLocked(j.Dst)
		return
	}
	f, err := os.OpenFile(j.Tmp, os.O_WRONLY, 0)
	if err == nil {
		if c.opts.preserve {
			err = setAttrs(int(f.Fd()), j)
		} else if e := unix.Fchmod(int(f.Fd()), j.Mode); e != nil {
			err = fmt.Errorf("cannot set the mode of %s: %v", j.Dst, e)
		}
		if e := f.Close(); err == nil && e != nil {
			err = fmt.Errorf("writing %s: %v", j.Dst, errText(e))
		}
	} else {
		err = fmt.Errorf("writing %s: %v", j.Dst, errText(err))
	}
	if err == nil {
		var placed bool
		placed, err = place(j.Tmp, j.Dst, c.opts.noClobber)
		if err == nil && placed {
			doneFiles.Add(1)
		}
	}
	if err != nil {
		os.Remove(j.Tmp)
		c.failFileLocked(j.Dst)
		c.fail("%v", err)
	}
}

// makeLinks makes the hard links between copies, as between the sources.
// It returns how many it made.
func (c *treeCopy) makeLinks() int64 {
	var n int64
	for _, l := range c.links {
		if l.first.failed {
			c.fail("cannot link %s: %s, another name of the same file, was not copied", l.dst, l.first.dst)
			continue
		}
		tmp := tempName(l.dst)
		if err := os.Link(l.first.dst, tmp); err != nil {
			c.fail("cannot create hard link %s to %s: %v", l.dst, l.first.dst, errText(err))
			continue
		}
		if placed, err := place(tmp, l.dst, c.opts.noClobber); err != nil {
			os.Remove(tmp)
			c.fail("%v", err)
		} else if placed {
			n++
		}
	}
	return n
}

// finishDirs sets the directories' modes (and, with -p, owners and
// times), deepest first: after their contents, which change a
// directory's times and may need its write permission.
func (c *treeCopy) finishDirs() {
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := &c.dirs[i]
		if c.opts.preserve {
			if err := unix.Lchown(d.dst, int(d.st.Uid), int(d.st.Gid)); err != nil && err != unix.EPERM {
				c.fail("cannot keep the owner of %s: %v", d.dst, err)
			}
		}
		if (d.created && !d.modeSet) || c.opts.preserve {
			if err := unix.Chmod(d.dst, c.finalMode(&d.st)); err != nil {
				c.fail("cannot set the mode of %s: %v", d.dst, err)
			}
		}
		if c.opts.preserve {
			if err := unix.UtimesNano(d.dst, []unix.Timespec{d.st.Atim, d.st.Mtim}); err != nil {
				c.fail("cannot set the times of %s: %v", d.dst, err)
			}
		}
	}
}

// copyBar shows a copy's progress on stderr, a terminal: bytes done of
// the total, percentage and rate, after a label (the file's name, or the
// files done of the tree's). It polls its sources every pollInterval; the
// total may grow while it is shown (a tree's, while the walk goes on).
type copyBar struct {
	p       *mpb.Progress
	bar     *mpb.Bar
	quit    chan struct{}
	done    chan struct{}
	current func() int64 // bytes done
	total   func() int64 // bytes to copy, as known so far
}

// startCopyBar starts the bar.
func startCopyBar(start time.Time, label func() string, current, total func() int64) *copyBar {
	p := mpb.New(mpb.WithOutput(os.Stderr), mpb.WithRefreshRate(pollInterval))
	// Total 0: no completion when the bytes done catch up with a total
	// that may still grow; stop completes it.
	bar := p.New(0, mpb.BarStyle(),
		mpb.PrependDecorators(
			decor.Any(func(decor.Statistics) string { return label() }),
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
	b := &copyBar{p: p, bar: bar, quit: make(chan struct{}), done: make(chan struct{}), current: current, total: total}
	update := func() {
		bar.SetTotal(total(), false)
		bar.SetCurrent(current())
	}
	update()
	go func() {
		defer close(b.done)
		t := time.NewTicker(pollInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				update()
			case <-b.quit:
				return
			}
		}
	}()
	return b
}

// stop stops polling and draws the bar a last time, and waits until it
// is drawn: complete (ok), or where it stopped, left on the screen.
func (b *copyBar) stop(ok bool) {
	close(b.quit)
	<-b.done
	if ok {
		b.bar.SetCurrent(b.total())
		b.bar.SetTotal(-1, true) // the current count is the total: complete
	} else {
		b.bar.SetCurrent(b.current())
		b.bar.Abort(false)
	}
	b.p.Wait()
}
