"""The animated preview of the final video: ffmpeg samples, scales and encodes it (animated WebP
when this ffmpeg has it, else a GIF), smaller until it fits its budget.

Its frames are sampled from each clip while the clips step waits for the others (the scene
strip decodes every clip then anyway: ``keep_samples``), so only the encoding is left once the
video is stitched; a final video whose clips were not all sampled in this process (another
process made them, a crossfade) is sampled from the stitched file as before."""

from __future__ import annotations

import functools
import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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

PREVIEW_LONGEST = max(w for w, _, _ in PREVIEW_LADDER)  # the frames are sampled this big (longest side)
SAMPLES_MAX_BYTES = 24_000_000  # sampled frames kept for final videos not yet made, at most (the oldest go)


def preview_rate(duration_s: float) -> float:
    """Frames per second sampled from a video of ``duration_s``: PREVIEW_FPS, fewer for a long one."""
    return min(float(PREVIEW_FPS), PREVIEW_MAX_FRAMES / max(duration_s, 1e-3))


@dataclass(frozen=True)
class ClipSamples:
    """The preview's frames of one clip (PNG): those showing at 0, 1/rate, 2/rate ... seconds."""

    rate: float
    frames: tuple[bytes, ...]


_samples: OrderedDict[str, ClipSamples] = OrderedDict()
_samples_lock = threading.Lock()


def keep_samples(sha256: str, rate: float, frames: Sequence[Image.Image]) -> None:
    """Keep a clip's sampled frames (by the sha256 of its bytes) for its final video's preview."""
    pngs = []
    for frame in frames:
        buf = io.BytesIO()
        frame.save(buf, format="PNG", compress_level=1)
        pngs.append(buf.getvalue())
    with _samples_lock:
        _samples[sha256] = ClipSamples(rate, tuple(pngs))
        while sum(len(f) for s in _samples.values() for f in s.frames) > SAMPLES_MAX_BYTES and len(_samples) > 1:
            _samples.popitem(last=False)


def take_samples(sha256s: Sequence[str], rate: float) -> list[ClipSamples] | None:
    """The sampled frames of these clips, in order, when every one was sampled at ``rate`` (within
    2 %), else None; either way they are forgotten."""
    with _samples_lock:
        found = [_samples.pop(sha, None) for sha in sha256s]
    if not sha256s or any(s is None or abs(s.rate - rate) > 0.02 * rate for s in found):
        return None
    return [s for s in found if s is not None]


def _faded(png: bytes, level: float) -> bytes:
    """A sampled frame faded towards black (``level`` 1: as it is, 0: black), as the stitcher fades."""
    with Image.open(io.BytesIO(png)) as im:
        dark = Image.eval(im.convert("RGB"), lambda v: round(v * level))
    buf = io.BytesIO()
    dark.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _write_samples(samples: Sequence[ClipSamples], frames_dir: Path, *, duration_s: float, fades: tuple[float, float]) -> int:
    """The clips' frames one after the other as f0001.png ... (at most PREVIEW_MAX_FRAMES), faded
    in and out like the video (``fades``: seconds); how many."""
    rate = samples[0].rate
    frames = [f for s in samples for f in s.frames][:PREVIEW_MAX_FRAMES]
    fade_in, fade_out = (min(f, duration_s / 2) for f in fades)
    for k, png in enumerate(frames):
        t = k / rate
        level = min(1.0, t / fade_in if fade_in > 0 else 1.0, (duration_s - t) / fade_out if fade_out > 0 else 1.0)
        (frames_dir / f"f{k + 1:04d}.png").write_bytes(png if level >= 1.0 else _faded(png, max(0.0, level)))
    return len(frames)


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
        # Effort 4 of 6: the same quality in 6-8 % fewer bytes than effort 2 (what every render's event
        # log stores, base64) for ~0.05-0.07 s more encoder CPU on 64 frames; 6 takes seconds.
        opts = ["-c:v", "libwebp_anim", "-lossless", "0", "-quality", str(quality), "-compression_level", "4"]
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
    frames_dir: Path,
    out: Path,
    *,
    fmt: str,
    longest: int,
    portrait: bool,
    fps: float,
    quality: int,
    keep_every: int,
    frames: tuple[int, int] | None = None,
) -> list[str]:
    """Frames sampled by ``_sample_args`` -> an animated image of every ``keep_every``-th frame at
    ``fps``; ``frames``: only (first, count) of them, numbered from 1 (keep_every 1)."""
    select = f"select='not(mod(n\\,{keep_every}))'," if keep_every > 1 else ""
    base = f"{select}setpts=N/({media.ffmpeg_number(fps)}*TB),{_scale(longest, portrait)}"
    part = ["-start_number", str(frames[0])] if frames else []
    args = ["-framerate", media.ffmpeg_number(fps * keep_every), *part, "-i", str(frames_dir / "f%04d.png")]
    count = ["-frames:v", str(frames[1])] if frames else []
    return [*args, *count, *_encoder(fmt, quality, base), "-y", str(out)]


HALVES_FROM = 32  # an animated WebP of at least this many frames is encoded in two halves at once


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks of a WebP file (RIFF): (tag, the whole chunk with its header and padding)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise MediaError("not a WebP file")
    chunks, i = [], 12
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        chunks.append((data[i : i + 4], data[i : i + 8 + size + (size & 1)]))
        i += 8 + size + (size & 1)
    return chunks


