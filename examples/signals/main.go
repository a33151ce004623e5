//go:build linux

// Command signals walks through the signals lesson: the signal table, an
// alarm, killing a child process, waiting for a signal sent to ourselves,
// and signals as fast as Go allows, back and forth with a child
// (signals.Waiter). It finishes in about two seconds:
//
//	go run ./examples/signals
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/multiproc-go/multiproc/signals"
)

// childEnv marks the copy of this program that the kill demo starts when
// there is no sleep(1) on the machine; echoEnv the copy that answers the
// waiter demo's signals ("parent pid,parent Waiter thread").
const (
	childEnv = "MULTIPROC_SIGNALS_EXAMPLE_CHILD"
	echoEnv  = "MULTIPROC_SIGNALS_EXAMPLE_ECHO"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("signals example: ")
	if os.Getenv(childEnv) != "" {
		time.Sleep(30 * time.Second)
		return
	}
	if v := os.Getenv(echoEnv); v != "" {
		echo(v)
		return
	}

	table()
	alarm()
	kill()
	pause()
	waiter()
}

// table prints some rows of the signal table.
func table() {
	fmt.Println("== the signal table (kill -l has", len(signals.Table()), "of them)")
	for _, name := range []string{"HUP", "INT", "QUIT", "KILL", "USR1", "PIPE", "ALRM", "TERM", "CHLD", "CONT", "STOP", "TSTP", "RTMIN+1"} {
		in, err := signals.Lookup(name)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%2d  %-11s %-9s  %s\n", in.Signal, in.Name, in.Default, in.Meaning)
	}
	fmt.Println()
}

// alarm shows the one alarm clock of the process.
func alarm() {
	fmt.Println("== alarm")
	signals.Alarm(10 * time.Second)
	left := signals.Alarm(time.Second) // replaces the 10s alarm
	fmt.Printf("replaced a 10s alarm by a 1s one; the old one had %v left\n", left.Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	sig, err := signals.Pause(ctx)
	if err != nil {
		log.Fatal("no alarm: ", err)
	}
	if s, ok := sig.(syscall.Signal); ok && s == syscall.SIGALRM {
		fmt.Printf("got SIGALRM after %v\n", time.Since(start).Round(10*time.Millisecond))
	} else {
		fmt.Printf("got %v instead of SIGALRM\n", sig)
	}

	// In C an alarm nobody catches kills the process. In Go the runtime
	// catches SIGALRM and, when nobody listens, does nothing.
	signals.Alarm(50 * time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	fmt.Println("an alarm went off with nobody listening, and we are still running")
	fmt.Println()
}

// kill starts a child, kills it with SIGTERM and reports how it ended.
func kill() {
	fmt.Println("== kill")
	var cmd *exec.Cmd
	if path, err := exec.LookPath("sleep"); err == nil {
		cmd = exec.Command(path, "30")
	} else {
		self, err := os.Executable()
		if err != nil {
			log.Fatal(err)
		}
		cmd = exec.Command(self)
		cmd.Env = append(os.Environ(), childEnv+"=1")
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	pid := cmd.Process.Pid
	fmt.Printf("started %q as pid %d\n", cmd.Args, pid)

	if err := signals.Kill(pid, syscall.SIGTERM); err != nil {
		log.Fatal(err)
	}
	err := cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		in, _ := signals.Lookup(fmt.Sprint(int(ws.Signal())))
		fmt.Printf("pid %d was killed by signal %d (%s); Wait said %q\n", pid, ws.Signal(), in.Name, err)
	case ws.Exited():
		fmt.Printf("pid %d exited with status %d\n", pid, ws.ExitStatus())
	}

	// It is gone now (Wait reaped it): a second kill finds no process.
	err = signals.Kill(pid, syscall.SIGTERM)
	fmt.Printf("killing it again: %v (ESRCH: %v)\n", err, errors.Is(err, syscall.ESRCH))

	// A Go int is 64 bits, kill(2)'s pid 32: Kill refuses what would be
	// cut into another pid, a process group, or -1 (every process).
	err = signals.Kill(1<<32-1, syscall.SIGTERM)
	fmt.Printf("killing pid 4294967295: %v (ErrBadPid: %v)\n", err, errors.Is(err, signals.ErrBadPid))
	fmt.Println()
}

// pause waits for a SIGUSR1 that a goroutine sends to this very process.
func pause() {
	fmt.Println("== pause")
	go func() {
		time.Sleep(100 * time.Millisecond)
		if err := signals.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			log.Print(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sig, err := signals.Pause(ctx)
	if err != nil {
		log.Fatal("no signal: ", err)
	}
	in, _ := signals.Lookup(fmt.Sprint(int(sig.(syscall.Signal))))
	fmt.Printf("Pause returned %s (%v), sent by ourselves with signals.Kill\n", in.Name, sig)

	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err = signals.Pause(ctx2)
	fmt.Printf("Pause with nothing to wait for: %v\n", err)
}

// waiter sends SIGUSR1 back and forth with a child, the fast way: each side
// waits with a signals.Waiter and sends to the other's Waiter thread with
// signals.KillThread, so the kernel wakes the waiting code itself.
func waiter() {
	fmt.Println()
	fmt.Println("== waiter: SIGUSR1 back and forth with a child")
	// NewWaiter wires this goroutine to its thread until Close.
	w, err := signals.NewWaiter(syscall.SIGUSR1)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%d", echoEnv, os.Getpid(), w.Tid()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // it waits forever otherwise
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var childTid int // the child's Waiter thread, its first line
	if _, err := fmt.Fscan(out, &childTid); err != nil {
		log.Fatal("the child: ", err)
	}
	const n = 1000
	start := time.Now()
	for range n {
		if err := signals.KillThread(cmd.Process.Pid, childTid, syscall.SIGUSR1); err != nil {
			log.Fatal(err)
		}
		if _, err := w.Wait(ctx); err != nil {
			log.Fatal("no answer: ", err)
		}
	}
	fmt.Printf("%d round trips, %v each\n", n, (time.Since(start) / n).Round(100*time.Nanosecond))
}

// echo is the child of the waiter demo: it answers every SIGUSR1 sent to
// its Waiter thread with a SIGUSR1 to the parent's, until it is killed.
func echo(v string) {
	var parent, parentTid int
	if _, err := fmt.Sscanf(v, "%d,%d", &parent, &parentTid); err != nil {
		log.Fatal(err)
	}
	w, err := signals.NewWaiter(syscall.SIGUSR1)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	fmt.Println(w.Tid())
	for {
		if _, err := w.Wait(context.Background()); err != nil {
			log.Fatal(err)
		}
		if err := signals.KillThread(parent, parentTid, syscall.SIGUSR1); err != nil {
			log.Fatal(err)
		}
	}
}
