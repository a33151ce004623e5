// Package multiproc is Python's multiprocessing for Go: real OS processes
// that run registered Go functions, a process pool, and the classic Unix
// IPC mechanisms — pipes, queues, shared memory, locks and semaphores —
// with a typed, context-aware API and no hangs, zombies or leaks.
//
// Use it for what goroutines cannot give: a task that can be killed, a
// crash (a segfaulting C library, the OOM killer) that takes down one
// process and not the service, memory that is given back when a process
// exits, hard per-task timeouts.
//
// # Starting
//
// Go cannot fork. A child process is the same program started again; Main,
// the first statement of main (and of TestMain), runs the child's task
// there and exits, and returns at once in the parent. Functions are found
// in the child by name, so they are registered at package initialisation:
//
//	var square = multiproc.Register("square", func(ctx context.Context, x int) (int, error) {
//		return x * x, nil
//	})
//
//	func main() {
//		multiproc.Main()
//		n, err := square.Call(context.Background(), 7) // 49, computed in a child process
//		...
//	}
//
// Package initialisation runs again in every child, so keep it cheap. A
// program that forgets Main cannot multiply: Start fails with ErrNoMain.
//
// # Python to Go
//
//	Python multiprocessing                       multiproc
//	-------------------------------------------  ----------------------------------------------------
//	Process(target=f, args=(a,)); p.start()      p := f.Process(a); p.Start()   (f from Register)
//	p.name, p.daemon (before start)              p.Name, p.Daemon (fields, before Start)
//	p.join(timeout)                              p.Join(ctx): nil, *ExitError, or ctx.Err()
//	p.pid, p.is_alive(), p.exitcode              p.Pid(), p.IsAlive(), p.ExitCode()  (-N: signal N)
//	p.terminate(), p.kill()                      p.Terminate(), p.Kill(), p.Signal(sig)
//	class P(Process): def run(self)              type P struct{...}; func (p *P) Run(ctx) error;
//	                                             RegisterRunner("p", &P{}); NewProcess(&P{...})
//	waitpid / double fork against zombies        nothing: every child is reaped as it exits
//	result of a function in a child              f.Call(ctx, a)
//	Pool(processes, initializer, maxtasksperchild)  NewPool(PoolOptions{Processes, Initializer, MaxTasksPerChild, TaskTimeout})
//	pool.apply(f, (a,))                          f.Apply(ctx, pool, a)   (any Executor: a Pool, a cluster)
//	pool.apply_async(f, (a,)).get(timeout)       f.ApplyAsync(pool, a).Get(ctx)
//	pool.map / imap / imap_unordered             f.Map(ctx, pool, args) / f.IMap / f.IMapUnordered (iter.Seq2)
//	pool.close(), pool.join(), pool.terminate()  pool.Close(), pool.Join(ctx), pool.Terminate()
//	Pipe(duplex), c.send/recv, send_bytes/recv_bytes, poll   Pipe(duplex), c.Send/Recv, SendBytes/RecvBytes, Poll
//	c.recv_bytes_into(buf), BufferTooShort       c.RecvBytesInto(buf), *BufferTooShortError (errors.As)
//	Queue(maxsize), put/get(block, timeout)      NewQueue[T](maxsize), Put(ctx, v)/Get(ctx), TryPut/TryGet
//	q.qsize(), q.full(), q.empty(), q.close()    q.Len(), q.Full(), q.Empty(), q.Close()
//	queue.Full, queue.Empty exceptions           ErrFull, ErrEmpty (errors.Is)
//	Value('d', 0.0), v.value, v.get_lock()       NewValue(0.0), v.Load/Store/Add, v.Lock/Unlock/LockContext
//	Array('i', 10), Array('d', [1, 2])           NewArray[int32](10), ArrayOf([]float64{1, 2}), a.Slice()
//	Lock, Semaphore(n), Event, Barrier(n)        NewLock, NewSemaphore(n), NewEvent, NewBarrier(n)
//	lock.acquire(timeout=t)                      l.LockContext(ctx)
//	BoundedSemaphore(n), s.get_value()          NewBoundedSemaphore(n) (a Release past n panics), s.Value()
//	Condition(lock), wait/notify(n)/notify_all   NewCondition(l) (nil: its own Lock), c.Wait(ctx), c.Notify(n), c.NotifyAll()
//	Barrier.abort/reset/parties/n_waiting        b.Abort(), b.Reset(), b.Parties(), b.Waiting()
//	v.get_lock().acquire(False)                  v.TryLock(), a.TryLock()
//	JoinableQueue(maxsize), task_done, join      NewJoinableQueue[T](maxsize), q.TaskDone(), q.Join(ctx)
//	p.sentinel, connection.wait(objs, timeout)   p.Done() (a channel), Wait(ctx, objs...): Conns, Listeners, Processes
//	active_children()                            ActiveChildren()
//	Future.cancel(), pool.map_async(f, xs)       r.Cancel() on an AsyncResult, f.MapAsync(pool, xs)
//	RLock                                        not offered: Go has no goroutine identity, and its
//	                                             locks are not reentrant by design: restructure so
//	                                             the holder calls an unlocked helper
//	pool.starmap(f, [(a, b), ...])               f.Map over a struct argument: Register a func of struct{A, B}
//	apply_async(callback=, error_callback=)      r := f.ApplyAsync(...); go func() { v, err := r.Get(ctx); ... }(),
//	                                             or select on r.Done(); IMapUnordered yields as tasks finish
//	map(..., chunksize=n)                        chunks sized by the pool, as Python's default (len/(4*workers))
//	get_context, set_start_method                one start method: the program started again (spawn), with
//	                                             spare children kept ready (as forkserver): nothing to choose
//	cpu_count()                                  runtime.NumCPU()
//	parent_process()                             os.Getppid() (and ProcessName() for this process's name)
//	c.recv() with a timeout (c.poll(t) first)    c.RecvContext(ctx, &v), c.RecvBytesContext(ctx), c.RecvPickleContext(ctx), c.PollContext(ctx)
//	multiprocessing.current_process().name, .pid ProcessName(), os.Getpid()
//	timeout=...                                  a context.Context with a deadline
//	os.kill, signal.alarm, signal.pause          package signals: Kill, Alarm, Pause, Table, Lookup
//	Listener(address, authkey=k), l.accept()     Listen("unix"|"tcp", address, k), l.Accept(ctx)
//	Client(address, authkey=k)                   Dial(ctx, "unix"|"tcp", address, k)
//	conn.send(obj)/recv() with a python3 peer    conn.SendPickle(v)/RecvPickle()
//
// # Python's type codes and Go's types
//
// Value and Array take a Go type instead of a ctypes code:
//
//	'b' int8    'B' uint8    'h' int16   'H' uint16   'i' int32   'I' uint32
//	'l' int64   'L' uint64   'q' int64   'Q' uint64   'f' float32  'd' float64
//	'c' (a char) byte = uint8;  '?' (a bool) no Scalar: use uint8 with 0 and 1
//
// ('l' and 'L' are 64 bits on Linux amd64/arm64, as C's long.) Strings
// and structures (ctypes Structure, c_char_p) have no shared-memory form
// here: send them through a Queue or a Conn, or keep them in an Array of
// bytes.
//
// # What Go does differently, and what to do
//
//   - A child is this program started again (Go cannot fork), so Main must
//     be the first statement of main. A program that forgets it runs the
//     code of main before it again in the child before Start reports
//     ErrNoMain: side effects there happen twice.
//   - Functions and Runner types are found by name, so they are
//     registered at package initialisation (Register after Main panics).
//     A shared object made there, in a package-level var, would be a
//     different object in every process: in a child it is refused.
//   - When main returns, Go exits at once: the parent does not join its
//     non-daemon children as Python does (they run on, reaped by init).
//     Join what you start, or Close and Join your Pool, before main
//     returns.
//   - The package reaps every child the moment it exits: never wait for
//     one yourself (syscall.Wait4, os.Process.Wait). A child reaped by
//     someone else makes Join return ErrReaped: its status is lost.
//   - Timeouts are contexts. Every call that can block takes one, or has a
//     twin that does, named XxxContext (LockContext, RecvContext,
//     StartContext, ...); the non-blocking twins are named Try...
//   - A start costs a whole program's start and exit (the Go runtime, every
//     package's initialisation). This package imports net, so a build
//     with cgo (the default where a C compiler is installed) is
//     dynamically linked and each child also runs the dynamic loader:
//     CGO_ENABLED=0 makes starts about a fifth cheaper. A child
//     initialises its packages with GOMAXPROCS=1 (cheaper still) and gets
//     the program's setting back before its task runs.
//   - Up to two idle child processes are kept ready while a program
//     starts processes, so that the next Start is fast; they retire after
//     a few seconds unused and die with their parent. SpareProcesses =
//     false (set before the first Start; children inherit it) turns them
//     off. In ps, a child shows as "PROGRAM [multiproc]", and its name
//     (comm) is the Process's Name.
//
// # Executors: one machine or many
//
// Apply, ApplyAsync, Map, IMap and IMapUnordered take an Executor: a
// *Pool runs the tasks in worker processes on this machine; the cluster
// module (github.com/multiproc-go/multiproc/cluster) runs the same
// registered functions on worker processes on many machines, through
// NATS JetStream, so the same call scales out. An Executor carries tasks
// and results encoded (Task, Result); shared objects, which exist only on
// this machine, are refused by a remote one with ErrShared.
//
// # Sockets and python3
//
// Listen and Dial are Python's multiprocessing.connection Listener and
// Client, on a unix socket (a path, or "@name" in the abstract namespace)
// or TCP. They return the same *Conn as Pipe, which travels to children
// and pool tasks like any other. With an authkey both sides run Python's
// handshake, byte for byte (python 3.8 to 3.13), so a python3 process can
// be either end. SendPickle and RecvPickle are python3's conn.send(obj)
// and conn.recv(): None ↔ nil, bool, int ↔ int64 (*big.Int beyond
// int64), float ↔ float64, str ↔ string, bytes ↔ []byte, list ↔ []any,
// tuple ↔ Tuple, dict ↔ map[any]any, set ↔ Set, frozenset ↔ FrozenSet
// (bytearray → []byte), at every pickle protocol (0 to 5); anything else
// is refused both ways with a clear error, nothing a pickle names is ever
// imported, called or built, and decoding a pickle is bounded in depth,
// time and memory by the message's size (SendPickleContext and
// RecvPickleContext bound the wait).
//
// # Sharing objects with a child
//
// Arguments and results are copied (encoding/gob rules: exported fields;
// the wire format is the package's own binary codec, with no type
// information, since both ends are the same binary; a value held in an
// interface-typed field travels if its type is registered with
// RegisterType, as with gob.Register). A *Value, *Array,
// *Lock, *Semaphore, *Event, *Barrier, *Condition, *Conn, *Queue or
// *JoinableQueue is not copied: passed as the argument itself, as an
// exported field of it or of a Runner at any depth of plain structs, or as
// an element of a slice, array or map in it (a list of Queues, a map of
// Conns by name; map keys must be strings, integers or bools) — to a
// Process, a Call or a pool task alike — it arrives in the child as the
// same shared object (its file descriptor travels with SCM_RIGHTS, once
// per message however often the object appears). Python cannot pass a Queue to
// a pool task; this package can. Shared memory lives in memfd segments, never in /dev/shm,
// so a crash leaks nothing: the kernel frees a segment when the last
// process holding it is gone. The exceptions are the blocks a program
// names itself, Python's shared_memory: a SharedMemory (and the
// ShareableList in one) is a /dev/shm object that a python3 process opens
// by name too, and lives until Unlink. A Dict is Python's Manager().dict()
// in a memfd, with no manager process. These three travel to children and
// pool tasks as the same object too.
//
// # Lifetimes
//
// Every child is reaped the moment it exits. A Daemon child dies with its
// parent, even when the parent is killed with SIGKILL. A non-daemon child
// outlives its parent, but the context its task gets is cancelled when the
// parent is gone. A child whose task returns first kills its daemon
// children and waits for its other children, as in Python. Locks record
// their holder's pid: a holder that dies while holding one does not
// deadlock the others. Any process may release a lock another took, as in
// Python; LockContext bounds the wait for one.
//
// Every shared object has a Close that releases this process's descriptor
// and mapping at once (the other processes keep the object; closing twice
// is fine); one dropped without Close is released by the garbage
// collector. After Close, and on a zero value, a method fails with an
// error matching ErrClosed (ErrNotInitialized), or panics with it if it
// has no error result.
//
// # Pool
//
// A Pool's workers are long-lived processes that run any registered
// function. The pool knows which task each worker runs: a worker that dies
// (a segfault, the OOM killer, os.Exit) fails exactly its own task with
// ErrWorkerDied and is replaced; a task past TaskTimeout is stopped by
// killing its worker; a cancelled context stops the work nobody waits for.
// Nothing hangs, which is where Python's pool most often fails its users.
//
// # Errors
//
// Errors start with "multiproc:". Sentinels (ErrFull, ErrEmpty, ErrClosed,
// ErrPoolClosed, ErrWorkerDied, ErrNoMain, ...) match with errors.Is; a
// failed child is an *ExitError, a function's own error a *RemoteError
// (errors.As). Blocking calls take a context.Context; their non-blocking
// twins are named Try....
package multiproc
