//go:build linux && (amd64 || arm64)

package ring

// Test harness: the test binary re-executes itself (/proc/self/exe) as a
// helper child when RING_TEST_ROLE is set. A child gets the queue's memfd as
// fd 3 and a "report" memfd as fd 4, in which it records what it did with
// atomic stores, so that the parent can account exactly even for a child it
// SIGKILLed.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
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
)

const (
	roleEnv  = "RING_TEST_ROLE"
	pillID   = 0xffffffff
	msgHdr   = 8 // producer id, sequence number
	repProds = 16
	repCons  = 16
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runChild(role))
	}
	os.Exit(m.Run())
}

// ---- messages ----

// pattern is the filler that messages are cut from: copying and comparing
// whole ranges keeps the tests fast under the race detector.
var pattern = func() []byte {
	b := make([]byte, 256<<10)
	rng := rand.New(rand.NewPCG(42, 42))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
}()

const maxTestMsg = 192 << 10

func filler(id, seq uint32, n int) []byte {
	off := (int(id)*7919 + int(seq)*31) % (64 << 10)
	return pattern[off : off+n]
}

// makeMsg builds message seq of producer id with size bytes (>= msgHdr,
// <= maxTestMsg) whose filler depends on (id, seq), so that a consumer can
// check it.
func makeMsg(buf []byte, id, seq uint32, size int) []byte {
	size = max(size, msgHdr)
	buf = binary.LittleEndian.AppendUint32(buf[:0], id)
	buf = binary.LittleEndian.AppendUint32(buf, seq)
	return append(buf, filler(id, seq, size-msgHdr)...)
}

func parseMsg(b []byte) (id, seq uint32, ok bool) {
	if len(b) < msgHdr || len(b) > maxTestMsg {
		return 0, 0, false
	}
	id = binary.LittleEndian.Uint32(b)
	seq = binary.LittleEndian.Uint32(b[4:])
	return id, seq, bytes.Equal(b[msgHdr:], filler(id, seq, len(b)-msgHdr))
}

func msgSize(rng *rand.Rand, lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return lo + rng.IntN(hi-lo+1)
}

// ---- report segment (fd 4) ----
//
//	producer p:  at p*64: seq+1 of the last Put that returned
//	consumer c:  at consBase(c): count, fifo errors, bad messages, duplicates,
//	             last recorded key+1, then a bitmap over (producer, seq)
type report struct {
	seg  *shm.Segment
	nseq int
}

const (
	rcCount = 0
	rcFifo  = 8
	rcBad   = 16
	rcDup   = 24
	rcLast  = 32
	rcRecov = 40 // side locks this consumer took over from dead holders
	rcBits  = 64
)

func reportSize(nseq int) int { return 4096 + repCons*consRegion(nseq) }

func consRegion(nseq int) int { return (rcBits + repProds*nseq/8 + 64 + 63) &^ 63 }

func newReport(t testing.TB, nseq int) *report {
	nseq = (nseq + 63) &^ 63 // whole bitmap words per producer
	seg, err := shm.Create("report", reportSize(nseq))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	return &report{seg: seg, nseq: nseq}
}

func (rp *report) w64(off int) *uint64 { return word64(rp.seg.Bytes(), off) }

func (rp *report) lastPut(p int) *uint64 { return rp.w64(p * 64) }

// recov is where producer p reports the locks it took over from the dead.
func (rp *report) recov(p int) *uint64 { return rp.w64(p*64 + 8) }

// stop, once set, makes producers return after their current Put.
func (rp *report) stop() *uint64 { return rp.w64(repProds * 64) }

func (rp *report) cons(c, field int) *uint64 { return rp.w64(4096 + c*consRegion(rp.nseq) + field) }

func (rp *report) bitWord(c int, id, seq uint32) (*uint64, uint64) {
	k := int(id)*rp.nseq + int(seq)
	return rp.w64(4096 + c*consRegion(rp.nseq) + rcBits + k/64*8), 1 << (k % 64)
}

