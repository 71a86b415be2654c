"""`e2e`: projects of N scenes through Dagster with the google provider against the wire
emulator, against the performance model's floor

    floor = T_storyboard + (N+1)·T_image + ceil(N/K)·T_video + T_stitch

for K parallel video operations (DESIGN.md, "Performance model")."""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from typing import Any

from bench.common import (
    EmulatorProcess,
    Report,
    ceil_div,
    fmt_s,
    fresh_home,
    log,
    remove_home,
    set_pool_limit,
    summary,
    table,
)
from vidpipe_core.steps import STEPS
from vidpipe_core.steps.characters import SHEET_WORKERS

T_TEXT, T_IMAGE, T_VIDEO = 0.3, 0.2, 4.0  # video = 20 × image, as with Gemini image vs Veo
IMAGE_HEIGHT, VIDEO_HEIGHT = 768, 720  # emulator output sizes (a Gemini image, a 720p Veo clip)
POLL_INITIAL_S, POLL_MAX_S = 0.05, 0.25  # fast polling: small next to T_video
# vidpipe's defaults (5 s, 30 s) scaled by the same factor that maps a ~80 s Veo operation to T_VIDEO
DEFAULT_POLL_SCALE = T_VIDEO / 80.0


def _setting_default(name: str) -> float:
    from vidpipe_core.config import Settings

    return float(Settings.model_fields[name].default)


DEFAULT_INITIAL, DEFAULT_MAX = _setting_default("poll_initial_s"), _setting_default("poll_max_s")
PROMPT = (
    "A paper boat sets off down a rain-filled gutter at dawn, rides a tiny waterfall into a canal, "
    "drifts past moored houseboats with a curious duck, and reaches a wide harbour at sunrise"
)
CLIP_S = 4


def _set_polling(initial: float, maximum: float) -> None:
    os.environ["VIDPIPE_POLL_INITIAL_S"] = str(initial)
    os.environ["VIDPIPE_POLL_MAX_S"] = str(maximum)


def floor(n: int, k: int, t_text: float, t_image: float, t_video: float, t_stitch: float) -> float:
    return t_text + (n + 1) * t_image + ceil_div(n, k) * t_video + t_stitch


def sheet_calls(sheets: float) -> int:
    """Image calls on the critical path for ``sheets`` reference sheets, made SHEET_WORKERS at once."""
    return ceil_div(int(sheets), SHEET_WORKERS) if sheets else 0


def sequential(n: int, t_text: float, t_image: float, t_video: float, t_stitch: float) -> float:
    return t_text + (n + 1) * t_image + n * t_video + t_stitch


# ------------------------------------------------------------------------------------------
# Calibration: the emulator's own response times through the raw SDK (no vidpipe code)
# ------------------------------------------------------------------------------------------


