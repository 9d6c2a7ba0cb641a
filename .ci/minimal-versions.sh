#!/usr/bin/env bash
# Builds and tests with every direct dependency at the lowest version our
# manifests allow (`-Z direct-minimal-versions`), so that a lower bound that
# is too low fails here rather than in a user's build. Works on a copy: the
# committed Cargo.lock is untouched. Needs nightly for the resolution only.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if ! cargo +nightly --version >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
        echo "minimal-versions: the nightly toolchain is missing" >&2
        exit 1
    fi
    echo "minimal-versions: no nightly toolchain, skipped (CI fails here)"
    exit 0
fi

# A fixed place under target/, so that a rerun builds only what changed
# (and test binaries, which embed their manifest's path, find their files).
copy="$repo/target/minimal-versions/src"
rm -rf "$copy"
mkdir -p "$copy"
tar --exclude=./target --exclude=./.git --exclude=./fuzz -cf - . | tar -xf - -C "$copy"
cd "$copy"
export CARGO_TARGET_DIR="$repo/target/minimal-versions/target"

cargo +nightly update -Z direct-minimal-versions
# Builds in both formats (postcard wins under --all-features), and the unit
# tests: the full suites run on the committed lock in .ci/run, and twice more
# here would take CI past its time budget on two cores.
cargo check --workspace --all-targets --all-features
cargo check --workspace --all-targets
cargo test --workspace --lib
