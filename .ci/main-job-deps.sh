#!/usr/bin/env bash
# The README's main job builds serfn's own dependencies and nothing else:
# lists every crate that `cargo build --release --example gradient_descent`
# compiles and fails when one is not in serfn's dependency tree (normal
# dependencies and the build tools they need, default features), e.g. a test
# or bench dependency pulled in again. Fresh units count too, so the check
# does not depend on what target/ already holds.
#
#   bash .ci/main-job-deps.sh [--verbose]
set -euo pipefail
cd "$(dirname "$0")/.."

verbose=${1:-}
tree=$(mktemp)
built=$(mktemp)
trap 'rm -f "$tree" "$built"' EXIT

# "name vX.Y.Z ..." per line: serfn and what building it needs.
cargo tree -p serfn -e no-dev --prefix none --format '{p}' >"$tree"
cargo build --release --example gradient_descent --message-format=json >"$built"

python3 - "$tree" "$built" "$verbose" <<'PY'
import json
import subprocess
import sys

tree_path, built_path, verbose = sys.argv[1:4]

allowed = set()
for line in open(tree_path):
    words = line.split()
    if len(words) >= 2 and words[1].startswith("v"):
        allowed.add((words[0], words[1][1:]))
# The package that holds the example programs.
allowed.add(("serfn-examples", None))

metadata = json.loads(subprocess.run(
    ["cargo", "metadata", "--format-version", "1"],
    check=True, capture_output=True, text=True).stdout)
packages = {p["id"]: (p["name"], p["version"]) for p in metadata["packages"]}

compiled = set()
for line in open(built_path):
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact":
        compiled.add(packages[message["package_id"]])

strays = sorted(p for p in compiled if p not in allowed and (p[0], None) not in allowed)
print(f"main job: {len(compiled)} packages compiled "
      f"(serfn's tree: {len(allowed) - 1}, the examples package: 1)")
if verbose:
    for name, version in sorted(compiled):
        print(f"  {name} {version}")
if strays:
    print("not in serfn's normal dependency tree (a dev-dependency in the main job?):")
    for name, version in strays:
        print(f"  {name} {version}")
    sys.exit(1)
PY
