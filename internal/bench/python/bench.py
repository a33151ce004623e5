#!/usr/bin/env python3
"""python3 twin of `multiproc bench`: the same scenarios, with the same
names, units and sizes, measured with the standard library's
multiprocessing (the fork context, and spawn for start-cold).

    python3 bench.py [--quick] [--only NAME,NAME] [--plan JSON] [--print-plan]

Prints one JSON document on stdout:
    {"python": "3.11.7", "results": [{"name", "unit", "higher_is_better",
     "median", "min", "max", "samples", "n", "batch", "note",
     "cpu_s_per_million"}...],
     "errors": {"name": "text"}}
and a line "progress NAME REP REPS" on stderr before each repetition
(rep 0 is the warm-up). Standard library only. Embedded in the Go package
github.com/multiproc-go/multiproc/bench: keep PLAN in step with its
scenarios.go.
"""

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import sys
import time
import traceback
import multiprocessing as mp

# name: (unit, higher_is_better, full (n, batch, reps), quick (n, batch, reps))
# reps 0: 5 (full) or 3 (quick).
PLAN = {
    "start": ("ms", False, (100, 1, 0), (20, 1, 0)),
    "start-idle": ("ms", False, (30, 1, 0), (10, 1, 0)),
    "start-cold": ("ms", False, (10, 1, 0), (5, 1, 0)),
    "pipe-rt-bytes": ("µs", False, (20000, 1, 0), (5000, 1, 0)),
    "pipe-rt-struct": ("µs", False, (20000, 1, 0), (5000, 1, 0)),
    "pipe-1mib": ("MB/s", True, (500, 1 << 20, 0), (100, 1 << 20, 0)),
    "queue-1p1c": ("msgs/s", True, (200000, 1, 0), (50000, 1, 0)),
    "queue-2p2c": ("msgs/s", True, (200000, 1, 0), (50000, 1, 0)),
    "queue-1p1c-e2e": ("msgs/s", True, (200000, 1, 0), (50000, 1, 0)),
    "queue-2p2c-e2e": ("msgs/s", True, (200000, 1, 0), (50000, 1, 0)),
    "joinable-queue": ("msgs/s", True, (100000, 1, 0), (20000, 1, 0)),
    "event-rt": ("µs", False, (5000, 1, 0), (2000, 1, 0)),
    "condition-rt": ("µs", False, (5000, 1, 0), (2000, 1, 0)),
    "value-lock": ("ops/s", True, (1000000, 1, 0), (200000, 1, 0)),
    "value-lock-e2e": ("ops/s", True, (1000000, 1, 0), (200000, 1, 0)),
    "value-add": ("ops/s", True, (1000000, 1, 0), (200000, 1, 0)),
    "array-fill": ("ms", False, (10, 1 << 20, 0), (3, 1 << 20, 0)),
    "pool-map": ("tasks/s", True, (3, 200000, 0), (1, 200000, 0)),
    "pool-apply-async": ("tasks/s", True, (1, 10000, 0), (1, 10000, 0)),
    "pool-apply": ("µs", False, (2000, 1, 0), (500, 1, 0)),
    "signal-rt": ("µs", False, (10000, 1, 0), (2000, 1, 0)),
    "socket-unix": ("µs", False, (20000, 1, 0), (5000, 1, 0)),
    "socket-tcp": ("µs", False, (20000, 1, 0), (5000, 1, 0)),
    "socket-unix-py": ("µs", False, (20000, 1, 0), (5000, 1, 0)),
    "socket-tcp-py": ("µs", False, (20000, 1, 0), (5000, 1, 0)),
    "dict-update": ("ops/s", True, (20000, 1, 0), (4000, 1, 0)),
    "dict-load": ("ops/s", True, (50000, 1, 0), (10000, 1, 0)),
    "shareablelist-getset": ("ops/s", True, (1000000, 1, 0), (200000, 1, 0)),
    "shm-sum-1gib": ("ms", False, (2, 1 << 30, 0), (1, 1 << 30, 0)),
    "pickle-dict10": ("µs", False, (50000, 1, 0), (10000, 1, 0)),
}

# Scenarios whose batch is the size of one operation, not a count of units.
PER_OP = {"array-fill", "shm-sum-1gib"}