func (rp *report) has(c int, id, seq uint32) bool {
	w, bit := rp.bitWord(c, id, seq)
	return atomic.LoadUint64(w)&bit != 0
}

// count is how many messages of producer id consumer c recorded.
func (rp *report) count(c int, id uint32) int {
	n := 0
	for s := 0; s < rp.nseq; s += 64 {
		w, _ := rp.bitWord(c, id, uint32(s))
		n += bits.OnesCount64(atomic.LoadUint64(w))
	}
	return n
}

func (rp *report) get(c, field int) uint64 { return atomic.LoadUint64(rp.cons(c, field)) }

// consumer is the recording state of one consuming child.
type consumer struct {
	rp      *report
	c       int
	lastSeq [repProds]int64
}

// record notes one received message (before its Get commits, when called
// from the hook: a consumer killed after this is accounted for exactly).
func (cs *consumer) record(b []byte) (pill bool) {
	id, seq, ok := parseMsg(b)
	if ok && id == pillID {
		return true
	}
	rp, c := cs.rp, cs.c
	if !ok || id >= repProds || int(seq) >= rp.nseq {
		atomic.AddUint64(rp.cons(c, rcBad), 1)
		return false
	}
	atomic.StoreUint64(rp.cons(c, rcLast), uint64(id)<<32|uint64(seq)+1)
	w, bit := rp.bitWord(c, id, seq)
	if atomic.OrUint64(w, bit)&bit != 0 {
		atomic.AddUint64(rp.cons(c, rcDup), 1)
	}
	if int64(seq) <= cs.lastSeq[id]-1 {
		atomic.AddUint64(rp.cons(c, rcFifo), 1)
	}
	cs.lastSeq[id] = int64(seq) + 1
	atomic.AddUint64(rp.cons(c, rcCount), 1)
	return false
}

// ---- children ----

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func die() { syscall.Kill(os.Getpid(), syscall.SIGKILL); select {} }

func runChild(role string) int {
	r, err := Open(3)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open queue:", err)
		return 2
	}
	var rp *report
	if envInt("RING_NSEQ", 0) > 0 { // the report segment is fd 4
		seg, err := shm.Open(4)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child: open report:", err)
			return 2
		}
		rp = &report{seg: seg, nseq: envInt("RING_NSEQ", 0)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(envInt("RING_TIMEOUT_MS", 60000))*time.Millisecond)
	defer cancel()

	// Optional death at the n-th pass through a hook point.
	var hooks []func(hookPoint, []byte)
	if pt := envInt("RING_DIE_POINT", 0); pt != 0 {
		nth := envInt("RING_DIE_NTH", 1)
		hooks = append(hooks, func(p hookPoint, _ []byte) {
			if p == hookPoint(pt) {
				if nth--; nth == 0 {
					die()
				}
			}
		})
	}
	var cs *consumer
	if role == "consume" && rp != nil {
		cs = &consumer{rp: rp, c: envInt("RING_ID", 0)}
		hooks = append([]func(hookPoint, []byte){func(p hookPoint, b []byte) {
			if p == hookGetCopied {
				cs.record(b)
			}
		}}, hooks...)
	}
	if len(hooks) > 0 {
		testHook = func(p hookPoint, b []byte) {
			for _, h := range hooks {
				h(p, b)
			}
		}
	}

	switch role {
	case "produce":
		id := uint32(envInt("RING_ID", 0))
		n := envInt("RING_N", 0)
		lo, hi := envInt("RING_MIN", msgHdr), envInt("RING_MAX", 64)
		rng := rand.New(rand.NewPCG(uint64(id), uint64(os.Getpid())))
		var buf []byte
		if n <= 0 && rp != nil {
			n = rp.nseq
		}
		for seq := 0; n <= 0 || seq < n; seq++ {
			if rp != nil && atomic.LoadUint64(rp.stop()) != 0 {
				break
			}
			buf = makeMsg(buf, id, uint32(seq), msgSize(rng, lo, hi))
			if err := r.Put(ctx, buf); err != nil {
				fmt.Fprintln(os.Stderr, "child: put:", err)
				return 1
			}
			if rp != nil {
				atomic.StoreUint64(rp.lastPut(int(id)), uint64(seq)+1)
				atomic.StoreUint64(rp.recov(int(id)), uint64(r.recovered.Load()))
			}
		}
	case "consume":
		var buf []byte
		for {
			buf, err = r.Get(ctx, buf)
			if err != nil {
				fmt.Fprintln(os.Stderr, "child: get:", err)
				return 1
			}
			if cs != nil {
				atomic.StoreUint64(cs.rp.cons(cs.c, rcRecov), uint64(r.recovered.Load()))
			}
			if id, _, ok := parseMsg(buf); ok && id == pillID {
				return 0
			}
		}
	case "bigput":
		msg := bigMsg(envInt("RING_N", 64<<20))
		if err := r.Put(ctx, msg); err != nil {
			fmt.Fprintln(os.Stderr, "child: put:", err)
			return 1
		}
	case "bench-produce":
		return benchProduce(r)
	case "bench-consume":
		return benchConsume(r)
	default:
		fmt.Fprintln(os.Stderr, "child: unknown role", role)
		return 2
	}
	return 0
}

