// Command shared_memory shares memory by name with python3, and counts in a
// Dict from four processes.
//
// First, Go creates a SharedMemory block and a ShareableList; a python3
// process (any of 3.8 to 3.13; skipped with a message if python3 is not
// in PATH) opens the block by name, reads what Go wrote and writes its
// answer into it, and doubles the list's number (from 3.9: 3.8's lists
// have another layout). Then four Go processes each add 1 to a Dict entry
// 10,000 times with Update, and nothing is lost — the `d[k] += 1` that
// Python's Manager().dict() loses without a lock.
//
//	go run ./examples/shared_memory
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/multiproc-go/multiproc"
)

// pyReader opens the block without registering it with Python's resource
// tracker (which would unlink Go's block when python3 exits).
const pyReader = `
import sys
from multiprocessing import shared_memory as sm, resource_tracker as rt
if sys.version_info >= (3, 13):
    shm = sm.SharedMemory(sys.argv[1], track=False)
else:
    shm = sm.SharedMemory(sys.argv[1])
    rt.unregister(shm._name, "shared_memory")
msg = bytes(shm.buf[:32]).rstrip(b"\0").decode()
print("  python%d.%d read %r from %s" % (sys.version_info[0], sys.version_info[1], msg, shm.name))
shm.buf[32:50] = b"hello from python!"
shm.close()
if sys.version_info >= (3, 9):
    l = sm.ShareableList(name=sys.argv[2])
    rt.unregister(l.shm._name, "shared_memory")
    l[0] = l[0] * 2
    l[1] = "python was here"
    l.shm.close()
`

type countJob struct {
	D *multiproc.Dict[string, int]
	N int
}

var count = multiproc.Register("examples.count", func(ctx context.Context, j countJob) (int, error) {
	for range j.N {
		if _, err := j.D.Update("hits", func(old int, _ bool) int { return old + 1 }); err != nil {
			return 0, err
		}
	}
	return j.N, nil
})

func main() {
	multiproc.Main()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "shared_memory:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// 1. A block by name, shared with python3.
	shm, err := multiproc.CreateSharedMemory("", 4096) // "": a fresh "psm_..." name
	if err != nil {
		return err
	}
	defer shm.Unlink() // nothing is unlinked behind your back: say when
	defer shm.Close()
	copy(shm.Bytes(), "hello from Go")
	list, err := multiproc.NewShareableList("", []any{21, "a string slot of 32 bytes......."})
	if err != nil {
		return err
	}
	defer list.Unlink()
	defer list.Close()
	fmt.Printf("Go made block %s and list %s\n", shm.Name(), list.Name())

	if py, err := exec.LookPath("python3"); err != nil {
		fmt.Println("  python3 not found: skipping its half")
	} else {
		cmd := exec.CommandContext(ctx, py, "-c", pyReader, shm.Name(), list.Name())
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("python3: %w", err)
		}
		fmt.Printf("Go reads python's answer: %q\n", shm.Bytes()[32:50])
		n, _ := list.Get(0)
		s, _ := list.Get(1)
		fmt.Printf("the list now holds %v and %q\n", n, s)
	}

	// 2. A Dict counted by four processes.
	d, err := multiproc.NewDict[string, int]()
	if err != nil {
		return err
	}
	defer d.Close()
	var ps []*multiproc.Process
	for range 4 {
		p := count.Process(countJob{D: d, N: 10000})
		if err := p.Start(); err != nil {
			return err
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.Join(ctx); err != nil {
			return err
		}
	}
	hits, _, err := d.Load("hits")
	if err != nil {
		return err
	}
	fmt.Printf("four processes counted %d hits in one Dict (want 40000)\n", hits)
	if hits != 40000 {
		return errors.New("updates were lost")
	}
	return nil
}
