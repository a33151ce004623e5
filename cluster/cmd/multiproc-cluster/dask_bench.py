# The Dask anchor of `multiproc-cluster bench`: the same trivial task on a
# LocalCluster of 2 worker processes. Prints one JSON line.
import json
import sys
import time

from distributed import Client, LocalCluster


def inc(x):
    return x + 1


def echo(b):
    return b


if __name__ == "__main__":
    n_map, n_async, n_apply = map(int, sys.argv[1:4])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as lc, Client(lc) as c:
        c.gather(c.map(inc, range(20), pure=False))  # warm up
        t = time.perf_counter()
        r = c.gather(c.map(inc, range(n_map), pure=False))
        d_map = time.perf_counter() - t
        assert r[-1] == n_map
        t = time.perf_counter()
        fs = [c.submit(inc, i, pure=False) for i in range(n_async)]
        c.gather(fs)
        d_async = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(n_apply):
            c.submit(inc, i, pure=False).result()
        d_apply = (time.perf_counter() - t) / n_apply
        # The Map 64 x 1 MiB row: distinct bytes objects, echoed back.
        xs = [bytes([i]) * (1 << 20) for i in range(64)]
        t = time.perf_counter()
        r = c.gather(c.map(echo, xs, pure=False))
        d_large = time.perf_counter() - t
        assert len(r) == 64 and all(r[i] == xs[i] for i in range(64))
    print(json.dumps({"map": n_map / d_map, "async": n_async / d_async,
                      "apply": d_apply, "large": d_large}))
