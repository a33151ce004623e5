//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multiproc-go/multiproc/internal/spawn"
	"golang.org/x/sys/unix"
)

// A spare is a child started ahead of need: it has answered the start
// handshake and waits for a task. Starting a Go program costs a
// millisecond or more (exec, runtime start, package initialisation); a
// spare moves that cost off the path of the next Start, which then costs
// one message. Once a program's first process has done its task, two
// spares are kept ready, until none has been taken for spareIdle (Python's forkserver keeps a server process for
// the same reason). A spare is an idle process that goes with its parent:
// it exits when its control socket reaches EOF, it has Pdeathsig SIGKILL
// (cleared when it takes a non-daemon task, which may outlive the parent),
// and a child process kills and reaps its own spares before it exits, so
// none is left to PID 1.
//
// In ps an idle spare is "multiproc spare"; it takes the name of the
// Process it becomes. A spare starts with /dev/null as standard output and error: it gets the
// parent's current ones with its task (so it never holds a pipe the parent
// has since replaced, and never writes to a stale one). It is used only if
// the program's environment and working directory are still what they were
// when it started.
type spare struct {
	c        *childProc
	env      []string
	dir      string
	claimed  atomic.Bool
	dead     atomic.Bool
	released chan struct{} // closed when the idle watcher has stopped
}

var spares struct {
	mu       sync.Mutex    // guards the fields below
	ready    []*spare      // oldest first
	starting int           // spares being started
	started  chan struct{} // closed (and replaced) each time one is ready or failed
	dropped  bool          // this child is exiting: no more spares
}

// spareCount is how many spares are kept: two, so that back-to-back
// Starts find one ready while the next is being started.
const spareCount = 2

// SpareProcesses, set to false before the first Start (it is read without
// a lock), turns the spare children off: no idle process is kept, and
// every Start pays for a full program start (about 1–2 ms). A program that
// starts one or two processes and exits, like a command-line tool, may
// want that. Children inherit the setting (through their environment, as
// Main runs before the line of main that sets it): with it off, no process
// of the program keeps spares.
var SpareProcesses = true

// takeSpare returns a started, idle child for a non-daemon or daemon
// Process, or nil. Spares are replenished when this child's task is done
// (refillSpare), so that their start does not compete for the CPU with
// the task it was taken for.
func takeSpare(ctx context.Context) *childProc {
	if !SpareProcesses {
		return nil
	}
	deadline := time.Now().Add(spawn.HelloTimeout)
	for {
		spares.mu.Lock()
		if n := len(spares.ready); n > 0 {
			s := spares.ready[0]
			spares.ready = spares.ready[1:]
			spares.mu.Unlock()
			if s.claim() && s.current() {
				return s.c
			}
			s.discard()
			continue
		}
		if spares.starting == 0 || time.Now().After(deadline) {
			spares.mu.Unlock()
			return nil
		}
		// One is on its way: it will be ready before a fresh one would.
		wait := spares.started
		spares.mu.Unlock()
		select {
		case <-wait:
		case <-time.After(time.Until(deadline)):
		case <-ctx.Done():
			return nil
		}
	}
}

// current reports whether the process state the spare inherited is still
// the program's.
func (s *spare) current() bool {
	dir, _ := os.Getwd()
	return dir == s.dir && slices.Equal(s.env, os.Environ())
}

// claim stops the idle watcher; false if the spare died while idle.
func (s *spare) claim() bool {
	s.claimed.Store(true)
	s.c.ctl.SetReadDeadline(time.Unix(1, 0))
	<-s.released
	if s.dead.Load() {
		return false
	}
	s.c.ctl.SetReadDeadline(time.Time{})
	return true
}

func (s *spare) discard() {
	if !s.dead.Load() {
		s.c.cmd.Process.Kill()
		s.c.reap()
	}
}

