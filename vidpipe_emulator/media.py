"""Deterministic synthetic media: PNG keyframes and H.264/AAC MP4 clips.

Everything here is a pure function of its inputs so identical requests give
identical bytes.  Images are drawn with Pillow/numpy; videos are encoded by
the ffmpeg binary bundled with ``imageio_ffmpeg`` (raw RGB frames are piped
in, so the first/last decoded frames match the requested key images).
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import os
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageOps

DEFAULT_IMAGE_ASPECT = "1:1"
DEFAULT_VIDEO_ASPECT = "16:9"


class MediaError(ValueError):
    """Input media could not be decoded (maps to HTTP 400)."""


def parse_aspect_ratio(aspect: str | None, default: str) -> float:
    """``"16:9"`` -> 1.777...; invalid values raise :class:`MediaError`."""
    text = (aspect or default).strip()
    try:
        num, den = (float(p) for p in text.split(":", 1))
    except ValueError as exc:
        raise MediaError(f"invalid aspect ratio {text!r}") from exc
    if num <= 0 or den <= 0:
        raise MediaError(f"invalid aspect ratio {text!r}")
    return num / den


def even(value: float) -> int:
    """Round to the nearest even integer >= 2 (yuv420p needs even sizes)."""
    return max(2, int(round(value / 2.0)) * 2)


def frame_size(height: int, aspect: str | None, default: str) -> tuple[int, int]:
    """(width, height) for ``height`` and an aspect ratio, both even."""
    ratio = parse_aspect_ratio(aspect, default)
    return even(height * ratio), even(height)


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def prompt_colour(prompt: str) -> tuple[int, int, int]:
    """A saturated RGB colour derived from the prompt hash."""
    h = digest(prompt)
    hue = h[0] / 255.0
    sat = 0.55 + 0.4 * (h[1] / 255.0)
    val = 0.7 + 0.25 * (h[2] / 255.0)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


def decode_image(data: bytes) -> Image.Image:
    """Decode image bytes to RGB or raise :class:`MediaError`."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except Exception as exc:  # Pillow raises many types for bad input
        raise MediaError("Unable to process input image") from exc


def fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize with centre crop to exactly ``size`` (like a model would)."""
    if img.size == size:
        return img
    return ImageOps.fit(img, size, Image.Resampling.BILINEAR)


def render_image(prompt: str, size: tuple[int, int], reference: bytes | None = None) -> Image.Image:
    """Draw a keyframe for ``prompt``.

    Without a reference: a vertical gradient of the prompt colour.  With one:
    the reference resized to ``size`` and tinted 45% toward the prompt colour.
    Both get a circle and a bar whose positions come from the prompt hash, so
    different prompts are visibly different.
    """
    width, height = size
    colour = np.array(prompt_colour(prompt), dtype=np.float32)
    if reference is not None:
        ref = np.asarray(fit(decode_image(reference), size), dtype=np.float32)
        pixels = ref * 0.55 + colour * 0.45
    else:
        ramp = np.linspace(1.0, 0.35, height, dtype=np.float32)[:, None, None]
        pixels = np.broadcast_to(colour * ramp, (height, width, 3))
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    h = digest(prompt)
    draw = ImageDraw.Draw(img)
    comp = tuple(255 - int(c) for c in colour)
    radius = max(1, int(min(size) * (0.12 + 0.1 * h[3] / 255.0)))
    cx = int(width * (0.2 + 0.6 * h[4] / 255.0))
    cy = int(height * (0.2 + 0.6 * h[5] / 255.0))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=comp)
    bar_y = int(height * (0.05 + 0.85 * h[6] / 255.0))
    bar_h = max(1, height // 12)
    draw.rectangle((0, bar_y, width - 1, min(height - 1, bar_y + bar_h)), fill=(h[7], h[8], h[9]))
    return img


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def generate_png(prompt: str, height: int, aspect: str | None, reference: bytes | None = None) -> bytes:
    """PNG bytes for an image-generation request."""
    size = frame_size(height, aspect, DEFAULT_IMAGE_ASPECT)
    return encode_png(render_image(prompt, size, reference))


@dataclass(frozen=True)
class VideoSpec:
    """Everything that determines the bytes of an emulated Veo clip."""

    prompt: str
    first_image: bytes | None
    last_image: bytes | None
    duration_s: float
    aspect: str | None
    height: int
    fps: int
    audio: bool

    def cache_key(self) -> str:
        h = hashlib.sha256()
        for part in (
            self.prompt.encode(),
            self.first_image or b"-",
            self.last_image or b"-",
            f"{self.duration_s}|{self.aspect}|{self.height}|{self.fps}|{self.audio}".encode(),
        ):
            h.update(hashlib.sha256(part).digest())
        return h.hexdigest()

    @property
    def size(self) -> tuple[int, int]:
        return frame_size(self.height, self.aspect, DEFAULT_VIDEO_ASPECT)

    @property
    def frame_count(self) -> int:
        return max(1, int(round(self.duration_s * self.fps)))

    @property
    def tone_hz(self) -> int:
        return 220 + int.from_bytes(digest(self.prompt)[10:12], "big") % 660


def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # local import: only needed when encoding

    return imageio_ffmpeg.get_ffmpeg_exe()


def _key_frames(spec: VideoSpec) -> tuple[np.ndarray, np.ndarray]:
    size = spec.size
    if spec.first_image is not None:
        first = fit(decode_image(spec.first_image), size)
    else:
        first = render_image(spec.prompt, size)
    last = fit(decode_image(spec.last_image), size) if spec.last_image is not None else first
    return np.asarray(first, dtype=np.float32), np.asarray(last, dtype=np.float32)


def generate_mp4(spec: VideoSpec) -> bytes:
    """Encode a crossfade from the first to the last key image.

    Frame ``i`` is ``first*(1-t) + last*t`` with ``t = i/(n-1)`` so the first
    and last frames are the key images themselves.  H.264 yuv420p, faststart,
    ``spec.fps`` fps, exactly ``frame_count`` frames; AAC stereo sine tone
    when ``spec.audio``.
    """
    first, last = _key_frames(spec)
    width, height = spec.size
    n = spec.frame_count
    duration = n / spec.fps
    with tempfile.TemporaryDirectory(prefix="vidpipe-emu-") as tmp:
        out_path = os.path.join(tmp, "clip.mp4")
        cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            str(spec.fps),
            "-i",
            "pipe:0",
        ]
        if spec.audio:
            cmd += [
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency={spec.tone_hz}:sample_rate=48000:duration={duration:.6f}",
            ]
        cmd += ["-map", "0:v:0"]
        if spec.audio:
            cmd += ["-map", "1:a:0", "-c:a", "aac", "-ac", "2", "-b:a", "96k"]
        cmd += [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "18",
            "-pix_fmt",
            "yuv420p",
            "-threads",
            "2",
            "-t",
            f"{duration:.6f}",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            out_path,
        ]
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
            assert proc.stdin is not None
            try:
                for i in range(n):
                    t = i / (n - 1) if n > 1 else 0.0
                    frame = first if t == 0.0 else (last if t == 1.0 else first + (last - first) * t)
                    proc.stdin.write(np.clip(frame + 0.5, 0, 255).astype(np.uint8).tobytes())
            except BrokenPipeError:
                pass
            finally:
                proc.stdin.close()
            code = proc.wait()
            if code != 0:
                err.seek(0)
                raise RuntimeError(f"ffmpeg failed ({code}): {err.read().decode(errors='replace')[-2000:]}")
        with open(out_path, "rb") as fh:
            return fh.read()


def corrupt_bytes(seed: str, size: int = 4096) -> bytes:
    """Deterministic bytes that no demuxer recognises as a video."""
    block = b"VIDPIPE-EMULATOR CORRUPT VIDEO PAYLOAD " + digest(seed).hex().encode()
    return (block * (size // len(block) + 1))[:size]


SPEECH_RATE = 24000  # Gemini text to speech answers 24 kHz 16-bit mono PCM


def speech_pcm(text: str, voice: str, seconds: float, rate: int = SPEECH_RATE) -> bytes:
    """Deterministic stand-in for a voice saying ``text``: one tone burst per word (its pitch from
    the voice and the word), with short gaps, ``seconds`` long in all; 16-bit little-endian mono."""
    total = max(1, round(seconds * rate))
    words = text.split() or [""]
    out = np.zeros(total, dtype=np.float64)
    span = total / len(words)
    base = 110 + int.from_bytes(hashlib.sha256(voice.encode()).digest()[:2], "big") % 120
    for i, word in enumerate(words):
        start, stop = round(i * span), round((i + 1) * span - 0.15 * span)
        if stop <= start:
            continue
        pitch = base * (1 + (hashlib.sha256(word.encode()).digest()[0] % 8) / 16)
        t = np.arange(stop - start) / rate
        envelope = np.minimum(1.0, np.minimum(t, t[::-1]) * 50)  # 20 ms ramps: no clicks
        out[start:stop] = 0.3 * envelope * np.sin(2 * np.pi * pitch * t)
    return (out * 32767).astype("<i2").tobytes()
