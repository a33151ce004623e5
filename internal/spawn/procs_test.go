package spawn

import (
	"slices"
	"testing"
)

func TestProcsEnv(t *testing.T) {
	for _, c := range []struct {
		in, want []string
	}{
		{[]string{"A=1", "B=2"}, []string{"A=1", "B=2", "GOMAXPROCS=1", EnvProcs + "=-"}},
		{[]string{"GOMAXPROCS=3", "A=1"}, []string{"A=1", "GOMAXPROCS=1", EnvProcs + "==3"}},
		{[]string{"GOMAXPROCS=", "A=1"}, []string{"A=1", "GOMAXPROCS=1", EnvProcs + "=="}},
		// A stale one (from a child that never restored) is not passed on.
		{[]string{EnvProcs + "==7", "GOMAXPROCS=2"}, []string{"GOMAXPROCS=1", EnvProcs + "==2"}},
	} {
		if got := procsEnv(slices.Clone(c.in)); !slices.Equal(got, c.want) {
			t.Errorf("procsEnv(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
