// Package shmmap is the hash table behind multiproc.Dict: byte keys and
// byte values in one memfd segment that any number of processes map, with
// no server process. Every operation runs under one robust cross-process
// lock (futex.Mutex, which records its holder's pid, so a holder that dies
// is noticed and the lock taken over).
//
// # Layout
//
// A 4 KiB header, then areas. No Go pointer is ever stored in the segment;
// every offset is from the segment's start, and every word that another
// process may read is written with sync/atomic.
//
//	lock      futex.Mutex word (own cache line)
//	magic     "mpdict01"
//	root      generation<<1 | index of the live descriptor (0 or 1)
//	desc[2]   base, capLog, top, end, count, tombs (uint64 each)
//
// The live descriptor names the live area [base, end): a table of
// 2^capLog slots of 8 bytes, then a heap of records from base+8<<capLog up
// to top (the free space is [top, end)). A slot is 0 (empty), 1 (deleted)
// or hashTag<<48 | offset of a record from base. A record is the key's
// 64-bit hash, the key's and value's lengths (uint32 each), the key and
// the value, padded to 8 bytes. Records are never changed once written:
// an entry is replaced by pointing its slot at a new record (open
// addressing with linear probing; at most 3/4 of the slots are used or
// deleted).
//
// # One atomic store commits
//
// Each change is prepared where no reader looks and committed by ONE
// atomic store of a word that readers follow:
//
//   - Store and Update write the new record into free space at top, then
//     store top past it (so no later writer reuses those bytes), then
//     store the slot's word: the commit. Killed before the slot store, the
//     entry keeps its old record (old value, or absent) and the new bytes
//     are garbage in the heap; killed after it, the new value is in.
//   - Delete stores 1 into the slot: one store, the commit.
//   - Growth and compaction (when the heap is full or the table too
//     loaded) build a whole new area — a cleared table, every live record
//     copied, compacted — in a part of the file that the live area does
//     not use (before its base if there is room, else after its end: the
//     file only grows, and the memfd is sealed against shrinking), write
//     it into the descriptor that is NOT live, and commit with one atomic
//     store of root. Killed before that store, the old area is untouched
//     and live; after it, the new one is complete.
//
// A record is never torn because nothing points at it until it is
// complete, and an unrelated entry is never lost because no operation
// writes to a slot or record of another key: Store and Delete touch one
// slot; a rebuild touches only memory outside the live area.
//
// The counters (count and tombs, which say when to rebuild and answer Len)
// are stored after the commit, so a process killed between the commit and
// them leaves them off by one. So whoever takes the lock over from a dead
// holder (futex.Mutex reports it) first recounts them from the table
// (repair), before anything reads them. A dead holder's garbage in the
// heap costs space until the next rebuild drops it; the area a rebuild
// left (its pages are punched out of the memfd when it is large) may stay
// resident if the rebuilder died right after its commit, until a later
// rebuild reuses the range.
//
// # Remapping
//
// Areas move only at a rebuild, and only outward or back to the start, so
// a process's mapping must cover the live area's end. After taking the
// lock, every process reads root and its descriptor and, if the area ends
// beyond its mapping, maps the file again (mremap) before touching it: in
// this process no goroutine uses the mapping outside the lock, so the move
// is safe. Futex waits key on the file and offset, not the address, so
// waiters in other processes are not disturbed.
//
// # Untrusted memory
//
// Every process that holds the segment can write anything into it. Every
// offset, length and count read from it is checked against the live area
// before use (a probe stops after one pass over the table), and anything
// out of bounds is ErrCorrupt: never a fault or a read out of range.
//
// # Limits
//
// Keys and values up to 4 GiB - 1 each; an area up to 2^46 bytes. The
// robust lock detects a dead holder by pid (holders share a pid
// namespace); it notices within 100 ms (futex's owner check). A holder
// that is stopped (SIGSTOP) or hangs keeps every other process waiting.
package shmmap
