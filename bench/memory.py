"""`memory`: peak RSS (process + children) of rendering and stitching a 16-scene 1080p project
(animatic, offline; 4 s clips) through `render_project`, in a fresh process sampled by
`bench._measure` (`BENCH_NARRATION=1`: with narration, so the final video is mixed); plus the same project's final video re-stitched with a 0.5 s crossfade.
Local animatic renders at once: `VIDPIPE_LOCAL_RENDERS` (default 1), independent of the clip
concurrency (4, the video-operation limit)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench.common import PYTHON, Report, fmt_s, fresh_home, last_json_line, log, mib, remove_home, run_measured, table
from vidpipe_core.steps import STEPS  # one Dagster step per stage, the keyframes' in the clips step

SCENES, CLIP_S, RES = 16, 4, 1080
PROMPT = (
    "A hot-air balloon rises over a valley at dawn, drifts above vineyards, a village, a river, a forest, "
    "a lake, snow peaks and lands in a meadow at dusk"
)


def clip_worker() -> dict:
    """One 4 s 1080p animatic clip (push-in, audio, caption) from two drawn keyframes: wall and CPU
    seconds of this process (making frames) and of its ffmpeg (encoding), and the bytes."""
    from vidpipe_core.providers.animatic import motion
    from vidpipe_core.providers.animatic.drawing import render_keyframe
    from vidpipe_core.providers.animatic.planner import PALETTES
    from vidpipe_core.providers.base import KeyframeRequest
    from vidpipe_core.schemas import StyleGuide

    style = StyleGuide(visual_style="cinematic", color_palette=PALETTES["cinematic"], camera_style="steady")
    size = (1920, 1080)
    start, end = (
        render_keyframe(KeyframeRequest("bench", k, prompt, "", style, "16:9", None), size)
        for k, prompt in enumerate(("a lighthouse on a cliff at dusk", "a ship passes the rocks at night"))
    )
    t, c0 = time.perf_counter(), os.times()
    data = motion.render_animatic_clip(
        start, end, duration_s=CLIP_S, fps=24, size=size, audio=True, seed_text="slow push-in", caption="Scene 1: a lighthouse"
    )
    c1 = os.times()
    return {
        "wall_s": time.perf_counter() - t,
        "cpu_python_s": (c1.user - c0.user) + (c1.system - c0.system),
        "cpu_ffmpeg_s": (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system),
        "bytes": len(data),
    }


def worker(mode: str) -> dict:
    from bench import pipeline
    from vidpipe_dagster.runner import render

    if mode == "clip":
        return clip_worker()

    if mode == "render":
        narrated = os.environ.get("BENCH_NARRATION") == "1"  # espeak-ng's lines and the final mix
        pid = pipeline.register(
            PROMPT, scenes=SCENES, clip_duration=CLIP_S, provider="animatic", prefix="mem", narration=narrated
        )
        rec = pipeline.render_in_process(pid)
    else:
        pid = os.environ["BENCH_PROJECT_ID"]
        call = time.time()
        t = time.perf_counter()
        result = render(pid, assets=["final_video"], run_config={"ops": {"final_video": {"config": {"crossfade": 0.5}}}})
        rec = pipeline.collect(
            pipeline.RunRecord(pid, result.run_id, bool(result.success), time.perf_counter() - t, "in_process", call_start=call)
        )
    from vidpipe_core.config import get_settings
    from vidpipe_core.services import Services
    from vidpipe_core.steps.state import resolve_state
    from vidpipe_core.storage import Layout

    services = Services.create(get_settings())
    state = resolve_state(services, pid)
    clip_bytes = sum(os.path.getsize(services.store.path(pid, c.row.path)) for c in state.clips if c.row and c.row.path)
    return {
        "local_renders": get_settings().local_renders,
        "clips_bytes": clip_bytes,
        "final_bytes": os.path.getsize(services.store.path(pid, Layout.FINAL)),
        "project_id": pid,
        "success": rec.success,
        "wall_s": rec.wall_s,
        "steps": rec.steps,
        "failure": rec.failure,
        "stitch_s": rec.stitch_s,
    }


def _peaks(measured: dict, steps: dict) -> dict[str, int]:
    t0 = measured["epoch_start"]
    out = {}
    for step, (a, b) in steps.items():
        vals = [rss for t, rss in measured["timeline"] if a - 0.1 <= t0 + t <= b + 0.1]
        out[step] = max(vals) if vals else 0
    return out


def run(quick: bool = False) -> Report:
    scenes = 4 if quick else SCENES
    root = fresh_home("memory")
    env = {**os.environ, "VIDPIPE_PROVIDER": "animatic", "VIDPIPE_ANIMATIC_RESOLUTION": str(RES), "BENCH_SCENES": str(scenes)}
    for name in ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT"):
        env.pop(name, None)
    try:
        log(f"memory: rendering {scenes} scenes at {RES}p in a fresh process")
        a = run_measured([PYTHON, "-m", "bench.memory", "--worker", "render"], env=env, every=0.05)
        wa = last_json_line(a["stdout"])
        log(f"memory: render {wa['wall_s']:.1f}s peak tree {a['peak_tree_rss'] / 2**20:.0f} MiB; re-stitching with crossfade")
        b = run_measured(
            [PYTHON, "-m", "bench.memory", "--worker", "crossfade"], env={**env, "BENCH_PROJECT_ID": wa["project_id"]}, every=0.05
        )
        wb = last_json_line(b["stdout"])
        log("memory: one 4 s 1080p clip in a fresh process")
        c = run_measured([PYTHON, "-m", "bench.memory", "--worker", "clip"], env=env, every=0.02)
        wc = last_json_line(c["stdout"])
    finally:
        remove_home(root)

    report = Report("memory", f"memory — {scenes}-scene {RES}p project (animatic, offline), peak RSS")
    report.setup = [
        f"`VIDPIPE_ANIMATIC_RESOLUTION={RES}`, {scenes} scenes × {CLIP_S} s clips (16:9, audio), clip concurrency 4 "
        f"(default), local renders {wa['local_renders']} (`VIDPIPE_LOCAL_RENDERS`), `render_project` in a fresh Python "
        "process; fresh SQLite data dir + DAGSTER_HOME.",
        f"Bytes: clips {wa['clips_bytes'] / 1e6:.1f} MB in all, final video {wa['final_bytes'] / 1e6:.1f} MB.",
        "Peak RSS: the process tree (Python + every ffmpeg child) sampled every 50 ms with psutil, summed; "
        "'largest process' is RUSAGE_CHILDREN.ru_maxrss (exact, one process). Per step: the highest tree sample "
        "between STEP_START and STEP_SUCCESS.",
        "Second row: the same project's final_video re-materialized with `crossfade: 0.5` (xfade/acrossfade re-encode "
        "in segments: each clip body and each transition encoded apart, two ffmpeg jobs at a time), also in a fresh process. One run each.",
        *(
            ["`BENCH_NARRATION=1`: registered with narration on (espeak-ng's lines, the final mix: loudness, subtitles)."]
            if os.environ.get("BENCH_NARRATION") == "1"
            else []
        ),
    ]
    pa, pb = _peaks(a, wa["steps"]), _peaks(b, wb["steps"])
    rows = [
        [
            "render (4 assets, stream-copy stitch)",
            f"{wa['wall_s']:.1f}",
            f"{a['wall_s']:.1f}",
            mib(a["peak_tree_rss"]),
            mib(a["max_single_rss"]),
            mib(a["peak_main_rss"]),
            " · ".join(f"{s} {mib(pa.get(s))}" for s in STEPS if s in pa),
        ],
        [
            "re-stitch final_video with crossfade 0.5 s",
            f"{wb['wall_s']:.1f}",
            f"{b['wall_s']:.1f}",
            mib(b["peak_tree_rss"]),
            mib(b["max_single_rss"]),
            mib(b["peak_main_rss"]),
            f"final_video {mib(pb.get('final_video'))}",
        ],
    ]
    report.tables.append(
        table(
            [
                "what",
                "run wall s",
                "process wall s (incl. start-up)",
                "peak RSS tree MiB",
                "largest process MiB",
                "Python process MiB",
                "peak tree MiB per step",
            ],
            rows,
            align=["l", "r", "r", "r", "r", "r", "l"],
        )
    )
    report.tables.append(
        table(
            [
                "one animatic clip (4 s, 1080p, audio, caption)",
                "wall s",
                "CPU s making frames (Python)",
                "CPU s ffmpeg",
                "peak RSS tree MiB",
                "largest process MiB",
                "bytes",
            ],
            [
                [
                    "`motion.render_animatic_clip`",
                    f"{wc['wall_s']:.1f}",
                    f"{wc['cpu_python_s']:.1f}",
                    f"{wc['cpu_ffmpeg_s']:.1f}",
                    mib(c["peak_tree_rss"]),
                    mib(c["max_single_rss"]),
                    f"{wc['bytes']:,}",
                ]
            ],
            align=["l", "r", "r", "r", "r", "r", "r"],
        )
    )
    step_rows = [[s, fmt_s(wa["steps"][s][1] - wa["steps"][s][0], 2)] for s in STEPS if s in wa["steps"]]
    report.tables.append(table(["step (render run)", "seconds"], step_rows))
    report.data = {
        "scenes": scenes,
        "clip_s": CLIP_S,
        "resolution": RES,
        "render": {**{k: v for k, v in a.items() if k != "stdout"}, "worker": wa, "step_peaks": pa},
        "crossfade": {**{k: v for k, v in b.items() if k != "stdout"}, "worker": wb, "step_peaks": pb},
        "clip": {**{k: v for k, v in c.items() if k != "stdout"}, "worker": wc},
    }
    if not (wa["success"] and wb["success"]):
        report.notes.append(f"a run failed: {wa['failure'] or wb['failure']}")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory")
    p.add_argument("--worker", choices=("render", "crossfade", "clip"))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        global SCENES
        SCENES = int(os.environ.get("BENCH_SCENES", SCENES))
        print(json.dumps(worker(args.worker)))
        return 0
    from bench.__main__ import run_one

    return run_one("memory", args.quick)


if __name__ == "__main__":
    sys.exit(main())
