package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/multiproc-go/multiproc"
)

// Small is the message of pipe-rt-struct (python's twin sends a dict with
// the same four fields).
type Small struct {
	ID   int64
	X, Y float64
	Name string
}

type sinkArg struct {
	C    *multiproc.Conn
	N    int // messages to receive before the acknowledgement
	Size int // their size: the one buffer the sink receives them into
}

var (
	// echoBytes and echoStruct answer every message with itself until EOF.
	echoBytes = multiproc.Register("bench.echo-bytes", func(ctx context.Context, c *multiproc.Conn) (int, error) {
		defer c.Close()
		return echoUntilEOF(c)
	})
	echoStruct = multiproc.Register("bench.echo-struct", func(ctx context.Context, c *multiproc.Conn) (int, error) {
		defer c.Close()
		for n := 0; ; n++ {
			var m Small
			err := c.Recv(&m)
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			if err := c.Send(m); err != nil {
				return n, err
			}
		}
	})
	// sink says it is ready, receives N messages into one buffer
	// (RecvBytesInto, as a program receiving a stream of large messages
	// would) and acknowledges them.
	sink = multiproc.Register("bench.sink", func(ctx context.Context, a sinkArg) (int64, error) {
		defer a.C.Close()
		if err := a.C.SendBytes([]byte("ready")); err != nil {
			return 0, err
		}
		buf := make([]byte, a.Size)
		var total int64
		for range a.N {
			n, err := a.C.RecvBytesInto(buf)
			if err != nil {
				return total, err
			}
			total += int64(n)
		}
		return total, a.C.SendBytes([]byte("done"))
	})
)

// withChild starts f's child with one end of a duplex Pipe, runs body with
// the other, then closes it and joins the child.
func withChild(ctx context.Context, start func(c *multiproc.Conn) *multiproc.Process, body func(c *multiproc.Conn) (time.Duration, error)) (time.Duration, error) {
	ours, theirs, err := multiproc.Pipe(true)
	if err != nil {
		return 0, err
	}
	p := start(theirs)
	p.Daemon = true
	if err := p.Start(); err != nil {
		ours.Close()
		theirs.Close()
		return 0, err
	}
	theirs.Close() // the child has its own copy
	d, err := body(ours)
	ours.Close()
	if err != nil {
		p.Kill()
		p.Join(context.Background())
		return 0, err
	}
	if err := p.Join(ctx); err != nil {
		return 0, err
	}
	return d, nil
}

func measurePipeRTBytes(ctx context.Context, n, _ int) (time.Duration, error) {
	return withChild(ctx, func(c *multiproc.Conn) *multiproc.Process { return echoBytes.Process(c) },
		func(c *multiproc.Conn) (time.Duration, error) { return timeRoundTrips(c, n) })
}

// echoUntilEOF answers every message on c with itself until EOF and says
// how many it echoed.
func echoUntilEOF(c *multiproc.Conn) (int, error) {
	for n := 0; ; n++ {
		b, err := c.RecvBytes()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := c.SendBytes(b); err != nil {
			return n, err
		}
	}
}

// timeRoundTrips times n round trips of 64 bytes with an echoing peer,
// after one untimed round trip that waits for the peer to be ready.
func timeRoundTrips(c *multiproc.Conn, n int) (time.Duration, error) {
	msg := make([]byte, 64)
	if err := roundTripBytes(c, msg); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for range n {
		if err := roundTripBytes(c, msg); err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}

func roundTripBytes(c *multiproc.Conn, msg []byte) error {
	if err := c.SendBytes(msg); err != nil {
		return err
	}
	b, err := c.RecvBytes()
	if err != nil {
		return err
	}
	if len(b) != len(msg) {
		return fmt.Errorf("echo of %d bytes came back with %d", len(msg), len(b))
	}
	return nil
}

func measurePipeRTStruct(ctx context.Context, n, _ int) (time.Duration, error) {
	return withChild(ctx, func(c *multiproc.Conn) *multiproc.Process { return echoStruct.Process(c) },
		func(c *multiproc.Conn) (time.Duration, error) {
			msg := Small{ID: 1, X: 1.5, Y: -2.25, Name: "point"}
			if err := roundTripStruct(c, msg); err != nil {
				return 0, err
			}
			t0 := time.Now()
			for i := range n {
				msg.ID = int64(i)
				if err := roundTripStruct(c, msg); err != nil {
					return 0, err
				}
			}
			return time.Since(t0), nil
		})
}

func roundTripStruct(c *multiproc.Conn, msg Small) error {
	if err := c.Send(msg); err != nil {
		return err
	}
	var got Small
	if err := c.Recv(&got); err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("echo of %+v came back as %+v", msg, got)
	}
	return nil
}

func measurePipe1MiB(ctx context.Context, n, size int) (time.Duration, error) {
	return withChild(ctx, func(c *multiproc.Conn) *multiproc.Process { return sink.Process(sinkArg{C: c, N: n, Size: size}) },
		func(c *multiproc.Conn) (time.Duration, error) {
			if _, err := c.RecvBytes(); err != nil { // ready
				return 0, err
			}
			msg := make([]byte, size)
			t0 := time.Now()
			for range n {
				if err := c.SendBytes(msg); err != nil {
					return 0, err
				}
			}
			if _, err := c.RecvBytes(); err != nil { // done
				return 0, err
			}
			return time.Since(t0), nil
		})
}
