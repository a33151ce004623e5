//go:build !(linux && (amd64 || arm64))

package multiproc

// multiproc runs on Linux, on amd64 and arm64, only: it re-executes
// /proc/self/exe, shares memfd memory mapped with little-endian atomics,
// and waits on futexes. This undefined name is the one error a build on
// any other platform reports.
var _ = multiproc_runs_on_Linux_amd64_and_arm64_only
