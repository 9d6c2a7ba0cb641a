#!/usr/bin/env python3
"""Prints the ratios of a `cargo bench -p serfn-bench --bench codec` run, from criterion's estimates."""
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

if (root / "then_8_stages").exists():
    serfn, direct = median_ns("then_8_stages", "serfn"), median_ns("then_8_stages", "direct")
    print("then_8_stages (median)")
    print(f"  serfn {serfn:9.1f} ns, direct {direct:9.1f} ns: {(serfn - direct) / 8:5.2f} ns per stage over direct calls")

SIZES = [("8B", 8), ("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20), ("16MiB", 16 << 20)]
if (root / "capture_size").exists():
    print("capture_size: encode + decode of a Vec<f64> capture, MB/s (median)")
    print(f"  {'size':<6} {'serfn':>9} {'bincode':>9}  serfn/bincode")
    for label, size in SIZES:
        try:
            s = size / median_ns("capture_size", f"serfn/{label}") * 1e3
            r = size / median_ns("capture_size", f"raw_bincode/{label}") * 1e3
        except FileNotFoundError:
            continue
        print(f"  {label:<6} {s:9.0f} {r:9.0f}  {s / r:5.2f}")
