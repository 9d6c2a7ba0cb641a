#!/usr/bin/env bash
# Creates target/pybench-venv with the pinned pool libraries; prints its python path last.
set -euo pipefail

cd "$(dirname "$0")/../.."
venv=target/pybench-venv
req=bench/python/requirements.txt
py="$venv/bin/python"

# True when every `name==version` pin in $req is installed in the venv.
pins_satisfied() {
    [ -x "$py" ] || return 1
    "$py" - "$req" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}

if ! pins_satisfied; then
    [ -x "$py" ] || python3 -m venv "$venv"
    "$py" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    pins_satisfied || { echo "setup.sh: pinned packages still missing after install" >&2; exit 1; }
fi

echo "$(pwd)/$py"
