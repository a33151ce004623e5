//go:build linux && (amd64 || arm64)

package spawn

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// feed writes in to the peer end of a fresh Ctl's socket and closes that
// end, as a child that writes these bytes and exits would.
func feed(t *testing.T, in []byte) *Ctl {
	c, peer := rawPair(t)
	go func() {
		for p := in; len(p) > 0; {
			n, err := unix.Write(peer, p)
			if err != nil {
				break
			}
			p = p[n:]
		}
		unix.Shutdown(peer, unix.SHUT_WR)
	}()
	return c
}

// fuzzSeeds are control streams: well-formed ones, and the breaks the
// unit tests name.
func fuzzSeeds(f *testing.F) {
	f.Add(append(header(MsgHello, 0, 8), Hello()...))
	f.Add(append(append(header(MsgTask, 0, 5), "small"...), header(MsgExit, 0, 0)...))
	f.Add(header(MsgResult, 0, 1<<30))        // a lying length
	f.Add(header(MsgResult, 0, MaxMessage+1)) // beyond the limit
	f.Add(header(MsgTask, 3, 0))              // descriptors that never came
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))   // not the protocol at all
	f.Add(append(header(MsgHello, 0, 4), 0, 0, 0, 0))
}

// FuzzCtlRecv: whatever a child writes on its control socket, Recv
// returns messages no larger than what arrived, then an error that is the
// stream's end, a truncation or ErrCorrupt — never a panic, a hang or an
// allocation the bytes did not pay for.
func FuzzCtlRecv(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := feed(t, in)
		got := 0
		for {
			_, p, fds, err := c.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Recv: %v", err)
				}
				break
			}
			if len(fds) != 0 {
				t.Fatalf("%d descriptors from a stream that sent none", len(fds))
			}
			got += len(p) + hdrLen
			if got > len(in) {
				t.Fatalf("%d bytes of messages from %d input bytes", got, len(in))
			}
		}
		if _, _, _, err := c.Recv(); err == nil {
			t.Fatal("Recv after the end succeeded")
		}
	})
}

// FuzzAwaitHello: the parent's side of the start handshake, against any
// bytes a child (or something else exec'd in its place) writes first. It
// succeeds only for a hello of this protocol; otherwise its error says
// the child never answered (ErrNoHello), ended the handshake
// (ErrHandshakeEnded) or speaks another protocol.
func FuzzAwaitHello(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := feed(t, in)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := AwaitHello(ctx, c, 1)
		if err == nil {
			if len(in) < hdrLen+8 || in[4] != MsgHello || le32(in[hdrLen:]) != Protocol {
				t.Fatalf("AwaitHello accepted %q", in)
			}
			return
		}
		if !errors.Is(err, ErrNoHello) && !errors.Is(err, ErrHandshakeEnded) && !errors.Is(err, ErrProtocol) {
			t.Fatalf("AwaitHello: %v", err)
		}
	})
}