NOTES = {
    "start": "fork context: Process.start() + join() (no result comes back)",
    "start-idle": "fork context, 10 ms pause between starts (not counted)",
    "start-cold": "spawn context: a fresh interpreter each time",
    "value-add": "python has no atomic add: with v.get_lock(): v.value += 1, as value-lock",
    "array-fill": "Array('d', n, lock=False), the child fills it in a for loop",
    "signal-rt": "SIGUSR1 blocked and taken with signal.sigwaitinfo, both sides (python's fastest path)",
    "socket-unix": "Listener/Client with authkey over an abstract unix socket, a forked child echoes",
    "socket-tcp": "Listener/Client with authkey over TCP loopback, a forked child echoes",
    "socket-unix-py": "python3 on both sides: the same as socket-unix",
    "socket-tcp-py": "python3 on both sides: the same as socket-tcp",
    "pickle-dict10": "conn.send(obj) + conn.recv() through a Pipe(duplex=True) in one process",
}

IDLE_PAUSE = 0.010

FORK = None
SPAWN = None


def nop():
    pass


def incr(x):
    return x + 1


# --- start ---------------------------------------------------------------

def measure_start(n, batch, ctx=None, pause=0.0):
    ctx = ctx or FORK
    total = 0.0
    for _ in range(n):
        if pause:
            time.sleep(pause)
        t0 = time.perf_counter()
        p = ctx.Process(target=nop)
        p.start()
        p.join()
        total += time.perf_counter() - t0
        if p.exitcode != 0:
            raise RuntimeError("child exited with %s" % p.exitcode)
    return total


def measure_start_idle(n, batch):
    return measure_start(n, batch, pause=IDLE_PAUSE)


def measure_start_cold(n, batch):
    return measure_start(n, batch, ctx=SPAWN)


# --- pipe ----------------------------------------------------------------

def echo_bytes(conn, other):
    other.close()  # the parent's end, inherited by fork: else no EOF
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass


def echo_obj(conn, other):
    other.close()
    try:
        while True:
            conn.send(conn.recv())
    except EOFError:
        pass


def sink(conn, other, n, size):
    other.close()
    buf = bytearray(size)  # one buffer for every message, as the Go sink
    conn.send_bytes(b"ready")
    for _ in range(n):
        conn.recv_bytes_into(buf)
    conn.send_bytes(b"done")


def with_child(target, args, body):
    ours, theirs = FORK.Pipe(duplex=True)
    p = FORK.Process(target=target, args=(theirs, ours) + args, daemon=True)
    p.start()
    theirs.close()
    try:
        return body(ours)
    finally:
        ours.close()
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join()


def measure_pipe_rt_bytes(n, batch):
    msg = bytes(64)

    def body(c):
        c.send_bytes(msg)
        c.recv_bytes()
        t0 = time.perf_counter()
        for _ in range(n):
            c.send_bytes(msg)
            if len(c.recv_bytes()) != 64:
                raise RuntimeError("bad echo")
        return time.perf_counter() - t0

    return with_child(echo_bytes, (), body)


def measure_pipe_rt_struct(n, batch):
    msg = {"ID": 1, "X": 1.5, "Y": -2.25, "Name": "point"}

    def body(c):
        c.send(msg)
        c.recv()
        t0 = time.perf_counter()
        for i in range(n):
            msg["ID"] = i
            c.send(msg)
            if c.recv()["ID"] != i:
                raise RuntimeError("bad echo")
        return time.perf_counter() - t0

    return with_child(echo_obj, (), body)


def measure_pipe_1mib(n, batch):
    msg = bytes(batch)

    def body(c):
        c.recv_bytes()
        t0 = time.perf_counter()
        for _ in range(n):
            c.send_bytes(msg)
        c.recv_bytes()
        return time.perf_counter() - t0

    return with_child(sink, (n, batch), body)


# --- queue ---------------------------------------------------------------

def producer(q, bar, n, off):
    bar.wait()
    for i in range(n):
        q.put(off + i)
    bar.wait()


def consumer(q, bar, n):
    bar.wait()
    for _ in range(n):
        q.get()
    bar.wait()


