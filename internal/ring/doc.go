// Package ring is the byte-message MPMC queue behind multiproc.Queue: one
// memfd segment that any number of processes map and use at once.
//
// # Layout
//
// The segment is a 4 KiB header followed by a data area whose capacity is a
// power of two (4 KiB … 64 GiB). Every header word sits on its own 64-byte
// cache line and is only ever touched with sync/atomic; no Go pointer is
// ever stored in the segment.
//
//	layout    generation<<8 | log2(capacity)          (changes only on growth)
//	tail      committed-message count | byte position  (written by producers)
//	head      consumed-message count  | byte position  (written by consumers)
//	prodLock  robust futex.Mutex of the producer side
//	consLock  robust futex.Mutex of the consumer side
//	dataBell, spaceBell  futex doorbells: sequence<<1 | sleepers bit
//	                     (consumers sleep on dataBell, producers on spaceBell)
//
// A message is a frame: an 8-byte length, then the payload, padded to 8
// bytes. Positions are byte offsets that only grow (modulo 2^37); a
// position's place in the data area is position & (capacity-1), so a frame
// may wrap around the end of the area (the length word never does).
//
// # One atomic store commits
//
// The head and tail words each pack a message count (30 bits) with a byte
// position (34 bits, in units of 8 bytes). A producer, holding prodLock,
// writes its frame into free space and then commits it with ONE atomic
// store of tail (count+1, position+frame). A consumer, holding consLock,
// copies the frame at head out and then frees it with ONE atomic store of
// head. Because each commit is a single store that carries both the count
// and the position, there is no derived state that a dying process could
// leave inconsistent:
//
//   - a producer SIGKILLed while copying (or holding the lock) leaves bytes in
//     free space beyond tail: its message is simply not there;
//   - a consumer SIGKILLed before its head store leaves the message in place
//     for the next consumer;
//   - Len is exact: tail.count - head.count from a snapshot in which head was
//     read unchanged on both sides of the tail load.
//
// So when futex.Mutex.Lock reports that it took a side lock over from a dead
// holder, there is nothing to repair: the next holder simply continues
// (the takeover itself takes up to futex's owner-check period, 100 ms).
// The head store is the last step of a Get before it returns: a consumer
// killed after it has taken the message, exactly as if Get had returned.
//
// # Growth
//
// Put never waits for space in bytes, only for maxMsgs. When a frame does
// not fit, the producer (holding prodLock) also takes consLock (always in
// that order), ftruncates the memfd to the new size (the segment is sealed
// against shrinking, so no peer can cause SIGBUS), maps it, and moves the
// live bytes whose place changes. With capacities C < N, both powers of two,
// a live byte at position p moves from p&(C-1) to p&(N-1); these differ only
// when p&(N-1) >= C, so every move writes only into the new part [C, N) and
// the old layout stays intact until the single atomic store of the layout
// word publishes the new capacity and generation. A grower killed at any
// point leaves either the old queue (and a larger file) or the new one.
// Positions never change, so nothing else is rewritten. Every process, after
// taking a side lock, compares the layout word with the mapping it holds and
// maps the segment again if it changed (the header mapping never moves, so
// lock-free readers of header words are always safe; a stale data mapping
// is unmapped once no critical section of this process can use it).
// The segment never shrinks its size, but after a consumer takes a message
// of 1 MiB or more it punches the free space (bar 1 MiB after tail) out of
// the memfd with fallocate, under prodLock taken with TryLock (free space
// is written only under prodLock), so a queue that once carried 64 MiB does
// not pin that memory until it is closed.
//
// # Reading the other side's word
//
// The head word is written by every Get and the tail word by every Put: a
// producer that read head on every Put (and a consumer tail on every Get)
// would move that cache line between the CPUs twice a message, which at
// 2.2M messages a second was the queue's whole cost on a 2-CPU VM. So each
// handle keeps, per side, the word it last committed and the other side's
// word as it last read it (side.last, side.seen), and reads the other
// side's word only when its copy says full (or no room) or empty. The
// copy is exact or behind, never ahead: the other side's word only grows,
// and a word behind shows less room or fewer messages, never more, so a
// stale copy can only send the handle to read the word again. It is
// trusted only while this side's word is still the one the handle last
// committed: another handle of the same side (another process) having
// committed since, the copy may be behind by more than a count's wrap, or
// (consumers) behind head itself, and the word is read. A crash changes
// nothing here: the copies are process-local, and a dead process's commit
// is seen as another handle's. (queue-1p1c: 2.2M to about 4M messages a
// second.)
//
// # Waking
//
// A consumer that finds the queue empty spins as its side's wait.Spinner says
// (a budget learned from this machine's wake-up costs), then sets
// the sleepers bit of dataBell, checks again and sleeps in FUTEX_WAIT on the
// value it set. A producer, after its commit, loads dataBell and, only if
// the bit is set, clears it, bumps the sequence and wakes every sleeper
// (FUTEX_WAKE all: at most one thread per process and handle, see below). Later
// producers find the bit clear and make no system call until someone sleeps
// again, so a sleeper that takes a while to get scheduled does not cost a
// wake-up call per message. With seq-cst atomics this is Dekker-safe: the
// waiter's bit store precedes its last condition load and the producer's
// commit precedes its bell load, so either the producer sees the bit or the
// waiter sees the message. Waking all sleepers means no wake-up is ever owed
// to a waiter that gave up (ctx, Close) or died; a dead sleeper's bit costs
// the next producer one wake-up call. Producers blocked by maxMsgs sleep on
// spaceBell the same way. A ctx deadline becomes the futex timeout; a
// cancellation bumps the bell and wakes it (bumping first, so that a
// cancellation racing the start of the sleep is not lost). Sleeps are also
// capped at 250 ms as a safety net.
//
// # Threads
//
// A goroutine in FUTEX_WAIT pins an OS thread. Each side of a handle has two
// Go-level gates (channels of capacity 1 used as locks, given up on ctx or
// Close): one around the critical section (futex.Mutex.Lock may sleep), one
// around the doorbell sleep. So at most two goroutines per side per handle
// are ever in futex code, however many goroutines call Get or Put; the
// others wait in the Go scheduler. The gates also give the race detector
// its happens-before edges.
//
// # Limits
//
// At most 2^30-1 messages queued (more blocks Put as if full); capacity and
// so message size at most 64 GiB minus the frame. The robust lock detects a
// dead holder by pid (so all holders must share a pid namespace); a
// recycled pid that belongs to a live process, or a holder that is stopped
// (SIGSTOP) keeps the lock until that process exits or continues. Waiting
// for a side lock does not watch ctx (holds are short: one copy). The ring
// never shrinks its capacity (only its resident memory, see Growth).
package ring
