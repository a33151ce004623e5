//go:build linux && (amd64 || arm64)

// Package spawn starts child processes by re-executing the running binary,
// and carries the control channel between parent and child.
//
// Go cannot fork: a child is /proc/self/exe started again with a role in
// its environment and one end of a socketpair as fd 3. Every child is
// started from one goroutine locked to its OS thread for the life of the
// process, because Pdeathsig fires when the thread that started a child
// exits (golang/go#27505), not when the process does.
package spawn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc/internal/wait"
	"golang.org/x/sys/unix"
)

// Environment variables that make a re-executed binary a child.
const (
	EnvRole   = "MULTIPROC_ROLE"   // "child"; removed by the child before user code runs
	EnvName   = "MULTIPROC_NAME"   // the process's name, for messages
	EnvSpares = "MULTIPROC_SPARES" // "0": the parent turned spare processes off, and so does the child
	CtlFd     = 3                  // the control socket's fd in the child
)

// ArgSuffix ends a child's argv[0], so that ps shows which program a
// child is and that it is one; Main strips it from os.Args[0].
const ArgSuffix = " [multiproc]"

// Protocol is the version of the parent/child handshake; a child that
// answers with another version is refused.
const Protocol = 1

// Message types on the control channel.
const (
	MsgHello  byte = 1 + iota // child → parent: protocol, pid
	MsgTask                   // parent → child: what to run, with its handles' fds
	MsgResult                 // child → parent: the outcome of one task
	MsgExit                   // parent → worker: finish and exit
)

type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan startReq
)

// Start starts cmd from the spawner thread, so that its Pdeathsig, if set,
// fires only when this whole process dies.
func Start(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan startReq)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the process
			for r := range spawnCh {
				r.done <- explain(r.cmd, r.cmd.Start())
			}
		}()
	})
	done := make(chan error, 1)
	spawnCh <- startReq{cmd, done}
	return <-done
}

// explain turns the EBADF of a fork/exec at the descriptor limit into
// what it is. The child side of fork/exec moves its error pipe above the
// highest descriptor it passes; when that one is the last the limit
// allows (RLIMIT_NOFILE - 1), the move fails with EBADF, which reads like
// a descriptor closed twice. It is EMFILE: this process is out of
// descriptors.
func explain(cmd *exec.Cmd, err error) error {
	if !errors.Is(err, syscall.EBADF) {
		return err
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return err
	}
	files := append([]*os.File{}, cmd.ExtraFiles...)
	for _, w := range []any{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		if f, ok := w.(*os.File); ok {
			files = append(files, f)
		}
	}
	for _, f := range files {
		if f != nil && uint64(f.Fd())+1 >= lim.Cur {
			return fmt.Errorf("%w: descriptor %d passed to the child is the last RLIMIT_NOFILE allows (%d): fork/exec: %w",
				syscall.EMFILE, f.Fd(), lim.Cur, err)
		}
	}
	return err
}

// Command builds the re-exec of this binary for a child named name, with
// ctlFile as its fd 3 (stdin /dev/null; stdout and stderr too until the
// caller sets them). daemon children get Pdeathsig SIGKILL as a backstop
// to their lifeline: Start runs them from a thread that lives as long as
// this process, so the signal comes when the process dies, not before.
// spares says whether the child may keep spare processes of its own.
// pidfd receives a pidfd for the child (-1 if the kernel has none).
func Command(name string, ctlFile *os.File, daemon, spares bool, pidfd *int) *exec.Cmd {
	cmd := &exec.Cmd{
		// The literal path: os.Executable() may name a deleted or replaced file.
		Path:       "/proc/self/exe",
		Args:       []string{os.Args[0] + ArgSuffix},
		Env:        childEnv(name, spares),
		ExtraFiles: []*os.File{ctlFile},
	}
	if f := devNull(); f != nil {
		cmd.Stdin = f
	}
	*pidfd = -1
	cmd.SysProcAttr = &syscall.SysProcAttr{PidFD: pidfd}
	if daemon {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	return cmd
}

// devNull is the children's stdin, opened once rather than by exec.Cmd
// at every start: one open less per child, and a descriptor that explain
// can see (nil while it cannot be opened; exec.Cmd then opens its own).
func devNull() *os.File {
	devNullMu.Lock()
	defer devNullMu.Unlock()
	if devNullFile == nil {
		devNullFile, _ = os.Open(os.DevNull)
	}
	return devNullFile
}

var (
	devNullMu   sync.Mutex // guards devNullFile
	devNullFile *os.File
)

// childEnv is the parent's environment plus the child's role. Under the
// race detector a process sleeps a second at exit (GORACE atexit_sleep_ms)
// to let reports flush; children report on the inherited stderr at once,
// so that sleep is turned off for them unless the user set it.
func childEnv(name string, spares bool) []string {
	env := make([]string, 0, len(os.Environ())+4)
	race := "GORACE=atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "GORACE="); ok {
			if !strings.Contains(v, "atexit_sleep_ms") {
				race = kv + " atexit_sleep_ms=0"
			} else {
				race = kv
			}
			continue
		}
		env = append(env, kv)
	}
	env = append(env, race, EnvRole+"=child", EnvName+"="+name)
	if kv := wait.WakeEnv(); kv != "" {
		env = append(env, kv) // the child need not measure it again
	}
	if !spares {
		env = append(env, EnvSpares+"=0")
	}
	return procsEnv(env)
}

