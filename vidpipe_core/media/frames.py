"""The frames of a stitch's encoded segments, made in Python: clips decoded with PyAV from the
keyframe before a span, fitted to the output's size when they differ, crossfaded and faded
frame by frame, and handed on as raw yuv420p for ``encode_frames``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidpipe_core.errors import MediaError
from vidpipe_core.media.encoding import PIX_FMT, _even
from vidpipe_core.media.plan import Encode, Frames
from vidpipe_core.media.probe import _demuxer

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]  # one yuv420p frame: Y, U, V
BLACK = (16, 128, 128)  # yuv420p black: luma at its floor, neutral chroma


def _planes(frame: av.VideoFrame) -> Planes:
    if frame.format.name != PIX_FMT:
        frame = frame.reformat(format=PIX_FMT)
    w, h = frame.width, frame.height
    sizes = ((w, h), ((w + 1) // 2, (h + 1) // 2), ((w + 1) // 2, (h + 1) // 2))
    y, u, v = (
        np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[:ph, :pw]
        for plane, (pw, ph) in zip(frame.planes, sizes, strict=True)
    )
    return y, u, v


def _fitted(frame: av.VideoFrame, size: tuple[int, int]) -> Planes:
    """A frame scaled into ``size`` (square pixels, aspect kept) and centred on black."""
    w, h = size
    scale = min(w / frame.width, h / frame.height)
    fw, fh = min(w, _even(frame.width * scale)), min(h, _even(frame.height * scale))
    y, u, v = _planes(frame.reformat(width=fw, height=fh, format=PIX_FMT, interpolation="BICUBIC"))
    if (fw, fh) == (w, h):
        return y, u, v
    x0, y0 = (w - fw) // 4 * 2, (h - fh) // 4 * 2
    canvas = (
        np.full((h, w), BLACK[0], np.uint8),
        np.full((h // 2, w // 2), BLACK[1], np.uint8),
        np.full((h // 2, w // 2), BLACK[2], np.uint8),
    )
    canvas[0][y0 : y0 + fh, x0 : x0 + fw] = y
    canvas[1][y0 // 2 : y0 // 2 + fh // 2, x0 // 2 : x0 // 2 + fw // 2] = u
    canvas[2][y0 // 2 : y0 // 2 + fh // 2, x0 // 2 : x0 // 2 + fw // 2] = v
    return canvas


def read_frames(path: Path, start: int, *, fps: float, size: tuple[int, int], normalize: bool) -> Iterator[Planes]:
    """A clip's frames from frame ``start`` on (counted at ``fps``), as yuv420p planes of ``size``,
    decoded from the keyframe before ``start`` (PyAV seeks there), one at a time: the frame shown
    at each output frame's time (with ``normalize``, a clip of another size or rate: fitted into
    ``size`` and picked by time). Endless: the last frame repeats, the caller takes what it needs."""

    def convert(frame: av.VideoFrame) -> Planes:
        return _fitted(frame, size) if normalize else _planes(frame)

    try:
        with _demuxer(path) as container:
            stream = container.streams.video[0]
            tb, base = float(stream.time_base or Fraction(1, 90000)), stream.start_time or 0
            if start > 0:
                container.seek(base + int(start / fps / tb), stream=stream, backward=True, any_frame=False)
            k, held = start, None  # the next output frame, the latest frame decoded before it
            for frame in container.decode(stream):
                index = round(((frame.pts if frame.pts is not None else base) - base) * tb * fps)
                if held is not None and index > k:
                    planes = convert(held)
                    while k < index:
                        yield planes
                        k += 1
                held = frame
            if held is None:
                raise MediaError("no decodable video frame")
            planes = convert(held)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{path.name}: cannot decode its frames ({exc})") from exc
    while True:
        yield planes


def _mix(a: Planes, b: Planes, weight: float) -> Planes:
    """``a`` weighted ``weight``, ``b`` the rest: xfade's "fade" transition."""
    y, u, v = (np.clip(x * weight + z * (1.0 - weight), 0, 255).astype(np.uint8) for x, z in zip(a, b, strict=True))
    return y, u, v


def _dimmed(p: Planes, factor: float) -> Planes:
    """The frame ``factor`` of the way from black (0) to itself (1): ffmpeg's fade filter."""
    y, u, v = (((x.astype(np.float32) - level) * factor + level).astype(np.uint8) for x, level in zip(p, BLACK, strict=True))
    return y, u, v


def segment_frames(
    paths: Sequence[Path],
    frames: Sequence[int],
    job: Encode,
    *,
    fps: float,
    size: tuple[int, int],
    normalize: bool = False,
    fade_in: float = 0.0,
    fade_out: float = 0.0,
) -> Iterator[bytes]:
    """``job``'s frames, raw yuv420p of ``size``, one after the other: its pieces decoded in Python
    (a clip read on from where the previous piece of it stopped), a Blend mixed frame by frame.
    ``fade_in`` / ``fade_out`` > 0: this segment starts / ends the video and fades from / to black
    (its first / last frame black). Python holds a few frames, never a graph of queued ones."""
    total = job.count
    fin = max(1, round(fade_in * fps)) if fade_in > 0 else 0
    fout = max(1, round(fade_out * fps)) if fade_out > 0 else 0
    readers: dict[int, tuple[int, Iterator[Planes]]] = {}  # clip -> (next frame, its frames)

    def take(clip: int, a: int, b: int) -> Iterator[Planes]:
        at, frames_of = readers.get(clip, (-1, iter(())))
        if at != a:
            frames_of = read_frames(paths[clip], a, fps=fps, size=size, normalize=normalize)
        readers[clip] = (b, frames_of)
        return itertools.islice(frames_of, b - a)

    def pictures() -> Iterator[Planes]:
        for p in job.pieces:
            if isinstance(p, Frames):
                yield from take(p.clip, p.start, p.end)
            else:
                tail = take(p.clip, frames[p.clip] - p.frames, frames[p.clip])
                head = take(p.clip + 1, 0, p.frames)
                for j, (a, b) in enumerate(zip(tail, head, strict=True)):
                    yield _mix(a, b, 1.0 - j / p.frames)

    for k, planes in enumerate(pictures()):
        factor = 1.0
        if fin and k < fin:
            factor = k / fin
        if fout and k > total - 1 - fout:
            factor = min(factor, (total - 1 - k) / fout)
        yield b"".join(p.tobytes() for p in (planes if factor >= 1.0 else _dimmed(planes, factor)))