// refillSpare starts spares until spareCount are ready or on their way.
func refillSpare() {
	if !SpareProcesses {
		return
	}
	for {
		spares.mu.Lock()
		if spares.dropped || len(spares.ready)+spares.starting >= spareCount {
			spares.mu.Unlock()
			return
		}
		spares.starting++
		if spares.started == nil {
			spares.started = make(chan struct{})
		}
		spares.mu.Unlock()
		s, err := startSpare()
		spares.mu.Lock()
		spares.starting--
		if err == nil && spares.dropped {
			spares.mu.Unlock()
			s.claim()
			s.discard()
			spares.mu.Lock()
			err = errSparesDropped
		}
		if err == nil {
			spares.ready = append(spares.ready, s)
		}
		close(spares.started)
		spares.started = make(chan struct{})
		spares.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func startSpare() (*spare, error) {
	dir, _ := os.Getwd()
	s := &spare{env: os.Environ(), dir: dir, released: make(chan struct{})}
	// Pdeathsig, as for a daemon: an idle spare goes with its parent.
	c, err := launch("spare", true, false, [2]*os.File{})
	if err != nil {
		return nil, err
	}
	if dir2, _ := os.Getwd(); dir2 != dir || !slices.Equal(s.env, os.Environ()) {
		// The environment changed while launch read it (a t.Setenv ending
		// in another goroutine): which one the child got is unknown, so
		// this spare is never current and the next Start discards it.
		s.env = nil
	}
	if err := spawn.AwaitHello(context.Background(), c.ctl, c.pid); err != nil {
		return nil, c.handshakeFailed("a spare process", err)
	}
	s.c = c
	// Before the watcher starts, so that it never overrides a claim's.
	c.ctl.SetReadDeadline(time.Now().Add(spareIdle))
	go s.watchIdle()
	return s, nil
}

// spareIdle is how long an unused spare is kept: a program that has not
// started a process for that long keeps no idle ones (the next Start pays
// for a full program start and brings the spares back).
const spareIdle = 5 * time.Second

// watchIdle reaps the spare if it dies while idle (it sends nothing then,
// so any Recv outcome but a deadline means it is gone), and retires it
// once it has been idle for spareIdle.
func (s *spare) watchIdle() {
	_, _, fds, err := s.c.ctl.Recv()
	unixCloseAll(fds)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if s.claimed.Load() {
			close(s.released)
			return
		}
		spares.mu.Lock()
		i := slices.Index(spares.ready, s)
		if i < 0 {
			// Taken just now: the claim is on its way.
			spares.mu.Unlock()
			close(s.released)
			return
		}
		spares.ready = slices.Delete(spares.ready, i, i+1)
		spares.mu.Unlock()
	}
	s.dead.Store(true)
	s.c.cmd.Process.Kill()
	s.c.reap()
	close(s.released)
	// A dead spare is dropped; it is replaced when the next one is taken.
	spares.mu.Lock()
	for i, r := range spares.ready {
		if r == s {
			spares.ready = append(spares.ready[:i], spares.ready[i+1:]...)
			break
		}
	}
	spares.mu.Unlock()
}

var errSparesDropped = newError("this process is exiting: no spare processes")

// dropSpares kills and reaps this process's spares, and keeps any more from
// starting: a child calls it before it exits, so that no spare is left
// to PID 1.
func dropSpares() {
	spares.mu.Lock()
	spares.dropped = true
	ready := spares.ready
	spares.ready = nil
	for spares.starting > 0 {
		// refillSpare discards what it was starting once it sees dropped.
		wait := spares.started
		spares.mu.Unlock()
		<-wait
		spares.mu.Lock()
	}
	spares.mu.Unlock()
	for _, s := range ready {
		if s.claim() {
			s.discard()
		}
	}
}

// stdioFds duplicates a spare's standard output and error to be
// (close-on-exec copies; the caller closes them). It goes through
// SyscallConn, not Fd, which would switch the files to blocking.
func stdioFds(files [2]*os.File) ([]int, error) {
	var fds []int
	for _, f := range files {
		if f == nil {
			return fds, newError("no standard output or error")
		}
		rc, err := f.SyscallConn()
		if err != nil {
			return fds, err
		}
		var dup int
		var derr error
		if err := rc.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
			return fds, err
		}
		if derr != nil {
			return fds, derr
		}
		fds = append(fds, dup)
	}
	return fds, nil
}