// bigMsg is n bytes made of 64 KiB chunks cut from pattern at offsets
// that depend on the chunk's index (a misplaced chunk shows).
func bigMsg(n int) []byte {
	b := make([]byte, n)
	const chunk = 64 << 10
	for k := 0; k*chunk < n; k++ {
		off := (k * 4099) % (128 << 10)
		copy(b[k*chunk:], pattern[off:off+chunk])
	}
	return b
}

// child is a running helper process.
type child struct {
	desc   string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// spawn starts the test binary as role on r, with rp (if any) as fd 4. The
// child is killed when ctx ends or the test finishes.
func spawn(t testing.TB, ctx context.Context, r *Ring, rp *report, role string, env ...string) *child {
	t.Helper()
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, childGorace())
	cmd.Env = append(cmd.Env, env...)
	if rp != nil {
		cmd.Env = append(cmd.Env, "RING_NSEQ="+strconv.Itoa(rp.nseq))
	}
	files := []*os.File{dupFile(t, r.Fd(), "queue")}
	if rp != nil {
		files = append(files, dupFile(t, rp.seg.Fd(), "report"))
	}
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	ch := &child{desc: fmt.Sprint(role, env), cmd: cmd, done: make(chan error, 1)}
	cmd.Stderr = &ch.stderr
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	go func() { ch.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-ch.done
		ch.done <- nil
	})
	return ch
}

// childGorace stops race-enabled children from sleeping a second at exit
// (the race runtime's default atexit_sleep_ms=1000).
func childGorace() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

func dupFile(t testing.TB, fd int, name string) *os.File {
	nfd, err := syscall.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(nfd)
	return os.NewFile(uintptr(nfd), name)
}

// wait waits for the child to exit and fails the test unless it exited 0.
func (c *child) wait(t testing.TB, ctx context.Context) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Fatalf("child %s: %v\n%s", c.desc, err, c.stderr.String())
		}
	case <-ctx.Done():
		c.kill(t)
		t.Fatalf("child %s did not finish: %v\n%s", c.desc, ctx.Err(), c.stderr.String())
	}
}

// kill SIGKILLs the child and waits until it is reaped.
func (c *child) kill(t testing.TB) {
	t.Helper()
	c.cmd.Process.Kill()
	err := <-c.done
	c.done <- err
}

func threads(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Threads:")); ok {
			n, _ := strconv.Atoi(string(bytes.TrimSpace(v)))
			return n
		}
	}
	t.Fatal("no Threads: line")
	return 0
}
