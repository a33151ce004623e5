//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// tree is a process tree for the lifetime tests. Level 0 is started by the
// test; each level writes its pid to Pids[level], starts level+1 (a daemon
// unless NonDaemon), and waits for its context to end; then it writes 1 to
// Cancelled[level].
type tree struct {
	Pids      *multiproc.Array[int64]
	Cancelled *multiproc.Array[int64]
	Level     int
	Depth     int
	NonDaemon bool
}

var chain *multiproc.Func[tree, int]

func init() {
	chain = multiproc.Register("test.chain", func(ctx context.Context, tr tree) (int, error) {
		tr.Pids.Store(tr.Level, int64(os.Getpid()))
		if tr.Level+1 < tr.Depth {
			next := tr
			next.Level++
			p := chain.Process(next)
			p.Daemon = !tr.NonDaemon
			if err := p.Start(); err != nil {
				return 0, err
			}
		}
		<-ctx.Done()
		tr.Cancelled.Store(tr.Level, 1)
		return 0, nil
	})
}

func startTree(t *testing.T, depth int, nonDaemon bool) (tree, *multiproc.Process) {
	t.Helper()
	tr := tree{Depth: depth, NonDaemon: nonDaemon}
	tr.Pids, _ = multiproc.NewArray[int64](depth)
	tr.Cancelled, _ = multiproc.NewArray[int64](depth)
	root := chain.Process(tr)
	if err := root.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := range depth {
			if pid := tr.Pids.Load(i); pid > 0 {
				syscall.Kill(int(pid), syscall.SIGKILL)
			}
		}
	})
	waitFor(t, 20*time.Second, "the process tree to start", func() bool { return tr.Pids.Load(depth-1) != 0 })
	return tr, root
}

func TestDaemonTreeDiesWithKilledParent(t *testing.T) {
	tr, root := startTree(t, 3, false)
	child, grandchild := int(tr.Pids.Load(1)), int(tr.Pids.Load(2))
	if gone(child) || gone(grandchild) {
		t.Fatal("tree not running")
	}
	root.Kill() // SIGKILL: the parent gets no chance to clean up
	start := time.Now()
	// Within about a millisecond on an idle machine; the bound is for a
	// loaded one under the race detector, and they would never die
	// without Pdeathsig and the lifeline.
	waitFor(t, 10*time.Second, "the daemon child and grandchild to die", func() bool { return gone(child) && gone(grandchild) })
	t.Logf("daemon child and grandchild died %v after their parent's SIGKILL", time.Since(start))
}

func TestNonDaemonChildSeesParentGone(t *testing.T) {
	tr, root := startTree(t, 2, true)
	child := int(tr.Pids.Load(1))
	root.Kill()
	// A non-daemon child outlives its parent, but its context ends.
	waitFor(t, 5*time.Second, "the orphan's context to be cancelled", func() bool { return tr.Cancelled.Load(1) == 1 })
	waitFor(t, 5*time.Second, "the orphan to finish", func() bool { return gone(child) })
}

func TestTerminatedParentTakesDaemons(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	tr := tree{Depth: 2}
	tr.Pids, _ = multiproc.NewArray[int64](2)
	tr.Cancelled, _ = multiproc.NewArray[int64](2)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	p := chain.Process(tr)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the grandchild", func() bool { return tr.Pids.Load(1) != 0 })
	grandchild := int(tr.Pids.Load(1))
	p.Terminate()
	p.Join(short)
	// SIGTERM kills the child by default action: its daemon child sees
	// the lifeline close and dies too.
	waitFor(t, 5*time.Second, "the daemon grandchild to die", func() bool { return gone(grandchild) })
}

type family struct {
	Pids   *multiproc.Array[int64] // [daemon child, non-daemon child]
	Joined *multiproc.Value[int64] // set by the non-daemon child as it ends
}

var (
	sleeper = multiproc.Register("test.sleeper", func(ctx context.Context, f family) (int, error) {
		f.Pids.Store(0, int64(os.Getpid()))
		time.Sleep(time.Minute)
		return 0, nil
	})
	slowFinisher = multiproc.Register("test.slowFinisher", func(ctx context.Context, f family) (int, error) {
		f.Pids.Store(1, int64(os.Getpid()))
		time.Sleep(300 * time.Millisecond)
		f.Joined.Store(1)
		return 0, nil
	})
	// returnsAtOnce starts a daemon and a non-daemon child and returns.
	returnsAtOnce = multiproc.Register("test.returnsAtOnce", func(ctx context.Context, f family) (int, error) {
		d := sleeper.Process(f)
		d.Daemon = true
		if err := d.Start(); err != nil {
			return 0, err
		}
		if err := slowFinisher.Process(f).Start(); err != nil {
			return 0, err
		}
		return 0, nil
	})
)

func TestReturningChildJoinsAndKillsItsChildren(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	f := family{}
	f.Pids, _ = multiproc.NewArray[int64](2)
	f.Joined, _ = multiproc.NewValue[int64](0)
	if _, err := returnsAtOnce.Call(ctx, f); err != nil {
		t.Fatal(err)
	}
	if f.Joined.Load() != 1 {
		t.Fatal("the child exited before its non-daemon child finished")
	}
	daemon := int(f.Pids.Load(0))
	t.Cleanup(func() { syscall.Kill(daemon, syscall.SIGKILL) })
	waitFor(t, 2*time.Second, "the daemon grandchild to be killed", func() bool { return gone(daemon) })
}
