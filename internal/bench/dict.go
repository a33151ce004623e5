package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
	"unsafe"

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

func init() {
	all = append(all, &Scenario{
		Name: "shm-sum-1gib", Title: "OpenSharedMemory of a 1 GiB block that python3 created, sum of it as []float64, Close",
		Unit: "ms", Mechanism: "shared memory",
		Python: "SharedMemory(name) of the same block, sum(buf.cast('d')), close()",
		full:   sizes{n: 5, batch: 1 << 30}, quick: sizes{n: 2, batch: 1 << 30},
		pyFull: sizes{n: 2, batch: 1 << 30}, pyQuick: sizes{n: 1, batch: 1 << 30}, perOp: true,
		measure: measureShmSum,
	})
}

// pyShmMaker creates a block of argv[1] bytes of float64 1.0s, prints its
// name, and unlinks it when its stdin ends.
const pyShmMaker = `
import struct, sys
from multiprocessing import shared_memory
size = int(sys.argv[1])
shm = shared_memory.SharedMemory(create=True, size=size)
chunk = struct.pack("d", 1.0) * (1 << 17)
for off in range(0, size, len(chunk)):
    n = min(len(chunk), size - off)
    shm.buf[off:off + n] = chunk[:n]
print(shm.name, flush=True)
sys.stdin.read()
shm.close()
shm.unlink()
`

// measureShmSum: n times, open the block (made by python3, or by Go when
// python3 is absent), sum it, close it.
func measureShmSum(ctx context.Context, n, size int) (time.Duration, error) {
	name := ""
	if py, err := exec.LookPath("python3"); err == nil {
		cmd := exec.CommandContext(ctx, py, "-c", pyShmMaker, strconv.Itoa(size))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return 0, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return 0, err
		}
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		defer cmd.Wait()
		defer stdin.Close()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("python3 did not make the block: %v", err)
		}
		name = strings.TrimSpace(line)
	} else {
		m, err := multiproc.CreateSharedMemory("", size)
		if err != nil {
			return 0, err
		}
		defer m.Unlink()
		defer m.Close()
		b := m.Bytes()
		for i := 0; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], math.Float64bits(1))
		}
		name = m.Name()
	}
	var total time.Duration
	for range n {
		t0 := time.Now()
		m, err := multiproc.OpenSharedMemory(name)
		if err != nil {
			return 0, err
		}
		b := m.Bytes()
		xs := unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
		var sum float64
		for _, x := range xs {
			sum += x
		}
		m.Close()
		total += time.Since(t0)
		if sum != float64(size/8) {
			return 0, fmt.Errorf("the sum is %v, want %d", sum, size/8)
		}
	}
	return total, nil
}
