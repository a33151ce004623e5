package multiproc_test

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// initProcs is what package initialisation saw: in a child, the one P it
// starts with.
var initProcs = runtime.GOMAXPROCS(0)

// initEnv is the GOMAXPROCS variable this process started with.
var initEnv, initEnvSet = os.LookupEnv("GOMAXPROCS")

type procsSeen struct {
	Init, Task int
	Env        string
	EnvSet     bool
	Marker     bool // the restore's own variable is still there
}

var seeProcs = multiproc.Register("test.seeProcs", func(ctx context.Context, _ int) (procsSeen, error) {
	env, set := os.LookupEnv("GOMAXPROCS")
	_, marker := os.LookupEnv("MULTIPROC_GOMAXPROCS")
	return procsSeen{Init: initProcs, Task: runtime.GOMAXPROCS(0), Env: env, EnvSet: set, Marker: marker}, nil
})

// A child initialises its packages with one P, and its task runs with the
// program's GOMAXPROCS: the parent's variable when it has one, else the
// runtime's default.
func TestChildGOMAXPROCS(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	t.Run("default", func(t *testing.T) {
		if initEnvSet {
			t.Skipf("the test runs with GOMAXPROCS=%s", initEnv)
		}
		got, err := seeProcs.Call(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := procsSeen{Init: 1, Task: initProcs} // this process has the default
		if got != want {
			t.Errorf("child saw %+v, want %+v", got, want)
		}
	})
	t.Run("set", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "3") // a new environment: no spare started before is used
		got, err := seeProcs.Call(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := (procsSeen{Init: 1, Task: 3, Env: "3", EnvSet: true}); got != want {
			t.Errorf("child saw %+v, want %+v", got, want)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "lots") // the runtime ignores it: its default
		got, err := seeProcs.Call(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if initEnvSet {
			t.Skip("the test runs with GOMAXPROCS set: its default is unknown")
		}
		if want := (procsSeen{Init: 1, Task: initProcs, Env: "lots", EnvSet: true}); got != want {
			t.Errorf("child saw %+v, want %+v", got, want)
		}
	})
}
