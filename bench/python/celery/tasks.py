"""The Celery side of serfn's `cargo bench -p serfn-bench --features redis --bench redis`.

The broker and the result backend are the Redis at CELERY_BENCH_BROKER and
CELERY_BENCH_BACKEND (other db numbers than serfn's); tasks go to the queue
CELERY_BENCH_QUEUE, unique per run. Pickle, not the default JSON: faster for
floats, and it carries the 1 MiB capture as bytes (serfn sends binary too).
"""
import os

from celery import Celery

app = Celery(
    "serfn_bench",
    broker=os.environ.get("CELERY_BENCH_BROKER", "redis://127.0.0.1:6379/1"),
    backend=os.environ.get("CELERY_BENCH_BACKEND", "redis://127.0.0.1:6379/2"),
)
app.conf.update(
    task_serializer="pickle",
    result_serializer="pickle",
    accept_content=["pickle"],
    result_accept_content=["pickle"],
    task_default_queue=os.environ.get("CELERY_BENCH_QUEUE", "celery-bench"),
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task
def scale(x, f):
    """The tiny task: `x * f`, `f` passed along (Celery has no closures)."""
    return x * f


@app.task
def capture(data, i):
    """The 1 MiB capture, passed as an argument: serfn's `benches::redis::capture`."""
    return i * 3 + data[(i * 4099) % len(data)]
