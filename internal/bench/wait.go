package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/multiproc-go/multiproc"
)

// The Wait scenario (multiproc.Wait; python's connection.wait), added to
// the table after the others.
func init() {
	all = append(all, waitScenarios...)
}

// waitIdle is how many idle Conns wait-1000 watches beside the busy one.
const waitIdle = 999

var waitScenarios = []*Scenario{
	{
		Name: "wait-1000", Title: "Wait on 1,000 Conns (one of them a duplex Pipe to a child that echoes), then RecvBytes: 64 B round trip",
		Unit: "µs", Mechanism: "pipe",
		Python: "connection.wait on the same 1,000 Connections, then recv_bytes",
		Target: &Target{Factor: 10, Text: "≤ 0.1× python (and ≤ 2× pipe-rt-bytes)", Within: &Within{Of: "pipe-rt-bytes", Times: 2}},
		full:   sizes{n: 20000}, quick: sizes{n: 5000},
		pyFull: sizes{n: 5000}, pyQuick: sizes{n: 1000},
		measure: measureWait1000,
	},
}

func measureWait1000(ctx context.Context, n, _ int) (time.Duration, error) {
	objs := make([]multiproc.Waitable, 0, waitIdle+1)
	for range waitIdle {
		r, w, err := multiproc.Pipe(false)
		if err != nil {
			return 0, err
		}
		defer r.Close()
		defer w.Close()
		objs = append(objs, r)
	}
	return withChild(ctx, func(c *multiproc.Conn) *multiproc.Process { return echoBytes.Process(c) },
		func(c *multiproc.Conn) (time.Duration, error) {
			objs := append(objs, c)
			msg := make([]byte, 64)
			rt := func() error {
				if err := c.SendBytes(msg); err != nil {
					return err
				}
				ready, err := multiproc.Wait(ctx, objs...)
				if err != nil {
					return err
				}
				if len(ready) != 1 || ready[0] != multiproc.Waitable(c) {
					return fmt.Errorf("Wait returned %d objects, not the echoing Conn", len(ready))
				}
				_, err = c.RecvBytes()
				return err
			}
			if err := rt(); err != nil {
				return 0, err
			}
			t0 := time.Now()
			for range n {
				if err := rt(); err != nil {
					return 0, err
				}
			}
			return time.Since(t0), nil
		})
}
