"""How fast the inbox sensor registers a burst of dropped prompt files.

    python -m bench.inbox [--files 1000] [--cap 500]

Drops N small prompt files (YAML, JSON and text, ids generated from the prompts) into a fresh
inbox on a fresh SQLite data dir, then evaluates the sensor tick after tick, as the daemon would
(applying its partition requests), until every file is registered. Only the sensor evaluation is
timed; nothing is rendered. Prints a markdown table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _drop(inbox: Path, count: int) -> None:
    for i in range(count):
        prompt = f"Batch scene {i}: a paper boat number {i} drifts past lantern {i}."
        if i % 3 == 0:
            (inbox / f"p{i:05d}.yaml").write_text(f"prompt: {json.dumps(prompt)}\nscenes: 2\naspect_ratio: 9:16\n")
        elif i % 3 == 1:
            (inbox / f"p{i:05d}.json").write_text(json.dumps({"prompt": prompt, "scenes": 2, "clip_duration": 2}))
        else:
            (inbox / f"p{i:05d}.txt").write_text(prompt)


def run(files: int, cap: int, workdir: Path) -> dict:
    os.environ.update(
        {
            "VIDPIPE_DATA_DIR": str(workdir / "data"),
            "DAGSTER_HOME": str(workdir / "dagster"),
            "VIDPIPE_PROVIDER": "animatic",
            "VIDPIPE_INBOX_MIN_AGE_S": "0",
            "VIDPIPE_INBOX_MAX_FILES_PER_TICK": str(cap),
        }
    )
    import dagster as dg

    from vidpipe_core.config import get_settings
    from vidpipe_dagster.definitions import defs
    from vidpipe_dagster.instance import get_instance
    from vidpipe_dagster.resources import VidpipeResource
    from vidpipe_dagster.sensors import inbox_sensor

    settings = get_settings()
    inbox = settings.resolved_inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    instance = get_instance(settings)
    resource = VidpipeResource()
    resource.services()  # migrations run once, outside the timed ticks (the daemon's process is warm too)
    _drop(inbox, files)

    cursor, seconds, requested = None, [], 0
    while True:
        context = dg.build_sensor_context(
            instance=instance, instance_ref=instance.get_ref(), cursor=cursor, definitions=defs(), resources={"vidpipe": resource}
        )
        context.log.setLevel(logging.ERROR)
        started = time.perf_counter()
        result = inbox_sensor(context)
        elapsed = time.perf_counter() - started
        if not result.run_requests:
            break
        seconds.append(elapsed)
        requested += len(result.run_requests)
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        cursor = result.cursor
    registered = len(instance.get_dynamic_partitions("projects"))
    left = [p for p in inbox.iterdir() if p.is_file()]
    return {
        "files": files,
        "cap_per_tick": cap,
        "ticks": len(seconds),
        "registered": registered,
        "run_requests": requested,
        "left_in_inbox": len(left),
        "rejected": len(list((inbox / "rejected").glob("*.error.txt"))),
        "tick_s": {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)} if seconds else None,
        "sensor_s_total": sum(seconds),
        "files_per_s": registered / sum(seconds) if seconds else 0.0,
    }


def machine() -> dict:
    import dagster

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "dagster": dagster.__version__,
        "database": "SQLite (WAL) on the local disk",
    }


def table(info: dict, result: dict) -> str:
    t = result["tick_s"] or {"median": 0, "min": 0, "max": 0}
    rows = [
        ("CPUs", info["cpus"]),
        ("platform", info["platform"]),
        ("python", info["python"]),
        ("dagster", info["dagster"]),
        ("database", info["database"]),
        ("files dropped", result["files"]),
        ("files per tick (cap)", result["cap_per_tick"]),
        ("ticks with run requests", result["ticks"]),
        ("projects registered", result["registered"]),
        ("run requests", result["run_requests"]),
        ("rejected", result["rejected"]),
        ("left in inbox", result["left_in_inbox"]),
        ("seconds per tick, median / min / max", f"{t['median']:.3f} / {t['min']:.3f} / {t['max']:.3f}"),
        ("files/s (sensor time)", f"{result['files_per_s']:.0f}"),
    ]
    return "\n".join(["| inbox sensor | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--cap", type=int, default=500, help="VIDPIPE_INBOX_MAX_FILES_PER_TICK")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vidpipe-bench-inbox-") as tmp:
        result = run(args.files, args.cap, Path(tmp))
    info = machine()
    print(table(info, result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"inbox-{stamp}.json"
    out.write_text(json.dumps({"benchmark": "inbox", "when": stamp, "machine": info, **result}, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(RESULTS.parent.parent)}")
    return 0 if result["registered"] == args.files and result["left_in_inbox"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
