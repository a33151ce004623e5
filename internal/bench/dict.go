package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/multiproc-go/multiproc"
)

// The shared-dict and ShareableList scenarios (python's Manager().dict()
// and shared_memory.ShareableList), added to the table after the others.
func init() {
	all = append(all, dictScenarios...)
}

var dictScenarios = []*Scenario{
	{
		Name: "dict-update", Title: "Dict[string, int64] Update(k, +1) of one key, 2 child processes at once",
		Unit: "ops/s", HigherIsBetter: true, Mechanism: "shared memory",
		Python: "Manager().dict() and a Lock: with lock: d[k] += 1, 2 processes",
		Target: &Target{Factor: 100, Text: "≥ 100× python"},
		full:   sizes{n: 2000000}, quick: sizes{n: 400000},
		pyFull: sizes{n: 20000}, pyQuick: sizes{n: 4000},
		measure: measureDictUpdate,
	},
	{
		Name: "dict-load", Title: "Dict[string, int64] Load of one key, one process",
		Unit: "ops/s", HigherIsBetter: true, Mechanism: "shared memory",
		Python: "Manager().dict(): d[k], one process",
		Target: &Target{Factor: 100, Text: "≥ 100× python"},
		full:   sizes{n: 5000000}, quick: sizes{n: 1000000},
		pyFull: sizes{n: 50000}, pyQuick: sizes{n: 10000},
		measure: measureDictLoad,
	},
	{
		Name: "shareablelist-getset", Title: "ShareableList Get + Set(+1) of an int item, one process",
		Unit: "ops/s", HigherIsBetter: true, Mechanism: "shared memory",
		Python: "shared_memory.ShareableList: l[0] = l[0] + 1",
		Target: &Target{Factor: 1, Text: "≥ python"},
		full:   sizes{n: 5000000}, quick: sizes{n: 1000000},
		pyFull: sizes{n: 1000000}, pyQuick: sizes{n: 200000},
		measure: measureShareableList,
	},
}

type dictArg struct {
	D     *multiproc.Dict[string, int64]
	Start *multiproc.Barrier
	N     int
}

var dictCounter = multiproc.Register("bench.dict-counter", func(ctx context.Context, a dictArg) (int, error) {
	if err := a.Start.Wait(ctx); err != nil {
		return 0, err
	}
	for range a.N {
		if _, err := a.D.Update("k", func(old int64, _ bool) int64 { return old + 1 }); err != nil {
			return 0, err
		}
	}
	return 0, a.Start.Wait(ctx)
})

// measureDictUpdate: n updates in all, n/2 by each of 2 processes.
func measureDictUpdate(ctx context.Context, n, _ int) (time.Duration, error) {
	n = max(2, n/2*2)
	d, err := multiproc.NewDict[string, int64]()
	if err != nil {
		return 0, err
	}
	defer d.Close()
	start, err := multiproc.NewBarrier(3)
	if err != nil {
		return 0, err
	}
	defer start.Close()
	var ps []*multiproc.Process
	for range 2 {
		ps = append(ps, dictCounter.Process(dictArg{D: d, Start: start, N: n / 2}))
	}
	t, err := timeBetween(ctx, start, ps)
	if err != nil {
		return 0, err
	}
	if got, _, err := d.Load("k"); got != int64(n) || err != nil {
		return 0, fmt.Errorf("the counter is %d (%v) after %d updates", got, err, n)
	}
	return t, nil
}

func measureDictLoad(ctx context.Context, n, _ int) (time.Duration, error) {
	d, err := multiproc.NewDict[string, int64]()
	if err != nil {
		return 0, err
	}
	defer d.Close()
	if err := d.Store("k", 42); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for range n {
		if v, ok, err := d.Load("k"); v != 42 || !ok || err != nil {
			return 0, fmt.Errorf("Load = %d, %v, %v", v, ok, err)
		}
	}
	return time.Since(t0), nil
}

func measureShareableList(ctx context.Context, n, _ int) (time.Duration, error) {
	l, err := multiproc.NewShareableList("", []any{0, "x", 2.5})
	if err != nil {
		return 0, err
	}
	defer l.Unlink()
	defer l.Close()
	t0 := time.Now()
	for range n {
		v, err := l.Get(0)
		if err != nil {
			return 0, err
		}
		if err := l.Set(0, v.(int64)+1); err != nil {
			return 0, err
		}
	}
	d := time.Since(t0)
	if v, _ := l.Get(0); v != int64(n) {
		return 0, fmt.Errorf("the item is %v after %d increments", v, n)
	}
	return d, nil
}
