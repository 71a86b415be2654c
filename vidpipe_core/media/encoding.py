"""The house format: the encoder settings every clip vidpipe renders shares (so clips of one
project join by stream copy), the output options built from them, and frame sizes."""

from __future__ import annotations

from fractions import Fraction

from vidpipe_core.config import ASPECT_RATIOS
from vidpipe_core.errors import InvalidInput

# Every clip vidpipe renders uses these parameters, so clips of one project can be joined by
# stream copy. Changing one of them changes every clip's bytes (and fingerprints downstream).
VIDEO_CODEC = "libx264"
PIX_FMT = "yuv420p"
X264_PRESET = "veryfast"
X264_CRF = 20
KEYFRAME_INTERVAL_S = 1.0  # a keyframe every second: a stitch re-encodes at most this much around a fade or crossfade
AUDIO_CODEC = "aac"
AUDIO_RATE = 48000
AUDIO_BITRATE = "128k"
THREADS = 2


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def dimensions(aspect_ratio: str, short_side: int) -> tuple[int, int]:
    """(width, height) in even pixels for an aspect ratio and the length of the short side."""
    if aspect_ratio not in ASPECT_RATIOS:
        raise InvalidInput("aspect_ratio", f"unknown aspect ratio {aspect_ratio!r}", allowed=", ".join(ASPECT_RATIOS))
    if short_side < 2:
        raise InvalidInput("animatic_resolution", f"short side must be at least 2 pixels, got {short_side}")
    w, h = ASPECT_RATIOS[aspect_ratio]
    short = _even(short_side)
    if w >= h:
        return _even(short * w / h), short
    return short, _even(short * h / w)


def ffmpeg_number(x: float) -> str:
    """A float as ffmpeg should read it: plain decimal, at most 6 places (never 3.0400000000000005)."""
    return f"{float(x):.6f}".rstrip("0").rstrip(".") or "0"


def _rate(fps: float) -> str:
    return str(Fraction(fps).limit_denominator(1001))


def video_out_kwargs(fps: float) -> dict[str, object]:
    """Output options of every video vidpipe encodes (animatic clips, re-encoded joins)."""
    return {
        "c:v": VIDEO_CODEC,
        "preset": X264_PRESET,
        "crf": X264_CRF,
        "pix_fmt": PIX_FMT,
        "profile:v": "high",
        "r": _rate(fps),
        "g": max(1, round(fps * KEYFRAME_INTERVAL_S)),
        "threads": THREADS,
        "movflags": "+faststart",
        "video_track_timescale": 90000,
    }


def audio_out_kwargs() -> dict[str, object]:
    """Output options of every audio track vidpipe encodes."""
    return {"c:a": AUDIO_CODEC, "b:a": AUDIO_BITRATE, "ar": AUDIO_RATE, "ac": 2}
