"""`narration`: the narration step's wall time for N lines on the google narrator, against the wire
emulator with a speech latency of L seconds (a Gemini TTS call's latency), by
`narration_concurrency`: one line at a time against the lines said side by side.

Each run is a fresh process (`--worker`): the emulator in its own process, a fresh vidpipe home, a
google project of N narrated scenes, its storyboard, then `make_narration` timed alone (the core
step: the Dagster asset around it is the same in every variant). The emulator's request log gives
the peak of speech requests in flight (a lower bound, as tests/dagster/test_narration.py counts
it). Variants alternate run by run, so a change of load hits them alike.

    .venv/bin/python -m bench narration                          # this code, concurrency 1 and the default
    .venv/bin/python -m bench.narration --code before=../old-checkout --reps 5   # another checkout too
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Report, fmt_s, header, last_json_line, log, summary, table, write_json

PROMPT = "A lighthouse keeper's night: the stairs, the lamp, the storm, the ships, the dawn, the gulls, the tea, the log"
LINES, LATENCY_S, CLIP_S = 8, 1.0, 8


def peak_overlap(starts: list[float], latency_s: float) -> int:
    """The most requests provably in flight at once: each is answered no sooner than ``latency_s``
    after it arrived, so those arriving within ``latency_s`` of one another overlap."""
    starts = sorted(starts)
    return max((sum(1 for s in starts if t <= s < t + latency_s) for t in starts), default=0)


def worker(lines: int, latency_s: float) -> dict[str, Any]:
    """One measurement in this interpreter (the code on PYTHONPATH)."""
    from bench.common import EmulatorProcess, fresh_home, remove_home

    root = fresh_home("narration")
    os.environ["VIDPIPE_PROVIDER"] = "google"
    try:
        with EmulatorProcess(video_latency_s=1.0, latency={"speech": latency_s}, image_height=144, video_height=144) as emu:
            emu.point_sdk_here()
            from bench.pipeline import register
            from vidpipe_core.config import get_settings
            from vidpipe_core.services import Services
            from vidpipe_core.steps.narration import make_narration
            from vidpipe_core.steps.storyboard import make_storyboard

            project_id = register(PROMPT, scenes=lines, clip_duration=CLIP_S, provider="google", prefix="narr", narration=True)
            services = Services.create(get_settings())
            make_storyboard(services, project_id)
            started = time.perf_counter()
            report = make_narration(services, project_id)
            seconds = time.perf_counter() - started
            speech = [r for r in emu.requests() if r["kind"] == "speech"]
            return {
                "seconds": seconds,
                "lines": len(report.items),
                "requests": len(speech),
                "peak_in_flight": peak_overlap([r["timestamp"] for r in speech], latency_s),
            }
    finally:
        remove_home(root)


def measure(variants: dict[str, tuple[Path, int | None]], lines: int, latency_s: float, reps: int) -> dict[str, list[dict]]:
    """variant -> its runs; each run a fresh process with that checkout first on PYTHONPATH and that
    concurrency (None: the checkout's default); the variants alternate."""
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for rep in range(reps):
        for name, (code, concurrency) in variants.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("VIDPIPE_")}
            env["PYTHONPATH"] = os.pathsep.join([str(code), str(REPO)])
            if concurrency is not None:
                env["VIDPIPE_NARRATION_CONCURRENCY"] = str(concurrency)
            argv = [sys.executable, str(Path(__file__).resolve()), "--worker", "--lines", str(lines), "--latency", str(latency_s)]
            proc = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"{name}: worker exited {proc.returncode}: {proc.stderr[-3000:]}")
            run = last_json_line(proc.stdout) | {"load_1min": round(os.getloadavg()[0], 2)}
            runs[name].append(run)
            log(f"narration {name} rep {rep + 1}/{reps}: {run['seconds']:.2f} s, peak {run['peak_in_flight']}")
    return runs


def report_of(runs: dict[str, list[dict]], lines: int, latency_s: float) -> Report:
    rows, data = [], {}
    for name, got in runs.items():
        s = summary([r["seconds"] for r in got])
        data[name] = {"seconds": s, "runs": got}
        peaks = sorted({r["peak_in_flight"] for r in got})
        rows.append([name, fmt_s(s), f"{s['median'] / lines:.2f}", "/".join(map(str, peaks))])
    return Report(
        "narration",
        f"Narration step, {lines} lines at a speech latency of {latency_s:g} s",
        setup=[
            f"google narrator against the emulator (its own process), speech latency {latency_s:g} s, {lines} scenes of {CLIP_S} s",
            "make_narration timed alone, a fresh process, home and project per run; variants alternate run by run",
            "peak: speech requests in flight at once, from the emulator's request log (a lower bound)",
        ],
        tables=[table(["variant", "wall s, median (min–max)", "s per line", "peak in flight"], rows)],
        data=data,
    )


def run(quick: bool = False) -> Report:
    variants = {"narration_concurrency=1": (REPO, 1), "default": (REPO, None)}
    return report_of(measure(variants, LINES, LATENCY_S, 1 if quick else 5), LINES, LATENCY_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lines", type=int, default=LINES)
    parser.add_argument("--latency", type=float, default=LATENCY_S)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--code", action="append", default=[], help="NAME=DIR: another checkout measured at its own default")
    parser.add_argument("--concurrency", default="1,default", help="this checkout's concurrencies, e.g. 1,4,8,default")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.lines, args.latency)), flush=True)
        return 0
    variants: dict[str, tuple[Path, int | None]] = {}
    for spec in args.code:
        name, _, folder = spec.partition("=")
        variants[name] = (Path(folder).resolve(), None)
    for value in args.concurrency.split(","):
        variants["default" if value == "default" else f"narration_concurrency={value}"] = (
            REPO,
            None if value == "default" else int(value),
        )
    load = os.getloadavg()
    started = time.perf_counter()
    rep = report_of(measure(variants, args.lines, args.latency, args.reps), args.lines, args.latency)
    head = header(load)
    head["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    head["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
    print(rep.markdown(head), flush=True)
    out = write_json(rep, head, quick=False)
    print(f"_JSON: `{out.relative_to(REPO)}`_", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