def calibrate(reps: int = 3) -> dict[str, Any]:
    """What one call costs from this client when nothing else runs: configured latency + the
    emulator's work (PNG/MP4 encode, base64, JSON) + HTTP. T_video is measured submit → done
    response received with 20 ms polling, alone and 4 at once (the emulator encodes MP4s on 2
    threads while the operation's latency runs; this shows whether the encode adds to T_video)."""
    import concurrent.futures as cf

    from google import genai
    from google.genai import types

    from vidpipe_core.schemas import Storyboard

    client = genai.Client(vertexai=True)
    out: dict[str, Any] = {}
    texts, images = [], []
    ref = None
    for i in range(reps + 1):
        t = time.perf_counter()
        client.models.generate_content(
            model="gemini-2.5-flash",
            contents=f"Plan a 4-scene video, take {i} {time.time()}: {PROMPT}",
            config=types.GenerateContentConfig(
                response_mime_type="application/json", response_json_schema=Storyboard.model_json_schema()
            ),
        )
        texts.append(time.perf_counter() - t)
        contents: list[Any] = [types.Part.from_text(text=f"frame {i} {time.time()}: {PROMPT}")]
        if ref is not None:
            contents.insert(0, types.Part.from_bytes(data=ref, mime_type="image/png"))
        t = time.perf_counter()
        r = client.models.generate_content(
            model="gemini-2.5-flash-image",
            contents=contents,
            config=types.GenerateContentConfig(
                response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="16:9")
            ),
        )
        images.append(time.perf_counter() - t)
        ref = r.candidates[0].content.parts[0].inline_data.data
    out["text_s"] = summary(texts[1:])  # first call pays connection set-up
    out["image_s"] = summary(images[1:])
    out["keyframe_bytes"] = len(ref or b"")

    def one_video(tag: str) -> tuple[float, float]:
        t = time.perf_counter()
        op = client.models.generate_videos(
            model="veo-3.1-generate-001",
            source=types.GenerateVideosSource(
                prompt=f"{PROMPT} {tag} {time.time()}", image=types.Image(image_bytes=ref, mime_type="image/png")
            ),
            config=types.GenerateVideosConfig(
                last_frame=types.Image(image_bytes=ref, mime_type="image/png"),
                duration_seconds=CLIP_S,
                aspect_ratio="16:9",
                generate_audio=True,
            ),
        )
        while True:
            p = time.perf_counter()
            op = client.operations.get(op)
            if op.done:
                return time.perf_counter() - t, time.perf_counter() - p
            time.sleep(0.02)

    alone = [one_video(f"alone {i}") for i in range(2)]
    out["video_alone_s"] = summary([a for a, _ in alone])
    out["done_poll_s"] = summary([b for _, b in alone])
    with cf.ThreadPoolExecutor(4) as pool:
        four = list(pool.map(one_video, [f"four {i}" for i in range(4)]))
    out["video_4_at_once_s"] = summary([a for a, _ in four])
    return out


# ------------------------------------------------------------------------------------------


def run(quick: bool = False, only: list[tuple[int, int]] | None = None, reps: int | None = None) -> Report:
    """Every row (``only``: just these (N, K) in-process rows, e.g. to compare two versions of
    vidpipe quickly); ``reps`` runs per row (default 3, 1 with ``quick``)."""
    reps = reps or (1 if quick else 3)
    sizes = tuple(sorted({n for n, _ in only})) if only else (4,) if quick else (4, 8, 16)
    ks = tuple(sorted({k for _, k in only})) if only else (1, 4)
    root = fresh_home("e2e")
    emu = EmulatorProcess(
        video_latency_s=T_VIDEO, latency={"text": T_TEXT, "image": T_IMAGE}, image_height=IMAGE_HEIGHT, video_height=VIDEO_HEIGHT
    )
    try:
        emu.point_sdk_here()
        _set_polling(POLL_INITIAL_S, POLL_MAX_S)
        from bench import pipeline

        set_pool_limit(max(ks))
        log("e2e: calibrating the emulator through the raw SDK")
        cal = calibrate()
        log(f"e2e: calibration {cal}")
        log("e2e: warm-up run (imports, first SDK client), not recorded")
        pipeline.render_in_process(
            pipeline.register(f"{PROMPT} warm-up", scenes=2, clip_duration=CLIP_S, provider="google", prefix="warm"), 2
        )

        runs: dict[tuple[int, int, str], list[pipeline.RunRecord]] = {}

        def one(n: int, k: int, executor: str, tag: str = "") -> None:
            pid = pipeline.register(
                f"{PROMPT} (n={n} k={k} {executor} {tag} {time.time()})",
                scenes=n,
                clip_duration=CLIP_S,
                provider="google",
                prefix=f"e2e{n}k{k}",
            )
            fn = pipeline.render_in_process if executor == "in_process" else pipeline.render_multiprocess
            rec = fn(pid, k)
            runs.setdefault((n, k, executor + tag), []).append(rec)
            log(f"e2e: N={n} K={k} {executor}{tag}: {rec.wall_s:.2f}s success={rec.success} {rec.failure}")

        for _rep in range(reps):  # interleaved, so drift hits every cell alike
            for n in sizes:
                for k in ks:
                    if only is None or (n, k) in only:
                        one(n, k, "in_process")
        n_def = 4 if quick else 8
        if only is not None:
            stats = emu.stats()
            return _report(runs, cal, stats, reps, quick, n_def, sizes)
        # the default executor: 3 runs for the smallest project, 1 for the larger ones (each costs
        # ~4-5 s of process start-ups on top; the medians of the first full run were within ±1 %)
        for rep in range(reps):
            for n in sizes:
                if rep == 0 or n == sizes[0]:
                    one(n, 4, "multiprocess")
        # vidpipe's default polling (Settings defaults: 5 s doubling to poll_max_s), scaled like
        # T_video; and the previous default cap (30 s, changed to 10 s on 2026-11-25) for comparison
        for initial, maximum, tag, times in (
            (DEFAULT_INITIAL, DEFAULT_MAX, " default-poll", reps),
            (5.0, 30.0, " poll-5→30 (old default)", 1),
        ):
            _set_polling(initial * DEFAULT_POLL_SCALE, maximum * DEFAULT_POLL_SCALE)
            for _rep in range(times):
                one(n_def, 4, "in_process", tag)
        _set_polling(POLL_INITIAL_S, POLL_MAX_S)
        stats = emu.stats()
    finally:
        emu.stop()
        remove_home(root)

    return _report(runs, cal, stats, reps, quick, n_def, sizes)


