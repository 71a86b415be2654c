"""`stitch`: joining the same 8 clips (8 s, H.264 + AAC) at 720p and 1080p three ways.

- vidpipe stream copy: `vidpipe_core.media.stitch(paths, out)` (concat demuxer, `-c copy`)
- vidpipe crossfade: `media.stitch(paths, out, crossfade=0.5)` (xfade + acrossfade, libx264 veryfast)
- MoviePy: `concatenate_videoclips` + `write_videofile(codec="libx264", audio_codec="aac")` with
  MoviePy's defaults (preset medium), the way popular text-to-video tools stitch.

Each measurement is a fresh process (`python -m bench.stitch --worker ...`) run under
`bench._measure`, which samples the RSS of the whole process tree (Python + ffmpeg children).
"seconds" is timed inside the worker around the join alone (imports and interpreter start
excluded; the wrapper's wall time is recorded in the JSON too)."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PYTHON, Report, fmt_s, last_json_line, log, mib, run_measured, summary, table

CLIPS = 8
CLIP_S = 8
FPS = 24
RESOLUTIONS = (720, 1080)
METHODS = ("copy", "crossfade", "moviepy")
METHOD_LABEL = {
    "copy": "vidpipe stream copy",
    "crossfade": "vidpipe crossfade 0.5 s (re-encode)",
    "moviepy": "MoviePy concatenate + write_videofile",
}
CACHE_VERSION = "v2"  # v2: clips with a keyframe every second (media.KEYFRAME_INTERVAL_S)


def _keyframe(w: int, h: int, seed: int) -> bytes:
    """A textured keyframe (coarse colour field + fine grain + a shape), so the clips have the
    bit rate of real footage (~4-10 Mbit/s) instead of flat animatic colours."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (max(2, h // 24), max(2, w // 24), 3), dtype=np.uint8))
    coarse = coarse.resize((w, h), Image.Resampling.BICUBIC)
    grain = rng.normal(0, 14, (h, w, 3))
    arr = np.clip(np.asarray(coarse, dtype=np.float32) * 0.8 + grain + 20, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    d = ImageDraw.Draw(img)
    r = h // 5
    cx, cy = int(w * (0.25 + 0.5 * rng.random())), int(h * (0.3 + 0.4 * rng.random()))
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(x) for x in rng.integers(60, 255, 3)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "vidpipe-bench-cache" / f"stitch-{CACHE_VERSION}"


def ensure_clips(res: int) -> list[Path]:
    """Render the 8 clips once per resolution with `motion.render_animatic_clip` (cached)."""
    from vidpipe_core import media
    from vidpipe_core.providers.animatic import motion

    folder = cache_dir() / f"{res}p"
    folder.mkdir(parents=True, exist_ok=True)
    w, h = media.dimensions("16:9", res)
    paths = [folder / f"clip_{i:02d}.mp4" for i in range(CLIPS)]
    frames: list[bytes] | None = None
    for i, path in enumerate(paths):
        if path.is_file():
            continue
        if frames is None:
            frames = [_keyframe(w, h, k) for k in range(CLIPS + 1)]
        t = time.perf_counter()
        data = motion.render_animatic_clip(
            frames[i],
            frames[i + 1],
            duration_s=CLIP_S,
            fps=FPS,
            size=(w, h),
            audio=True,
            seed_text=f"scene {i}: a slow push-in over the harbour" if i % 2 == 0 else f"scene {i}: pan left along the quay",
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        log(f"stitch: rendered {path.name} at {w}x{h} in {time.perf_counter() - t:.1f}s ({len(data) / 1e6:.1f} MB)")
    return paths


# ------------------------------------------------------------------------------------------
# Worker (runs in a fresh process under bench._measure)
# ------------------------------------------------------------------------------------------


def worker(method: str, res: int, out: Path) -> dict:
    paths = [cache_dir() / f"{res}p" / f"clip_{i:02d}.mp4" for i in range(CLIPS)]
    if method in ("copy", "crossfade"):
        from vidpipe_core import media

        media.check_ffmpeg()  # the one-off `ffmpeg -version` check is not part of the join
        t = time.perf_counter()
        result = media.stitch(paths, out, crossfade=0.5 if method == "crossfade" else 0.0)
        seconds = time.perf_counter() - t
        info = {
            "method_used": result.method,
            "duration_s": result.duration_s,
            "size_bytes": result.size_bytes,
            "has_audio": result.has_audio,
        }
    else:
        from moviepy import VideoFileClip, concatenate_videoclips

        t = time.perf_counter()
        clips = [VideoFileClip(str(p)) for p in paths]
        final = concatenate_videoclips(clips)
        final.write_videofile(str(out), codec="libx264", audio_codec="aac", logger=None)
        for c in clips:
            c.close()
        final.close()
        seconds = time.perf_counter() - t
        from vidpipe_core import media

        probed = media.probe(out)
        info = {
            "method_used": "moviepy",
            "duration_s": probed.duration_s,
            "size_bytes": probed.size_bytes,
            "has_audio": probed.has_audio,
        }
    return {"seconds": seconds, **info}


# ------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------


def run(quick: bool = False) -> Report:
    reps = 1 if quick else 3
    resolutions = (720,) if quick else RESOLUTIONS
    report = Report("stitch", "stitch — joining 8 clips of 8 s (H.264 + AAC)")
    report.setup = [
        f"{CLIPS} clips × {CLIP_S} s, {FPS} fps, 16:9, H.264 (libx264 veryfast CRF 20) + AAC 48 kHz stereo, rendered once with "
        "`animatic.motion.render_animatic_clip` from textured keyframes (so bit rates resemble real footage) and cached in "
        f"`{cache_dir()}`.",
        "Each measurement runs in a fresh process (`python -m bench.stitch --worker ...`); seconds are timed inside it "
        "around the join only. Peak RSS: the process tree (Python + ffmpeg children) sampled every 50 ms with psutil "
        "(sum over the tree), and the largest single process from `RUSAGE_CHILDREN.ru_maxrss`.",
        "MoviePy: `concatenate_videoclips(clips)` + `write_videofile(out, codec='libx264', audio_codec='aac')`, "
        "defaults otherwise (preset medium, fps of the clips, MoviePy's threads default).",
        f"{reps} run(s) per cell, median (min–max). × real time = output duration / seconds.",
    ]
    rows, data = [], {}
    with tempfile.TemporaryDirectory(prefix="vidpipe-bench-stitch-") as tmp:
        for res in resolutions:
            paths = ensure_clips(res)
            input_mb = sum(p.stat().st_size for p in paths) / 1e6
            for method in METHODS:
                secs, walls, trees, singles, durations = [], [], [], [], []
                for rep in range(reps):
                    out = Path(tmp) / f"{method}-{res}-{rep}.mp4"
                    log(f"stitch: {method} {res}p run {rep + 1}/{reps}")
                    m = run_measured([PYTHON, "-m", "bench.stitch", "--worker", method, "--res", str(res), "--out", str(out)])
                    w = last_json_line(m["stdout"])
                    secs.append(w["seconds"])
                    walls.append(m["wall_s"])
                    trees.append(m["peak_tree_rss"])
                    singles.append(m["max_single_rss"])
                    durations.append(w["duration_s"])
                    out.unlink(missing_ok=True)
                s = summary(secs)
                xrt = summary([d / x for d, x in zip(durations, secs, strict=True)])
                tree = summary(trees)
                data[f"{res}p/{method}"] = {
                    "seconds": s,
                    "process_wall_s": summary(walls),
                    "x_realtime": xrt,
                    "peak_tree_rss_bytes": tree,
                    "max_single_rss_bytes": summary(singles),
                    "output_duration_s": summary(durations),
                    "input_mb": input_mb,
                    "method_used": w["method_used"],
                    "output_bytes": w["size_bytes"],
                    "has_audio": w["has_audio"],
                }
                rows.append(
                    [
                        f"{res}p",
                        METHOD_LABEL[method],
                        fmt_s(s),
                        f"{xrt['median']:.1f}×",
                        f"{mib(tree['median'])} ({mib(tree['min'])}–{mib(tree['max'])})",
                        mib(max(singles)),
                        f"{w['size_bytes'] / 1e6:.1f}",
                    ]
                )
    report.tables.append(
        table(
            [
                "resolution",
                "method",
                "seconds, median (min–max)",
                "× real time",
                "peak RSS tree MiB, median (min–max)",
                "largest process MiB",
                "output MB",
            ],
            rows,
            align=["l", "l", "r", "r", "r", "r", "r"],
        )
    )
    for res in resolutions:
        c, x, mp = (data.get(f"{res}p/{m}") for m in METHODS)
        if c and mp:
            report.notes.append(
                f"{res}p: stream copy is {mp['seconds']['median'] / c['seconds']['median']:.0f}× faster than MoviePy and "
                f"{x['seconds']['median'] / c['seconds']['median']:.0f}× faster than vidpipe's own crossfade re-encode; "
                f"input {c['input_mb']:.0f} MB."
            )
    report.data = {"clips": CLIPS, "clip_s": CLIP_S, "fps": FPS, "reps": reps, "results": data}
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stitch")
    p.add_argument("--worker", choices=METHODS)
    p.add_argument("--res", type=int, default=720)
    p.add_argument("--out", type=Path)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.res, args.out)))
        return 0
    from bench.__main__ import run_one

    return run_one("stitch", args.quick)


if __name__ == "__main__":
    sys.exit(main())
