#!/usr/bin/env bash
# Runs serfn's pool bench and the Python process-pool baseline, then prints one
# markdown table per workload (also written to target/compare.md).
#
#   bash bench/compare.sh [--quick] [--runs N] [--workers N] [--items N]
#
# The arguments go to both benches. The Rust bench also runs procspawn (a Rust process
# pool: fn pointers, hand-made Vec chunks) and rayon (threads in-process: the limit
# without serialization) in the same run, so their rows sit beside serfn's and
# Python's. Ratio column: serfn / other for tasks/s and speed-ups (x), other / serfn
# for times (ms, ns/stage): above 1 means serfn is ahead.
set -euo pipefail

cd "$(dirname "$0")/.."

py=$(bash bench/python/setup.sh | tail -n 1)
# Cargo runs a bench in its package folder (bench/): absolute paths.
cargo bench -p serfn-bench --bench pool -- --json "$PWD/target/rustbench.json" "$@"
"$py" bench/python/bench_pool.py --json target/pybench.json "$@"

python3 - target/rustbench.json target/pybench.json target/compare.md <<'PY'
import json
import os
import sys

rust_path, py_path, out_path = sys.argv[1:4]
rust = json.load(open(rust_path))
py = json.load(open(py_path))
rows = rust["results"] + py["results"]

ORDER = ["tiny_chunk1", "tiny_chunked", "tiny_auto", "cpu_speedup", "startup", "capture_100m",
         "pipeline", "direct_call"]
TITLES = {
    "tiny_chunk1": "`x * f` over {items:,} floats, one item per message",
    "tiny_chunked": "`x * f` over {items:,} floats, chunks of items / 8",
    "tiny_auto": "`x * f` over {items:,} floats, automatic chunking (serfn only)",
    "cpu_speedup": "CPU-bound descent: sequential in-process time / pool time",
    "startup": "new pool of {workers} workers to the first result",
    "capture_100m": "a closure over 100 MiB of f64, to its first result from a started pool",
    "pipeline": "cost of one `then` stage, pool chunked path (workers' time) and in process",
    "direct_call": "the same `x * f` closure called in-process (reference)",
}
HIGHER_IS_BETTER = {"tasks/s": True, "x": True, "ms": False, "ns/stage": False}
EXTRA_SKIP = {"workload", "library", "value", "unit"}


def fmt(value, unit):
    if unit == "tasks/s":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def details(row):
    extra = {k: v for k, v in row.items() if k not in EXTRA_SKIP}
    return ", ".join(f"{k}={v}" for k, v in extra.items())


serfn_version = rust.get("serfn", "?")
lines = [
    f"serfn {serfn_version} vs Python {py.get('python', '?')}; {rust.get('workers')} workers, "
    f"median of {rust.get('runs')} (Rust) / {py.get('runs')} (Python) runs, "
    f"{os.cpu_count()} CPUs. Ratio: serfn / other for tasks/s and x, other / serfn for ms "
    "(above 1: serfn ahead).",
    "",
]
workloads = [w for w in ORDER if any(r["workload"] == w for r in rows)]
workloads += sorted({r["workload"] for r in rows} - set(workloads))
for workload in workloads:
    group = [r for r in rows if r["workload"] == workload]
    ours = next((r for r in group if r["library"] == "serfn"), None)
    unit = group[0]["unit"]
    title = TITLES.get(workload, workload).format(items=rust.get("items", 0), workers=rust.get("workers"))
    lines += [f"**{workload}** ({unit}): {title}", "",
              "| library | value | unit | serfn / other | details |",
              "|---|---:|---|---:|---|"]
    for row in sorted(group, key=lambda r: r["library"] != "serfn"):
        if row["library"] == "serfn" or ours is None or row["unit"] != ours["unit"] or row["value"] <= 0:
            ratio = "-"
        elif HIGHER_IS_BETTER.get(unit, True):
            ratio = f"{ours['value'] / row['value']:,.2f}x"
        else:
            ratio = f"{row['value'] / ours['value']:,.2f}x"
        lines.append(f"| {row['library']} | {fmt(row['value'], row['unit'])} | {row['unit']} "
                     f"| {ratio} | {details(row)} |")
    lines.append("")

text = "\n".join(lines)
print(text)
os.makedirs(os.path.dirname(out_path), exist_ok=True)
with open(out_path, "w") as out:
    out.write(text)
print(f"wrote {out_path}", file=sys.stderr)
PY