def _report(runs: dict, cal: dict, stats: dict, reps: int, quick: bool, n_def: int, sizes: tuple) -> Report:  # type: ignore[type-arg]
    report = Report("e2e", "e2e — end to end against the floor (google provider, wire emulator)")
    t_stitch_all = [r.stitch_s for rs in runs.values() for r in rs if r.stitch_s is not None]
    report.setup = [
        f"Emulator in its own process (`python -m vidpipe_emulator`): latency text {T_TEXT} s, image {T_IMAGE} s, "
        f"video {T_VIDEO} s (submit → done); keyframes {IMAGE_HEIGHT} px high (PNG), clips {VIDEO_HEIGHT}p H.264+AAC "
        "delivered as bytes. Real google-genai SDK (Vertex express mode) through `GOOGLE_VERTEX_BASE_URL`.",
        f"Polling: `VIDPIPE_POLL_INITIAL_S={POLL_INITIAL_S}`, `VIDPIPE_POLL_MAX_S={POLL_MAX_S}` (vidpipe's defaults are "
        f"{DEFAULT_INITIAL:g} s / {DEFAULT_MAX:g} s; the 'default-poll' row uses them scaled by T_video/80 s = "
        f"{DEFAULT_POLL_SCALE:g}: {DEFAULT_INITIAL * DEFAULT_POLL_SCALE:g} s / {DEFAULT_MAX * DEFAULT_POLL_SCALE:g} s; "
        f"'poll-5→30' is the previous default cap of 30 s, scaled the same way, 1 run).",
        f"Clips of {CLIP_S} s, 16:9, audio on. Pool `video-operations` limit 4; K set with "
        "`run_config={'ops': {'clips': {'config': {'concurrency': K}}}}`.",
        "in_process = `vidpipe_dagster.runner.render` (execute_in_process, recorded in the instance); "
        "multiprocess = `dg.execute_job(dg.reconstructable(...))`, the job's default executor (each step in a new "
        "Python process), K=4. Fresh VIDPIPE_DATA_DIR + DAGSTER_HOME (SQLite) for the benchmark; a new project "
        "per run; one warm-up run first (not recorded). The emulator caches MP4 encodes by request content and its "
        "storyboard text depends only on the first 80 characters of the prompt, so repeated runs of one N mostly "
        f"reuse encodes ({stats.get('video_encodes')} encodes for {stats.get('operations')} operations): as with a "
        "real Veo, the encode then does not load this machine; the calibration (fresh prompts) measures the "
        "encode-included path. Likewise it renders each distinct image request once "
        f"({stats.get('image_renders', '–')} renders for {(stats.get('requests') or {}).get('image', '–')} image "
        "requests; the configured latency is waited every time).",
        f"{reps} run(s) per in-process row, interleaved"
        + (
            f" (multiprocess: {reps} for N={sizes[0]}, 1 for larger N: see the 'ok' column)"
            if any(ex != "in_process" for _, _, ex in runs)
            else " (only the rows asked for with --only)"
        )
        + "; wall = around the call in this process. Floor uses the configured "
        "latencies and T_stitch measured in the runs ('[final_video] stitching' → 'final video written', "
        f"median {statistics.median(t_stitch_all):.3f} s); 'calibrated floor' uses the emulator's measured response "
        "times through the raw SDK instead (configured latency + the emulator's own encode/transfer work). The "
        "floor is DESIGN.md's, written before the characters stage: 'floor + sheets' adds its image calls, "
        f"ceil(C/{SHEET_WORKERS})·T_image (C = the reference sheets of the median run, made {SHEET_WORKERS} at once). "
        "It also has the clips start after the last keyframe: since the clips step submits each clip once its two "
        "frames exist, a render can beat it (the keyframes column is the step's start to its last "
        "'[keyframes]' line; the clips step's column holds both, against (N+1)·T_image + ceil(N/K)·T_video).",
    ]
    t_stitch = statistics.median(t_stitch_all)
    c_text, c_image = cal["text_s"]["median"], cal["image_s"]["median"]
    c_video = {1: cal["video_alone_s"]["median"], 4: cal["video_4_at_once_s"]["median"]}

    rows, data_rows = [], []
    for (n, k, ex), rs in sorted(runs.items(), key=lambda kv: (kv[0][2] != "in_process", kv[0][0], kv[0][1], kv[0][2])):
        ok = [r for r in rs if r.success]
        wall = summary([r.wall_s for r in ok])
        fl = floor(n, k, T_TEXT, T_IMAGE, T_VIDEO, t_stitch)
        cfl = floor(n, k, c_text, c_image, c_video[k], t_stitch)
        seq = sequential(n, T_TEXT, T_IMAGE, T_VIDEO, t_stitch)
        ratio = wall["median"] / fl if wall["median"] else None
        sheets = statistics.median([r.sheets for r in ok]) if ok else 0
        fls = fl + sheet_calls(sheets) * T_IMAGE
        rows.append(
            [
                n,
                k,
                ex.replace("_", "-"),
                f"{len(ok)}/{len(rs)}",
                fmt_s(wall),
                f"{fl:.2f}",
                f"{ratio:.2f}" if ratio else "–",
                f"{fls:.2f} ({sheets:g})",
                f"{wall['median'] / fls:.2f}" if ratio else "–",
                f"{cfl:.2f}",
                f"{wall['median'] / cfl:.2f}" if ratio else "–",
                f"{seq:.2f}",
                f"{seq / wall['median']:.1f}×" if ratio else "–",
            ]
        )
        data_rows.append(
            {
                "n": n,
                "k": k,
                "executor": ex,
                "wall_s": wall,
                "floor_s": fl,
                "ratio": ratio,
                "sheets": sheets,
                "floor_with_sheets_s": fls,
                "calibrated_floor_s": cfl,
                "sequential_s": seq,
                "runs": [r.to_dict() for r in rs],
            }
        )
    report.tables.append(
        table(
            [
                "N",
                "K",
                "executor",
                "ok",
                "wall s, median (min–max)",
                "floor s",
                "ratio",
                "floor + sheets s (C)",
                "ratio vs floor + sheets",
                "calibrated floor s",
                "ratio vs calibrated",
                "sequential s",
                "speed-up vs sequential",
            ],
            rows,
        )
    )

    # Where the time goes: median step durations of the in-process runs against each stage's floor.
    brow = []
    for (n, k, ex), rs in sorted(runs.items()):
        ok = [r for r in rs if r.success and len(r.steps) == len(STEPS_) and r.keyframes_s() is not None]
        if not ok:
            continue
        med = lambda xs: statistics.median(xs)  # noqa: E731
        before = med([min(a for a, _ in r.steps.values()) - r.call_start for r in ok])
        after = med([r.call_start + r.wall_s - max(b for _, b in r.steps.values()) for r in ok])
        gaps = med([sum(r.steps[b][0] - r.steps[a][1] for a, b in itertools.pairwise(STEPS_)) for r in ok])
        sb = med([r.step_s("storyboard") for r in ok])
        ch = med([r.step_s("characters") for r in ok])
        sheets = med([r.sheets for r in ok])
        kf = med([r.keyframes_s() for r in ok])
        cl = med([r.step_s("clips") for r in ok])
        fv = med([r.step_s("final_video") for r in ok])
        per_clip = med([b - a - T_VIDEO for r in ok for a, b in r.clip_spans])
        brow.append(
            [
                n,
                k,
                ex.replace("_", "-"),
                f"{before:.2f}",
                f"{sb:.2f} / {T_TEXT:.2f}",
                f"{ch:.2f} / {sheet_calls(sheets) * T_IMAGE:.2f} ({sheet_calls(sheets) * c_image:.2f})",
                f"{kf:.2f} / {(n + 1) * T_IMAGE:.2f} ({(n + 1) * c_image:.2f})",
                f"{cl:.2f} / {(n + 1) * T_IMAGE + ceil_div(n, k) * T_VIDEO:.2f}",
                f"{per_clip:.2f}",
                f"{fv:.2f} / {t_stitch:.2f}",
                f"{gaps:.2f}",
                f"{after:.2f}",
            ]
        )
    report.tables.append(
        table(
            [
                "N",
                "K",
                "executor",
                "before 1st step",
                "storyboard / floor",
                "characters / floor (calibrated)",
                "keyframes / floor (calibrated)",
                "clips step (frames and clips) / floor",
                "per clip: submit→saved − T_video",
                "final_video / T_stitch",
                "between steps",
                "after last step",
            ],
            brow,
        )
    )
    if not brow:
        report.notes.append("no run finished every step: the 'where the time goes' table is empty")
    report.tables.append(
        table(
            ["calibration (raw SDK → emulator, median of the runs)", "seconds", "configured"],
            [
                ["text call (storyboard, JSON schema)", fmt_s(cal["text_s"], 3), T_TEXT],
                ["image call (with a reference PNG)", fmt_s(cal["image_s"], 3), T_IMAGE],
                ["video: submit → done received, alone (20 ms polls)", fmt_s(cal["video_alone_s"], 3), T_VIDEO],
                ["video: submit → done received, 4 at once", fmt_s(cal["video_4_at_once_s"], 3), T_VIDEO],
                ["the done poll alone (base64 MP4 in JSON)", fmt_s(cal["done_poll_s"], 3), "–"],
            ],
            align=["l", "r", "r"],
        )
    )
    report.data = {
        "config": {
            "t_text": T_TEXT,
            "t_image": T_IMAGE,
            "t_video": T_VIDEO,
            "image_height": IMAGE_HEIGHT,
            "video_height": VIDEO_HEIGHT,
            "poll_initial_s": POLL_INITIAL_S,
            "poll_max_s": POLL_MAX_S,
            "default_poll_scale": DEFAULT_POLL_SCALE,
            "default_poll_initial_s": DEFAULT_INITIAL,
            "default_poll_max_s": DEFAULT_MAX,
            "clip_s": CLIP_S,
            "reps": reps,
        },
        "t_stitch_s": summary(t_stitch_all),
        "calibration": cal,
        "rows": data_rows,
        "emulator_stats": {
            k: stats.get(k) for k in ("requests", "peak_inflight", "operations", "video_encodes", "image_renders")
        },
    }
    return report


STEPS_ = STEPS  # one Dagster step per stage, the keyframes' in the clips step


def main(argv: list[str] | None = None) -> int:
    import argparse

    from bench.__main__ import run_one

    p = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="+", metavar="NxK", help="just these in-process rows, e.g. 8x4 (no other rows)")
    p.add_argument("--reps", type=int, help="runs per row (default 3, 1 with --quick)")
    args = p.parse_args(argv)
    only = [tuple(int(x) for x in row.lower().split("x")) for row in args.only] if args.only else None
    return run_one("e2e", args.quick, lambda quick: run(quick, only=only, reps=args.reps))  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
