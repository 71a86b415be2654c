"""`mix`: what the final mix (issue 24) adds to final_video, at 720p and 1080p, on the `stitch`
benchmark's 8 cached clips (8 s each, 64 s of video).

- stitch: `media.stitch(paths, out)` alone (stream copy): today's final_video without words.
- mix: the stitch, then `media.mix` with one narration line per scene (espeak-ng WAVs made
  beforehand) and a music track looped under it: the mix graph, loudnorm's two passes, the mux
  (the video copied).
- mix + burn: the same with `--burn-subtitles` (the video encoded again with the subtitles drawn).
- narration: espeak-ng making the 8 lines' WAVs (the animatic's voice), timed in the driver.

Each measurement is a fresh process under `bench._measure` (peak RSS of the process tree, ffmpeg
included); seconds are timed inside the worker around the stitch and the mix alone."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PYTHON, Report, fmt_s, last_json_line, log, mib, run_measured, summary, table
from bench.stitch import CLIP_S, CLIPS, cache_dir, ensure_clips

METHODS = ("stitch", "mix", "burn")
LABEL = {
    "stitch": "stitch only (today)",
    "mix": "stitch + mix (narration, music, loudness, subtitles)",
    "burn": "stitch + mix + burned subtitles",
}
LINES = [
    "The harbour wakes before the sun.",
    "Fishing boats slip out past the lighthouse.",
    "Gulls follow the first catch home.",
    "The market fills with voices and ice.",
    "By noon the quay is quiet again.",
    "Nets dry in the long afternoon light.",
    "Evening brings the boats back in.",
    "And the lighthouse takes the night watch.",
]


def inputs_dir() -> Path:
    return cache_dir() / "mix-inputs"


def make_inputs() -> tuple[list[Path], Path, float]:
    """The lines' WAVs (espeak-ng, or tones when it is missing), a 20 s music track; the seconds
    espeak-ng took for all lines (0 with tones)."""
    from vidpipe_core.media.runner import run_ffmpeg

    folder = inputs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"line_{i}.wav" for i in range(CLIPS)]
    spent = 0.0
    for path, text in zip(paths, LINES, strict=True):
        t = time.perf_counter()
        if shutil.which("espeak-ng"):
            subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
            spent += time.perf_counter() - t
        else:
            run_ffmpeg(["-f", "lavfi", "-i", "sine=f=600:d=2.5", "-y", str(path)], what="line")
    music = folder / "music.wav"
    if not music.is_file():
        chord = "0.2*sin(2*PI*220*t)+0.15*sin(2*PI*277*t)+0.1*sin(2*PI*330*t)"
        run_ffmpeg(["-f", "lavfi", "-i", f"aevalsrc={chord}:d=20:s=44100", "-y", str(music)], what="music")
    return paths, music, spent


def worker(method: str, res: int, out: Path) -> dict:
    from vidpipe_core import media
    from vidpipe_core.media import mix, subtitles
    from vidpipe_core.spoken import SpokenLine

    paths = [cache_dir() / f"{res}p" / f"clip_{i:02d}.mp4" for i in range(CLIPS)]
    media.check_ffmpeg()
    t = time.perf_counter()
    stitched = out.with_name(out.stem + "-stitched.mp4")
    result = media.stitch(paths, stitched)
    stitch_s = time.perf_counter() - t
    info: dict = {"stitch_seconds": stitch_s, "duration_s": result.duration_s}
    if method != "stitch":
        lines = []
        for i in range(CLIPS):
            wav = inputs_dir() / f"line_{i}.wav"
            lines.append(SpokenLine(i, LINES[i], "narration", media.probe(wav).duration_s, wav, 0.5))
        t = time.perf_counter()
        cues = subtitles.cues(lines, dict(enumerate(result.spans)))
        mixed = mix.mix(stitched, out, lines_cues=cues, music=inputs_dir() / "music.wav", burn=method == "burn")
        info.update(mix_seconds=time.perf_counter() - t, lufs=mixed.loudness.integrated_lufs, tp=mixed.loudness.true_peak_dbtp)
    stitched.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    return {"seconds": stitch_s + info.get("mix_seconds", 0.0), **info}


def run(quick: bool = False) -> Report:
    reps = 1 if quick else 2
    resolutions = (720,) if quick else (720, 1080)
    methods = ("stitch", "mix") if quick else METHODS
    report = Report("mix", "mix — what the final mix adds to final_video (8 clips of 8 s)")
    _, _, speak_s = make_inputs()
    video_min = CLIPS * CLIP_S / 60
    report.setup = [
        f"The `stitch` benchmark's {CLIPS} cached clips × {CLIP_S} s (H.264 + AAC, 24 fps); one narration line per scene "
        "(espeak-ng WAVs), a 20 s music chord looped under the video and ducked; loudnorm two-pass to −16 LUFS.",
        "Each measurement runs in a fresh process (`python -m bench.mix --worker ...`); peak RSS is the process tree "
        "(Python + ffmpeg) sampled every 50 ms. Seconds: inside the worker, the stitch and the mix alone.",
        f"{reps} run(s) per cell, median (min–max).",
    ]
    rows, data = [], {}
    with tempfile.TemporaryDirectory(prefix="vidpipe-bench-mix-") as tmp:
        for res in resolutions:
            ensure_clips(res)
            for method in methods:
                secs, mixes, trees = [], [], []
                for rep in range(reps):
                    log(f"mix: {method} {res}p run {rep + 1}/{reps}")
                    out = Path(tmp) / f"{method}-{res}-{rep}.mp4"
                    m = run_measured([PYTHON, "-m", "bench.mix", "--worker", method, "--res", str(res), "--out", str(out)])
                    w = last_json_line(m["stdout"])
                    secs.append(w["seconds"])
                    mixes.append(w.get("mix_seconds", 0.0))
                    trees.append(m["peak_tree_rss"])
                s, added, tree = summary(secs), summary(mixes), summary(trees)
                data[f"{res}p/{method}"] = {"seconds": s, "mix_seconds": added, "peak_tree_rss_bytes": tree, "last": w}
                rows.append(
                    [
                        f"{res}p",
                        LABEL[method],
                        fmt_s(s),
                        fmt_s(added) if method != "stitch" else "–",
                        f"{added['median'] / video_min:.2f}" if method != "stitch" else "–",
                        mib(tree["median"]),
                        f"{w['lufs']:.1f}" if "lufs" in w else "–",
                    ]
                )
    report.tables.append(
        table(
            [
                "resolution",
                "final_video",
                "seconds, median",
                "added by the mix, s",
                "mix s per minute of video",
                "peak RSS tree MiB",
                "LUFS",
            ],
            rows,
            align=["l", "l", "r", "r", "r", "r", "r"],
        )
    )
    if speak_s:
        report.notes.append(
            f"narration (espeak-ng, {CLIPS} lines): {speak_s:.2f} s, {speak_s / video_min:.2f} s per minute of video "
            "(each line a fresh espeak-ng process)."
        )
    report.data = {"clips": CLIPS, "clip_s": CLIP_S, "reps": reps, "narration_espeak_s": speak_s, "results": data}
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mix")
    p.add_argument("--worker", choices=METHODS)
    p.add_argument("--res", type=int, default=720)
    p.add_argument("--out", type=Path)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.res, args.out)))
        return 0
    from bench.__main__ import run_one

    return run_one("mix", args.quick)


if __name__ == "__main__":
    sys.exit(main())
