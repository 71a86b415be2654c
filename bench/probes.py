"""Small focused measurements behind the findings in bench/README.md (not part of `python -m bench`).

    python -m bench.probes xfade-memory   # ffmpeg peak RSS of one xfade graph vs number of inputs, variants, and the segmented stitch
    python -m bench.probes claim-cost     # CPU of one blocked claim of the `video-operations` pool slot
    python -m bench.probes render-cpu     # CPU seconds of one `vidpipe render` (4 scenes, google via emulator), alone

Each prints a markdown table; nothing is recorded under bench/results/."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PYTHON, REPO, EmulatorProcess, fresh_home, remove_home, set_pool_limit, table


# ------------------------------------------------------------------------------------------
def _xfade_worker(res: int, n: int, variant: str) -> dict:
    from bench.stitch import cache_dir
    from vidpipe_core import media
    from vidpipe_core.media.stitcher import _measured

    paths = [cache_dir() / f"{res}p" / f"clip_{i:02d}.mp4" for i in range(n)]
    infos = [media.probe(p) for p in paths]
    inputs = [(p, _measured(i), i.has_audio) for p, i in zip(paths, infos, strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.mp4"
        args = media.crossfade_args(inputs, out, crossfade=0.5, fps=infos[0].fps, size=(infos[0].width, infos[0].height))
        if variant == "input-threads-1":
            args = [x for a in args for x in ((["-threads", "1"] if a == "-i" else []) + [a])]
        elif variant == "filter-threads-1":
            args = ["-filter_complex_threads", "1", *args]
        elif variant == "itsoffset":
            offsets = [0.0] + media.crossfade_offsets([d for _, d, _ in inputs], 0.5)
            new, k = [], 0
            for a in args:
                if a == "-i":
                    if k:
                        new += ["-itsoffset", f"{offsets[k]:.6f}"]
                    k += 1
                new.append(a)
            args = new
        t = time.perf_counter()
        if variant == "segmented":  # what media.stitch does now: bodies and transitions apart
            media.stitch(paths, out, crossfade=0.5)
        else:
            media.run_ffmpeg(args, what="crossfade probe")
        seconds = time.perf_counter() - t
        duration = media.probe(out).duration_s
    return {
        "seconds": seconds,
        "duration_s": duration,
        "ffmpeg_maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def xfade_memory() -> str:
    from bench.stitch import ensure_clips

    rows = []
    for res, n, variant in [
        (720, 2, "as is"),
        (720, 4, "as is"),
        (720, 8, "as is"),
        (720, 8, "input-threads-1"),
        (720, 8, "filter-threads-1"),
        (720, 8, "itsoffset"),
        (720, 8, "segmented"),
        (1080, 4, "as is"),
        (1080, 8, "as is"),
        (1080, 4, "segmented"),
        (1080, 8, "segmented"),
    ]:
        ensure_clips(res)
        out = subprocess.run(
            [PYTHON, "-m", "bench.probes", "_xfade", str(res), str(n), variant],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append([f"{res}p", n, variant, f"{r['seconds']:.1f}", f"{r['duration_s']:.1f}", f"{r['ffmpeg_maxrss_mib']:.0f}"])
    return table(
        ["resolution", "clips", "variant", "seconds", "output s", "ffmpeg peak RSS MiB"],
        rows,
        align=["l", "r", "l", "r", "r", "r"],
    )


# ------------------------------------------------------------------------------------------
def claim_cost() -> str:
    root = fresh_home("claim")
    try:
        from vidpipe_core.config import get_settings
        from vidpipe_dagster.instance import get_instance
        from vidpipe_dagster.pools import DagsterPoolSlots

        set_pool_limit(1)
        instance = get_instance(get_settings())
        holder = DagsterPoolSlots(instance, "video-operations", "run-a", "clips")
        waiter = DagsterPoolSlots(instance, "video-operations", "run-b", "clips")
        holder._ensure_limit()
        with holder.hold(0):
            n = 200
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                claimed = waiter._claim("clips[scene-1]")
            wall_ms, cpu_ms = (time.perf_counter() - t0) / n * 1000, (time.process_time() - c0) / n * 1000
    finally:
        remove_home(root)
    return table(
        ["blocked claim of a `video-operations` slot (SQLite instance, 1 waiter)", "ms"],
        [["wall per claim", f"{wall_ms:.2f}"], ["CPU per claim", f"{cpu_ms:.2f}"], ["claimed (expected: False)", str(claimed)]],
    )


# ------------------------------------------------------------------------------------------
def render_cpu() -> str:
    root = fresh_home("cpu")
    emu = EmulatorProcess(video_latency_s=3.0, latency={"text": 0.05, "image": 0.05}, image_height=144, video_height=144)
    rows = []
    try:
        emu.point_sdk_here()
        os.environ.update({"VIDPIPE_POLL_INITIAL_S": "0.05", "VIDPIPE_POLL_MAX_S": "0.25"})
        from bench import pipeline

        set_pool_limit(8)

        def cpu() -> float:
            r = resource.getrusage(resource.RUSAGE_CHILDREN)
            return r.ru_utime + r.ru_stime

        for label, argv in [
            ("`import vidpipe_dagster.cli`", [PYTHON, "-c", "import vidpipe_dagster.cli"]),
            ("`import vidpipe_dagster.cli, google.genai`", [PYTHON, "-c", "import vidpipe_dagster.cli, google.genai"]),
        ]:
            c, t = cpu(), time.perf_counter()
            subprocess.run(argv, cwd=REPO, check=True)
            rows.append([label, f"{cpu() - c:.2f}", f"{time.perf_counter() - t:.2f}"])
        for i in range(3):
            pid = pipeline.register(
                f"A kite festival, take {i} {time.time()}", scenes=4, clip_duration=4, provider="google", prefix="cpu"
            )
            c, t = cpu(), time.perf_counter()
            subprocess.run([PYTHON, "-m", "vidpipe_dagster.cli", "render", pid], cwd=REPO, check=True, capture_output=True)
            rows.append([f"`vidpipe render` 4 scenes, alone (run {i + 1})", f"{cpu() - c:.2f}", f"{time.perf_counter() - t:.2f}"])
    finally:
        emu.stop()
        remove_home(root)
    return table(["process", "CPU s (user+sys, incl. children)", "wall s"], rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_xfade":
        print(json.dumps(_xfade_worker(int(argv[1]), int(argv[2]), argv[3])))
        return 0
    probes = {"xfade-memory": xfade_memory, "claim-cost": claim_cost, "render-cpu": render_cpu}
    if not argv or argv[0] not in probes:
        print(__doc__)
        return 2
    print(f"load average at start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(probes[argv[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
