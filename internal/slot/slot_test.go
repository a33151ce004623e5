//go:build linux && (amd64 || arm64)

package slot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc/internal/shm"
	"github.com/multiproc-go/multiproc/internal/wait"
)

// The test binary re-executes itself as a worker when SLOT_TEST_ROLE is
// set: it maps the slots' memfd (fd 3) and answers every task with
// answerOf, until a task says stop.
const roleEnv = "SLOT_TEST_ROLE"

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) != "" {
		os.Exit(runWorker())
	}
	os.Exit(m.Run())
}

var stopTask = []byte("stop")

// answerOf is the worker's answer to a task: its bytes reversed, then
// the ticket. A task posted for the channel (nil) gets a channel answer.
func answerOf(ticket uint32, task []byte) []byte {
	out := make([]byte, 0, len(task)+4)
	for i := len(task) - 1; i >= 0; i-- {
		out = append(out, task[i])
	}
	return binary.LittleEndian.AppendUint32(out, ticket)
}

// taskFor is the task of ticket: up to Payload-4 bytes that depend on the
// ticket, or nil (a task "on the channel") for one in 16.
func taskFor(rng *rand.Rand, ticket uint32) []byte {
	if rng.IntN(16) == 0 {
		return nil
	}
	n := rng.IntN(Payload - 4 + 1)
	if rng.IntN(2) == 0 {
		n = rng.IntN(64)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(int(ticket) + i*7)
	}
	return b
}

// runWorker is the worker's loop, as the pool's worker runs it. With
// SLOT_DIE_AT=k it SIGKILLs itself while it writes the result of the
// first inline task from ticket k on, half of it written and not
// published.
func runWorker() int {
	seg, err := shm.Open(3)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := New(seg.Bytes())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	dieAt, _ := strconv.Atoi(os.Getenv("SLOT_DIE_AT"))
	var spin wait.Spinner
	var buf []byte
	for ticket := uint32(0); ; ticket++ {
		Await(context.Background(), s.TaskBell(), &spin, func() bool { return s.Posted() != ticket })
		task, inline, err := s.Task(ticket, buf[:0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		buf = task
		if inline && bytes.Equal(task, stopTask) {
			return 0
		}
		if !inline {
			s.Answer(ticket, nil)
			continue
		}
		out := answerOf(ticket, task)
		if dieAt > 0 && ticket >= uint32(dieAt) {
			b := s.slot(ticket)
			copy(b[slotHdr:], out[:len(out)/2])
			binary.LittleEndian.PutUint32(b[8:], uint32(len(out)))
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		s.Answer(ticket, out)
	}
}

// worker is a worker process on a fresh set of slots.
type worker struct {
	s    *Slots
	seg  *shm.Segment
	cmd  *exec.Cmd
	dead atomic.Bool
	done chan struct{}
	errb strings.Builder
}

func startWorker(t *testing.T, env ...string) *worker {
	t.Helper()
	seg, err := shm.Create("slot-test", Size)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(seg.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(seg.Fd())
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "slots")
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), roleEnv+"=worker", "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	w := &worker{s: s, seg: seg, cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &w.errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	go func() {
		cmd.Wait()
		// What the pool's channel reader does when the channel ends.
		w.dead.Store(true)
		s.ResultBell().Ring()
		close(w.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-w.done
		seg.Close()
	})
	return w
}

// drive posts tasks 0..n-1 (at most Count in flight) and checks every
// result; it returns how many were answered, and stops early, with no
// error, once the worker is dead.
func drive(ctx context.Context, w *worker, n int, seed uint64) (int, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	tasks := map[uint32][]byte{}
	var spin wait.Spinner
	posted, taken := uint32(0), uint32(0)
	for taken < uint32(n) {
		for posted < uint32(n) && posted-taken < Count {
			tasks[posted] = taskFor(rng, posted)
			w.s.Post(posted, tasks[posted])
			posted++
		}
		err := Await(ctx, w.s.ResultBell(), &spin, func() bool { return w.s.Answered() != taken || w.dead.Load() })
		if err != nil {
			return int(taken), err
		}
		a := w.s.Answered()
		if a-taken > posted-taken {
			return int(taken), fmt.Errorf("answered %d with %d posted", a, posted)
		}
		for ; taken != a; taken++ {
			res, inline, err := w.s.Result(taken)
			if err != nil {
				return int(taken), fmt.Errorf("result %d: %w", taken, err)
			}
			task := tasks[taken]
			delete(tasks, taken)
			if task == nil {
				if inline {
					return int(taken), fmt.Errorf("task %d went on the channel, its result came inline", taken)
				}
				continue
			}
			if !inline || !bytes.Equal(res, answerOf(taken, task)) {
				return int(taken), fmt.Errorf("result %d (%d bytes, inline %v) is not the answer to its task (%d bytes)", taken, len(res), inline, len(task))
			}
		}
		if w.dead.Load() && w.s.Answered() == taken {
			return int(taken), nil
		}
	}
	return int(taken), nil
}

func stopWorker(t *testing.T, ctx context.Context, w *worker, ticket uint32) {
	t.Helper()
	w.s.Post(ticket, stopTask)
	select {
	case <-w.done:
	case <-ctx.Done():
		t.Fatalf("the worker did not stop: %v", ctx.Err())
	}
	if code := w.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("worker exited %d: %s", code, w.errb.String())
	}
}

