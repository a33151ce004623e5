//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

var exportRaceRounds = flag.Int("share.exportrace", 0, "rounds of TestPassWhileClosing (0: 150, 30 under -short)")

type connArg struct{ C *multiproc.Conn }

type sharedArgs struct {
	V *multiproc.Value[int64]
	Q *multiproc.Queue[string]
}

// readShared returns what the Value holds and the Queue's first message.
var readShared = multiproc.Register("test.readShared", func(ctx context.Context, a sharedArgs) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	defer a.V.Close()
	defer a.Q.Close()
	if v := a.V.Load(); v != 42 {
		return "", fmt.Errorf("the Value holds %#x", v)
	}
	return a.Q.Get(ctx)
})

// recvPassed returns the first message its Conn receives.
var recvPassed = multiproc.Register("test.recvPassed", func(ctx context.Context, a connArg) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	defer a.C.Close()
	b, err := a.C.RecvBytesContext(ctx)
	return string(b), err
})

// TestPassWhileClosing passes a Conn to a pool task while another
// goroutine closes it and opens an unrelated file, which may get the
// Conn's descriptor number. The task must get the Conn, or ApplyAsync
// must fail with ErrClosed: never the other file. The number used to
// leave the Conn's reference before it was duplicated, and within a few
// hundred tries the task read the "secret" file through its Conn.
func TestPassWhileClosing(t *testing.T) {
	rounds := *exportRaceRounds
	if rounds <= 0 {
		rounds = 150
		if testing.Short() {
			rounds = 30
		}
	}
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 1})
	secret := filepath.Join(t.TempDir(), "secret")
	// A well-formed message, as the Conn would read it from the file.
	if err := os.WriteFile(secret, []byte("\x00\x00\x00\x06secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	passed, refused := 0, 0
	for i := 0; i < rounds; i++ {
		r, w, err := multiproc.Pipe(false)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.SendBytes([]byte("right")); err != nil {
			t.Fatal(err)
		}
		w.Close()
		go1 := make(chan struct{})
		opened := make(chan *os.File, 1)
		go func() {
			<-go1
			r.Close()
			f, err := os.Open(secret)
			if err != nil {
				f = nil
			}
			opened <- f
		}()
		close(go1)
		res := recvPassed.ApplyAsync(p, connArg{C: r})
		got, err := res.Get(ctx)
		if f := <-opened; f != nil {
			f.Close()
		}
		if passedRound(ctx, t, i, got, err, "the Conn's message or ErrClosed") {
			passed++
		} else {
			refused++
		}
	}
	t.Logf("%d passed, %d refused as closed", passed, refused)
}

// TestPassSharedWhileClosing is TestPassWhileClosing for a shared segment
// (a Value) and a Queue, closed while they are passed.
func TestPassSharedWhileClosing(t *testing.T) {
	rounds := max(*exportRaceRounds/3, 10)
	if *exportRaceRounds <= 0 {
		rounds = 50
		if testing.Short() {
			rounds = 10
		}
	}
	ctx := testCtx(t, 60*time.Second)
	p := newPool(t, multiproc.PoolOptions{Processes: 1})
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	passed, refused := 0, 0
	for i := 0; i < rounds; i++ {
		v, err := multiproc.NewValue[int64](42)
		if err != nil {
			t.Fatal(err)
		}
		q, err := multiproc.NewQueue[string](0)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Put(ctx, "right"); err != nil {
			t.Fatal(err)
		}
		go1 := make(chan struct{})
		opened := make(chan []*os.File, 1)
		go func() {
			<-go1
			var fs []*os.File
			for _, c := range []interface{ Close() error }{v, q} {
				c.Close()
				if f, err := os.Open(secret); err == nil {
					fs = append(fs, f)
				}
			}
			opened <- fs
		}()
		close(go1)
		got, err := readShared.ApplyAsync(p, sharedArgs{V: v, Q: q}).Get(ctx)
		for _, f := range <-opened {
			f.Close()
		}
		if passedRound(ctx, t, i, got, err, "the objects or ErrClosed") {
			passed++
		} else {
			refused++
		}
	}
	t.Logf("%d passed, %d refused as closed", passed, refused)
}

// passedRound judges one round of a pass racing a Close: the task got the
// object ("right", true) or was refused as closed (false); anything else
// fails the test.
func passedRound(ctx context.Context, t *testing.T, i int, got string, err error, want string) bool {
	t.Helper()
	switch {
	case err == nil && got == "right":
		return true
	case err != nil && errors.Is(err, multiproc.ErrClosed):
		return false
	case ctx.Err() != nil:
		t.Fatalf("round %d: %v", i, err)
	default:
		t.Fatalf("round %d: the task got %q, %v: want %s", i, got, err, want)
	}
	return false
}
