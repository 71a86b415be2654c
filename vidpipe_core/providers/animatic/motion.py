"""Animatic clips: a camera move (zoompan) over each keyframe and a dissolve from the start
keyframe to the end keyframe, over a soft tone pad. Rendered through ``media``'s ffmpeg wrapper
with its encoder settings, so the clips join by stream copy."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import tempfile
from pathlib import Path
from typing import Literal

import ffmpeg
from PIL import Image

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import InvalidInput
from vidpipe_core.media import AUDIO_RATE, PIX_FMT, audio_out_kwargs, ffmpeg_number, probe_bytes, run_ffmpeg, video_out_kwargs

Motion = Literal["push_in", "pull_out", "pan_left", "pan_right"]
MOTIONS: tuple[Motion, ...] = ("push_in", "pull_out", "pan_left", "pan_right")

_ZOOM_AMOUNT = 0.12  # peak zoom of a push-in / pull-out (12 %)
_PAN_ZOOM_AMOUNT = 0.16  # overscan that a pan needs to travel


def frame_count(duration_s: float, fps: float) -> int:
    return max(1, int(round(duration_s * fps)))


def _layer_windows(motion: Motion) -> tuple[tuple[float, float, float, float], tuple[float, float, float, float]]:
    """(zoom_from, zoom_to, anchor_x, anchor_y) for the start layer and the end layer.

    The start layer always begins at zoom 1 and the end layer always finishes at zoom 1, and the
    dissolve weight is 0 at the first frame and 1 at the last, so the clip opens on exactly the
    start keyframe and closes on exactly the end keyframe (seamless scene boundaries)."""
    z, p = 1.0 + _ZOOM_AMOUNT, 1.0 + _PAN_ZOOM_AMOUNT
    return {
        "push_in": ((1.0, z, 0.5, 0.5), (1.0, 1.0, 0.5, 0.5)),  # start pushes in; end fades in still
        "pull_out": ((1.0, 1.0, 0.5, 0.5), (z, 1.0, 0.5, 0.5)),  # start still; end pulls back to full
        "pan_left": ((1.0, p, 0.0, 0.5), (p, 1.0, 1.0, 0.5)),  # view window travels leftwards
        "pan_right": ((1.0, p, 1.0, 0.5), (p, 1.0, 0.0, 0.5)),  # view window travels rightwards
    }[motion]


def _zoompan(
    stream: ffmpeg.nodes.FilterableStream,
    window: tuple[float, float, float, float],
    *,
    frames: int,
    fps: int,
    size: tuple[int, int],
) -> ffmpeg.nodes.FilterableStream:
    z0, z1, ax, ay = window
    last = max(1, frames - 1)
    ease = f"(3*pow(on/{last},2)-2*pow(on/{last},3))"  # smoothstep: no jerk at the ends
    zoom = f"{ffmpeg_number(z0)}+({ffmpeg_number(z1 - z0)})*{ease}"
    return stream.filter(
        "zoompan",
        z=zoom,
        x=f"(iw-iw/zoom)*{ffmpeg_number(ax)}",
        y=f"(ih-ih/zoom)*{ffmpeg_number(ay)}",
        d=frames,
        s=f"{size[0]}x{size[1]}",
        fps=fps,
    )


def _fit(stream: ffmpeg.nodes.FilterableStream, size: tuple[int, int]) -> ffmpeg.nodes.FilterableStream:
    """Scale to cover ``size`` and centre-crop (keyframes of another provider may differ slightly)."""
    w, h = size
    return (
        stream.filter("scale", w, h, force_original_aspect_ratio="increase", flags="bicubic")
        .filter("crop", w, h)
        .filter("setsar", 1)
        .filter("format", "yuv444p")
    )


def tone_expression(tone_hz: float, duration_s: float) -> str:
    """aevalsrc source of a soft stereo pad (root, fifth, octave; slight detune on the right)."""
    f = ffmpeg_number(tone_hz)
    fr = ffmpeg_number(tone_hz * 1.003)
    swell = "(0.8+0.2*sin(2*PI*0.5*t))"

    def voice(freq: str) -> str:
        return f"{swell}*(0.10*sin(2*PI*{freq}*t)+0.05*sin(2*PI*{freq}*1.5*t)+0.025*sin(2*PI*{freq}*2*t))"

    return f"aevalsrc=exprs={voice(f)}|{voice(fr)}:s={AUDIO_RATE}:d={ffmpeg_number(duration_s)}"


STATIC_BAND_KEY = "vidpipe:static-band-top"  # PNG text chunk: top of a bottom band (fraction of the height) that must not move
BAND_SWITCH_S = 0.25  # the band's two versions dissolve over this, mid-clip


def static_band(png: bytes) -> tuple[float, float] | None:
    """(top of the keyframe's static bottom band as a fraction of its height, its aspect ratio),
    when the PNG declares such a band (animatic captions do), else None."""
    try:
        with Image.open(io.BytesIO(png)) as im:
            value, aspect = getattr(im, "text", {}).get(STATIC_BAND_KEY), im.width / im.height
        top = float(value) if value is not None else None
    except (OSError, ValueError):
        return None
    return (top, aspect) if top is not None and 0.0 < top < 1.0 else None


def _static_band_y(start_png: bytes, end_png: bytes, size: tuple[int, int]) -> int | None:
    """Where the static band starts in a clip of ``size``: only when both keyframes declare the
    same band and have the clip's shape (otherwise _fit's crop would move it)."""
    a, b = static_band(start_png), static_band(end_png)
    if a is None or b is None or abs(a[0] - b[0]) > 1e-3:
        return None
    if abs(a[1] - size[0] / size[1]) > 0.01 or abs(b[1] - size[0] / size[1]) > 0.01:
        return None
    return int(round(a[0] * size[1]))


def animatic_clip_args(
    start: Path,
    end: Path,
    out: Path,
    *,
    duration_s: float,
    fps: int,
    size: tuple[int, int],
    audio: bool,
    tone_hz: float,
    motion: Motion,
    static_band_y: int | None = None,
) -> list[str]:
    """ffmpeg arguments (after the program name) for one animatic clip.

    Both keyframes go through a zoompan (one of them possibly still), then a linear ``xfade``
    spans the whole clip, so frame 0 is the start keyframe and frame N-1 is the end keyframe.
    ``static_band_y``: the rows from there down (a caption band) do not move with the camera and
    switch from the start keyframe's to the end keyframe's in a short dissolve mid-clip, so
    captions never slide or show doubled."""
    if motion not in MOTIONS:
        raise InvalidInput("motion", f"unknown camera move {motion!r}", allowed=", ".join(MOTIONS))
    frames = frame_count(duration_s, fps)
    switch = max(1, round(BAND_SWITCH_S * fps))
    band = static_band_y is not None and 0 < static_band_y < size[1] and frames >= 2 * switch + 2
    start_win, end_win = _layer_windows(motion)
    fit_a, fit_b = _fit(ffmpeg.input(str(start)).video, size), _fit(ffmpeg.input(str(end)).video, size)
    if band:
        fit_a, fit_b = fit_a.split(), fit_b.split()
        layer_a, layer_b = fit_a[0], fit_b[0]
    else:
        layer_a, layer_b = fit_a, fit_b
    a = _zoompan(layer_a, start_win, frames=frames, fps=fps, size=size)
    b = _zoompan(layer_b, end_win, frames=frames, fps=fps, size=size)
    if frames > 1:
        # Transition over (frames-1) frame intervals: the last frame is 100 % end keyframe.
        video = ffmpeg.filter([a, b], "xfade", transition="fade", duration=ffmpeg_number((frames - 1) / fps), offset=0)
    else:
        video = a
    if band:
        assert static_band_y is not None
        bw, bh = size[0], size[1] - static_band_y
        still = (1.0, 1.0, 0.5, 0.5)
        offset = frames // 2 - switch // 2
        band_a = _zoompan(fit_a[1].filter("crop", bw, bh, 0, static_band_y), still, frames=frames, fps=fps, size=(bw, bh))
        band_b = _zoompan(
            fit_b[1].filter("crop", bw, bh, 0, static_band_y), still, frames=frames - offset, fps=fps, size=(bw, bh)
        )
        strip = ffmpeg.filter(
            [band_a, band_b], "xfade", transition="fade", duration=ffmpeg_number(switch / fps), offset=ffmpeg_number(offset / fps)
        )
        video = ffmpeg.filter([video, strip], "overlay", x=0, y=static_band_y, format="yuv444", eof_action="pass")
    video = video.filter("format", PIX_FMT)
    streams = [video]
    kwargs = {**video_out_kwargs(fps), "frames:v": frames, "f": "mp4"}
    if audio:
        seconds = frames / fps
        fade = ffmpeg_number(min(0.3, seconds / 4))
        tone = ffmpeg.input(tone_expression(tone_hz, seconds), f="lavfi").audio
        tone = tone.filter("afade", t="in", d=fade).filter("afade", t="out", st=ffmpeg_number(seconds - float(fade)), d=fade)
        streams.append(tone)
        kwargs.update(audio_out_kwargs())
        kwargs["t"] = ffmpeg_number(seconds)
    return ffmpeg.output(*streams, str(out), **kwargs).overwrite_output().get_args()


# A pentatonic set of pad roots (A2..E4): consecutive scenes never clash badly.
_TONES_HZ = (110.0, 123.47, 138.59, 164.81, 185.0, 220.0, 246.94, 277.18, 329.63)


def _seed_int(seed_text: str) -> int:
    return int.from_bytes(hashlib.sha256(seed_text.encode("utf-8")).digest()[:8], "big")


_MOTION_WORDS: tuple[tuple[str, Motion], ...] = (
    ("push-in", "push_in"),
    ("push in", "push_in"),
    ("dolly in", "push_in"),
    ("zoom in", "push_in"),
    ("pull-out", "pull_out"),
    ("pull out", "pull_out"),
    ("pull-back", "pull_out"),
    ("pull back", "pull_out"),
    ("dolly out", "pull_out"),
    ("zoom out", "pull_out"),
    ("pan left", "pan_left"),
    ("pan right", "pan_right"),
)


def motion_for(seed_text: str) -> Motion:
    """The camera move a motion prompt asks for ("slow push-in", "pan left", ...), else one from its hash.

    Only the first paragraph is read: a shared style suffix must not give every scene the same move.
    A regeneration take (a "take ..." paragraph) always gets a different move than the previous one,
    so a new take is visibly new."""
    head = seed_text.split("\n\n", 1)[0].lower()
    hits = [(i, motion) for word, motion in _MOTION_WORDS if (i := head.find(word)) >= 0]
    base = min(hits)[1] if hits else MOTIONS[_seed_int(head) % len(MOTIONS)]
    if "\n\ntake " not in seed_text:
        return base if hits else MOTIONS[_seed_int(seed_text) % len(MOTIONS)]
    step = 1 + _seed_int(seed_text) % (len(MOTIONS) - 1)
    return MOTIONS[(MOTIONS.index(base) + step) % len(MOTIONS)]


def tone_for(seed_text: str) -> float:
    return _TONES_HZ[(_seed_int(seed_text) >> 8) % len(_TONES_HZ)]


def _check_clip_params(duration_s: float, fps: int, size: tuple[int, int]) -> None:
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise InvalidInput("duration_s", f"must be a positive number of seconds, got {duration_s}")
    if fps <= 0:
        raise InvalidInput("fps", f"must be positive, got {fps}")
    w, h = size
    if w < 2 or h < 2 or w % 2 or h % 2:
        raise InvalidInput("size", f"width and height must be even and >= 2, got {w}x{h}")


def render_animatic_clip(
    start_png: bytes,
    end_png: bytes,
    *,
    duration_s: float,
    fps: int,
    size: tuple[int, int],
    audio: bool,
    seed_text: str,
    workdir: Path | None = None,
    cancel: CancelToken = NEVER,
) -> bytes:
    """An H.264/AAC MP4 that moves from the start keyframe to the end keyframe (see animatic_clip_args).
    Work files go to ``workdir`` (the caller removes it) or to a temporary folder."""
    _check_clip_params(duration_s, fps, size)
    with contextlib.ExitStack() as stack:
        tmp = workdir if workdir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vidpipe-clip-")))
        start, end, out = tmp / "start.png", tmp / "end.png", tmp / "clip.mp4"
        start.write_bytes(start_png)
        end.write_bytes(end_png)
        args = animatic_clip_args(
            start,
            end,
            out,
            duration_s=duration_s,
            fps=fps,
            size=size,
            audio=audio,
            tone_hz=tone_for(seed_text),
            motion=motion_for(seed_text),
            static_band_y=_static_band_y(start_png, end_png, size),
        )
        run_ffmpeg(args, what="animatic clip", cancel=cancel)
        data = out.read_bytes()
    probe_bytes(data, name="animatic clip")  # never hand back something that does not decode
    return data
