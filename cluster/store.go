package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The embedded server's store lives in a temporary directory
// "multiproc-cluster-*" that Close removes. A process killed before it
// could (SIGKILL, a crash) leaves it behind; so the directory records its
// owner (ownerFile: pid and the process's start time, which tells a pid
// reused by another process apart), and every new embedded server first
// removes the directories of owners that are gone.

const (
	storePattern = "multiproc-cluster-*"
	ownerFile    = "owner"
	// orphanAge: a directory with no owner file (one being made, or one
	// of an older version) is removed only when this old.
	orphanAge = 24 * time.Hour
)

// procStart is the start time of process pid (field 22 of
// /proc/pid/stat, in clock ticks since boot).
func procStart(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", errors.New("malformed stat")
	}
	return f[19], nil
}

// makeStore makes this process's store directory, after removing those
// of dead owners.
func makeStore() (string, error) {
	removeStaleStores(os.TempDir())
	dir, err := os.MkdirTemp("", storePattern)
	if err != nil {
		return "", err
	}
	start, err := procStart(os.Getpid())
	if err != nil {
		start = "?"
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), fmt.Appendf(nil, "%d %s\n", os.Getpid(), start), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// removeStaleStores removes the store directories in tmp whose owner is
// gone.
func removeStaleStores(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, storePattern))
	for _, d := range dirs {
		if staleStore(d) {
			os.RemoveAll(d)
		}
	}
}

func staleStore(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Sys() == nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return errors.Is(err, os.ErrNotExist) && time.Since(fi.ModTime()) > orphanAge
	}
	var pid int
	var start string
	if _, err := fmt.Sscanf(string(b), "%d %s", &pid, &start); err != nil || pid <= 0 {
		return time.Since(fi.ModTime()) > orphanAge
	}
	now, err := procStart(pid)
	if errors.Is(err, os.ErrNotExist) {
		return true // no such process
	}
	return err == nil && start != "?" && now != start // the pid is another process's now
}
