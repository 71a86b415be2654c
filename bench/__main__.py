"""`python -m bench` runs every benchmark; `python -m bench <name> [--quick]` runs one.

Names: e2e, stitch, overhead, many, memory, healing, startup, eventlog, polling, celery, mix, review, narration (and inbox, when bench/inbox.py is present).
Each prints a header block (date, machine, versions, load average) and markdown tables, and
writes JSON to bench/results/<name>-<UTC timestamp>.json. When everything runs, each benchmark
runs alone in a fresh process, one after the other, so they do not disturb each other."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = (
    "e2e",
    "stitch",
    "overhead",
    "many",
    "memory",
    "healing",
    "startup",
    "eventlog",
    "polling",
    "celery",
    "mix",
    "review",
    "narration",
)
HERE = Path(__file__).resolve().parent


def extra_benchmarks() -> list[str]:
    """Benchmarks other engineers keep in bench/ with their own entry point (`python -m bench.<name>`)."""
    return ["inbox"] if (HERE / "inbox.py").is_file() else []


def run_one(name: str, quick: bool, run=None) -> int:  # type: ignore[no-untyped-def]
    from bench.common import header, log, write_json

    load = os.getloadavg()
    if name in extra_benchmarks():
        argv = [sys.executable, "-m", f"bench.{name}"] + (["--files", "200"] if quick and name == "inbox" else [])
        return subprocess.call(argv, cwd=HERE.parent)
    run = run or importlib.import_module(f"bench.{name}").run
    started = time.perf_counter()
    report = run(quick=quick)
    head = header(load)
    head["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    head["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
    print(report.markdown(head), flush=True)
    out = write_json(report, head, quick)
    print(f"_JSON: `{out.relative_to(HERE.parent)}` · benchmark wall time {head['benchmark_wall_s']} s_\n", flush=True)
    log(f"{name}: done in {head['benchmark_wall_s']} s -> {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    names = list(BENCHMARKS) + extra_benchmarks()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", choices=names, help="one benchmark (default: all, one after the other)")
    p.add_argument("--quick", action="store_true", help="smaller sizes / fewer runs (a smoke run, not for the record)")
    args = p.parse_args(argv)
    if args.name:
        return run_one(args.name, args.quick)
    started = time.perf_counter()
    failed = []
    for name in names:
        # A fresh interpreter per benchmark: fresh env (DAGSTER_HOME, VIDPIPE_*), no state carried over.
        code = subprocess.call([sys.executable, "-m", "bench", name] + (["--quick"] if args.quick else []), cwd=HERE.parent)
        if code != 0:
            failed.append(f"{name} (exit {code})")
    print(f"\nall benchmarks: {time.perf_counter() - started:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
