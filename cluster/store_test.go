package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Fault 7: the store directory of a client that was SIGKILLed is removed
// by the next client on the machine; those of live owners stay.
func TestStaleStoreRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	// A real client, SIGKILLed: a host process of this test binary
	// that runs Connect (the env role "head").
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"=head")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf) // "ready": its store exists
	if string(buf[:n]) != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the head said %q", buf[:n])
	}
	cmd.Process.Kill()
	cmd.Wait()
	dead, _ := filepath.Glob(filepath.Join(tmp, storePattern))
	if len(dead) != 1 {
		t.Fatalf("store directories of the killed client: %v", dead)
	}
	mk := func(name, owner string) string {
		d := filepath.Join(tmp, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			os.WriteFile(filepath.Join(d, ownerFile), []byte(owner), 0o600)
		}
		return d
	}
	start, err := procStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	live := mk("multiproc-cluster-live", fmt.Sprintf("%d %s\n", os.Getpid(), start))
	reused := mk("multiproc-cluster-reused", fmt.Sprintf("%d 1\n", os.Getpid()))
	fresh := mk("multiproc-cluster-fresh", "")
	connect(t, testCtx(t, time.Minute), Options{Processes: -1})
	for d, want := range map[string]bool{dead[0]: false, live: true, reused: false, fresh: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}
