package bench

import (
	"bufio"
	"os"
	"path"
	"strings"
)

// Linking says how the running program was linked: "dynamic" when a
// shared library is mapped into it (the dynamic loader and libc, as in a
// build with cgo, which package net asks for whenever a C compiler is
// present), "static" when none is, "" when /proc/self/maps cannot be read.
//
// It is in the report because every process this package starts is this
// program started again: on the reference VM a dynamically linked
// cmd/multiproc took 11.2–13.4 ms a start, the same code built with
// CGO_ENABLED=0 9.3–11.1 ms (TARGETS.md, "What a start costs"). It reads
// /proc/self/maps rather than the executable's ELF headers: debug/elf
// would add its packages' initialisation (compress/flate, zstd, dwarf) to
// every child's start, the very cost reported here.
func Linking() string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && sharedLibrary(fields[5]) {
			return "dynamic"
		}
	}
	if sc.Err() != nil {
		return ""
	}
	return "static"
}

// sharedLibrary reports a file named like a shared library: NAME.so, or
// NAME.so.VERSION, the version digits and dots (libc.so.6,
// ld-linux-x86-64.so.2).
func sharedLibrary(file string) bool {
	base := path.Base(file)
	i := strings.LastIndex(base, ".so")
	if i <= 0 {
		return false
	}
	version := base[i+3:]
	if version == "" {
		return true
	}
	if version[0] != '.' || len(version) == 1 {
		return false
	}
	return strings.Trim(version, ".0123456789") == ""
}
