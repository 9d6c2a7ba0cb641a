#!/usr/bin/env python3
"""Celery with its Redis broker, beside serfn's `cargo bench -p serfn-bench --features redis --bench redis`.

Starts `--workers` Celery workers (default 2; `--pool=solo`, i.e. one process
each running tasks itself, `--concurrency=1`) on the Redis at `--url` (broker
in db 1, results in db 2; serfn uses db 0), on a queue unique to this run, and
times the same workloads:
  tiny_one_per_entry  `x * f` over --items floats (default 20,000), a group of
                      one task per item: one message each; tasks/s
  tiny_batched        the same over --batched-items (default 1,000,000) with
                      `scale.chunks(..., --chunk)`: a group of `celery.starmap`
                      tasks of --chunk items each (Celery's own batching); tasks/s
  capture_1mib        1 MiB of bytes passed as an argument, over --capture-items
                      integers (default 10,000) in chunks of --capture-chunk
                      (pickle stores the bytes once per message); seconds, and
                      the bytes through Redis (INFO stats deltas)
The time runs from sending the first task to having every result (`send_s`:
the median time in `apply_async`, the client's part). Workers are
started and warmed up first. Each number is the median of --runs runs
(default 3), each result checked against the same function run here.
Run with the venv made by setup.sh.
"""
import argparse
import json
import os
import pathlib
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
FACTOR = 1.5
CAPTURE_BYTES = 1 << 20


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=os.environ.get("SERFN_REDIS_URL"),
                   help="redis://host:port (default $SERFN_REDIS_URL)")
    p.add_argument("--runs", type=int, default=3,
                   help="runs per number (default 3: one-per-entry runs are long)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--batched-items", type=int, default=1_000_000)
    p.add_argument("--chunk", type=int, default=10_000, help="items per message, tiny_batched")
    p.add_argument("--capture-items", type=int, default=10_000)
    p.add_argument("--capture-chunk", type=int, default=1_000,
                   help="items per message (each with the 1 MiB), capture_1mib")
    p.add_argument("--only", help="just these workloads, comma-separated")
    p.add_argument("--json", default=str(REPO_ROOT / "target" / "celerybench.json"))
    args = p.parse_args()
    if not args.url:
        p.error("--url or SERFN_REDIS_URL is needed (bench/compare_redis.sh starts a Redis)")
    return args


def db_url(url, db):
    """The same server, another db number."""
    base = url.rstrip("/")
    if base.count("/") > 2:
        base = base.rsplit("/", 1)[0]
    return f"{base}/{db}"


def capture_data(run):
    """Other bytes each run, as serfn's bench (no cache could help either side)."""
    return bytes(((i * 31) ^ (run * 977)) & 0xFF for i in range(CAPTURE_BYTES))


def net_bytes(client):
    stats = client.info("stats")
    return stats["total_net_input_bytes"], stats["total_net_output_bytes"]


