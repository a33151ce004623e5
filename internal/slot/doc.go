// Package slot is the pool's per-worker task slots: a small ring in
// shared memory through which a pool hands a worker process its tasks and
// the worker hands back their results, with a futex doorbell each way, so
// that a small task and its small result never touch a socket. The
// worker's control channel (a socketpair) stays for what memory cannot
// carry: descriptors, payloads larger than a slot, and the news that the
// worker died.
//
// # Layout
//
// One memfd segment per worker (the pool's, which also holds the tally of
// the root package's pool_claim.go before it), mapped by the pool and by
// the worker:
//
//	posted      tasks posted by the pool: tickets below it are in their slots
//	taskBell    futex.Bell the worker sleeps on
//	answered    results published by the worker: tickets below it are answered
//	resultBell  futex.Bell the pool sleeps on
//	Count slots of 8 KiB: task length, task kind, result length, result kind,
//	            then the payload (the task's, then, once the worker has
//	            copied it out, the result's)
//
// Each header word has its own cache line and is touched only with
// sync/atomic; no Go pointer is ever stored in the segment. Task k is in
// slot k % Count. Each word has ONE writer: posted and the task half of a
// slot are the pool's, answered and the result half the worker's. The
// pool has at most Count tasks posted and not collected, so a slot is
// never rewritten while either side still needs it.
//
// # One atomic store publishes
//
// The pool writes a task's bytes, length and kind, then publishes it with
// one atomic store of posted (ticket+1). The worker copies the task out
// of the slot before it runs it, then writes the result's bytes, length
// and kind and publishes them with one atomic store of answered. A
// reader looks at a slot only below the published count, so it never
// sees a half-written task or result, and the pool reads answered,
// lengths and kinds as untrusted input (a worker may write anything
// there): a count beyond what it posted, a length beyond a slot or an
// unknown kind is ErrCorrupt, and the pool kills that worker.
//
// # Crashes
//
//   - The worker SIGKILLed mid-task (or mid-result, at any instruction):
//     answered did not move, so the pool sees no result for that task and
//     none torn; results published before it are whole and are taken (the
//     pool's gone collects them before it fails anything). Whether the
//     dead worker had started the unanswered tasks is the tally's to say:
//     a started one fails with ErrWorkerDied, the others go to another
//     worker, so no task runs twice. The pool learns of the death from the
//     control channel's end, never from the slots: its reader marks the
//     worker dead and rings resultBell, so a goroutine sleeping there
//     looks again and leaves; nothing waits for a wake-up the dead worker
//     owed.
//   - The pool (the parent) dies: its workers are daemons with the
//     parent-death signal, and their channel reader sees the end of the
//     stream and rings taskBell, so a worker sleeping there exits. A
//     half-posted task was never published.
//   - TaskTimeout and Cancel end a running task by killing its worker:
//     the case above. A task cancelled before it started is withdrawn
//     through the tally; the worker, which finds it withdrawn when it
//     claims it, answers it with no results, so tickets stay in step.
//   - A wake-up is never lost: the bells are futex.Bells (Dekker-safe),
//     and every sleep is capped (250 ms) as a safety net only.
//
// # Waking
//
// Both sides wait with Await: spin as the side's wait.Spinner says (a
// budget learned from this machine's wake-up costs, none on one CPU or
// when the CPUs are oversubscribed), then arm the bell, look again and
// sleep. Post wakes a sleeping worker, Answer a sleeping pool, at once:
// a bell's waker makes a system call only when its sleepers bit is set.
//
// # Threads
//
// A goroutine asleep in FUTEX_WAIT pins an OS thread: the pool lets one
// goroutine per worker sleep on resultBell (a gate), and the worker has
// one task loop.
package slot
