//go:build linux && (amd64 || arm64) && race

package multiproc_test

// raceBuild is set under -race, where every worker start costs ten times
// as much: tests that start hundreds of workers use fewer.
const raceBuild = true