class Workers:
    """`--workers` celery worker processes, each its own process group."""

    def __init__(self, count, env):
        self.procs = []
        for n in range(count):
            cmd = [sys.executable, "-m", "celery", "-A", "tasks", "worker",
                   "--pool=solo", "--concurrency=1", "--loglevel=WARNING",
                   "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "-n", f"bench{n}-{os.getpid()}@%h"]
            self.procs.append(subprocess.Popen(cmd, cwd=HERE, env=env,
                                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               start_new_session=True))

    def wait_ready(self, app, timeout=60.0):
        deadline = time.monotonic() + timeout
        names = set()
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a celery worker exited with {p.returncode}")
            names |= {name for reply in app.control.ping(timeout=0.5) for name in reply}
            mine = {n for n in names if f"-{os.getpid()}@" in n}
            if len(mine) >= len(self.procs):
                return
        raise RuntimeError("celery workers did not answer a ping in time")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def timed(runs, run, check):
    secs = []
    for i in range(runs):
        start = time.perf_counter()
        out = run(i)
        secs.append(time.perf_counter() - start)
        check(i, out)
    return secs


def main(args):
    queue = f"celery-bench-{os.getpid()}-{time.time_ns()}"
    env = dict(os.environ,
               CELERY_BENCH_BROKER=db_url(args.url, 1),
               CELERY_BENCH_BACKEND=db_url(args.url, 2),
               CELERY_BENCH_QUEUE=queue)
    if os.geteuid() == 0:
        # Celery refuses pickle as root; here it is a throwaway queue on loopback.
        env["C_FORCE_ROOT"] = "1"
        env["PYTHONWARNINGS"] = "ignore::UserWarning:celery.platforms"
    os.environ.update(env)
    sys.path.insert(0, str(HERE))
    import celery
    import redis
    from celery import group
    from tasks import app, capture, scale

    broker = redis.Redis.from_url(db_url(args.url, 1))
    only = set(args.only.split(",")) if args.only else None
    results = []

    def record(workload, value, unit, **extra):
        results.append({"workload": workload, "library": "celery", "value": round(value, 3),
                        "unit": unit, **extra})
        shown = " ".join(f"{k}={v}" for k, v in extra.items())
        print(f"{workload:<18} {'celery':<12} {value:>14.3f} {unit:<8} {shown}", flush=True)

    print(f"celery {celery.__version__}, python {platform.python_version()}, redis "
          f"{broker.info('server')['redis_version']} at {args.url}, queue {queue}, "
          f"workers={args.workers} (solo pool), runs={args.runs}, cpus={os.cpu_count()}")
    print(f"{'workload':<18} {'library':<12} {'value':>14} {'unit':<8} extra", flush=True)

    def floats(n):
        return [i / n for i in range(n)]

    def flat(parts):
        return [x for part in parts for x in part]

    workers = Workers(args.workers, env)
    try:
        workers.wait_ready(app)

        sending = []  # seconds in apply_async of each timed run: the client's share

        def send(signature):
            start = time.perf_counter()
            result = signature.apply_async()
            sending.append(time.perf_counter() - start)
            return result

        def one_per_entry(items):
            return send(group(scale.s(x, FACTOR) for x in items)).get()

        def batched(items, n):
            return flat(send(scale.chunks(((x, FACTOR) for x in items), n)).get())

        # Untimed, checked warm-up of both shapes.
        warm = floats(1000)
        assert one_per_entry(warm) == [x * FACTOR for x in warm], "wrong warm-up result"
        assert batched(warm, 100) == [x * FACTOR for x in warm], "wrong warm-up result"

        for workload, n, run in [
            ("tiny_one_per_entry", args.items, one_per_entry),
            ("tiny_batched", args.batched_items, lambda items: batched(items, args.chunk)),
        ]:
            if only and workload not in only:
                continue
            items = floats(n)
            want = [x * FACTOR for x in items]

            def check(_, got, want=want, workload=workload):
                assert got == want, f"{workload}: wrong results"

            sending.clear()
            secs = timed(args.runs, lambda _: run(items), check)
            extra = {"items": n, "chunk_size": 1 if workload == "tiny_one_per_entry" else args.chunk,
                     "entries_per_run": n if workload == "tiny_one_per_entry" else -(-n // args.chunk),
                     "send_s": round(statistics.median(sending[-args.runs:]), 4),
                     "runs_s": [round(s, 4) for s in secs]}
            record(workload, n / statistics.median(secs), "tasks/s", **extra)

        if not only or "capture_1mib" in only:
            items = list(range(args.capture_items))
            datas = [capture_data(run) for run in range(args.runs)]
            wants = [[i * 3 + d[(i * 4099) % len(d)] for i in items] for d in datas]
            net = []

            def run_capture(run):
                data = datas[run]
                before = net_bytes(broker)
                got = flat(capture.chunks(((data, i) for i in items), args.capture_chunk)
                           .apply_async().get())
                after = net_bytes(broker)
                net.append((after[0] - before[0], after[1] - before[1]))
                return got

            def check(run, got):
                assert got == wants[run], "capture_1mib: wrong results"

            secs = timed(args.runs, run_capture, check)
            mib = 1 << 20
            record("capture_1mib", statistics.median(secs), "s",
                   items=args.capture_items, capture_bytes=CAPTURE_BYTES,
                   chunk_size=args.capture_chunk,
                   entries_per_run=-(-args.capture_items // args.capture_chunk),
                   redis_in_mib=round(statistics.median(n[0] for n in net) / mib, 3),
                   redis_out_mib=round(statistics.median(n[1] for n in net) / mib, 3),
                   runs_s=[round(s, 4) for s in secs])
    finally:
        workers.stop()
        # The run's queue and its bookkeeping; results expire on their own.
        for key in broker.scan_iter(f"*{queue}*"):
            broker.delete(key)

    out = pathlib.Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"celery": celery.__version__, "python": platform.python_version(),
                               "workers": args.workers, "pool": "solo", "runs": args.runs,
                               "items": args.items, "batched_items": args.batched_items,
                               "capture_items": args.capture_items, "results": results},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(parse_args())
