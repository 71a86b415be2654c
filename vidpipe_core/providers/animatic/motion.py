"""Animatic clips, the way a storyboard artist cuts them: the start keyframe held under a slow
camera move (a push-in or a pan), then a short dissolve into the end keyframe near the end of the
clip; a pull-out dissolves early and then pulls back to the end keyframe. So shapes are never
doubled for long, the clip opens on exactly the start keyframe and closes on exactly the end
keyframe (seamless scene boundaries), and the scene's caption band stays still and unchanged
throughout.

Frames are made in Python (one Pillow crop-and-scale per yuv420p plane per frame) and piped to
one ffmpeg as raw video (``media.encode_frames``, run by media's one process supervisor), which
encodes them with the house encoder settings (``media.video_out_kwargs``: so the clips join by
stream copy) and adds a soft tone pad. One ffmpeg process, one encoder, no filter graph: far less
memory and CPU than the zoompan-and-xfade graph this replaced."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidpipe_core import media
from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import InvalidInput
from vidpipe_core.media import AUDIO_RATE, audio_out_kwargs, encode_frames, ffmpeg_number, probe_bytes, video_out_kwargs
from vidpipe_core.providers.animatic.lexicon import phrase_ends

Motion = Literal["push_in", "pull_out", "pan_left", "pan_right"]
MOTIONS: tuple[Motion, ...] = ("push_in", "pull_out", "pan_left", "pan_right")

ZOOM_AMOUNT = 0.12  # a push-in / pull-out travels 12 %
PAN_ZOOM_AMOUNT = 0.14  # overscan a pan travels through
TRANSITION_S = 0.4  # the dissolve from the start keyframe to the end keyframe
CAPTION_BACKGROUND = (12, 12, 16)
CAPTION_TEXT = (245, 245, 240)


def frame_count(duration_s: float, fps: float) -> int:
    return max(1, int(round(duration_s * fps)))


def transition_frames(frames: int, fps: float) -> int:
    """Frames of the dissolve: TRANSITION_S, but at most half the clip (and none for a 1-frame clip)."""
    return max(0, min(frames - 1, max(1, round(TRANSITION_S * fps)), frames // 2))


# --- the caption band -------------------------------------------------------------------------


def caption_font_px(size: tuple[int, int]) -> int:
    return max(10, round(min(size) * 0.05))


def caption_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The caption band (left, top, right, bottom) of a frame of this size: two lines of text."""
    w, h = size
    font_px = caption_font_px(size)
    band = 2 * round(font_px * 1.25) + 2 * max(3, font_px // 2)
    return 0, h - band, w, h


CAPTION_LINES = 2


def _wrap(
    d: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int, max_lines: int
) -> list[str]:
    """Greedy word wrap to ``width`` pixels. When text remains, the last line ends at a phrase
    boundary with an ellipsis ("... past moored houseboats, …", never "... past moored …"), unless
    that would drop more than half of it: then it is cut at a word."""
    words, lines = text.split(), list[str]()
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and d.textlength(f"{line} {words[0]}", font=font) <= width:
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if words or (lines and d.textlength(lines[-1], font=font) > width):
        last = lines[-1].split()
        seq = last + words

        def shortened(k: int) -> str:
            return " ".join(seq[:k]).rstrip(",;:—–-") + " …"

        fits = [k for k in phrase_ends(seq) if k <= len(last) and d.textlength(shortened(k), font=font) <= width]
        if fits and fits[-1] * 2 >= len(last):
            lines[-1] = shortened(fits[-1])
        else:
            lines[-1] = media.ellipsize(d, " ".join(seq), font, width)
    return lines


def _caption_font(size: tuple[int, int]) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=caption_font_px(size))