// WaitExit blocks until the process behind pidfd has exited, without
// holding an OS thread: the pidfd becomes readable then, and the netpoller
// watches it. It closes pidfd. With pidfd < 0 it returns at once.
func WaitExit(pidfd int) error {
	if pidfd < 0 {
		return nil
	}
	if err := unix.SetNonblock(pidfd, true); err != nil {
		unix.Close(pidfd)
		return err
	}
	f := os.NewFile(uintptr(pidfd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, e := unix.Poll(p, 0)
		if e == unix.EINTR {
			return false
		}
		if e != nil {
			perr = e
			return true
		}
		return n > 0
	})
	if err == nil {
		err = perr
	}
	return err
}

// ErrNoHello is wrapped by the error of a child that provably ran without
// answering the start handshake: it exited with a status, or it was still
// running when it should long have answered.
var ErrNoHello = errors.New("the child did not call multiproc.Main() first thing in main (and in TestMain)")

// ErrHandshakeEnded is wrapped by AwaitHello's error when the child closed
// its control socket (it died, or closed fd 3) before its hello: the
// caller looks at how the child ended before blaming a missing Main.
var ErrHandshakeEnded = errors.New("the child ended the start handshake")

// ErrProtocol is wrapped by AwaitHello's error when the child answered
// with another version of the start handshake (the executable was
// replaced on disk by another build, say).
var ErrProtocol = errors.New("the child speaks another version of the start handshake")

// HelloTimeout bounds how long a parent waits for a new child's hello. A
// healthy child answers in a few milliseconds; the bound is generous
// because a loaded machine (or the race detector) can take seconds to
// start a Go program, and past it the child is taken for one without Main.
var HelloTimeout = 10 * time.Second

// AwaitHello reads the child's hello within HelloTimeout, or until ctx
// ends (ctx.Err() then). The error wraps ErrHandshakeEnded if the stream
// ended or broke first, and ErrNoHello if the child answered with
// something else or nothing in time. On any error the caller kills and
// reaps the child, which closes ctl.
func AwaitHello(ctx context.Context, ctl *Ctl, pid int) error {
	type res struct {
		typ     byte
		payload []byte
		fds     []int
		err     error
	}
	ch := make(chan res, 1)
	go func() {
		t, p, f, err := ctl.Recv()
		closeAll(f) // a hello carries none
		ch <- res{t, p, nil, err}
	}()
	timer := time.NewTimer(HelloTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if errors.Is(r.err, ErrCorrupt) {
			// It ran, and wrote something else than a hello.
			return fmt.Errorf("%w (pid %d answered: %v)", ErrNoHello, pid, r.err)
		}
		if r.err != nil {
			return fmt.Errorf("%w (pid %d: %v)", ErrHandshakeEnded, pid, r.err)
		}
		if r.typ != MsgHello || len(r.payload) < 8 {
			return fmt.Errorf("%w (pid %d sent message type %d)", ErrNoHello, pid, r.typ)
		}
		if v := le32(r.payload); v != Protocol {
			return fmt.Errorf("%w: child pid %d speaks protocol %d, this parent %d", ErrProtocol, pid, v, Protocol)
		}
		return nil
	case <-timer.C:
		// Unblock the reader; the caller kills the child.
		ctl.SetReadDeadline(time.Unix(1, 0))
		<-ch
		return fmt.Errorf("%w (no answer from pid %d in %v)", ErrNoHello, pid, HelloTimeout)
	case <-ctx.Done():
		ctl.SetReadDeadline(time.Unix(1, 0))
		<-ch
		return ctx.Err()
	}
}

// Exited waits up to d for the process behind pidfd to exit, without
// reaping it, and reports whether it did. With pidfd < 0 it reports true
// (the caller's wait will tell).
func Exited(pidfd int, d time.Duration) bool {
	if pidfd < 0 {
		return true
	}
	deadline := time.Now().Add(d)
	for {
		p := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, int(max(time.Until(deadline), 0)/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		return err != nil || n > 0
	}
}

// Hello is the payload a child sends first.
func Hello() []byte {
	b := make([]byte, 8)
	put32(b, Protocol)
	put32(b[4:], uint32(os.Getpid()))
	return b
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
func put32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
