#!/usr/bin/env python3
"""Fails when a package in Cargo.lock declares a rust-version above the MSRV.

No old toolchain is needed: this reads `cargo metadata`, which reports each
locked package's `rust_version` (all targets, all features).
"""
import json
import subprocess
import sys

metadata = json.loads(
    subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"]
    )
)
root = next(p for p in metadata["packages"] if p["name"] == "serfn")
msrv = root["rust_version"]


def version(text):
    return tuple(int(part) for part in text.split("."))


def at_least_3(parts):
    return parts + (0,) * (3 - len(parts))


too_new = sorted(
    f'{p["name"]} {p["version"]} needs {p["rust_version"]}'
    for p in metadata["packages"]
    if p.get("rust_version")
    and at_least_3(version(p["rust_version"])) > at_least_3(version(msrv))
)
for line in too_new:
    print(line)
print(f"{len(metadata['packages'])} locked packages, {len(too_new)} above the MSRV {msrv}")
sys.exit(1 if too_new else 0)
