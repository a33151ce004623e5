package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Temporary files.
//
// Every file the copy writes is first written under a hidden name beside
// its final name and renamed when complete, so that no file is ever seen
// half-written under its final name. The hidden name says who wrote it:
//
//	.NAME.multiproc-PID-START-SEQ
//
// PID is the copying (parent) process, START its start time in clock ticks
// since boot (field 22 of /proc/PID/stat), SEQ a counter. A directory the
// tree copy makes where none was is named so too while its tree is copied
// (makeDir), and the files inside it under their final names. A copy that
// is interrupted removes its own files in flight and puts its directories
// in place; a copy that is SIGKILLed cannot, and leaves them. The next copy into the same directory removes every such file
// whose writer is dead: no process PID, or one that started at another
// time (the pid was recycled). A live copy's files are never touched,
// since PID and START together name one process for the life of the
// machine. The copy processes are the parent's pool workers: they die with
// it (Pool workers are daemons), so a dead parent means no writer at all.

const tempMark = ".multiproc-"

// maxTempBase bounds the part of the final name kept in the hidden name,
// so that it stays under NAME_MAX (255 bytes) with the mark and numbers.
const maxTempBase = 180

var (
	selfStartOnce sync.Once
	selfPid       int    // this process's pid (os.Getpid is a system call)
	selfStart     uint64 // this process's start time, in clock ticks since boot
	selfWriter    string // "PID-START"
	tempSeq       atomic.Uint64
)

// procStart returns the start time of process pid from /proc/pid/stat,
// and false when there is no such process.
func procStart(pid int) (uint64, bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var buf [1024]byte // the line is short; a bounded read
	n, _ := io.ReadFull(f, buf[:])
	line := buf[:n]
	// The name, field 2, is in parentheses and may hold anything: the
	// fields that follow start after its last ')'.
	i := bytes.LastIndexByte(line, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(line[i+1:]))
	// fields[0] is field 3 (state); the start time is field 22.
	if len(fields) < 20 {
		return 0, false
	}
	st, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return st, true
}

// tempName returns a fresh hidden name for the file dst, in dst's directory.
func tempName(dst string) string {
	dir, base := filepath.Split(dst)
	return dir + tempBase(base, tempWriter(), tempSeq.Add(1))
}

// tempSeqs reserves n numbers for hidden names and returns the first.
func tempSeqs(n int) uint64 {
	return tempSeq.Add(uint64(n)) - uint64(n) + 1
}

// tempWriter is the PID-START part of this process's hidden names.
func tempWriter() string {
	selfStartOnce.Do(func() {
		selfPid = os.Getpid()
		selfStart, _ = procStart(selfPid)
		selfWriter = strconv.Itoa(selfPid) + "-" + strconv.FormatUint(selfStart, 10)
	})
	return selfWriter
}

// tempBase is the hidden name of a file named base, written by writer
// (tempWriter: a pool worker writes under its parent's) with number seq.
func tempBase(base, writer string, seq uint64) string {
	if len(base) > maxTempBase {
		base = base[:maxTempBase]
	}
	return "." + base + tempMark + writer + "-" + strconv.FormatUint(seq, 10)
}

// parseTempName returns the writer's pid and start time of a hidden name
// made by tempName, and false for any other name.
func parseTempName(name string) (pid int, start uint64, ok bool) {
	if !strings.HasPrefix(name, ".") {
		return 0, 0, false
	}
	i := strings.LastIndex(name, tempMark)
	if i < 0 {
		return 0, 0, false
	}
	parts := strings.Split(name[i+len(tempMark):], "-")
	if len(parts) != 3 {
		return 0, 0, false
	}
	for _, p := range parts {
		// Only the canonical form tempName writes: digits, no leading zero.
		if p == "" || len(p) > 19 || strings.TrimLeft(p, "0123456789") != "" || (len(p) > 1 && p[0] == '0') {
			return 0, 0, false
		}
	}
	p, err1 := strconv.Atoi(parts[0])
	s, err2 := strconv.ParseUint(parts[1], 10, 64)
	_, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || p <= 0 {
		return 0, 0, false
	}
	return p, s, true
}

// writerDead reports whether the writer of a hidden file is certainly
// gone: no process pid, or one that is not the one that started at start.
func writerDead(pid int, start uint64) bool {
	if pid == os.Getpid() {
		return false
	}
	st, alive := procStart(pid)
	return !alive || st != start
}

// removeStaleTemps removes, from directory dir, the hidden files (and
// directories, with what they hold) of copies whose copier is dead. It returns how many it removed; a directory it
// cannot read is left alone (the copy into it reports its own errors).
func removeStaleTemps(dir string) int {
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	defer f.Close()
	removed := 0
	for {
		names, err := f.Readdirnames(1024)
		for _, name := range names {
			if !strings.Contains(name, tempMark) {
				continue
			}
			pid, start, ok := parseTempName(name)
			if !ok || !writerDead(pid, start) {
				continue
			}
			// A new tree's hidden directory (makeDir) goes with all it
			// holds: the name is ours, and its writer is dead.
			p := filepath.Join(dir, name)
			if err := os.Remove(p); err == nil || os.RemoveAll(p) == nil {
				removed++
			}
		}
		if err != nil { // io.EOF at the end, or a failure: done either way
			return removed
		}
	}
}