// Tasks of every size, inline and on the channel, through a worker
// process: every result is the answer to its own task, in order, with
// the pool and the worker both spinning and sleeping.
func TestProcRoundTrips(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := 8000
	if testing.Short() {
		n = 2000
	}
	w := startWorker(t)
	got, err := drive(ctx, w, n, 1)
	if err != nil || got != n {
		t.Fatalf("%d of %d round trips: %v\n%s", got, n, err, w.errb.String())
	}
	stopWorker(t, ctx, w, uint32(n))
}

// A worker SIGKILLed while it writes a result (half of it in the slot,
// its length too, not published): the pool sees every earlier result
// whole, and not that one; its waiter wakes for the death.
func TestProcWorkerKilledMidResult(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, dieAt := range []int{1, 7, 8, 333} {
		w := startWorker(t, "SLOT_DIE_AT="+strconv.Itoa(dieAt))
		got, err := drive(ctx, w, 1000, uint64(dieAt))
		if err != nil {
			t.Fatalf("die at %d: %v\n%s", dieAt, err, w.errb.String())
		}
		select {
		case <-w.done:
		case <-ctx.Done():
			t.Fatalf("die at %d: the worker did not die", dieAt)
		}
		// It died at the first inline task from dieAt on: one in 16 goes
		// on the channel, so within a few tickets.
		if got < dieAt || got > dieAt+20 {
			t.Fatalf("die at %d: %d results taken", dieAt, got)
		}
		if a := w.s.Answered(); a != uint32(got) {
			t.Fatalf("die at %d: answered %d, %d taken", dieAt, a, got)
		}
	}
}

// A worker the pool SIGKILLs at a random moment: whatever was answered
// is whole, and the waiter never hangs.
func TestProcWorkerKilledAnywhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for i := range rounds {
		w := startWorker(t)
		go func() {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			w.cmd.Process.Kill()
		}()
		if _, err := drive(ctx, w, 1<<30, uint64(i)); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}

// What a worker may write is checked: lengths beyond a slot and unknown
// kinds are ErrCorrupt, never a panic or an out-of-range read.
func TestCorruptSlot(t *testing.T) {
	mem := make([]byte, Size+64)
	off := (64 - int(uintptr(unsafePointer(mem))%64)) % 64
	s, err := New(mem[off : off+Size])
	if err != nil {
		t.Fatal(err)
	}
	b := s.slot(3)
	binary.LittleEndian.PutUint32(b[8:], Payload+1)
	binary.LittleEndian.PutUint32(b[12:], kindInline)
	if _, _, err := s.Result(3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a result longer than a slot: %v", err)
	}
	binary.LittleEndian.PutUint32(b[8:], 4)
	binary.LittleEndian.PutUint32(b[12:], 99)
	if _, _, err := s.Result(3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("an unknown kind: %v", err)
	}
	binary.LittleEndian.PutUint32(b[0:], 1<<31)
	binary.LittleEndian.PutUint32(b[4:], kindInline)
	if _, _, err := s.Task(3, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a task longer than a slot: %v", err)
	}
	if _, err := New(mem[:Size-1]); err == nil {
		t.Fatal("New took a mapping too small")
	}
}

func FuzzSlot(f *testing.F) {
	f.Add(uint32(4), uint32(kindInline), []byte("abcd"))
	f.Add(uint32(0), uint32(kindSocket), []byte{})
	f.Add(uint32(Payload+1), uint32(kindInline), []byte{1})
	f.Add(uint32(1<<32-1), uint32(0), []byte{})
	mem := make([]byte, Size+64)
	off := (64 - int(uintptr(unsafePointer(mem))%64)) % 64
	s, err := New(mem[off : off+Size])
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, n, kind uint32, payload []byte) {
		for _, at := range []int{0, 8} {
			b := s.slot(5)
			copy(b[slotHdr:], payload)
			binary.LittleEndian.PutUint32(b[at:], n)
			binary.LittleEndian.PutUint32(b[at+4:], kind)
			var data []byte
			var inline bool
			var err error
			if at == 0 {
				data, inline, err = s.Task(5, nil)
			} else {
				data, inline, err = s.Result(5)
			}
			if err == nil && (len(data) > Payload || inline && uint32(len(data)) != n || !inline && data != nil) {
				t.Fatalf("n %d kind %d: %d bytes, inline %v", n, kind, len(data), inline)
			}
		}
	})
}
