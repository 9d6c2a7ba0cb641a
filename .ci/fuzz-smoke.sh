#!/usr/bin/env bash
# Builds the fuzz targets once, writes the seed corpora, runs each target
# for a fixed number of runs. Needs nightly: skipped without it, except
# under CI=true, where a missing nightly fails. Installs cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100000}
started=$SECONDS

if ! cargo +nightly --version >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
        echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
        exit 1
    fi
    echo "fuzz: no nightly toolchain, smoke runs skipped (CI fails here)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo +nightly install cargo-fuzz --locked
fi

# The fuzz crate's lints are its own: the main crate's -D warnings does not apply.
export RUSTFLAGS=""
# No sanitizer: the library forbids unsafe code, and a smoke run is for
# panics and the oracle; the long runs in fuzz/README.md keep ASan.
build=(--sanitizer none)
cd fuzz
cargo +nightly fuzz build "${build[@]}"
bin=target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release
rm -rf corpus
mkdir -p artifacts
"$bin/seeds" corpus

for target in envelope envelope_crc call_args worker_frames parent_answers; do
    log=$(mktemp)
    if ! "$bin/$target" "corpus/$target" -runs="$runs" -artifact_prefix="artifacts/$target-" \
        -print_final_stats=1 >"$log" 2>&1; then
        cat "$log" >&2
        echo "fuzz: $target failed; the input is in fuzz/artifacts/" >&2
        exit 1
    fi
    done_line=$(grep -m1 '^Done' "$log" || echo "Done ? runs")
    corpus=$(find "corpus/$target" -type f | wc -l)
    echo "fuzz: $target: $done_line; corpus $corpus inputs"
    rm -f "$log"
done
echo "fuzz: smoke runs took $((SECONDS - started)) s"
