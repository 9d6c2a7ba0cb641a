#!/usr/bin/env bash
# Instructions per operation for serfn and its references, counted by callgrind:
#
#   bash bench/instructions.sh [--quick] [--ops a,b] [--repeat]
#                                [--check BASELINE] [--write-baseline [BASELINE]]
#
# Each op of bench/instructions.rs runs under `valgrind --tool=callgrind` at N and 2N
# iterations; (count(2N) - count(N)) / N is its cost, start-up cancelled. Prints a table,
# writes target/instructions.json. --quick: smaller N (CI). --repeat: measure everything
# twice and fail unless the counts agree (0.1%; the pool's parent 10%). --check: exit 1 when a ratio or a
# serfn count is more than 20% above BASELINE. --write-baseline: rewrite BASELINE
# (default bench/instructions.baseline.json). Needs valgrind and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 repeat=0 check="" write="" only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --repeat) repeat=1 ;;
        --ops) only="$2"; shift ;;
        --check) check="$2"; shift ;;
        --write-baseline)
            write=bench/instructions.baseline.json
            if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then write="$2"; shift; fi ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install -y valgrind)" >&2; exit 2; }

# One codegen unit for serfn's lib and this bench (dependencies as built): with the
# default 16, how generic code is split and inlined moved the large-capture counts by 40%
# when unrelated code of the bench moved. With one, they did not move.
bin=$(cargo bench -p serfn-bench --no-run --bench instructions --message-format=json \
    --config 'profile.bench.package.serfn.codegen-units=1' \
    --config 'profile.bench.package.serfn-bench.codegen-units=1' |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "could not build the instructions bench" >&2; exit 2; }

# N per op: enough that the difference dwarfs any jitter, small enough for CI.
iters() {
    case "$1" in
        *_call | empty_loop) echo $((quick ? 20000 : 200000)) ;;
        then_batch_stage) echo $((quick ? 100 : 1000)) ;;
        *_stage) echo $((quick ? 5000 : 50000)) ;;
        *_round_trip | *_round_trip_into) echo $((quick ? 500 : 5000)) ;;
        *_large_64k) echo $((quick ? 4 : 20)) ;;
        *_large_1m) echo $((quick ? 1 : 4)) ;;
        pool_map | pool_map_collect | pool_map_unordered) echo $((quick ? 20000 : 100000)) ;;
        pool_map_single) echo $((quick ? 20000 : 40000)) ;;
        *) echo 1000 ;;
    esac
}

out=target/instructions
mkdir -p "$out"
counts="$out/counts.tsv"
: >"$counts"

# Total instructions of one run (callgrind's "summary:" line).
count() {
    local op=$1 n=$2 file="$out/$1.$2.callgrind"
    valgrind --tool=callgrind --trace-children=no --callgrind-out-file="$file" \
        "$bin" --op "$op" --iters "$n" >/dev/null 2>"$out/$op.$n.log" ||
        { echo "valgrind failed for $op ($n iterations): see $out/$op.$n.log" >&2; exit 1; }
    awk '/^summary:/ { print $2 }' "$file"
}

rounds=$((repeat ? 2 : 1))
while IFS=$'\t' read -r op per what; do
    if [ -n "$only" ] && ! [[ ",$only," == *",$op,"* ]]; then continue; fi
    n=$(iters "$op")
    for round in $(seq "$rounds"); do
        one=$(count "$op" "$n")
        two=$(count "$op" $((2 * n)))
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$op" "$round" "$n" "$one" "$two" "$per" "$what" >>"$counts"
    done
    echo "counted $op" >&2
done < <("$bin" --list)

python3 bench/instructions.py "$counts" target/instructions.json "$check" "$write"
