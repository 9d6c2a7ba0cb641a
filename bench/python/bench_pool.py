#!/usr/bin/env python3
"""Python process-pool baseline for serfn's `cargo bench -p serfn-bench --bench pool`.

Compares stdlib multiprocessing (pickle: no closures, so functools.partial),
multiprocess (dill) and loky (cloudpickle) on:
  tiny_chunk1 / tiny_chunked  `x * f` with a captured float, tasks/s
  cpu_speedup                 pure-Python float loops, sequential vs pool
  startup                     new 2-worker pool -> first result, ms
Run with the venv made by bench/python/setup.sh.
"""
import argparse
import functools
import json
import multiprocessing
import operator
import os
import pathlib
import platform
import statistics
import time

# multiprocess and loky are imported inside the functions that use them:
# spawned workers re-import this module, and top-level imports of those
# libraries would inflate the stdlib `spawn` start-up number.

CPU_LR = 0.01
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def make_scale(f):
    """The tiny task as a real closure (what dill / cloudpickle must ship)."""
    return lambda x: x * f


def descend(lr, iters, x0):
    """Fixed-length gradient descent on x^4 - 3x^2 + x; pure-Python float work."""
    x = x0
    for _ in range(iters):
        x -= lr * (4.0 * x * x * x - 6.0 * x + 1.0)
    return x


def make_descent(lr, iters):
    """The CPU task as a closure over its parameters."""
    def run(x0):
        return descend(lr, iters, x0)
    return run


def median_time(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- pools kept alive across the timed maps ------------------------------------

class StdlibPool:
    name = "multiprocessing+pickle"

    def __init__(self, workers):
        self.pool = multiprocessing.Pool(workers)

    def scale_fn(self, f):
        return functools.partial(operator.mul, f)  # pickle rejects closures

    def descent_fn(self, lr, iters):
        return functools.partial(descend, lr, iters)

    def map(self, fn, items, chunksize):
        return self.pool.map(fn, items, chunksize=chunksize)

    def close(self):
        self.pool.close()
        self.pool.join()


class MultiprocessPool(StdlibPool):
    name = "multiprocess+dill"

    def __init__(self, workers):
        import multiprocess
        self.pool = multiprocess.Pool(workers)

    def scale_fn(self, f):
        return make_scale(f)

    def descent_fn(self, lr, iters):
        return make_descent(lr, iters)


class LokyPool(MultiprocessPool):
    name = "loky+cloudpickle"

    def __init__(self, workers):
        import loky
        self.executor = loky.get_reusable_executor(max_workers=workers)

    def map(self, fn, items, chunksize):
        return list(self.executor.map(fn, items, chunksize=chunksize))

    def close(self):
        self.executor.shutdown(wait=True)


POOLS = [StdlibPool, MultiprocessPool, LokyPool]


def bench_tiny(pool, items, chunksize, runs):
    f = 1.5
    fn = pool.scale_fn(f)
    # Untimed warm-up that also checks the result: brings every worker up
    # (loky starts them lazily) and primes the per-function pickling caches.
    sample = items[:256]
    assert pool.map(fn, sample, 1) == [x * f for x in sample], "wrong tiny result"
    return len(items) / median_time(lambda: pool.map(fn, items, chunksize), runs)


def bench_cpu(pool, starts, iters, runs):
    fn = pool.descent_fn(CPU_LR, iters)
    assert pool.map(fn, starts[:4], 1) == [descend(CPU_LR, iters, x) for x in starts[:4]]
    return median_time(lambda: pool.map(fn, starts, 1), runs)


# -- start-up: a fresh pool per run; shutdown is outside the timed region -------

def startup_stdlib(method):
    def once():
        ctx = multiprocessing.get_context(method)
        start = time.perf_counter()
        pool = ctx.Pool(2)
        assert pool.apply(abs, (-1,)) == 1
        elapsed = time.perf_counter() - start
        pool.close()
        pool.join()
        return elapsed
    return once


def startup_multiprocess():
    import multiprocess
    ctx = multiprocess.get_context("fork")
    start = time.perf_counter()
    pool = ctx.Pool(2)
    assert pool.apply(abs, (-1,)) == 1
    elapsed = time.perf_counter() - start
    pool.close()
    pool.join()
    return elapsed


def startup_loky():
    import loky
    start = time.perf_counter()
    executor = loky.ProcessPoolExecutor(max_workers=2)
    assert executor.submit(abs, -1).result() == 1
    elapsed = time.perf_counter() - start
    executor.shutdown(wait=True)
    return elapsed


def median_of(fn, runs):
    return statistics.median(fn() for _ in range(runs))


# -- driver ---------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, help="runs per measurement, median reported (default 5)")
    p.add_argument("--workers", type=int, default=2, help="pool size (default 2)")
    p.add_argument("--items", type=int, help="tiny-task item count (default 100000)")
    p.add_argument("--json", default=str(REPO_ROOT / "target" / "pybench.json"),
                   help="output JSON path (default <repo>/target/pybench.json)")
    p.add_argument("--quick", action="store_true", help="smoke test: runs=1, items=10000, small CPU load")
    args = p.parse_args()
    # --quick only changes what was not given explicitly.
    args.runs = args.runs or (1 if args.quick else 5)
    args.items = args.items or (10_000 if args.quick else 100_000)
    # ~10 ms of pure Python per task on CPython 3.11, ~2 s sequential in total.
    args.cpu_tasks, args.cpu_iters = (20, 50_000) if args.quick else (200, 200_000)
    return args


def main(args):
    results = []

    def record(workload, library, value, unit, **extra):
        results.append({"workload": workload, "library": library,
                        "value": round(value, 3), "unit": unit, **extra})
        shown = " ".join(f"{k}={v}" for k, v in extra.items())
        print(f"{workload:<13} {library:<24} {value:>12,.1f} {unit:<8} {shown}", flush=True)

    print(f"python {platform.python_version()}, workers={args.workers}, runs={args.runs}, "
          f"items={args.items}, cpus={os.cpu_count()}")
    print(f"{'workload':<13} {'library':<24} {'value':>12} {'unit':<8} extra")

    items = [i / args.items for i in range(args.items)]
    chunked = max(1, args.items // 8)
    starts = [-2.0 + 4.0 * i / args.cpu_tasks for i in range(args.cpu_tasks)]
    seq_fn = make_descent(CPU_LR, args.cpu_iters)
    seq_s = median_time(lambda: [seq_fn(x) for x in starts], args.runs)

    for cls in POOLS:
        pool = cls(args.workers)
        try:
            record("tiny_chunk1", cls.name, bench_tiny(pool, items, 1, args.runs), "tasks/s",
                   chunksize=1)
            record("tiny_chunked", cls.name, bench_tiny(pool, items, chunked, args.runs), "tasks/s",
                   chunksize=chunked)
            par_s = bench_cpu(pool, starts, args.cpu_iters, args.runs)
            record("cpu_speedup", cls.name, seq_s / par_s, "x",
                   sequential_s=round(seq_s, 4), parallel_s=round(par_s, 4),
                   tasks=args.cpu_tasks, iters=args.cpu_iters)
        finally:
            pool.close()

    for library, fn in [("multiprocessing+fork", startup_stdlib("fork")),
                        ("multiprocessing+spawn", startup_stdlib("spawn")),
                        ("multiprocess+fork", startup_multiprocess),
                        ("loky", startup_loky)]:
        record("startup", library, median_of(fn, args.runs) * 1e3, "ms")

    out = pathlib.Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"python": platform.python_version(), "workers": args.workers,
                               "runs": args.runs, "items": args.items, "results": results},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(parse_args())