def caption_lines(caption: str, size: tuple[int, int]) -> list[str]:
    """The lines the caption band of a frame of ``size`` shows (at most CAPTION_LINES)."""
    width = caption_box(size)[2] - 2 * max(4, caption_font_px(size) // 2)
    d = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    return _wrap(d, " ".join(caption.split()) or "(no caption)", _caption_font(size), width, max_lines=CAPTION_LINES)


def caption_band(caption: str, size: tuple[int, int]) -> Image.Image:
    """The caption band of a frame of ``size``: opaque, so it reads the same over any picture and
    is identical in every frame of the scene."""
    left, top, right, bottom = caption_box(size)
    band = Image.new("RGB", (right - left, bottom - top), CAPTION_BACKGROUND)
    font_px = caption_font_px(size)
    font = _caption_font(size)
    d = ImageDraw.Draw(band)
    margin = max(4, font_px // 2)
    lines = caption_lines(caption, size)
    line_h = round(font_px * 1.25)
    y = (band.height - line_h * len(lines)) // 2
    for line in lines:
        d.text((margin, y), line, font=font, fill=CAPTION_TEXT)
        y += line_h
    return band


def draw_caption(img: Image.Image, caption: str) -> None:
    """Paste the caption band over the bottom of ``img``."""
    img.paste(caption_band(caption, img.size), caption_box(img.size)[:2])


# --- the picture ----------------------------------------------------------------------------


def _fit(png: bytes, size: tuple[int, int]) -> Image.Image:
    """The keyframe scaled to cover ``size`` and centre-cropped (keyframes of another provider may differ)."""
    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("RGB")
    if im.size == size:
        return im
    w, h = size
    scale = max(w / im.width, h / im.height)
    cw, ch = w / scale, h / scale
    left, top = (im.width - cw) / 2, (im.height - ch) / 2
    return im.resize(size, Image.Resampling.BICUBIC, box=(left, top, left + cw, top + ch))


class _Camera:
    """Views of one picture (an RGB image or one plane) through a moving camera. A zoom below 1 (a
    pull-out past the frame) sees beyond the picture's edges: they are extended by repeating the
    edge pixels (skies and grounds continue), prepared once per clip."""

    def __init__(self, img: Image.Image, min_zoom: float = 1.0) -> None:
        self.img = img
        w, h = img.size
        self.px = self.py = 0
        self.padded = img
        if min_zoom < 1.0:
            self.px, self.py = math.ceil(w * (1 / min_zoom - 1) / 2) + 2, math.ceil(h * (1 / min_zoom - 1) / 2) + 2
            arr = np.asarray(img)
            pad = ((self.py, self.py), (self.px, self.px)) + (((0, 0),) if arr.ndim == 3 else ())
            self.padded = Image.fromarray(np.pad(arr, pad, mode="edge"))

    def view(self, zoom: float, ax: float, ay: float, rows: int | None = None) -> Image.Image:
        """A window of 1/zoom of the picture, its centre at the anchor's place (ax, ay in [0, 1]:
        0.5 is the centre; 0 and 1 the edges a zoomed-in window can reach), scaled to full size;
        only its top ``rows`` rows when given (what a caption band leaves visible)."""
        w, h = self.img.size
        rows = h if rows is None else rows
        if abs(zoom - 1.0) < 1e-9:
            return self.img if rows == h else self.img.crop((0, 0, w, rows))
        cw, ch = w / zoom, h / zoom
        left, top = (w - cw) * ax + self.px, (h - ch) * ay + self.py
        box = (left, top, left + cw, top + ch * rows / h)
        return self.padded.resize((w, rows), Image.Resampling.BILINEAR, box=box)


# RGB -> the encoder's yuv420p (BT.601, limited range, as ffmpeg converts by default): Pillow's
# YCbCr is BT.601 full range; these tables squeeze it into 16-235 / 16-240.
_Y_LUT = [round(16 + v * 219 / 255) for v in range(256)]
_C_LUT = [round(128 + (v - 128) * 224 / 255) for v in range(256)]


def yuv420_planes(img: Image.Image) -> tuple[Image.Image, Image.Image, Image.Image]:
    """Y (full size), Cb and Cr (half size, 2x2 averages) of an RGB image of even size."""
    y, cb, cr = img.convert("YCbCr").split()
    return y.point(_Y_LUT), cb.reduce(2).point(_C_LUT), cr.reduce(2).point(_C_LUT)


def _camera(motion: Motion, t: float) -> tuple[float, float, float]:
    """(zoom, anchor x, anchor y) at progress ``t`` in [0, 1] of the clip; every move starts at the
    keyframe itself (zoom 1) and at full speed. Constant speed, not eased: an ease-in starts each
    clip with the camera all but still, and as each cut lands on the same picture the previous clip
    ended on (continuity), that read as a ~0.7 s freeze after every cut."""
    e = min(1.0, max(0.0, t))
    if motion == "push_in":
        return 1.0 + ZOOM_AMOUNT * e, 0.5, 0.5
    if motion == "pull_out":
        return 1.0 / (1.0 + ZOOM_AMOUNT * e), 0.5, 0.5
    # A pan: the window grows in from the side it travels to (anchored there from the first frame),
    # so its centre moves at constant speed; an anchor sliding out from the centre while the zoom
    # grows would move it with the square of the time, an ease-in again.
    direction = -1.0 if motion == "pan_left" else 1.0
    return 1.0 + PAN_ZOOM_AMOUNT * e, 0.5 + 0.5 * direction, 0.5


def clip_frames(
    start: Image.Image, end: Image.Image, *, frames: int, fps: float, motion: Motion, caption: str | None
) -> Iterator[bytes]:
    """Every frame of the clip, in order, as raw yuv420p: the start keyframe under the camera move
    for the whole clip, the end keyframe (still) dissolving in over the last ``transition_frames``.
    Frame 0 is exactly the start keyframe, the last frame exactly the end keyframe, and no frame
    before the dissolve shows anything of the end keyframe. The caption band, when given, covers
    every frame. The work is done on the planes the encoder takes (half the bytes of RGB, and
    ffmpeg holds smaller frames): each frame is one crop-and-scale per plane."""
    if motion not in MOTIONS:
        raise InvalidInput("motion", f"unknown camera move {motion!r}", allowed=", ".join(MOTIONS))
    min_zoom = 1.0 / (1.0 + ZOOM_AMOUNT) if motion == "pull_out" else 1.0
    cameras = [_Camera(p, min_zoom) for p in yuv420_planes(start)]
    ends = list(yuv420_planes(end))
    bands: list[Image.Image] = []
    rows = [c.img.height for c in cameras]  # the rows the picture shows above the caption band
    if caption is not None:
        top = caption_box(start.size)[1]  # even: the frame and the band heights are even
        bands = list(yuv420_planes(caption_band(caption, start.size)))
        rows = [top, top // 2, top // 2]
        ends = [e.copy() for e in ends]
        for e, band, y in zip(ends, bands, rows, strict=True):
            e.paste(band, (0, y))
    n = transition_frames(frames, fps)
    last = max(1, frames - 1)
    fade_from = last - n  # the dissolve's frame with weight 0; weight 1 on the last frame
    for i in range(frames):
        weight = 0.0 if n == 0 or i <= fade_from else (i - fade_from) / n
        if weight >= 1.0:
            yield b"".join(e.tobytes() for e in ends)
            continue
        zoom, ax, ay = _camera(motion, i / last)
        out = []
        for k, camera in enumerate(cameras):
            picture = camera.view(zoom, ax, ay, rows[k])
            if weight > 0.0:
                picture = Image.blend(picture, ends[k].crop((0, 0, picture.width, rows[k])), weight)
            out.append(picture.tobytes())
            if bands:
                out.append(bands[k].tobytes())  # the band: the plane's rows below the picture
        yield b"".join(out)


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


def tone_expression(tone_hz: float, duration_s: float) -> str:
    """aevalsrc source of a soft stereo pad (root, fifth, octave; slight detune on the right)."""
    f = ffmpeg_number(tone_hz)
    fr = ffmpeg_number(tone_hz * 1.003)
    swell = "(0.8+0.2*sin(2*PI*0.5*t))"

    def voice(freq: str) -> str:
        return f"{swell}*(0.10*sin(2*PI*{freq}*t)+0.05*sin(2*PI*{freq}*1.5*t)+0.025*sin(2*PI*{freq}*2*t))"

    return f"aevalsrc=exprs={voice(f)}|{voice(fr)}:s={AUDIO_RATE}:d={ffmpeg_number(duration_s)}"


def encoder_args(out: Path, *, frames: int, fps: int, size: tuple[int, int], audio: bool, tone_hz: float) -> list[str]:
    """ffmpeg arguments (after the program name) that encode ``frames`` raw yuv420p frames of ``size``
    from stdin into ``out``, with the tone pad (faded in and out) when ``audio``."""
    w, h = size
    video = ffmpeg.input("pipe:0", f="rawvideo", pix_fmt="yuv420p", s=f"{w}x{h}", r=fps).video
    streams = [video]
    # One encoder thread and a short look-ahead: two renders at once keep both cores busy, and at
    # 1080p each frame the encoder holds costs ~12 MB. Neither changes the stream's parameter sets,
    # so the clips still join by stream copy with anything media.video_out_kwargs encodes.
    kwargs = {**video_out_kwargs(fps), "threads": 1, "x264-params": "rc-lookahead=5", "frames:v": frames, "f": "mp4"}
    if audio:
        seconds = frames / fps
        fade = ffmpeg_number(min(0.3, seconds / 4))
        tone = ffmpeg.input(tone_expression(tone_hz, seconds), f="lavfi").audio
        tone = tone.filter("afade", t="in", d=fade).filter("afade", t="out", st=ffmpeg_number(seconds - float(fade)), d=fade)
        streams.append(tone)
        kwargs.update(audio_out_kwargs())
        kwargs["t"] = ffmpeg_number(seconds)
    return ffmpeg.output(*streams, str(out), **kwargs).overwrite_output().get_args()


def render_animatic_clip(
    start_png: bytes,
    end_png: bytes,
    *,
    duration_s: float,
    fps: int,
    size: tuple[int, int],
    audio: bool,
    seed_text: str,
    caption: str | None = None,
    workdir: Path | None = None,
    cancel: CancelToken = NEVER,
) -> bytes:
    """An H.264/AAC MP4 that holds the start keyframe under a camera move and dissolves into the
    end keyframe (see ``clip_frames``), with ``caption`` in a still band along the bottom when given.
    Work files go to ``workdir`` (the caller removes it) or to a temporary folder."""
    _check_clip_params(duration_s, fps, size)
    frames = frame_count(duration_s, fps)
    pictures = clip_frames(
        _fit(start_png, size), _fit(end_png, size), frames=frames, fps=fps, motion=motion_for(seed_text), caption=caption
    )
    with contextlib.ExitStack() as stack:
        tmp = workdir if workdir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vidpipe-clip-")))
        out = tmp / "clip.mp4"
        args = encoder_args(out, frames=frames, fps=fps, size=size, audio=audio, tone_hz=tone_for(seed_text))
        encode_frames(args, pictures, what="animatic clip", log=tmp / "ffmpeg.log", cancel=cancel)
        data = out.read_bytes()
    probe_bytes(data, name="animatic clip")  # never hand back something that does not decode
    return data
