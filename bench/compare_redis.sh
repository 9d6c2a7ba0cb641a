#!/usr/bin/env bash
# Starts one throwaway Redis, runs serfn's Redis bench (with the local pool
# beside it) and the Celery bench against it, then prints one markdown table
# (also written to target/compare_redis.md).
#
#   bash bench/compare_redis.sh [--runs N] [--items N] [--batched-items N] [--capture-items N]
#
# The arguments go to both benches. Ratio column: serfn / Celery for tasks/s,
# Celery / serfn for seconds (above 1: serfn ahead); the local pool row gives
# serfn's Redis / local pool.
set -euo pipefail

cd "$(dirname "$0")/.."

py=$(bash bench/python/celery/setup.sh | tail -n 1)
cargo bench -p serfn-bench --features redis --bench redis --no-run
redis_dir=$(mktemp -d /tmp/serfn-compare-redis.XXXXXX)
trap 'bash .ci/redis-down.sh "$redis_dir"' EXIT
url=$(bash .ci/redis-up.sh "$redis_dir" | tail -n 1)
echo "redis: $url"

# Cargo runs a bench in its package folder (bench/): absolute paths.
cargo bench -p serfn-bench --features redis --bench redis -- --url "$url" --json "$PWD/target/redisbench.json" "$@"
"$py" bench/python/celery/bench_celery.py --url "$url" --json target/celerybench.json "$@"

python3 - target/redisbench.json target/celerybench.json target/compare_redis.md <<'PY'
import json
import os
import sys

rust_path, celery_path, out_path = sys.argv[1:4]
rust = json.load(open(rust_path))
cel = json.load(open(celery_path))
ours = {r["workload"]: r for r in rust["results"]}
theirs = {r["workload"]: r for r in cel["results"]}

TITLES = {
    "tiny_one_per_entry": "`x * f`, one task per message",
    "tiny_batched": "`x * f`, batched",
    "capture_1mib": "1 MiB capture over {capture_items:,} items",
}


def fmt(row):
    if row["unit"] == "tasks/s":
        return f"{row['value']:,.0f} tasks/s"
    return f"{row['value']:,.3f} s"


def shape(row):
    chunk = row.get("chunk_size", "")
    entries = row.get("entries_per_run")
    return f"{row['items']:,} items, chunk {chunk}" + (f", {entries:,} messages" if entries else "")


def ratio(a, b):
    if a["unit"] == "tasks/s":
        return a["value"] / b["value"]
    return b["value"] / a["value"]


lines = [
    f"serfn {rust['serfn']} (Redis Streams) vs Celery {cel['celery']} (Python {cel['python']}, "
    f"pickle, `--pool=solo`), both on Redis {rust['redis']} on loopback; {rust['workers']} worker "
    f"processes each, {os.cpu_count()} CPUs shared by the driver, the workers and Redis; median of "
    f"{rust['runs']} (serfn) / {cel['runs']} (Celery) runs.",
    "",
    "| workload | serfn (Redis) | Celery (Redis) | serfn / Celery | serfn shape | Celery shape |",
    "|---|---:|---:|---:|---|---|",
]
for workload in ["tiny_one_per_entry", "tiny_batched", "capture_1mib"]:
    a, b = ours.get(workload), theirs.get(workload)
    if not a:
        continue
    title = TITLES[workload].format(capture_items=a["items"])
    lines.append(f"| {workload}: {title} | {fmt(a)} | {fmt(b) if b else '-'} | "
                 f"{f'{ratio(a, b):,.1f}x' if b else '-'} | {shape(a)} | {shape(b) if b else '-'} |")
pool = ours.get("pool_tiny_batched")
if pool:
    lines.append(f"| pool_tiny_batched: `x * f` batched, local `Pool` | {fmt(pool)} | - | - | "
                 f"{shape(pool)} | - |")
lines.append("")
if pool and "tiny_batched" in ours:
    lines.append(f"serfn through Redis / local pool, `tiny_batched`: "
                 f"{ours['tiny_batched']['value'] / pool['value']:.2f}x.")
cap = ours.get("capture_1mib")
if cap:
    lines.append(f"`capture_1mib` bytes through Redis per run: serfn in {cap['redis_in_mib']} MiB / "
                 f"out {cap['redis_out_mib']} MiB (function {cap['function_mib']} MiB stored once, "
                 f"tasks {cap['tasks_mib']} MiB, results {cap['results_mib']} MiB)"
                 + (f"; Celery in {theirs['capture_1mib']['redis_in_mib']} MiB / out "
                    f"{theirs['capture_1mib']['redis_out_mib']} MiB." if "capture_1mib" in theirs else "."))
lines.append("")

text = "\n".join(lines)
print(text)
os.makedirs(os.path.dirname(out_path), exist_ok=True)
with open(out_path, "w") as out:
    out.write(text)
print(f"wrote {out_path}", file=sys.stderr)
PY
