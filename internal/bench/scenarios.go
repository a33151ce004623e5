package bench

// startFloor is the floor of start and start-cold: starting this program
// (the floor program's exec target) with posix_spawn and waiting for it.
// Back to back, every start needs a new process (a spare replaced, or a
// re-exec); start-idle has none: its spare was started during the pause.
const startFloor = "posix_spawn+wait {exec}"

// all is every scenario, in the CLI's order. Sizes: quick mode must finish
// in well under a minute on 2 CPUs with python3's twins included (python
// is the slow side: 8–18k apply_async tasks/s, 0.5M locked Value ops/s,
// ~50 ms a spawn start).
var all = []*Scenario{
	{
		Name: "start", Title: "start + result + exit of one child (Func.Call of a trivial function), back to back",
		Unit: "ms", Mechanism: "process",
		Python:   "fork context: Process(target=f).start(); join(), back to back",
		Target:   &Target{Factor: 1 / 0.7, Text: "≤ 0.7× python fork start+join"},
		FloorRef: &FloorRef{Metric: startFloor},
		full:     sizes{n: 200}, quick: sizes{n: 50},
		pyFull: sizes{n: 100}, pyQuick: sizes{n: 20},
		measure: measureStart,
	},
	{
		Name: "start-idle", Title: "the same, one Call at a time with a 10 ms pause between (the pause not counted): the pre-started spare child is ready",
		Unit: "ms", Mechanism: "process",
		Python: "fork context start+join, with the same pause",
		Target: &Target{Factor: 1 / 0.7, Text: "≤ 0.7× python fork start+join"},
		full:   sizes{n: 30}, quick: sizes{n: 10},
		measure: measureStartIdle,
	},
	{
		Name: "start-cold", Title: "the same with no spare child (a full re-exec of the program each time), back to back",
		Unit: "ms", Mechanism: "process",
		Python:   "spawn context start+join (a fresh interpreter each time)",
		FloorRef: &FloorRef{Metric: startFloor},
		full:     sizes{n: 20}, quick: sizes{n: 10},
		pyFull: sizes{n: 10}, pyQuick: sizes{n: 5},
		measure: measureStartCold,
	},
	{
		Name: "pipe-rt-bytes", Title: "Pipe(duplex) round trip of a 64 B message, SendBytes/RecvBytes, to a child that echoes",
		Unit: "µs", Mechanism: "pipe",
		Python:   "Pipe(duplex=True), send_bytes/recv_bytes, child echoes",
		Target:   &Target{Factor: 2, Text: "≤ 0.5× python"},
		FloorRef: &FloorRef{Metric: "socketpair ping-pong RTT 64B", Max: 1.5},
		full:     sizes{n: 20000}, quick: sizes{n: 5000},
		measure: measurePipeRTBytes,
	},
	{
		Name: "pipe-rt-struct", Title: "Pipe(duplex) round trip of a small struct (int64, 2 float64, string), Send/Recv, to a child that echoes",
		Unit: "µs", Mechanism: "pipe",
		Python:   "Pipe(duplex=True), send/recv of a small dict, child echoes",
		Target:   &Target{Factor: 1 / 0.3, Text: "≤ 0.3× python"},
		FloorRef: &FloorRef{Metric: "socketpair ping-pong RTT 64B", Max: 1.5},
		full:     sizes{n: 20000}, quick: sizes{n: 5000},
		measure: measurePipeRTStruct,
	},
	{
		Name: "pipe-1mib", Title: "Pipe(duplex), 1 MiB messages one way to a child (SendBytes), until the child has them all",
		Unit: "MB/s", HigherIsBetter: true, Mechanism: "pipe",
		Python:   "Pipe(duplex=True), send_bytes of 1 MiB, child recv_bytes",
		Target:   &Target{Factor: 2, Text: "≥ 2× python"},
		FloorRef: &FloorRef{Metric: "socketpair one-way 1MiB msgs"},
		full:     sizes{n: 1000, batch: 1 << 20}, quick: sizes{n: 200, batch: 1 << 20},
		pyFull: sizes{n: 500, batch: 1 << 20}, pyQuick: sizes{n: 100, batch: 1 << 20},
		measure: measurePipe1MiB,
	},
	{
		Name: "queue-1p1c", Title: "Queue[int64] 1 producer / 1 consumer, both child processes",
		Unit: "msgs/s", HigherIsBetter: true, Mechanism: "queue",
		Python:   "Queue(), put/get of ints, producer and consumer processes",
		Target:   &Target{Factor: 25, Text: "≥ 25× python"},
		FloorRef: &FloorRef{Metric: "SPSC shm ring 64B (spin+futex, batched)", Max: 2},
		full:     sizes{n: 2000000}, quick: sizes{n: 500000},
		pyFull: sizes{n: 200000}, pyQuick: sizes{n: 50000},
		measure: measureQueue1P1C,
	},
	{
		Name: "queue-2p2c", Title: "Queue[int64] 2 producers / 2 consumers, all child processes",
		Unit: "msgs/s", HigherIsBetter: true, Mechanism: "queue",
		Python: "Queue(), 2 producer and 2 consumer processes",
		Target: &Target{Factor: 15, Text: "≥ 15× python"},
		full:   sizes{n: 2000000}, quick: sizes{n: 500000},
		pyFull: sizes{n: 200000}, pyQuick: sizes{n: 50000},
		measure: measureQueue2P2C,
	},
	{
		Name: "value-lock", Title: "Value[int64] Lock + Load + Store(+1) + Unlock, 2 child processes at once",
		Unit: "ops/s", HigherIsBetter: true, Mechanism: "shared memory",
		Python:   "Value('q'): with v.get_lock(): v.value += 1, 2 processes",
		Target:   &Target{Factor: 20, Text: "≥ 20× python"},
		FloorRef: &FloorRef{Metric: "pshared mutex counter 2x200k", Max: 2},
		full:     sizes{n: 10000000}, quick: sizes{n: 2000000},
		pyFull: sizes{n: 1000000}, pyQuick: sizes{n: 200000},
		measure: measureValueLock,
	},
	{
		Name: "value-add", Title: "Value[int64] atomic Add(1), 2 child processes at once",
		Unit: "ops/s", HigherIsBetter: true, Mechanism: "shared memory",
		Python:   "no atomic add in python: the same as value-lock (with get_lock(): v.value += 1)",
		FloorRef: &FloorRef{Metric: "atomic fetch_add counter 2x200k"},
		full:     sizes{n: 100000000}, quick: sizes{n: 20000000},
		pyFull: sizes{n: 1000000}, pyQuick: sizes{n: 200000},
		measure: measureValueAdd,
	},
	{
		Name: "array-fill", Title: "Array[float64] of 1M elements, filled by a child (start + fill + result)",
		Unit: "ms", Mechanism: "shared memory",
		Python:   "Array('d', 1M, lock=False), a child fills it by slice assignment; start + join",
		FloorRef: &FloorRef{Metric: "child sums shared double[1e6] (fork+sum+wait)"},
		full:     sizes{n: 20, batch: 1 << 20}, quick: sizes{n: 5, batch: 1 << 20},
		pyFull: sizes{n: 10, batch: 1 << 20}, pyQuick: sizes{n: 3, batch: 1 << 20}, perOp: true,
		measure: measureArrayFill,
	},
	{
		Name: "pool-map", Title: "Pool(2) Map of 200k trivial tasks (x+1)",
		Unit: "tasks/s", HigherIsBetter: true, Mechanism: "pool",
		Python: "Pool(2).map of 200k, default chunksize",
		Target: &Target{Factor: 2, Text: "≥ 2× python"},
		full:   sizes{n: 10, batch: 200000}, quick: sizes{n: 3, batch: 200000},
		pyFull: sizes{n: 3, batch: 200000}, pyQuick: sizes{n: 1, batch: 200000},
		measure: measurePoolMap,
	},
	{
		Name: "pool-apply-async", Title: "Pool(2) ApplyAsync of 10k trivial tasks, then Get of each",
		Unit: "tasks/s", HigherIsBetter: true, Mechanism: "pool",
		Python: "Pool(2).apply_async × 10k, then get() of each",
		Target: &Target{Factor: 5, Text: "≥ 5× python"},
		full:   sizes{n: 3, batch: 10000}, quick: sizes{n: 1, batch: 10000},
		pyFull: sizes{n: 1, batch: 10000}, pyQuick: sizes{n: 1, batch: 10000},
		measure: measurePoolApplyAsync,
	},
	{
		Name: "pool-apply", Title: "Pool(2) sequential Apply of a trivial task (latency)",
		Unit: "µs", Mechanism: "pool",
		Python:   "Pool(2).apply, sequential",
		Target:   &Target{Factor: 10, Text: "≤ 0.1× python"},
		FloorRef: &FloorRef{Metric: "futex ping-pong RTT", Max: 3},
		full:     sizes{n: 5000}, quick: sizes{n: 1000},
		pyFull: sizes{n: 2000}, pyQuick: sizes{n: 500},
		measure: measurePoolApply,
	},
	{
		Name: "signal-rt", Title: "signal round trip: SIGUSR1 to a child, which answers SIGUSR1 to the parent (signals.Waiter, KillThread)",
		Unit: "µs", Mechanism: "signal",
		Python:   "os.kill + signal.sigwaitinfo (SIGUSR1 blocked) in parent and child",
		FloorRef: &FloorRef{Metric: "signal round trip", Inverse: true, Max: 2},
		full:     sizes{n: 10000}, quick: sizes{n: 2000},
		measure: measureSignalRT,
	},
}

// The python sizes above (py*, or ours where unset) are also bench.py's
// PLAN: keep them in step (TestPythonPlan checks).
