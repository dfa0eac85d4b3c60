"""Runs one benchmark in this (fresh) process and writes its result as JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback

from bench.registry import MODULES


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--collector", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    mod = importlib.import_module(MODULES[a.name])
    try:
        result = mod.run(a.quick, a.collector)
        status = 0
    except Exception:  # noqa: BLE001 - reported in the table, not a crash of the suite
        result = {"error": traceback.format_exc()}
        status = 1
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1, default=str)
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
