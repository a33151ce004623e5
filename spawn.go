//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc/internal/spawn"
)

// childProc is a started child: its command, control channel and pidfd.
type childProc struct {
	cmd   *exec.Cmd
	ctl   *spawn.Ctl
	pid   int
	pidfd int // owned by reap
	// Set before reap returns, read after.
	why  string // what multiproc did to it and why, "" if nothing
	lost bool   // reaped by someone else: its status is unknown
}

// exitGrace is how long a child whose control stream ended is given to
// exit on its own before it is taken for one that broke its stream and
// killed. A child closes its stream only as it exits, so this is ample.
const exitGrace = 2 * time.Second

// spawnChild starts a child named name, completes the start handshake
// and sends it t, its standard output and error those of stdio (nil: this
// process's). ownGroup puts it in a process group of its own, out of
// reach of the terminal's Ctrl-C (pool workers: the pool decides).
func spawnChild(ctx context.Context, name string, daemon, ownGroup bool, t *task, stdio *childStdio) (*childProc, error) {
	if inChildWithoutMain() {
		return nil, errorf("%w: this process is such a child, and cannot start processes", ErrNoMain)
	}
	if stdio == nil {
		stdio = &childStdio{files: [2]*os.File{os.Stdout, os.Stderr}}
	}
	msg := t.append(nil)
	if !ownGroup {
		if c := takeSpare(ctx); c != nil {
			if err := sendToSpare(c, t, stdio); err == nil {
				return c, nil
			}
			c.cmd.Process.Kill()
			c.reap()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := launch(name, daemon, ownGroup, stdio.files)
	if err != nil {
		return nil, err
	}
	ctl := c.ctl
	// A small task goes out before the hello comes back, saving a round
	// trip: the socket buffers it. A large one could fill the buffer and
	// block forever on a child that never reads (no Main), so it waits.
	early := len(msg) <= 32<<10
	send := func() error {
		if err := ctl.Send(spawn.MsgTask, msg, t.fds()); err != nil {
			return errorf("sending %s its task: %w", name, err)
		}
		return nil
	}
	if early {
		if err := send(); err != nil {
			return nil, c.handshakeFailed(name, err)
		}
	}
	if err := spawn.AwaitHello(ctx, ctl, c.pid); err != nil {
		return nil, c.handshakeFailed(name, err)
	}
	if !early {
		if err := send(); err != nil {
			return nil, c.handshakeFailed(name, err)
		}
	}
	return c, nil
}

// launch starts a child named name (the re-exec and its control socket,
// not the handshake) with files as its standard output and error (nil
// ones: /dev/null). daemon arms Pdeathsig; ownGroup gives it a process
// group of its own.
func launch(name string, daemon, ownGroup bool, files [2]*os.File) (*childProc, error) {
	ctl, childEnd, err := spawn.Pair()
	if err != nil {
		return nil, own(err)
	}
	c := &childProc{ctl: ctl}
	c.cmd = spawn.Command(name, childEnd, daemon, SpareProcesses, &c.pidfd)
	c.cmd.Stdout, c.cmd.Stderr = writerOrNil(files[0]), writerOrNil(files[1])
	if ownGroup {
		c.cmd.SysProcAttr.Setpgid = true
	}
	err = spawn.Start(c.cmd)
	childEnd.Close()
	if err != nil {
		ctl.Close()
		return nil, errorf("starting %s: %w", name, err)
	}
	c.pid = c.cmd.Process.Pid
	return c, nil
}

// writerOrNil keeps a nil *os.File from becoming a non-nil io.Writer
// (exec.Cmd gives the child /dev/null for a nil one).
func writerOrNil(f *os.File) io.Writer {
	if f == nil {
		return nil
	}
	return f
}

// handshakeFailed kills and reaps a child whose start handshake failed
// with err, and says why. Only a child that provably ran without Main is
// blamed on a missing Main: one that exited with a status before it
// answered, or was still running when it should have answered. A child
// that died by a signal is an *ExitError with that signal.
func (c *childProc) handshakeFailed(name string, err error) error {
	if errors.Is(err, spawn.ErrHandshakeEnded) || peerGone(err) {
		// The child closed its end: it is ending. How it ends tells why.
		if spawn.Exited(c.pidfd, exitGrace) {
			code := c.reap()
			switch {
			case c.lost:
				return errorf("%w: process %s (pid %d), while it started", ErrReaped, name, c.pid)
			case code < 0:
				return &ExitError{Name: name, Pid: c.pid, ExitCode: code, Message: "died before it answered the start handshake"}
			default:
				return errorf("starting %s: pid %d exited with status %d before it answered: %w", name, c.pid, code, ErrNoMain)
			}
		}
		err = errorf("starting %s: pid %d closed its control socket without answering: %w", name, c.pid, ErrNoMain)
	} else if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		err = errorf("starting %s: %w", name, err)
	}
	c.cmd.Process.Kill()
	c.reap()
	return err
}

// peerGone reports an error that means the other end of a socket closed.
func peerGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// sendToSpare sends t to a spare with the given standard output and error.
func sendToSpare(c *childProc, t *task, stdio *childStdio) error {
	fds, err := stdioFds(stdio.files)
	defer unixCloseAll(fds)
	if err != nil {
		return err
	}
	st := *t
	st.stdio = true
	return c.ctl.Send(spawn.MsgTask, st.append(nil), append(fds, t.fds()...))
}

// reap waits for the child to exit, reaps it, closes its control channel
// and returns its exit code (-N for signal N). If someone else reaped the
// child, its status is lost: reap sets lost and returns 0.
func (c *childProc) reap() int {
	spawn.WaitExit(c.pidfd)
	c.cmd.Wait()
	c.ctl.Close()
	st := c.cmd.ProcessState
	if st == nil {
		// The wait failed (ECHILD): a waitpid outside multiproc took it.
		c.lost = true
		c.why = "it was reaped by someone else (a waitpid outside multiproc): its exit status is lost"
		return 0
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -int(ws.Signal())
	}
	return st.ExitCode()
}

// stopBroken deals with a child whose control stream ended (err) before
// the message it owed: a child that is exiting is left to exit; one still
// running after exitGrace, or whose stream is corrupt, can never deliver
// and is killed. It records why in c.why.
func (c *childProc) stopBroken(err error) {
	if peerGone(err) {
		if spawn.Exited(c.pidfd, exitGrace) {
			if !errors.Is(err, io.EOF) {
				c.why = "its control stream ended inside a message"
			}
			return
		}
		c.why = "multiproc killed it: it closed its control stream and ran on"
	} else {
		c.why = "multiproc killed it: its control stream broke: " + textOf(err)
	}
	c.cmd.Process.Kill()
}
