#!/usr/bin/env bash
# The pool against its references, every row side by side: runs the pool bench
# three times (each run alternates the libraries round by round), takes each
# row's median over the three runs and their range, adds the instruction counts
# of target/instructions.json when present (bash bench/instructions.sh), and
# prints a markdown table (also target/pool_table.md) with the date and load.
#
#   bash bench/pool_table.sh [--runs N] [--items N]   (passed to the bench)
#   bash bench/pool_table.sh --table-only   (the table of the last runs again)
set -euo pipefail
cd "$(dirname "$0")/.."
table_only=0
if [ "${1:-}" = --table-only ]; then table_only=1; shift; fi

only=tiny_chunk1,tiny_chunked,capture_100m,startup,pipeline,direct_call
if [ "$table_only" = 1 ]; then
    IFS=$'\t' read -r date load_before load_after <target/pool_table.when
else
    date=$(date -u '+%Y-%m-%d %H:%M UTC')
    load_before=$(uptime | sed 's/.*load average: //')
    for i in 1 2 3; do
        cargo bench -p serfn-bench --bench pool -- --only "$only" "$@" \
            --json "$PWD/target/pool_table.$i.json" >/dev/null
    done
    load_after=$(uptime | sed 's/.*load average: //')
    printf '%s\t%s\t%s\n' "$date" "$load_before" "$load_after" >target/pool_table.when
fi

python3 - "$date" "$load_before" "$load_after" <<'PY'
import json, os, statistics, sys

date, before, after = sys.argv[1:4]
runs = [json.load(open(f"target/pool_table.{i}.json")) for i in (1, 2, 3)]
ins = json.load(open("target/instructions.json")) if os.path.exists("target/instructions.json") else None


def values(workload, library):
    return [r["value"] for run in runs for r in run["results"]
            if r["workload"] == workload and r["library"] == library]


def stat(workload, library):
    v = values(workload, library)
    return (statistics.median(v), min(v), max(v)) if v else None


def rate(s):
    m, lo, hi = s
    f = lambda x: f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k"
    return f"{f(m)} ({f(lo)}–{f(hi)})"


def ms(s):
    m, lo, hi = s
    return f"{m:,.1f} ms ({lo:,.1f}–{hi:,.1f})"


def ratio(a, b, higher_better=True):
    r = [x / y if higher_better else y / x for x, y in
         zip(values(*a), values(*b))]
    return f"**{statistics.median(r):.2f}x** ({min(r):.2f}–{max(r):.2f})"


rows = [
    ("one item per message, tasks/s", rate(stat("tiny_chunk1", "serfn")),
     f"raw Unix-socket pipeline, 2 children, one item at a time through 8 KiB buffers: "
     f"{rate(stat('tiny_chunk1', 'raw_buffered'))}; a write and a read per item: "
     f"{rate(stat('tiny_chunk1', 'raw_socket'))}; 12,500 items per write: "
     f"{rate(stat('tiny_chunk1', 'raw_batched'))}; procspawn: {rate(stat('tiny_chunk1', 'procspawn'))}",
     f"{ratio(('tiny_chunk1', 'serfn'), ('tiny_chunk1', 'raw_buffered'))} raw buffered; "
     f"{ratio(('tiny_chunk1', 'serfn'), ('tiny_chunk1', 'raw_socket'))} raw unbatched; "
     f"{ratio(('tiny_chunk1', 'serfn'), ('tiny_chunk1', 'raw_batched'))} raw batched"),
    ("chunked (12,500 per chunk), tasks/s", rate(stat("tiny_chunked", "serfn")),
     f"procspawn, hand-made `Vec` chunks: {rate(stat('tiny_chunked', 'procspawn'))}; "
     f"raw batched socket: {rate(stat('tiny_chunked', 'raw_batched'))}",
     f"{ratio(('tiny_chunked', 'serfn'), ('tiny_chunked', 'procspawn'))} procspawn; "
     f"{ratio(('tiny_chunked', 'serfn'), ('tiny_chunked', 'raw_batched'))} raw batched"),
    ("a closure over 100 MiB of `f64`, new pool to first result", ms(stat("capture_100m", "serfn")),
     f"procspawn, new pool, the data as one task's argument: {ms(stat('capture_100m', 'procspawn'))}",
     f"{ratio(('capture_100m', 'serfn'), ('capture_100m', 'procspawn'), False)} procspawn's speed"),
    ("the same as a `Bulk<f64>` (one byte string)", ms(stat("capture_100m", "serfn-bulk")),
     f"procspawn, as above: {ms(stat('capture_100m', 'procspawn'))}",
     f"{ratio(('capture_100m', 'serfn-bulk'), ('capture_100m', 'procspawn'), False)} procspawn's speed"),
    ("new pool to first result", ms(stat("startup", "serfn")),
     f"procspawn: {ms(stat('startup', 'procspawn'))}",
     f"{ratio(('startup', 'serfn'), ('startup', 'procspawn'), False)} procspawn's speed"),
]
p = stat("pipeline", "serfn")
local = [float(r["in_process_ns"]) for run in runs for r in run["results"] if r["workload"] == "pipeline"]
rows.append(("`then` pipeline through the pool, per stage", f"{p[0]:.1f} ns ({p[1]:.1f}–{p[2]:.1f})",
             f"in process: {statistics.median(local):.1f} ns", f"{p[0] / statistics.median(local):.1f}x"))
if ins:
    o = {op: v["instructions"] for op, v in ins["ops"].items()}
    loop = o.get("empty_loop", 0)
    def pair(a, b, name, sub=False):
        if a in o and b in o:
            x, y = (o[a] - loop, o[b] - loop) if sub else (o[a], o[b])
            rows.append((name, f"{x:,.0f} instructions", f"{b}: {y:,.0f}", f"{x / y:.2f}x"))
    pair("serfn_round_trip_into", "bincode_round_trip", "encode + decode + call, handle path, loop subtracted from both", True)
    pair("serfn_call", "box_dyn_call", "`SerFn::call`, loop subtracted from both", True)
    for op, name in (("pool_map_single", "parent instructions per item, one item per message"),
                     ("pool_map", "parent instructions per item, chunked"),
                     ("pool_map_collect", "the same, collected into a `Result<Vec<f64>>`"),
                     ("pool_map_unordered", "the same through `map_unordered`, each result put at its index")):
        if op in o:
            rows.append((name, f"{o[op]:,.0f}", "", ""))

out = [f"Measured {date}; load average (1, 5, 15 min) {before} before, {after} after. "
       "Each value: the median of the three runs' medians (range of the three); "
       "ratios per run, then their median (range).", "",
       "| what | serfn | reference, same run | ratio |", "|---|---|---|---|"]
out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
retried = [f"{r['library']} in `{r['workload']}` (run {i}): {r['retried']}"
           for i, run in enumerate(runs, 1) for r in run["results"] if "retried" in r]
if retried:
    out += ["", "Reference runs that failed and were run again (only the run that "
            "succeeded is timed): " + "; ".join(retried) + "."]
text = "\n".join(out)
print(text)
open("target/pool_table.md", "w").write(text + "\n")
PY
