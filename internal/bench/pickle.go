package bench

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/multiproc-go/multiproc"
)

// The pickle scenario: what SendPickle and RecvPickle cost against
// python3's conn.send and conn.recv, added to the table after the others.
func init() {
	all = append(all, pickleScenarios...)
}

var pickleScenarios = []*Scenario{
	{
		Name: "pickle-dict10", Title: "SendPickle + RecvPickle of a dict of 10 mixed values (int, str, float, bool, list, tuple, bytes, big int, None, dict) through a Pipe, in one process",
		Unit: "µs", Mechanism: "pipe",
		Python: "conn.send(obj) + conn.recv() of the same dict through a Pipe(duplex=True), in one process",
		Target: &Target{Factor: 1, Text: "≤ 1× python"},
		full:   sizes{n: 50000}, quick: sizes{n: 10000},
		measure: measurePickleDict10,
	},
}

// PickleMessage is the message of pickle-dict10 (bench.py's PICKLE_MSG).
func PickleMessage() map[string]any {
	return map[string]any{
		"id": 12345, "name": "sensor-7", "value": 21.5, "ok": true,
		"tags": []any{"a", "b", "c"}, "pos": multiproc.Tuple{1.5, -2.0},
		"data":  []byte("\x00\x01\x02\x03\x00\x01\x02\x03\x00\x01\x02\x03\x00\x01\x02\x03"),
		"count": new(big.Int).Lsh(big.NewInt(1), 70), "none": nil,
		"meta": map[string]any{"unit": "C", "n": 3},
	}
}

func measurePickleDict10(ctx context.Context, n, _ int) (time.Duration, error) {
	a, b, err := multiproc.Pipe(true)
	if err != nil {
		return 0, err
	}
	defer a.Close()
	defer b.Close()
	msg := PickleMessage()
	if err := a.SendPickleContext(ctx, msg); err != nil {
		return 0, err
	}
	v, err := b.RecvPickleContext(ctx)
	if err != nil {
		return 0, err
	}
	if m, ok := v.(map[any]any); !ok || len(m) != 10 || m["name"] != "sensor-7" {
		return 0, fmt.Errorf("pickle-dict10: received %v", v)
	}
	t0 := time.Now()
	for range n {
		if err := a.SendPickle(msg); err != nil {
			return 0, err
		}
		if _, err := b.RecvPickle(); err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}