def join_webp(parts: Sequence[bytes]) -> bytes:
    """Animated WebPs of one size played one after the other, as one: the first one's header (canvas,
    loop) and every one's frames. Each part starts on a whole frame that does not blend with the
    one before (libwebp's encoder starts every animation so), so the frames are the parts' frames."""
    chunks = [_riff_chunks(part) for part in parts]
    if any(not any(tag == b"ANMF" for tag, _ in part) for part in chunks):
        raise MediaError("not an animated WebP: nothing to join")
    body = b"".join(c for _, c in chunks[0]) + b"".join(c for part in chunks[1:] for tag, c in part if tag == b"ANMF")
    return b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WEBP" + body


def _encode_in_halves(args: Callable[..., list[str]], frames: int, out: Path, what: str, cancel: CancelToken) -> None:
    """libwebp's animation encoder uses one core: the first and the second half of the frames are
    encoded at once, each by its ffmpeg, and joined (``join_webp``)."""
    half = frames // 2
    parts = [(out.with_suffix(".1.webp"), (1, half)), (out.with_suffix(".2.webp"), (half + 1, frames - half))]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="vidpipe-preview") as pool:
        done = [pool.submit(media.run_ffmpeg, args(path, frames=span), what=what, cancel=cancel) for path, span in parts]
        for future in done:
            future.result()
    try:
        out.write_bytes(join_webp([path.read_bytes() for path, _ in parts]))
    except MediaError:  # a half of equal frames may come out as a still image: one encoder then
        media.run_ffmpeg(args(out), what=what, cancel=cancel)


def animated_preview(
    video: Path,
    data_dir: Path,
    *,
    budget: int = PREVIEW_BUDGET,
    ladder: Sequence[tuple[int, int, int]] = PREVIEW_LADDER,
    fmt: str | None = None,
    cancel: CancelToken = NEVER,
    samples: Sequence[ClipSamples] | None = None,
    fades: tuple[float, float] = (0.0, 0.0),
) -> Preview:
    """An animated WebP (or GIF) of ``video`` within ``budget`` bytes, or a note. ``fmt`` ("webp"
    or "gif") overrides what this ffmpeg can write best. The first attempt is made in one ffmpeg
    pass; only when it does not fit are the frames sampled once to disk for the smaller ones.
    ``samples``: the frames of the clips ``video`` joins (``take_samples``), used instead of
    decoding it; ``fades``: the seconds it fades in and out (the frames are faded alike)."""
    info = media.probe(video)
    fmt = fmt or animated_format()
    if fmt not in ("webp", "gif"):
        raise MediaError(f"preview format {fmt!r}: expected webp or gif")
    mime = "image/webp" if fmt == "webp" else "image/gif"
    portrait = info.height > info.width
    top_width = min(max(w for w, _, _ in ladder), max(info.width, info.height) or 320)
    duration = max(info.duration_s, 1e-3)
    rate = preview_rate(duration)

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
        frames_dir = work / "frames"
        frames_dir.mkdir()
        sampled = 0
        if samples:  # the clips' frames, sampled while they were made: nothing to decode
            rate = samples[0].rate
            sampled = _write_samples(samples, frames_dir, duration_s=duration, fades=fades)
        elif max_frames >= PREVIEW_MAX_FRAMES:  # every sampled frame kept: one pass, nothing on disk
            out = work / f"preview.{fmt}"
            args = _direct_args(video, out, fmt=fmt, rate=rate, longest=min(width, top_width), portrait=portrait, quality=quality)
            media.run_ffmpeg(args, what=f"preview of {video.name}: encoding {fmt}", cancel=cancel)
            if out.stat().st_size == 0:
                raise MediaError(f"preview of {video.name}: no frame decoded")
            made = fitted(out, rate)
            if made is not None:
                return made
            rungs = rungs[1:]
        if not sampled:
            args = _sample_args(video, frames_dir, rate=rate, longest=top_width, portrait=portrait)
            media.run_ffmpeg(args, what=f"preview of {video.name}: sampling frames", cancel=cancel)
            sampled = len(list(frames_dir.glob("f*.png")))
        if sampled == 0:
            raise MediaError(f"preview of {video.name}: no frame decoded")
        for width, max_frames, quality in rungs:
            keep_every = max(1, math.ceil(sampled / max_frames))
            fps = max(rate / keep_every, min(MIN_PLAY_FPS, rate))
            out = work / f"preview-{width}-{max_frames}-{quality}.{fmt}"
            encode = functools.partial(
                _encode_args,
                frames_dir,
                fmt=fmt,
                longest=min(width, top_width),
                portrait=portrait,
                fps=fps,
                quality=quality,
                keep_every=keep_every,
            )
            what = f"preview of {video.name}: encoding {fmt}"
            if fmt == "webp" and keep_every == 1 and sampled >= HALVES_FROM:
                _encode_in_halves(encode, sampled, out, what, cancel)
            else:
                media.run_ffmpeg(encode(out), what=what, cancel=cancel)
            made = fitted(out, fps)
            if made is not None:
                return made
    width, max_frames, quality = ladder[-1]
    return _dropped("preview", budget, f"the animation at {width} px, {max_frames} frames, quality {quality}")


def final_preview(
    video: Path, data_dir: Path, duration_s: float, *, clips: Sequence[str] = (), fades: tuple[float, float] = (0.0, 0.0)
) -> Preview:
    """The final video's animated preview: from the frames sampled from its clips (``clips``: their
    sha256s in order; ``take_samples``) when there are all, else (or when they would not encode
    together: clips of different sizes) from the file. ``fades``: seconds the video fades in and out."""
    samples = take_samples(clips, preview_rate(duration_s)) if clips else None
    if samples:
        try:
            return animated_preview(video, data_dir, samples=samples, fades=fades)
        except MediaError:
            pass
    return animated_preview(video, data_dir)
