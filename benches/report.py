#!/usr/bin/env python3
"""Prints the ratios of a `cargo bench --bench codec` run, from criterion's estimates."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def median_ns(group, name):
    path = root / group / name / "new" / "estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"]


for group, baseline in [("round_trip", "raw_bincode"), ("call", "direct")]:
    base = median_ns(group, baseline)
    print(f"{group} (median; ratio to {baseline})")
    for entry in sorted(p.name for p in (root / group).iterdir() if (p / "new").exists()):
        ns = median_ns(group, entry)
        print(f"  {entry:<14} {ns:9.1f} ns  {ns / base:6.2f}x")
