"""The animated preview of the final video: ffmpeg samples, scales and encodes it (animated WebP
when this ffmpeg has it, else a GIF), smaller until it fits its budget."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from vidpipe_core import media
from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import MediaError
from vidpipe_core.previews.images import PREVIEW_BUDGET, Preview, _dropped
from vidpipe_core.scratch import scratch_dir

# The animated preview: the video is sampled once at PREVIEW_FPS (fewer frames per second for a
# video longer than PREVIEW_MAX_FRAMES / PREVIEW_FPS), then encoded at each (longest side in
# pixels, at most frames, quality) until one fits. A long video plays sped up, never slower than
# MIN_PLAY_FPS.
PREVIEW_FPS = 8
PREVIEW_MAX_FRAMES = 96
MIN_PLAY_FPS = 4
PREVIEW_LADDER: tuple[tuple[int, int, int], ...] = (
    (320, 96, 60),
    (256, 72, 45),
    (224, 48, 35),
    (160, 32, 25),
    (128, 24, 20),
)

_encoders: dict[str, bool] = {}


def has_encoder(name: str) -> bool:
    """Whether this ffmpeg build has the encoder ``name`` (asked once per binary)."""
    exe = media.ffmpeg_exe()
    key = f"{exe}\0{name}"
    if key not in _encoders:
        try:
            out = media.supervise([exe, "-hide_banner", "-encoders"], what="ffmpeg -encoders", timeout=30).stdout
        except (OSError, MediaError):  # it cannot start, or it hangs: no such encoder then
            out = b""
        _encoders[key] = any(line.split()[1:2] == [name] for line in out.decode("utf-8", "replace").splitlines())
    return _encoders[key]


def animated_format() -> str:
    """``webp`` when ffmpeg can write animated WebP, else ``gif``."""
    return "webp" if has_encoder("libwebp_anim") else "gif"


def _scale(longest: int, portrait: bool) -> str:
    """ffmpeg's scale filter: the longest side to ``longest`` pixels, the other even."""
    return f"scale=-2:{longest}:flags=lanczos" if portrait else f"scale={longest}:-2:flags=lanczos"


def _sample_args(video: Path, frames_dir: Path, *, rate: float, longest: int, portrait: bool) -> list[str]:
    """Decode once: frames at ``rate`` per second (at most PREVIEW_MAX_FRAMES), the longest side ``longest``."""
    vf = f"fps={media.ffmpeg_number(rate)},{_scale(longest, portrait)}"
    frames = ["-frames:v", str(PREVIEW_MAX_FRAMES)]
    return ["-threads", str(media.THREADS), "-i", str(video), "-an", "-sn", "-vf", vf, *frames, str(frames_dir / "f%04d.png")]


def _encoder(fmt: str, quality: int, base: str) -> list[str]:
    """The filter graph (``base``, then for GIF its own palette) and the encoder's options."""
    if fmt == "webp":
        # Effort 2 of 6: ~5 % more bytes than 4 (far inside the budget) for about half the encoder's CPU.
        opts = ["-c:v", "libwebp_anim", "-lossless", "0", "-quality", str(quality), "-compression_level", "2"]
        return ["-vf", base, *opts, "-loop", "0", "-f", "webp"]
    colors = max(16, min(256, quality * 3))
    palette = f"split[a][b];[a]palettegen=max_colors={colors}:stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=3"
    return ["-filter_complex", f"{base},{palette}", "-loop", "0", "-f", "gif"]


def _direct_args(video: Path, out: Path, *, fmt: str, rate: float, longest: int, portrait: bool, quality: int) -> list[str]:
    """The first attempt in one pass: decode, sample at ``rate``, scale and encode (no frames on disk)."""
    base = f"fps={media.ffmpeg_number(rate)},{_scale(longest, portrait)}"
    head = ["-threads", str(media.THREADS), "-i", str(video), "-an", "-sn", "-frames:v", str(PREVIEW_MAX_FRAMES)]
    return [*head, *_encoder(fmt, quality, base), "-y", str(out)]