def measure_queue(n, k):
    n = max(k, n // k * k)
    q = FORK.Queue()
    bar = FORK.Barrier(2 * k + 1)
    ps = []
    for i in range(k):
        ps.append(FORK.Process(target=producer, args=(q, bar, n // k, i * (n // k)), daemon=True))
        ps.append(FORK.Process(target=consumer, args=(q, bar, n // k), daemon=True))
    for p in ps:
        p.start()
    try:
        bar.wait(60)
        t0 = time.perf_counter()
        bar.wait(600)
        d = time.perf_counter() - t0
    finally:
        for p in ps:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    if not q.empty():
        raise RuntimeError("messages left in the queue")
    return d


def measure_queue_1p1c(n, batch):
    return measure_queue(n, 1)


def end_to_end(measure):
    """The -e2e rows: a whole steady-state measurement timed as a user's
    program sees it (objects made, processes started, work, joins)."""
    def run(n, batch):
        t0 = time.perf_counter()
        measure(n, batch)
        return time.perf_counter() - t0
    return run


def measure_queue_2p2c(n, batch):
    return measure_queue(n, 2)


def join_producer(q, bar, n):
    bar.wait()
    for i in range(n):
        q.put(i)
    q.join()
    bar.wait()


def join_consumer(q, bar, n):
    bar.wait()
    for _ in range(n):
        q.get()
        q.task_done()
    bar.wait()


def measure_joinable(n, batch):
    q = FORK.JoinableQueue()
    bar = FORK.Barrier(3)
    ps = [FORK.Process(target=join_producer, args=(q, bar, n), daemon=True),
          FORK.Process(target=join_consumer, args=(q, bar, n), daemon=True)]
    for p in ps:
        p.start()
    try:
        bar.wait(60)
        t0 = time.perf_counter()
        bar.wait(600)
        d = time.perf_counter() - t0
    finally:
        for p in ps:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    return d


# --- wake-ups -------------------------------------------------------------

def event_echo(ping, pong, bar, n):
    bar.wait()
    for _ in range(n):
        ping.wait()
        ping.clear()
        pong.set()


def measure_event_rt(n, batch):
    ping, pong, bar = FORK.Event(), FORK.Event(), FORK.Barrier(2)
    p = FORK.Process(target=event_echo, args=(ping, pong, bar, n), daemon=True)
    p.start()
    try:
        bar.wait(60)
        t0 = time.perf_counter()
        for _ in range(n):
            ping.set()
            pong.wait()
            pong.clear()
        return time.perf_counter() - t0
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join()


def condition_echo(c, v, bar, n):
    bar.wait()
    with c:
        for i in range(n):
            while v.value != 2 * i + 1:
                c.wait()
            v.value = 2 * i + 2
            c.notify()


def measure_condition_rt(n, batch):
    c, v, bar = FORK.Condition(), FORK.Value("q", 0, lock=False), FORK.Barrier(2)
    p = FORK.Process(target=condition_echo, args=(c, v, bar, n), daemon=True)
    p.start()
    try:
        bar.wait(60)
        t0 = time.perf_counter()
        with c:
            for i in range(n):
                v.value = 2 * i + 1
                c.notify()
                while v.value != 2 * i + 2:
                    c.wait()
        return time.perf_counter() - t0
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join()


# --- shared memory -------------------------------------------------------

def counter(v, bar, n):
    bar.wait()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    bar.wait()


def measure_counter(n, batch):
    n = max(2, n // 2 * 2)
    v = FORK.Value("q", 0)
    bar = FORK.Barrier(3)
    ps = [FORK.Process(target=counter, args=(v, bar, n // 2), daemon=True) for _ in range(2)]
    for p in ps:
        p.start()
    try:
        bar.wait(60)
        t0 = time.perf_counter()
        bar.wait(600)
        d = time.perf_counter() - t0
    finally:
        for p in ps:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    if v.value != n:
        raise RuntimeError("counter is %d after %d increments" % (v.value, n))
    return d


def fill(a, n):
    for i in range(n):
        a[i] = i


def measure_array_fill(n, batch):
    total = 0.0
    for _ in range(n):
        a = FORK.Array("d", batch, lock=False)
        t0 = time.perf_counter()
        p = FORK.Process(target=fill, args=(a, batch))
        p.start()
        p.join()
        total += time.perf_counter() - t0
        if p.exitcode != 0 or a[batch - 1] != batch - 1:
            raise RuntimeError("the child did not fill the array")
    return total


# --- pool ----------------------------------------------------------------

def with_pool(body):
    pool = FORK.Pool(2)
    try:
        pool.map(incr, range(4), chunksize=1)
        return body(pool)
    finally:
        pool.close()
        pool.join()


def measure_pool_map(n, batch):
    args = list(range(batch))

    def body(pool):
        t0 = time.perf_counter()
        for _ in range(n):
            rs = pool.map(incr, args)
            if len(rs) != batch or rs[-1] != batch:
                raise RuntimeError("bad map result")
        return time.perf_counter() - t0

    return with_pool(body)


def measure_pool_apply_async(n, batch):
    def body(pool):
        t0 = time.perf_counter()
        for _ in range(n):
            rs = [pool.apply_async(incr, (i,)) for i in range(batch)]
            for i, r in enumerate(rs):
                if r.get() != i + 1:
                    raise RuntimeError("bad result")
        return time.perf_counter() - t0

    return with_pool(body)


def measure_pool_apply(n, batch):
    def body(pool):
        t0 = time.perf_counter()
        for i in range(n):
            if pool.apply(incr, (i,)) != i + 1:
                raise RuntimeError("bad result")
        return time.perf_counter() - t0

    return with_pool(body)


# --- signal --------------------------------------------------------------
# Python's fastest way to wait for a signal, as the C floor does it: the
# signal blocked, and taken with sigwaitinfo (no handler, no wakeup fd, no
# timer armed on every wait). A lost signal must not hang the run: the
# parent also takes SIGCHLD (the child ended), the child dies with its
# parent (PR_SET_PDEATHSIG).

SIGNAL_TIMEOUT = 10.0


def die_with_parent(parent):
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != parent:
        os._exit(1)


def signal_child(parent, n):
    die_with_parent(parent)
    wait = {signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, wait)
    os.kill(parent, signal.SIGUSR1)  # ready
    for _ in range(n):
        signal.sigwaitinfo(wait)
        os.kill(parent, signal.SIGUSR1)


def measure_signal_rt(n, batch):
    # A child that has not said it is ready within SIGNAL_TIMEOUT (seen once
    # on a machine loaded by a parallel test run, not understood) is killed
    # and a second one started, before the run fails.
    for attempt in (1, 2):
        d = signal_rt_once(n, attempt == 2)
        if d is not None:
            return d


def signal_rt_once(n, last):
    wait = {signal.SIGUSR1, signal.SIGCHLD}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, wait)
    try:
        p = FORK.Process(target=signal_child, args=(os.getpid(), n), daemon=True)
        p.start()
        try:
            si = signal.sigtimedwait(wait, SIGNAL_TIMEOUT)
            if si is None or si.si_signo != signal.SIGUSR1:
                if si is None and not last:
                    return None
                raise RuntimeError("no ready signal from the child: %r (child alive: %s, exit code %s)" % (si, p.is_alive(), p.exitcode))
            t0 = time.perf_counter()
            for _ in range(n):
                os.kill(p.pid, signal.SIGUSR1)
                if signal.sigwaitinfo(wait).si_signo != signal.SIGUSR1:
                    raise RuntimeError("the child ended")
            d = time.perf_counter() - t0
        finally:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        return d
    finally:
        # Nothing is sent any more (the child is gone): drop what is still
        # pending, so that unblocking does not deliver it.
        while signal.sigtimedwait(wait, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --- socket (Listener / Client) -----------------------------------------

SOCKET_KEY = b"multiproc bench"


def socket_echo(address):
    from multiprocessing.connection import Client
    c = Client(address, authkey=SOCKET_KEY)
    try:
        while True:
            c.send_bytes(c.recv_bytes())
    except EOFError:
        pass


def measure_socket(family):
    def measure(n, batch):
        from multiprocessing.connection import Listener
        if family == "unix":
            address = "\0multiproc-bench-py-%d-%d" % (os.getpid(), time.monotonic_ns())
        else:
            address = ("127.0.0.1", 0)
        with Listener(address, authkey=SOCKET_KEY) as l:
            p = FORK.Process(target=socket_echo, args=(l.address,), daemon=True)
            p.start()
            c = l.accept()
        try:
            msg = bytes(64)
            c.send_bytes(msg)
            c.recv_bytes()
            t0 = time.perf_counter()
            for _ in range(n):
                c.send_bytes(msg)
                if len(c.recv_bytes()) != 64:
                    raise RuntimeError("bad echo")
            return time.perf_counter() - t0
        finally:
            c.close()
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    return measure


# --- Manager().dict() and ShareableList ----------------------------------

def dict_counter(d, lock, bar, n):
    bar.wait()
    for _ in range(n):
        with lock:
            d["k"] += 1
    bar.wait()


def measure_dict_update(n, batch):
    n = max(2, n // 2 * 2)
    with FORK.Manager() as m:
        d = m.dict()
        d["k"] = 0
        lock = FORK.Lock()
        bar = FORK.Barrier(3)
        ps = [FORK.Process(target=dict_counter, args=(d, lock, bar, n // 2), daemon=True) for _ in range(2)]
        for p in ps:
            p.start()
        try:
            bar.wait(60)
            t0 = time.perf_counter()
            bar.wait(600)
            t = time.perf_counter() - t0
        finally:
            for p in ps:
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join()
        if d["k"] != n:
            raise RuntimeError("counter is %d after %d updates" % (d["k"], n))
    return t


def measure_dict_load(n, batch):
    with FORK.Manager() as m:
        d = m.dict()
        d["k"] = 42
        t0 = time.perf_counter()
        for _ in range(n):
            if d["k"] != 42:
                raise RuntimeError("bad value")
        return time.perf_counter() - t0


def measure_shareablelist(n, batch):
    from multiprocessing import shared_memory
    sl = shared_memory.ShareableList([0, "x", 2.5])
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            sl[0] = sl[0] + 1
        t = time.perf_counter() - t0
        if sl[0] != n:
            raise RuntimeError("bad count")
        return t
    finally:
        sl.shm.close()
        sl.shm.unlink()


def measure_shm_sum(n, batch):
    import struct
    from multiprocessing import shared_memory
    size = max(8, batch // 8 * 8)  # whole doubles (test sizes are not)
    shm = shared_memory.SharedMemory(create=True, size=size)
    try:
        chunk = struct.pack("d", 1.0) * (1 << 17)
        for off in range(0, size, len(chunk)):
            k = min(len(chunk), size - off)
            shm.buf[off:off + k] = chunk[:k]
        total = 0.0
        for _ in range(n):
            t0 = time.perf_counter()
            m = shared_memory.SharedMemory(shm.name)
            view = m.buf.cast("d")
            s = sum(view)
            view.release()
            m.close()
            total += time.perf_counter() - t0
            if s != size // 8:
                raise RuntimeError("bad sum")
        return total
    finally:
        shm.close()
        shm.unlink()


# --- pickle --------------------------------------------------------------

# The message of pickle-dict10 (internal/bench/pickle.go's PickleMessage).
PICKLE_MSG = {
    "id": 12345, "name": "sensor-7", "value": 21.5, "ok": True,
    "tags": ["a", "b", "c"], "pos": (1.5, -2.0), "data": b"\x00\x01\x02\x03" * 4,
    "count": 2**70, "none": None, "meta": {"unit": "C", "n": 3},
}


def measure_pickle_dict10(n, batch):
    a, b = FORK.Pipe(duplex=True)
    try:
        a.send(PICKLE_MSG)
        if b.recv() != PICKLE_MSG:
            raise RuntimeError("bad message")
        t0 = time.perf_counter()
        for _ in range(n):
            a.send(PICKLE_MSG)
            b.recv()
        return time.perf_counter() - t0
    finally:
        a.close()
        b.close()


MEASURE = {
    "start": measure_start,
    "start-idle": measure_start_idle,
    "start-cold": measure_start_cold,
    "pipe-rt-bytes": measure_pipe_rt_bytes,
    "pipe-rt-struct": measure_pipe_rt_struct,
    "pipe-1mib": measure_pipe_1mib,
    "queue-1p1c": measure_queue_1p1c,
    "queue-2p2c": measure_queue_2p2c,
    "queue-1p1c-e2e": end_to_end(measure_queue_1p1c),
    "queue-2p2c-e2e": end_to_end(measure_queue_2p2c),
    "joinable-queue": measure_joinable,
    "event-rt": measure_event_rt,
    "condition-rt": measure_condition_rt,
    "value-lock": measure_counter,
    "value-lock-e2e": end_to_end(measure_counter),
    "value-add": measure_counter,
    "array-fill": measure_array_fill,
    "pool-map": measure_pool_map,
    "pool-apply-async": measure_pool_apply_async,
    "pool-apply": measure_pool_apply,
    "signal-rt": measure_signal_rt,
    "socket-unix": measure_socket("unix"),
    "socket-tcp": measure_socket("tcp"),
    "socket-unix-py": measure_socket("unix"),
    "socket-tcp-py": measure_socket("tcp"),
    "dict-update": measure_dict_update,
    "dict-load": measure_dict_load,
    "shareablelist-getset": measure_shareablelist,
    "shm-sum-1gib": measure_shm_sum,
    "pickle-dict10": measure_pickle_dict10,
}


# --- connection.wait (wait-1000) -----------------------------------------

WAIT_IDLE = 999


def measure_wait_1000(n, batch):
    from multiprocessing.connection import wait
    idle = [FORK.Pipe(duplex=False) for _ in range(WAIT_IDLE)]
    msg = bytes(64)

    def body(c):
        objs = [r for r, _ in idle] + [c]
        c.send_bytes(msg)
        wait(objs)
        c.recv_bytes()
        t0 = time.perf_counter()
        for _ in range(n):
            c.send_bytes(msg)
            ready = wait(objs)
            if ready != [c]:
                raise RuntimeError("wait returned %d objects" % len(ready))
            if len(c.recv_bytes()) != 64:
                raise RuntimeError("bad echo")
        return time.perf_counter() - t0

    try:
        return with_child(echo_bytes, (), body)
    finally:
        for r, w in idle:
            r.close()
            w.close()


PLAN["wait-1000"] = ("µs", False, (5000, 1, 0), (1000, 1, 0))
NOTES["wait-1000"] = "multiprocessing.connection.wait over 999 idle pipes and the echoing one"
MEASURE["wait-1000"] = measure_wait_1000


# --- harness -------------------------------------------------------------

def cpu_time():
    """CPU seconds (user + system) of this process and of its children that
    have been joined: every process of a repetition, as the Go side counts."""
    t = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        t += r.ru_utime + r.ru_stime
    return t


def figure(name, unit, n, batch, secs):
    units = n if name in PER_OP else n * batch
    secs = max(secs, 1e-9)
    if unit == "ms":
        return secs / units * 1e3
    if unit == "µs":
        return secs / units * 1e6
    if unit == "MB/s":
        return units / secs / 1e6
    return units / secs


def plan_for(quick):
    out = {}
    for name, (unit, higher, full, q) in PLAN.items():
        n, batch, reps = q if quick else full
        out[name] = {"n": n, "batch": batch, "reps": reps or (3 if quick else 5)}
    return out


def run(name, p):
    unit, higher = PLAN[name][0], PLAN[name][1]
    n, batch, reps = p["n"], p["batch"], p["reps"]
    f = MEASURE[name]
    print("progress %s 0 %d" % (name, reps), file=sys.stderr, flush=True)
    f(max(1, n // 10), batch)
    samples, cpu = [], []
    units = n if name in PER_OP else n * batch
    for i in range(reps):
        print("progress %s %d %d" % (name, i + 1, reps), file=sys.stderr, flush=True)
        c0 = cpu_time()
        samples.append(figure(name, unit, n, batch, f(n, batch)))
        cpu.append((cpu_time() - c0) / units * 1e6)
    s = sorted(samples)
    return {
        "name": name,
        "unit": unit,
        "higher_is_better": higher,
        "median": statistics.median(s),
        "min": s[0],
        "max": s[-1],
        "samples": samples,
        "n": n,
        "batch": batch,
        "note": NOTES.get(name, ""),
        "cpu_s_per_million": statistics.median(cpu),
    }


def main():
    global FORK, SPAWN
    ap = argparse.ArgumentParser(description="python3 twin of `multiproc bench`")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, 3 repetitions")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--plan", default="", help='JSON {"name": {"n": N, "batch": B, "reps": R}} overriding the sizes')
    ap.add_argument("--print-plan", action="store_true", help="print the plan as JSON and exit")
    args = ap.parse_args()

    plan = plan_for(args.quick)
    if args.plan:
        for name, p in json.loads(args.plan).items():
            if name not in PLAN:
                ap.error("unknown scenario in --plan: %s" % name)
            plan[name] = {"n": int(p["n"]), "batch": int(p["batch"]), "reps": int(p["reps"])}
    if args.print_plan:
        json.dump(plan, sys.stdout, sort_keys=True)
        print()
        return 0
    names = list(PLAN)
    if args.only:
        names = [s.strip() for s in args.only.split(",") if s.strip()]
        for name in names:
            if name not in PLAN:
                ap.error("unknown scenario %r (known: %s)" % (name, ", ".join(PLAN)))

    # A stray SIGUSR1 (another program on the machine, or a test of the
    # Go side run beside this one) must not end the run: SIGUSR1's default
    # action terminates. A handler that does nothing, not SIG_IGN, which
    # would discard the signals signal-rt takes with sigwaitinfo.
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    FORK = mp.get_context("fork")
    SPAWN = mp.get_context("spawn")
    results, errors = [], {}
    for name in names:
        try:
            results.append(run(name, plan[name]))
        except Exception as e:  # report it and go on with the others
            traceback.print_exc(file=sys.stderr)
            errors[name] = "%s: %s" % (type(e).__name__, e)
    json.dump({
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "results": results,
        "errors": errors,
    }, sys.stdout, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
