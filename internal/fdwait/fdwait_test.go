//go:build linux && (amd64 || arm64)

package fdwait

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc/internal/wait"
	"golang.org/x/sys/unix"
)

// pair returns the two ends of a non-blocking socketpair, as FDs.
func pair(t *testing.T) (*FD, *FD) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := New(fds[0]), New(fds[1])
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// read waits for one byte on d.
func read(ctx context.Context, d *FD, sp *wait.Spinner) (byte, error) {
	var b [1]byte
	var n int
	var rerr error
	err := d.Read(ctx, sp, func(fd int) bool {
		n, rerr = unix.Read(fd, b[:])
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err == nil && n == 0 {
		err = errors.New("EOF")
	}
	return b[0], err
}

func write(t *testing.T, d *FD, b byte) {
	t.Helper()
	if err := d.Do(func(fd int) { unix.Write(fd, []byte{b}) }); err != nil {
		t.Fatal(err)
	}
}

// waitLongWaits waits until n waits of the package are in Go's poller.
func waitLongWaits(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for longWaits.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d waits in Go's poller, want %d", longWaits.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func setThreadPark(t *testing.T, d time.Duration) {
	old := threadPark.Swap(int64(d))
	t.Cleanup(func() { threadPark.Store(old) })
}

func TestReadGetsData(t *testing.T) {
	a, b := pair(t)
	var sp wait.Spinner
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 200 {
		go b.Do(func(fd int) { unix.Write(fd, []byte{byte(i)}) })
		got, err := read(ctx, a, &sp)
		if err != nil || got != byte(i) {
			t.Fatalf("message %d: got %d, %v", i, got, err)
		}
	}
}

// Each way of ending a wait, both while the waiter holds its thread in
// poll(2) and once it has moved to Go's poller.
func TestWaitsEnd(t *testing.T) {
	for _, long := range []bool{false, true} {
		name := "poll"
		if long {
			name = "poller"
		}
		t.Run(name, func(t *testing.T) {
			if long {
				setThreadPark(t, time.Millisecond)
			} else {
				setThreadPark(t, time.Hour)
			}
			// start runs a read in a goroutine and waits until it is
			// parked: in Go's poller (counted), or past its spin.
			start := func(ctx context.Context, d *FD) chan error {
				done := make(chan error, 1)
				base := longWaits.Load()
				go func() { _, err := read(ctx, d, nil); done <- err }()
				if long {
					waitLongWaits(t, base+1)
				} else {
					waitWake(t, d)
				}
				return done
			}

			a, b := pair(t)
			done := start(context.Background(), a)
			write(t, b, 7)
			if err := result(t, done); err != nil {
				t.Errorf("data: %v", err)
			}

			ctx, cancel := context.WithCancel(context.Background())
			done = start(ctx, a)
			cancel()
			if err := result(t, done); !errors.Is(err, context.Canceled) {
				t.Errorf("cancel: %v", err)
			}

			done = start(context.Background(), a)
			a.SetReadDeadline(time.Unix(1, 0))
			if err := result(t, done); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("deadline: %v", err)
			}
			a.SetReadDeadline(time.Time{})

			done = start(context.Background(), a)
			a.Close()
			if err := result(t, done); !errors.Is(err, ErrClosed) {
				t.Errorf("close: %v", err)
			}
			if _, err := read(context.Background(), a, nil); !errors.Is(err, ErrClosed) {
				t.Errorf("read after close: %v", err)
			}
		})
	}
}

// result is what a wait started in a goroutine returned on done, within
// 30 s.
func result(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the wait did not end")
		return nil
	}
}

// parkedWithEventfd reports whether a waiter of d is parked with an eventfd.
func (d *FD) parkedWithEventfd() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for w := range d.parked {
		if w.evfd >= 0 {
			return true
		}
	}
	return false
}

// waitWake waits until a waiter of d has made its eventfd and is parked
// in poll(2): a thread of this process sleeps in do_sys_poll.
func waitWake(t *testing.T, d *FD) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if d.parkedWithEventfd() && threadsIn("poll") > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no waiter parked in poll(2)")
		}
		time.Sleep(time.Millisecond)
	}
}

// threadsIn counts the threads of this process sleeping in a kernel
// function whose name contains fn.
func threadsIn(fn string) int {
	ents, _ := os.ReadDir("/proc/self/task")
	n := 0
	for _, e := range ents {
		b, _ := os.ReadFile("/proc/self/task/" + e.Name() + "/wchan")
		if strings.Contains(string(b), fn) {
			n++
		}
	}
	return n
}

// A deadline already past fails the wait before anything is read.
func TestPastDeadline(t *testing.T) {
	a, b := pair(t)
	write(t, b, 1)
	a.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := read(context.Background(), a, nil); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	a.SetReadDeadline(time.Now().Add(time.Hour))
	if got, err := read(context.Background(), a, nil); err != nil || got != 1 {
		t.Fatalf("got %d, %v", got, err)
	}
}

// Many idle waiters move to Go's poller: they do not hold a thread each.
func TestIdleWaitersHoldNoThreads(t *testing.T) {
	setThreadPark(t, time.Millisecond)
	const n = 300
	base := longWaits.Load()
	var wg sync.WaitGroup
	var peers []*FD
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range n {
		a, b := pair(t)
		peers = append(peers, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := read(ctx, a, nil); err != nil || got != 9 {
				t.Errorf("got %d, %v", got, err)
			}
		}()
	}
	waitLongWaits(t, base+n)
	if th := threads(); th > n/2 {
		t.Errorf("%d threads with %d idle waiters", th, n)
	}
	for _, b := range peers {
		write(t, b, 9)
	}
	wg.Wait()
}