def _encode_args(
    frames_dir: Path, out: Path, *, fmt: str, longest: int, portrait: bool, fps: float, quality: int, keep_every: int
) -> list[str]:
    """Frames sampled by ``_sample_args`` -> an animated image of every ``keep_every``-th frame at ``fps``."""
    select = f"select='not(mod(n\\,{keep_every}))'," if keep_every > 1 else ""
    base = f"{select}setpts=N/({media.ffmpeg_number(fps)}*TB),{_scale(longest, portrait)}"
    args = ["-framerate", media.ffmpeg_number(fps * keep_every), "-i", str(frames_dir / "f%04d.png")]
    return [*args, *_encoder(fmt, quality, base), "-y", str(out)]


def animated_preview(
    video: Path,
    data_dir: Path,
    *,
    budget: int = PREVIEW_BUDGET,
    ladder: Sequence[tuple[int, int, int]] = PREVIEW_LADDER,
    fmt: str | None = None,
    cancel: CancelToken = NEVER,
) -> Preview:
    """An animated WebP (or GIF) of ``video`` within ``budget`` bytes, or a note. ``fmt`` ("webp"
    or "gif") overrides what this ffmpeg can write best. The first attempt is made in one ffmpeg
    pass; only when it does not fit are the frames sampled once to disk for the smaller ones."""
    info = media.probe(video)
    fmt = fmt or animated_format()
    if fmt not in ("webp", "gif"):
        raise MediaError(f"preview format {fmt!r}: expected webp or gif")
    mime = "image/webp" if fmt == "webp" else "image/gif"
    portrait = info.height > info.width
    top_width = min(max(w for w, _, _ in ladder), max(info.width, info.height) or 320)
    duration = max(info.duration_s, 1e-3)
    rate = min(float(PREVIEW_FPS), PREVIEW_MAX_FRAMES / duration)

    def fitted(out: Path, fps: float) -> Preview | None:
        data = out.read_bytes()
        if len(data) > budget:
            return None
        with Image.open(io.BytesIO(data)) as im:
            w, h, n = im.width, im.height, getattr(im, "n_frames", 1)
        speed = duration / (n / fps) if n else 1.0
        how = f"animated {fmt.upper()}, {w}x{h}, {n} frames at {fps:.3g} fps"
        if speed > 1.05:
            how += f" ({speed:.1f}x speed)"
        return Preview("preview", budget, mime, data, w, h, n, f"{how}, {len(data) / 1000:.0f} KB")

    with scratch_dir(data_dir, "vidpipe-preview") as work:
        width, max_frames, quality = ladder[0]
        rungs = list(ladder)
        if max_frames >= PREVIEW_MAX_FRAMES:  # every sampled frame kept: one pass, nothing on disk
            out = work / f"preview.{fmt}"
            args = _direct_args(video, out, fmt=fmt, rate=rate, longest=min(width, top_width), portrait=portrait, quality=quality)
            media.run_ffmpeg(args, what=f"preview of {video.name}: encoding {fmt}", cancel=cancel)
            if out.stat().st_size == 0:
                raise MediaError(f"preview of {video.name}: no frame decoded")
            made = fitted(out, rate)
            if made is not None:
                return made
            rungs = rungs[1:]
        frames_dir = work / "frames"
        frames_dir.mkdir()
        args = _sample_args(video, frames_dir, rate=rate, longest=top_width, portrait=portrait)
        media.run_ffmpeg(args, what=f"preview of {video.name}: sampling frames", cancel=cancel)
        sampled = len(list(frames_dir.glob("f*.png")))
        if sampled == 0:
            raise MediaError(f"preview of {video.name}: no frame decoded")
        for width, max_frames, quality in rungs:
            keep_every = max(1, math.ceil(sampled / max_frames))
            fps = max(rate / keep_every, min(MIN_PLAY_FPS, rate))
            out = work / f"preview-{width}-{max_frames}-{quality}.{fmt}"
            args = _encode_args(
                frames_dir,
                out,
                fmt=fmt,
                longest=min(width, top_width),
                portrait=portrait,
                fps=fps,
                quality=quality,
                keep_every=keep_every,
            )
            media.run_ffmpeg(args, what=f"preview of {video.name}: encoding {fmt}", cancel=cancel)
            made = fitted(out, fps)
            if made is not None:
                return made
    width, max_frames, quality = ladder[-1]
    return _dropped("preview", budget, f"the animation at {width} px, {max_frames} frames, quality {quality}")
