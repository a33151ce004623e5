//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// TestNoMainErrorReadsWell: the first error a newcomer who forgot Main
// sees, word for word. Before, the code that stripped repeated
// "multiproc: " cut the middle of this sentence: "the child did not start
// call multiproc.Main() first thing in main".
func TestNoMainErrorReadsWell(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "MULTIPROC_TEST_NOMAIN=1")
	out, _ := cmd.CombinedOutput()
	// The parent's error, and the child's own (it ran main again and tried
	// to start a process too), in either order.
	parent := regexp.MustCompile(`(?m)^start error: multiproc: starting Process-\d+: pid \d+ exited with status 3 before it answered: ` +
		`the child did not call multiproc\.Main\(\) first thing in main \(and in TestMain\)$`)
	child := regexp.MustCompile(`(?m)^start error: multiproc: the child did not call multiproc\.Main\(\) first thing in main \(and in TestMain\): ` +
		`this process is such a child, and cannot start processes$`)
	if !parent.Match(out) || !child.Match(out) {
		t.Fatalf("the errors of a program without Main read:\n%s", out)
	}
}

// TestZeroConnAndListener: every method of a zero Conn or Listener fails
// with an error matching ErrNotInitialized (as its doc promises), and the
// one without an error result (Listener.Addr) panics with one.
func TestZeroConnAndListener(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	var c multiproc.Conn
	var x int
	_, e1 := c.RecvBytes()
	_, e2 := c.RecvBytesContext(ctx)
	_, e3 := c.Poll(0)
	_, e4 := c.PollContext(ctx)
	_, e5 := c.RecvPickle()
	var nilConn *multiproc.Conn
	for i, err := range []error{c.Send(1), c.SendContext(ctx, 1), c.SendBytes(nil), c.SendBytesContext(ctx, nil),
		c.Recv(&x), c.RecvContext(ctx, &x), e1, e2, e3, e4, e5, c.SendPickle(1), c.Close(), nilConn.Send(1)} {
		if !errors.Is(err, multiproc.ErrNotInitialized) || !strings.HasPrefix(err.Error(), "multiproc: use of a zero Conn") {
			t.Errorf("method %d of a zero Conn: %v", i, err)
		}
	}
	var l multiproc.Listener
	_, err := l.Accept(ctx)
	for i, err := range []error{err, l.Close()} {
		if !errors.Is(err, multiproc.ErrNotInitialized) || !strings.HasPrefix(err.Error(), "multiproc: use of a zero Listener") {
			t.Errorf("method %d of a zero Listener: %v", i, err)
		}
	}
	if n := l.Rejected(); n != 0 {
		t.Errorf("a zero Listener rejected %d", n)
	}
	func() {
		defer func() {
			err, _ := recover().(error)
			if !errors.Is(err, multiproc.ErrNotInitialized) {
				t.Errorf("Addr of a zero Listener panicked with %v", err)
			}
		}()
		l.Addr()
	}()
}

// TestChildErrorTextUntouched: a user's error text crosses from the child
// exactly as it was, "multiproc: " inside it included (before, every
// "multiproc: " in it was cut out).
func TestChildErrorTextUntouched(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	_, err := connFails.Call(ctx, 0)
	var re *multiproc.RemoteError
	const text = "receiving: multiproc: use of a zero Conn: a Conn comes from Pipe, ConnFromFd, ConnFromNet, Dial or Accept"
	if !errors.As(err, &re) || re.Text != text || err.Error() != "multiproc: error in child: "+text {
		t.Fatalf("a child's error reads %q", err)
	}
	panicked := &multiproc.RemoteError{Text: "multiproc: boom", Panic: true}
	if panicked.Error() != "multiproc: panic in child: multiproc: boom" {
		t.Fatalf("a child's panic reads %q", panicked)
	}
}