func threads() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// Close closes the descriptor and the eventfd once the last user is out,
// and an unreachable FD closes its own.
func TestNoLeak(t *testing.T) {
	before := openFds(t)
	for range 100 {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		a, b := New(fds[0]), New(fds[1])
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := read(ctx, a, nil); done <- err }()
		waitWakeOrDone(t, a, done)
		cancel()
		<-done
		a.Close()
		_ = b // dropped: its finalizer closes it
	}
	deadline := time.Now().Add(30 * time.Second)
	for openFds(t) > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open, %d before", openFds(t), before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// waitWakeOrDone waits until a waiter of d has parked with its eventfd
// (it is about to sleep) or has returned.
func waitWakeOrDone(t *testing.T, d *FD, done chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("the waiter neither parked nor returned")
		}
		if d.parkedWithEventfd() || len(done) > 0 {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func openFds(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Readers, pollers and writers on one descriptor, with contexts ending
// at random: every byte written is read exactly once, nothing hangs.
func TestStress(t *testing.T) {
	setThreadPark(t, 2*time.Millisecond)
	a, b := pair(t)
	const n = 20000
	var sp wait.Spinner
	got := make(chan int, n)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		var buf [512]byte
		total := 0
		for i := 0; total < n; i++ {
			c, stop := context.WithTimeout(ctx, time.Duration(i%50)*time.Microsecond)
			var k int
			var rerr error
			err := a.Read(c, &sp, func(fd int) bool {
				k, rerr = unix.Read(fd, buf[:])
				return rerr != unix.EAGAIN
			})
			stop()
			if err == nil && rerr == nil {
				total += k
				got <- k
			} else if ctx.Err() != nil {
				return
			}
		}
	}()
	wg.Add(1)
	go func() { // a poller beside the reader, consuming nothing
		defer wg.Done()
		for ctx.Err() == nil {
			c, stop := context.WithTimeout(ctx, time.Millisecond)
			a.Read(c, nil, func(fd int) bool { return Ready(fd, unix.POLLIN) })
			stop()
		}
	}()
	for i := range n {
		if err := b.Write(ctx, nil, func(fd int) bool {
			_, err := unix.Write(fd, []byte{byte(i)})
			return err != unix.EAGAIN
		}); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for total < n {
		select {
		case k := <-got:
			total += k
		case <-ctx.Done():
			t.Fatalf("%d of %d bytes read", total, n)
		}
	}
}

// Out of descriptors (no eventfd, no duplicate for Go's poller), a wait
// still ends on data, a context's end and Close: it polls in slices.
func TestWaitWithoutDescriptors(t *testing.T) {
	oldE, oldD := newEventfd, dupFd
	newEventfd = func() (int, error) { return -1, unix.EMFILE }
	dupFd = func(int) (int, error) { return -1, unix.EMFILE }
	t.Cleanup(func() { newEventfd, dupFd = oldE, oldD })
	setThreadPark(t, time.Millisecond)
	a, b := pair(t)
	// parkedPoll waits until a thread sleeps in poll(2) past threadPark.
	start := func(ctx context.Context) chan error {
		done := make(chan error, 1)
		go func() { _, err := read(ctx, a, nil); done <- err }()
		deadline := time.Now().Add(30 * time.Second)
		for threadsIn("poll") == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no waiter parked in poll(2)")
			}
			time.Sleep(time.Millisecond)
		}
		return done
	}
	done := start(context.Background())
	write(t, b, 3)
	if err := result(t, done); err != nil {
		t.Errorf("data: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = start(ctx)
	cancel()
	if err := result(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
	done = start(context.Background())
	a.Close()
	if err := result(t, done); !errors.Is(err, ErrClosed) {
		t.Errorf("close: %v", err)
	}
}

// WriteAll waits while the socket is full and writes every byte; with a
// context that ends while nobody reads, it says how much went out.
func TestWriteAll(t *testing.T) {
	a, b := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msg := make([]byte, 4<<20) // far more than a socket holds
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		var buf []byte
		chunk := make([]byte, 64<<10)
		for len(buf) < len(msg) {
			var n int
			if err := b.Read(ctx, nil, func(fd int) bool {
				var rerr error
				n, rerr = unix.Read(fd, chunk)
				return rerr != unix.EAGAIN
			}); err != nil || n <= 0 {
				break
			}
			buf = append(buf, chunk[:n]...)
		}
		got <- buf
	}()
	var sp wait.Spinner
	if n, err := a.WriteAll(ctx, &sp, msg, unix.Write); err != nil || n != len(msg) {
		t.Fatalf("WriteAll: %d of %d bytes, %v", n, len(msg), err)
	}
	if buf := <-got; !bytes.Equal(buf, msg) {
		t.Fatalf("read %d bytes, not the %d written", len(buf), len(msg))
	}

	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	n, err := a.WriteAll(short, nil, msg, unix.Write)
	if !errors.Is(err, context.DeadlineExceeded) || n <= 0 || n >= len(msg) {
		t.Fatalf("WriteAll to a socket nobody reads: %d of %d bytes, %v", n, len(msg), err)
	}
}
