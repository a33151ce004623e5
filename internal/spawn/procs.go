package spawn

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// A child starts with GOMAXPROCS=1, and RestoreProcs gives it the
// program's setting back once its task has come. The start of a Go
// program is mostly the runtime's and the packages' initialisation, one
// goroutine's work; with more Ps, each goroutine the runtime starts on
// the way wakes another P, which starts a thread that spins looking for
// work. Measured on the 2-vCPU VM (perf stat -r 40 of cmd/multiproc
// --help): 16.1–17.9 ms of CPU with the default, 11.7–13.5 ms with
// GOMAXPROCS=1, for the same wall time. Back-to-back starts and the
// -e2e rows of the bench are bound by that CPU (internal/bench/TARGETS.md).
//
// EnvProcs carries the parent's own GOMAXPROCS variable: "=" and its value
// when it was set, "-" when it was not.
const EnvProcs = "MULTIPROC_GOMAXPROCS"

// procsEnv replaces a GOMAXPROCS entry of env (the parent's) with
// GOMAXPROCS=1 and the EnvProcs that RestoreProcs undoes it with. It
// filters env in place: childEnv's fresh slice, which nothing else holds.
func procsEnv(env []string) []string {
	orig := "-"
	out := env[:0]
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOMAXPROCS="); ok {
			orig = "=" + v
			continue
		}
		if strings.HasPrefix(kv, EnvProcs+"=") {
			continue // a grandchild's parent restored its own already
		}
		out = append(out, kv)
	}
	return append(out, "GOMAXPROCS=1", EnvProcs+"="+orig)
}

// RestoreProcs gives a child its program's GOMAXPROCS back, as the
// variable and as the runtime's setting: the parent's value when it had
// one (a value the runtime would not take leaves the runtime's default,
// as it does at a start), else the runtime's default. It is a no-op in a
// process not started by this package, and after its first call.
func RestoreProcs() {
	orig, ok := os.LookupEnv(EnvProcs)
	if !ok {
		return
	}
	os.Unsetenv(EnvProcs)
	if v, set := strings.CutPrefix(orig, "="); set {
		os.Setenv("GOMAXPROCS", v)
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			runtime.GOMAXPROCS(n)
			return
		}
	} else {
		os.Unsetenv("GOMAXPROCS")
	}
	runtime.SetDefaultGOMAXPROCS()
}
