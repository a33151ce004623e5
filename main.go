//go:build linux && (amd64 || arm64)

package multiproc

import (
	"os"
	"strings"
	"sync/atomic"

	"github.com/multiproc-go/multiproc/internal/spawn"
)

// Main must be the first statement of the program's main function (and of
// TestMain in tests). In the parent it returns at once. In a child process
// — the same binary started again by this package — it runs the task the
// parent sent and exits; it never returns there, so nothing else of main
// runs in a child.
//
// Package initialisation (every init and package-level var) runs in each
// child before Main: keep it cheap and free of side effects. It runs there
// with GOMAXPROCS=1, which makes a start cheaper (no thread spins up for
// the runtime's own goroutines); the task runs with the program's
// GOMAXPROCS, set back when it arrives, the variable included. So a
// package-level var that reads runtime.GOMAXPROCS(0) is 1 in a child. A program
// that forgets Main cannot start processes: Start fails with an error
// matching ErrNoMain instead, and the half-started child is killed.
func Main() {
	mainCalled.Store(true)
	if os.Getenv(spawn.EnvRole) != "child" {
		return
	}
	name := os.Getenv(spawn.EnvName)
	if os.Getenv(spawn.EnvSpares) == "0" {
		SpareProcesses = false // the parent's choice, made after its Main
	}
	// A program the child starts with os/exec must not think it is a child.
	os.Unsetenv(spawn.EnvRole)
	os.Unsetenv(spawn.EnvName)
	os.Unsetenv(spawn.EnvSpares)
	// argv[0] carries a mark for ps (spawn.Command); the program sees its own.
	if len(os.Args) > 0 {
		os.Args[0] = strings.TrimSuffix(os.Args[0], spawn.ArgSuffix)
	}
	code := childMain(name)
	dropSpares() // reaped here, not left to PID 1
	os.Exit(code)
}

// setProcName makes name this process's name in ps and top (its comm,
// cut to 15 bytes by the kernel). /proc/self/comm is the main thread's,
// which ps shows, whichever thread this runs on.
func setProcName(name string) {
	os.WriteFile("/proc/self/comm", []byte(name), 0)
}

// processName is this process's name for ProcessName, once it is a child
// that took its task.
var processName atomic.Pointer[string]

// ProcessName is Python's multiprocessing.current_process().name: in a
// child, the Name of the Process it runs as (a pool worker's is
// "PoolWorker-N"); in a program's own process, "MainProcess". The pid is
// os.Getpid().
func ProcessName() string {
	if n := processName.Load(); n != nil {
		return *n
	}
	return "MainProcess"
}

// checkCreate refuses to make a shared object during package
// initialisation of a child process (a package-level var, an init): the
// child runs that code again, before Main, so the object would be a new
// one, not the parent's — a pipe nobody else holds, a lock nobody else
// takes — and the program would silently not share what it means to.
func checkCreate(what string) error {
	if !mainCalled.Load() && inChildWithoutMain() {
		return errorf("%s during package initialisation of a child process: every process runs that code again and would get an object of its own, not the parent's; create shared objects in main or where they are used, and pass them to children as arguments", what)
	}
	return nil
}

// inChildWithoutMain reports a re-executed child whose main did not call
// Main: it must never start processes of its own, or a forgotten Main
// would multiply without end.
func inChildWithoutMain() bool { return os.Getenv(spawn.EnvRole) == "child" }
