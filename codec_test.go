//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// Stamp embeds time.Time, whose MarshalBinary and UnmarshalBinary are
// promoted to it; they must not be taken for Stamp's own.
type Stamp struct {
	time.Time
	Name string
}

var (
	// stampLater returns its Stamp an hour later, its Name marked.
	stampLater = multiproc.Register("test.stampLater", func(ctx context.Context, s Stamp) (Stamp, error) {
		return Stamp{s.Add(time.Hour), s.Name + "!"}, nil
	})
	// connFails returns the error of a receive on a zero Conn.
	connFails = multiproc.Register("test.connFails", func(ctx context.Context, _ int) (int, error) {
		var c multiproc.Conn
		_, err := c.RecvBytesContext(ctx)
		return 0, fmt.Errorf("receiving: %w", err)
	})
)

// TestCallEmbeddedTime: a struct embedding time.Time crosses to a child
// and back whole (its Name used to arrive empty: the codec encoded the
// time alone, through the promoted methods).
func TestCallEmbeddedTime(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	now := time.Now()
	out, err := stampLater.Call(ctx, Stamp{now, "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Name != "hello!" || !out.Equal(now.Add(time.Hour)) {
		t.Fatalf("Call(Stamp{now, hello}) = %+v; want an hour later, hello!", out)
	}
	// And through a Conn.
	a, b, _ := multiproc.Pipe(true)
	defer a.Close()
	defer b.Close()
	if err := a.Send(Stamp{now, "by pipe"}); err != nil {
		t.Fatal(err)
	}
	var got Stamp
	if err := b.RecvContext(ctx, &got); err != nil || got.Name != "by pipe" || !got.Equal(now) {
		t.Fatalf("Stamp through a Conn: %+v, %v", got, err)
	}
}

// TestErrorsSayMultiprocOnce: the message of each failure that Call and
// Conn return starts with "multiproc: " and holds it only there, however
// many layers (the codec, a nested value, a child) it went through.
func TestErrorsSayMultiprocOnce(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	errs := map[string]error{}
	add := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		errs[what] = err
	}

	_, err := fail.Call(ctx, "no such file")
	add("Call of a function that fails", err)
	_, err = exits.Call(ctx, 7)
	add("Call of a function that exits", err)
	_, err = makesValue.Call(ctx, 1)
	add("Call of a function whose result cannot be encoded", err)
	// (A user's error that quotes one of the package's keeps its words:
	// TestChildErrorTextUntouched.)

	a, b, _ := multiproc.Pipe(true)
	defer a.Close()
	v, err := multiproc.NewValue[int64](1)
	if err != nil {
		t.Fatal(err)
	}
	add("Send of a shared Value", a.Send(struct{ V *multiproc.Value[int64] }{v}))
	add("Send of a channel", a.Send(make(chan int)))
	add("Send of a nil", a.Send(nil))
	add("Send of an unregistered type in an interface", a.Send(holder{struct{ X int }{1}}))
	a.Send(42)
	var s string
	add("Recv of an int into a string", b.RecvContext(ctx, &s))
	a.SendBytes([]byte("raw"))
	add("Recv of a message not sent with Send", b.RecvContext(ctx, &s))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	add("Recv with a cancelled context", b.RecvContext(cctx, &s))
	b.SetMaxMessage(2)
	a.SendBytes([]byte("too long"))
	_, err = b.RecvBytesContext(ctx)
	add("RecvBytes of a message over the limit", err)
	b.Close()
	_, err = b.RecvBytesContext(ctx)
	add("RecvBytes on a closed Conn", err)
	add("SendBytes to a closed peer", sendUntilFails(ctx, a))
	var zero multiproc.Conn
	add("Send on a zero Conn", zero.Send(1))

	for what, err := range errs {
		msg := err.Error()
		t.Logf("%s: %s", what, msg)
		if !strings.HasPrefix(msg, "multiproc: ") || strings.Count(msg, "multiproc:") != 1 {
			t.Errorf("%s: %q should say multiproc: once, at the start", what, msg)
		}
	}
	var re *multiproc.RemoteError
	if err := errs["Call of a function that fails"]; !errors.As(err, &re) || re.Text != "no such file" || err.Error() != "multiproc: error in child: no such file" {
		t.Errorf("a child's error: %q", err)
	}
	if !errors.Is(errs["RecvBytes of a message over the limit"], multiproc.ErrMessageTooLarge) ||
		!errors.Is(errs["RecvBytes on a closed Conn"], multiproc.ErrClosed) ||
		!errors.Is(errs["Recv with a cancelled context"], context.Canceled) {
		t.Error("an error lost what it matches")
	}
}
