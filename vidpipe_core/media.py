"""The one ffmpeg wrapper and prober of vidpipe.

ffmpeg command lines are built with ffmpeg-python by pure functions (``*_args``) that return
the arguments *after* the program name, so they can be unit-tested without running anything;
``run_ffmpeg`` prepends the binary from imageio-ffmpeg (``IMAGEIO_FFMPEG_EXE`` wins) and runs
it with stderr captured; ``encode_frames`` feeds one raw frames on stdin. Probing, decoding and
the stitch's packet-level muxing use PyAV; there is no ffprobe.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import io
import itertools
import math
import os
import shutil
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Literal

import av
import ffmpeg
import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.config import ASPECT_RATIOS
from vidpipe_core.errors import InvalidInput, MediaError

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
FFMPEG_TIMEOUT_S = 900.0
STITCH_WORKERS = 2  # segments encoded at once (both cores busy through each encoder's start-up)
STITCH_WORKERS_PIXELS = 1280 * 720  # larger frames: one at a time (memory: x264 holds ~160 MiB at 1080p)

_GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")
_FEED_ARGS = ("-hide_banner", "-nostats", "-loglevel", "error")  # ffmpeg reading frames on stdin
_STDERR_TAIL_LINES = 15
CANCEL_POLL_S = 0.25  # how often a running ffmpeg looks at its cancel token


# --------------------------------------------------------------------------------------
# The binary
# --------------------------------------------------------------------------------------

_checked: dict[str, str] = {}  # exe path -> version line (successes only)


def _ffmpeg_missing(detail: str) -> MediaError:
    return MediaError(f"ffmpeg cannot run: {detail}; install imageio-ffmpeg or set IMAGEIO_FFMPEG_EXE to a working ffmpeg")


def _locate_ffmpeg() -> str:
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (RuntimeError, OSError) as exc:
        raise _ffmpeg_missing(str(exc)) from exc


def check_ffmpeg() -> str:
    """The first line of ``ffmpeg -version``; MediaError when ffmpeg is missing or broken.

    A success is cached per executable path, so setting IMAGEIO_FFMPEG_EXE later is still honoured."""
    exe = _locate_ffmpeg()
    if exe in _checked:
        return _checked[exe]
    try:
        proc = subprocess.run([exe, "-version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise _ffmpeg_missing(f"{exe!r}: {exc}") from exc
    out = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or not out.startswith("ffmpeg"):
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise _ffmpeg_missing(f"{exe!r} -version exited with {proc.returncode}: {' '.join(err[-3:]) or out[:200]}")
    _checked[exe] = out.splitlines()[0]
    return _checked[exe]


def ffmpeg_exe() -> str:
    """Path of a working ffmpeg binary (checked once per path)."""
    check_ffmpeg()
    return _locate_ffmpeg()


def run_ffmpeg(args: Sequence[str], *, what: str, timeout: float = FFMPEG_TIMEOUT_S, cancel: CancelToken = NEVER) -> None:
    """Run ffmpeg with ``args`` (everything after the program name); MediaError with stderr's tail on failure.
    A cancelled token kills ffmpeg within half a second and raises Interrupted."""
    argv = [ffmpeg_exe(), *_GLOBAL_ARGS, *args]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise _ffmpeg_missing(str(exc)) from exc
    deadline = time.monotonic() + timeout
    with proc:
        try:
            while True:
                try:
                    _out, err = proc.communicate(timeout=min(CANCEL_POLL_S, max(0.01, deadline - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    cancel.check()
                    if time.monotonic() >= deadline:
                        raise MediaError(f"{what}: ffmpeg did not finish within {timeout:.0f} s") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-_STDERR_TAIL_LINES:]
        raise MediaError(f"{what}: ffmpeg exited with {proc.returncode}: " + ("\n".join(tail) or "(no output)"))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        return libc
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


def release_freed_memory() -> None:
    """Hand memory that Python has freed back to the OS (glibc's malloc_trim). Frames made or
    decoded on worker threads are freed into those threads' malloc arenas, which glibc keeps: an
    in-process run that renders 1080p clips on several threads otherwise keeps ~100 MiB it no
    longer uses through every later step (bench/README.md, memory)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def encode_frames(args: list[str], pictures: Iterator[bytes], *, what: str, log: Path, cancel: CancelToken = NEVER) -> None:
    """Run ffmpeg with ``args`` and feed it ``pictures`` (raw frames) on stdin. ffmpeg's messages go to
    ``log`` (a file: a pipe nobody reads could fill up and stall it). A cancelled token kills
    ffmpeg at the next frame and raises Interrupted; MediaError with the log's tail on failure."""
    argv = [ffmpeg_exe(), *_FEED_ARGS, *args]
    deadline = time.monotonic() + FFMPEG_TIMEOUT_S
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None  # stdin=PIPE
        try:
            broken = False
            for picture in pictures:
                cancel.check()
                if time.monotonic() >= deadline:
                    raise MediaError(f"{what}: ffmpeg did not finish within {FFMPEG_TIMEOUT_S:.0f} s")
                try:
                    proc.stdin.write(picture)
                except BrokenPipeError:  # ffmpeg stopped early: its log says why
                    broken = True
                    break
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            while True:
                try:
                    proc.wait(timeout=CANCEL_POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    cancel.check()
                    if time.monotonic() >= deadline:
                        raise MediaError(f"{what}: ffmpeg did not finish within {FFMPEG_TIMEOUT_S:.0f} s") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    release_freed_memory()  # the frames fed to the encoder are garbage now
    if proc.returncode != 0 or broken:
        tail = log.read_text("utf-8", "replace").strip().splitlines()[-_STDERR_TAIL_LINES:]
        raise MediaError(f"{what}: ffmpeg exited with {proc.returncode}: " + ("\n".join(tail) or "(no output)"))


# --------------------------------------------------------------------------------------
# Sizes and probing
# --------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float  # container duration (longest stream)
    width: int
    height: int
    fps: float
    video_codec: str | None
    audio_codec: str | None
    audio_channels: int
    sample_rate: int
    size_bytes: int
    video_duration_s: float = 0.0  # the video stream alone; what crossfade offsets are based on
    frames: int = 0  # video frames (from the container index)
    pix_fmt: str | None = None
    copy_key: str = ""  # equal keys => the files can be joined by stream copy
    video_key: str = ""  # equal keys => the video streams can be joined by stream copy ("" no video)
    audio_key: str = ""  # the same for the audio streams

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None


@dataclass(frozen=True)
class StitchResult(MediaInfo):
    """A MediaInfo of the stitched file plus how it was made."""

    method: Literal["copy", "reencode", "crossfade"] = "copy"
    notes: tuple[str, ...] = ()
    clips: tuple[MediaInfo, ...] = ()  # what each input was found to be (no need to probe them again)


def _stream_key(stream: av.video.stream.VideoStream | av.audio.stream.AudioStream | None) -> str:
    """Equal keys: the streams' packets can follow one another in one track (same codec, its
    parameters and its configuration record); "" for no stream."""
    if stream is None:
        return ""
    facts: tuple[object, ...]
    if isinstance(stream, av.video.stream.VideoStream):
        vc = stream.codec_context
        facts = (vc.name, vc.profile, vc.width, vc.height, str(vc.format.name if vc.format else None))
        facts += (str(stream.average_rate), str(stream.time_base))
        extradata = vc.extradata
    else:
        ac = stream.codec_context
        facts, extradata = (ac.name, ac.profile, ac.sample_rate, ac.layout.nb_channels), ac.extradata
    return hashlib.sha256(str(facts).encode() + b"\x00" + bytes(extradata or b"")).hexdigest()[:16]


def _stream_seconds(stream: av.stream.Stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def _probe_container(container: av.container.InputContainer, size_bytes: int) -> MediaInfo:
    vs = container.streams.video[0] if container.streams.video else None
    as_ = container.streams.audio[0] if container.streams.audio else None
    if vs is None and as_ is None:
        raise MediaError("no audio or video stream")
    fps = float(vs.average_rate or vs.guessed_rate or 0) if vs is not None else 0.0
    frames = int(vs.frames or 0) if vs is not None else 0
    video_s = _stream_seconds(vs) if vs is not None else 0.0
    if vs is not None and video_s <= 0 and frames and fps:
        video_s = frames / fps
    duration = container.duration / 1_000_000 if container.duration else 0.0
    duration = max(duration, video_s, _stream_seconds(as_) if as_ is not None else 0.0)
    return MediaInfo(
        duration_s=duration,
        width=vs.codec_context.width if vs is not None else 0,
        height=vs.codec_context.height if vs is not None else 0,
        fps=fps,
        video_codec=vs.codec_context.name if vs is not None else None,
        audio_codec=as_.codec_context.name if as_ is not None else None,
        audio_channels=as_.codec_context.layout.nb_channels if as_ is not None else 0,
        sample_rate=as_.codec_context.sample_rate if as_ is not None else 0,
        size_bytes=size_bytes,
        video_duration_s=video_s,
        frames=frames,
        pix_fmt=(vs.codec_context.format.name if vs is not None and vs.codec_context.format else None),
        copy_key=f"{_stream_key(vs)}/{_stream_key(as_)}",
        video_key=_stream_key(vs),
        audio_key=_stream_key(as_),
    )


# Opening a file otherwise decodes its first frames to learn the pixel format (~55 ms and ~50 MB
# for a grainy 1080p clip, per open). Only that probe skips them: frames decode as usual after.
_OPEN_WITHOUT_DECODING = {"skip_frame": "all"}
# ... and to read one frame, stop probing at the first packet: without decoding, the probe would
# read on to its 5 MB limit, all transferred from an object store. (The audio's frame size may
# stay unknown then: not for the stitcher's opens.)
_OPEN_FOR_ONE_FRAME = {**_OPEN_WITHOUT_DECODING, "probesize": "32", "analyzeduration": "0"}


def _demuxer(path: Path) -> av.container.InputContainer:
    """``path`` opened to read its packets (or decode them): see _OPEN_WITHOUT_DECODING."""
    return av.open(str(path), mode="r", options=_OPEN_WITHOUT_DECODING)


def probe(path: str | Path) -> MediaInfo:
    """Stream facts of a media file; MediaError naming the file when it does not decode."""
    path = Path(path)
    try:
        with av.open(str(path), mode="r") as container:
            return _probe_container(container, path.stat().st_size)
    except (av.FFmpegError, MediaError, OSError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable media file ({exc})") from exc


def probe_bytes(data: bytes, *, name: str = "<bytes>") -> MediaInfo:
    return probe_file(io.BytesIO(data), name=name)


def probe_file(f: IO[bytes], *, name: str) -> MediaInfo:
    """``probe`` of a binary file open for reading (seekable): only the container's header is
    read, so an object store's file is probed without downloading it."""
    try:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        with av.open(f, mode="r") as container:
            return _probe_container(container, size)
    except (av.FFmpegError, MediaError, OSError, ValueError) as exc:
        raise MediaError(f"{name}: not a readable media file ({exc})") from exc


def read_frame(
    source: str | Path | IO[bytes], at: float | Literal["first", "last"], *, name: str = "", width: int | None = None
) -> Image.Image:
    """One decoded RGB frame: the first, the last, or the one showing at ``at`` seconds. ``source``:
    a path, or a binary file open for reading (an object store's file: only what the frame needs
    is read), named ``name`` in errors. A time or the last frame is reached by seeking to the
    keyframe before it, so only that group of pictures is decoded. ``width``: at most that wide,
    scaled as it is converted (a thumbnail never holds the full-size picture)."""
    label = name or str(source)
    try:
        readable = source if not isinstance(source, str | Path) else str(source)
        with av.open(readable, mode="r", options=_OPEN_FOR_ONE_FRAME) as container:
            if not container.streams.video:
                raise MediaError("no video stream")
            stream = container.streams.video[0]
            frame = _pick_frame(container, stream, at)
            if width is not None and frame.width > width:
                height = max(2, round(frame.height * width / frame.width))
                return frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_image()
            return frame.to_image().convert("RGB")
    except (av.FFmpegError, MediaError, OSError, ValueError) as exc:
        raise MediaError(f"{label}: cannot decode a frame at {at!r} ({exc})") from exc


def _pick_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, at: float | Literal["first", "last"]
) -> av.VideoFrame:
    if at == "first":
        for frame in container.decode(stream):
            return frame
        raise MediaError("no decodable video frame")
    if at == "last":
        last = None
        if stream.duration and stream.time_base:  # the last keyframe, then decode to the end
            container.seek((stream.start_time or 0) + stream.duration, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            last = frame
        if last is None:
            raise MediaError("no decodable video frame")
        return last
    at = float(at)
    if at < 0:
        raise InvalidInput("at", f"time must be >= 0, got {at}")
    if at > 0 and stream.time_base:
        container.seek(int(at / stream.time_base), stream=stream, backward=True, any_frame=False)
    half = 0.5 / float(stream.average_rate or 24)
    last = None
    for last in container.decode(stream):
        if last.time is not None and last.time >= at - half:
            return last
    if last is None:
        raise MediaError("no decodable video frame")
    return last


# --------------------------------------------------------------------------------------
# Output encoding
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Stitching
# --------------------------------------------------------------------------------------
#
# A stitch is a timeline of spans. Most are frames of a clip taken as they are: their packets,
# never decoded. The rest are segments ffmpeg encodes: the frames a fade or a crossfade changes,
# widened to the clip's nearest keyframes so that every copied span starts on one (a clip whose
# only keyframe is its first frame is re-encoded whole). PyAV's mp4 muxer then writes the spans
# one after the other, re-timed, with the audio: copied packet by packet (each clip's track cut
# to its video within half an AAC frame, the fades' own frames re-encoded), or for a crossfade or
# clips that differ, joined by one audio-only ffmpeg job.

ClipInput = tuple[Path, float, bool]  # (path, measured duration in seconds, has_audio)
SEGMENT_X264_PARAMS = "rc-lookahead=5"  # a short look-ahead bounds the encoder's memory (frames held)


@dataclass(frozen=True)
class Copy:
    """Frames [start, end) of clip ``clip`` taken as they are: their packets, re-timed."""

    clip: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Frames:
    """Frames [start, end) of clip ``clip``, decoded for a segment."""

    clip: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Blend:
    """The last ``frames`` frames of clip ``clip`` crossfaded into the first ``frames`` of the next."""

    clip: int
    frames: int

    @property
    def count(self) -> int:
        return self.frames


@dataclass(frozen=True)
class Encode:
    """Pieces encoded by one ffmpeg job into one segment file."""

    pieces: tuple[Frames | Blend, ...]

    @property
    def count(self) -> int:
        return sum(p.count for p in self.pieces)


def stitch_timeline(
    frames: Sequence[int],
    cuts: Sequence[Sequence[int] | None],
    *,
    crossfade: int = 0,
    fade_in: int = 0,
    fade_out: int = 0,
) -> list[Copy | Encode] | None:
    """What is copied and what is encoded, in frames at the output's rate: the frames a fade-in,
    a fade-out or a crossfade changes, each widened to the clip's nearest cut, are encoded; the
    rest is copied. ``cuts[i]``: the frames where clip i may be cut without decoding (keyframes
    that start a closed group of pictures; its first frame and its end always), or None when no
    frame of clip i may be copied: it is then encoded whole in a job of its own, so that no job
    decodes more than two clips. None when a clip is shorter than the crossfades it takes part in
    (its fade-in and fade-out would overlap): only one filter graph over all clips expresses that."""
    n = len(frames)
    c = crossfade if n > 1 else 0
    if any(f < c * ((i > 0) + (i < n - 1)) for i, f in enumerate(frames)):
        return None
    timeline: list[Copy | Encode] = []
    pending: list[Frames | Blend] = []

    def flush() -> None:
        if pending:
            timeline.append(Encode(tuple(pending)))
            pending.clear()

    for i, f in enumerate(frames):
        lo, hi = (c if i > 0 else 0), f - (c if i < n - 1 else 0)  # the frames no crossfade takes
        points = cuts[i]
        start = end = None
        if points is not None:
            first, last = max(lo, fade_in if i == 0 else 0), min(hi, f - fade_out if i == n - 1 else hi)
            start = min((k for k in points if first <= k <= last), default=None)
            end = max((k for k in points if first <= k <= last), default=None)
        if start is not None and end is not None and start < end:
            if start > lo:
                pending.append(Frames(i, lo, start))
            flush()
            timeline.append(Copy(i, start, end))
            if hi > end:
                pending.append(Frames(i, end, hi))
        elif hi > lo:
            flush()
            pending.append(Frames(i, lo, hi))
            flush()
        if i < n - 1 and c:
            pending.append(Blend(i, c))
    flush()
    return timeline


@dataclass(frozen=True)
class VideoScan:
    """A clip's video packets, read without decoding: how many frames, and where it may be cut."""

    frames: int
    cuts: tuple[int, ...]  # frame indices starting a closed group of pictures, and ``frames`` (the end)


def scan_video(path: Path, fps: float) -> VideoScan:
    """The frames of ``path`` where a copied span may start or end: a keyframe that no frame before
    it (in decoding order) shows after it, and no frame after it shows before it."""
    try:
        with _demuxer(path) as container:
            stream = container.streams.video[0]
            base = stream.start_time or 0
            ticks = 1 / (fps * float(stream.time_base or Fraction(1, 90000)))
            order: list[tuple[int, bool]] = []  # (frame index, keyframe) in decoding order
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size:
                    order.append((round((packet.pts - base) / ticks), bool(packet.is_keyframe)))
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError(f"{path.name}: cannot read its video packets ({exc})") from exc
    frames = len(order)
    cuts = []
    before = -1  # the latest frame shown by the packets decoded so far
    later = [frames] * (frames + 1)  # later[d]: the earliest frame shown by packets d.. (decoding order)
    for d in range(frames - 1, -1, -1):
        later[d] = min(order[d][0], later[d + 1])
    for d, (index, key) in enumerate(order):
        if key and before < index and later[d] >= index:
            cuts.append(index)
        before = max(before, index)
    return VideoScan(frames, (*cuts, frames))


def _video_chain(stream: ffmpeg.nodes.FilterableStream, *, fps: float, size: tuple[int, int]) -> ffmpeg.nodes.FilterableStream:
    """A clip's frames scaled and padded to ``size`` (square pixels) at ``fps``, in the house format."""
    w, h = size
    return (
        stream.filter("scale", w, h, force_original_aspect_ratio="decrease")
        .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2")
        .filter("setsar", 1)
        .filter("fps", _rate(fps))
        .filter("format", PIX_FMT)
    )


def _audio_chain(stream: ffmpeg.nodes.FilterableStream, seconds: float) -> ffmpeg.nodes.FilterableStream:
    """Resampled to the house format and padded or cut to ``seconds`` (the clip's video)."""
    return (
        stream.filter("aformat", sample_fmts="fltp", sample_rates=AUDIO_RATE, channel_layouts="stereo")
        .filter("apad")
        .filter("atrim", duration=ffmpeg_number(seconds))
        .filter("asetpts", "PTS-STARTPTS")
    )


def _fades(
    stream: ffmpeg.nodes.FilterableStream, *, fade_in: float, fade_out: float, seconds: float, fps: float | None = None
) -> ffmpeg.nodes.FilterableStream:
    """A fade from black (silence) over the first ``fade_in`` seconds and to black over the last
    ``fade_out`` of a stream lasting ``seconds``. Video (``fps`` given) is faded by frame numbers,
    which no seek or rounding of timestamps moves: its first and its last frame are black."""
    if fps:
        frames = round(seconds * fps)
        if fade_in > 0:
            stream = stream.filter("fade", t="in", start_frame=0, nb_frames=max(1, round(fade_in * fps)))
        if fade_out > 0:
            n = max(1, round(fade_out * fps))
            stream = stream.filter("fade", t="out", start_frame=max(0, frames - 1 - n), nb_frames=n)
        return stream
    if fade_in > 0:
        stream = stream.filter("afade", t="in", st=0, d=ffmpeg_number(fade_in))
    if fade_out > 0:
        stream = stream.filter("afade", t="out", st=ffmpeg_number(max(0.0, seconds - fade_out)), d=ffmpeg_number(fade_out))
    return stream


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


def video_look(path: Path) -> dict[str, object]:
    """What a clip's parameter sets say of its picture beyond size and rate, as ffmpeg output
    options for an encoder that must write the same ones: the pixel aspect ratio and the colour
    description, when the clip states them (x264 writes only what it is given)."""
    with av.open(str(path), mode="r") as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
        look: dict[str, object] = {"sar": f"{sar.numerator}/{sar.denominator}"} if sar else {}
        for name, unspecified in (("color_primaries", 2), ("color_trc", 2), ("colorspace", 2), ("color_range", 0)):
            value = getattr(cc, name, unspecified)
            if value not in (None, unspecified):
                look[name] = value
    return look


def segment_args(
    out: Path, *, frames: int, fps: float, size: tuple[int, int], look: dict[str, object] | None = None
) -> list[str]:
    """ffmpeg arguments encoding ``frames`` raw yuv420p frames of ``size`` from stdin into ``out``
    (video only) with the house settings and the clips' ``look`` (``video_look``), so that the
    segment has their parameter sets and sits among their copied frames. One encoder thread and
    a short look-ahead bound x264's memory (~160 MiB at 1080p), as for the animatic's clips."""
    w, h = size
    look = dict(look or {})
    video = ffmpeg.input("pipe:0", f="rawvideo", pix_fmt=PIX_FMT, s=f"{w}x{h}", r=_rate(fps)).video
    if "sar" in look:
        video = video.filter("setsar", look.pop("sar"))
    kwargs = {**video_out_kwargs(fps), "threads": 1, "x264-params": SEGMENT_X264_PARAMS, "frames:v": frames, **look}
    return ffmpeg.output(video, str(out), an=None, f="mp4", **kwargs).overwrite_output().get_args()


def audio_job_args(
    inputs: Sequence[tuple[Path, int]], out: Path, *, fps: float, crossfade: int = 0, fade_in: float = 0.0, fade_out: float = 0.0
) -> list[str]:
    """The joined audio of clips (path, frames) in one audio-only job: each clip's track resampled
    and padded or cut to its video's frames, crossfaded over ``crossfade`` frames (else joined),
    faded in and out; its length is the video's to the sample."""
    tracks = [_audio_chain(ffmpeg.input(str(p)).audio, f / fps) for p, f in inputs]
    if crossfade and len(tracks) > 1:
        audio = _acrossfade_chain(tracks, crossfade / fps)
    else:
        audio = ffmpeg.concat(*tracks, v=0, a=1) if len(tracks) > 1 else tracks[0]
    total = (sum(f for _, f in inputs) - (len(inputs) - 1) * crossfade) / fps
    audio = _fades(audio, seconds=total, fade_in=fade_in, fade_out=fade_out)
    return ffmpeg.output(audio, str(out), vn=None, f="mp4", **audio_out_kwargs()).overwrite_output().get_args()


def crossfade_offsets(durations: Sequence[float], crossfade: float) -> list[float]:
    """xfade offsets: offset_i = sum(d_0..d_i) - (i+1)*crossfade, for i in 0..n-2."""
    offsets, total = [], 0.0
    for i, d in enumerate(durations[:-1]):
        total += d
        offsets.append(round(total - (i + 1) * crossfade, 6))
    return offsets


def _acrossfade_chain(tracks: Sequence[ffmpeg.nodes.FilterableStream], crossfade: float) -> ffmpeg.nodes.FilterableStream:
    audio = tracks[0]
    for a in tracks[1:]:
        audio = ffmpeg.filter([audio, a], "acrossfade", d=ffmpeg_number(crossfade), c1="tri", c2="tri")
    return audio


def crossfade_args(
    inputs: Sequence[ClipInput],
    out: Path,
    *,
    crossfade: float,
    fps: float,
    size: tuple[int, int],
    fade_in: float = 0.0,
    fade_out: float = 0.0,
) -> list[str]:
    """One filter graph over every clip: an xfade chain for video and an acrossfade chain for audio
    (only when every input has audio). Offsets come from the *measured* durations in ``inputs``; the
    output lasts sum(d) - (n-1)*crossfade. It holds every input decoded at once (~115 MiB per 720p
    input), so the stitcher uses it only when a clip is too short for the segments."""
    if crossfade <= 0:
        raise InvalidInput("crossfade", f"must be > 0 for a crossfade, got {crossfade}")
    with_audio = all(has_audio for _, _, has_audio in inputs)
    sources = [ffmpeg.input(str(path)) for path, _, _ in inputs]
    offsets = crossfade_offsets([d for _, d, _ in inputs], crossfade)
    video = _video_chain(sources[0].video, fps=fps, size=size)
    for src, offset in zip(sources[1:], offsets, strict=True):
        video = ffmpeg.filter(
            [video, _video_chain(src.video, fps=fps, size=size)],
            "xfade",
            transition="fade",
            duration=ffmpeg_number(crossfade),
            offset=ffmpeg_number(offset),
        )
    total = sum(d for _, d, _ in inputs) - (len(inputs) - 1) * crossfade
    streams = [_fades(video, seconds=total, fade_in=fade_in, fade_out=fade_out, fps=fps).filter("format", PIX_FMT)]
    kwargs = {**video_out_kwargs(fps), "f": "mp4"}
    if with_audio:
        tracks = [_audio_chain(src.audio, d) for src, (_, d, _) in zip(sources, inputs, strict=True)]
        streams.append(_fades(_acrossfade_chain(tracks, crossfade), seconds=total, fade_in=fade_in, fade_out=fade_out))
        kwargs.update(audio_out_kwargs())
    return ffmpeg.output(*streams, str(out), **kwargs).overwrite_output().get_args()


# --- audio by packets ---------------------------------------------------------------------


@dataclass
class _Audio:
    """An audio track as packets: (data, pts, duration) in samples; ``template`` has the stream
    that describes them (codec and its configuration)."""

    template: Path
    rate: int
    packets: list[tuple[bytes, int, int]]


class _NoCopy(Exception):
    """The audio cannot be joined by copying packets (the caller re-encodes it)."""


def _audio_packets(path: Path) -> tuple[list[tuple[bytes, int, int]], int, int]:
    """A file's audio packets (data, pts, duration) in samples from the stream's start (encoder
    priming has pts < 0), its sample rate and its frame size."""
    with _demuxer(path) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        scale = float(stream.time_base or Fraction(1, rate)) * rate
        base = stream.start_time or 0
        packets = [
            (bytes(p), round((p.pts - base) * scale), round((p.duration or 0) * scale))
            for p in container.demux(stream)
            if p.pts is not None and p.size
        ]
        size = stream.codec_context.frame_size
    if not packets or not size or any(d > size for _, _, d in packets):
        raise _NoCopy(f"{path.name}: audio frames of no fixed size")
    return packets, rate, size


def _copied_audio(paths: Sequence[Path], starts: Sequence[int], total: int, fps: float) -> _Audio:
    """The clips' audio packets one after the other, each clip's first content sample at its video's
    first frame (``starts``, in frames) within half an AAC frame, and never drifting: a clip's track
    is cut by whole packets where the next clip's begins (its encoder priming kept, so that its first
    samples decode as they were encoded), and the last one ends with the video (``total`` frames)."""
    out: list[tuple[bytes, int, int]] = []
    cursor: int | None = None
    rate = size = 0
    clips = [_audio_packets(p) for p in paths]
    for i, (packets, rate, size) in enumerate(clips):
        if (rate, size) != clips[0][1:]:
            raise _NoCopy("the clips' audio differs")
        shift = round(starts[i] * rate / fps)  # where this clip's sample 0 goes in the output
        if i + 1 < len(clips):
            nxt = clips[i + 1][0]
            until = round(starts[i + 1] * clips[i + 1][1] / fps) + nxt[0][1]  # the next clip's first packet
        else:
            until = round(total * rate / fps)
        if cursor is None:
            k, cursor = 0, packets[0][1] + shift
        else:
            at = cursor - shift  # the packet that best continues the output here
            k = min(range(len(packets)), key=lambda j: abs(packets[j][1] - at))
        last = i + 1 == len(clips)
        while k < len(packets) and (cursor < until if last else cursor + size - until <= size // 2):
            out.append((packets[k][0], cursor, size))
            cursor += size
            k += 1
        if cursor < until - size // 2:
            raise _NoCopy(f"{paths[i].name}: its audio is shorter than its video")
    assert cursor is not None
    data, pts, _ = out[-1]
    out[-1] = (data, pts, max(1, min(size, until - pts)))  # the audio ends with the video
    return _Audio(paths[0], rate, out)


def _codec(template: Path, mode: Literal["r", "w"]) -> av.audio.codeccontext.AudioCodecContext:
    """A decoder ("r") of ``template``'s audio stream, or an encoder ("w") that writes the same
    configuration (else _NoCopy: its packets could not follow the stream's)."""
    with _demuxer(template) as container:
        cc = container.streams.audio[0].codec_context
        name, rate, layout, bit_rate, extra = cc.name, cc.sample_rate, cc.layout.name, cc.bit_rate, bytes(cc.extradata or b"")
    ctx = av.CodecContext.create(name, mode)
    assert isinstance(ctx, av.audio.codeccontext.AudioCodecContext)
    if mode == "r":
        ctx.extradata = extra
        return ctx
    ctx.sample_rate, ctx.layout, ctx.format = rate, layout, "fltp"
    ctx.bit_rate = bit_rate or 128_000
    ctx.time_base = Fraction(1, rate)
    ctx.open()
    if bytes(ctx.extradata or b"") != extra:
        raise _NoCopy("this AAC encoder's configuration differs from the clips'")
    return ctx


AUDIO_WARM_UP = 2  # AAC frames the encoder is given before the first one it replaces


def _reencode(audio: _Audio, first: int, last: int, gain: Callable[[np.ndarray], np.ndarray]) -> list[tuple[bytes, int, int]]:
    """Packets ``first``..``last`` (indices) decoded, multiplied by ``gain(sample times)`` and
    encoded again on the same grid of AAC frames. An AAC frame's window overlaps its neighbours',
    and its shape follows theirs: so the decoder is given the packet before the first one it
    needs and the one after ``last``, and the encoder starts AUDIO_WARM_UP frames early on the
    same samples (its first frames thrown away), so that the new packets meet the old ones as the
    old ones met each other (their windows cancel out at the joins)."""
    packets, rate = audio.packets, audio.rate
    decoder = _codec(audio.template, "r")
    begin = max(0, first - AUDIO_WARM_UP)  # the first packet whose samples the encoder is given
    blocks = []
    for data, pts, _ in packets[max(0, begin - 1) : min(len(packets), last + 2)]:
        for frame in decoder.decode(av.Packet(data)):
            blocks.append((pts, frame.to_ndarray()))
    start = packets[begin][1] if begin > 0 else 0  # a track's first packet is its encoder priming
    samples = np.concatenate([b for pts, b in blocks if pts >= start], axis=1).astype(np.float32)
    samples = samples * gain(start + np.arange(samples.shape[1])).astype(np.float32)
    encoder = _codec(audio.template, "w")
    size = encoder.frame_size
    encoded: list[tuple[bytes, int]] = []
    for k in range(0, samples.shape[1] - samples.shape[1] % size, size):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, k : k + size]), format="fltp", layout=encoder.layout.name
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, k, Fraction(1, rate)
        encoded += [(bytes(p), start + (p.pts or 0)) for p in encoder.encode(frame)]
    encoded += [(bytes(p), start + (p.pts or 0)) for p in encoder.encode(None)]
    wanted = {pts: dur for _, pts, dur in packets[first : last + 1]}
    kept = [(data, pts, wanted[pts]) for data, pts in encoded if pts in wanted]
    if len(kept) != len(wanted):
        raise _NoCopy("the re-encoded frames do not line up with the track's")
    return kept


def _refaded(audio: _Audio, *, fade_in: float, fade_out: float, total: int) -> _Audio:
    """``audio`` with its first ``fade_in`` seconds faded in and its last ``fade_out`` faded out
    (``total``: its length in samples); only the packets that carry the fades are encoded again."""
    packets, rate, size = audio.packets, audio.rate, audio.packets[0][2]
    fin, fout = round(fade_in * rate), round(fade_out * rate)
    head = max((k for k, (_, pts, _) in enumerate(packets) if pts < fin), default=-1) if fin else -1
    tail = (
        min((k for k, (_, pts, _) in enumerate(packets) if pts + 2 * size > total - fout), default=len(packets))
        if fout
        else len(packets)
    )

    def gain(t: np.ndarray) -> np.ndarray:
        g = np.ones(t.shape, dtype=np.float64)
        if fin:
            g = np.minimum(g, np.clip(t / fin, 0.0, 1.0))
        if fout:
            g = np.minimum(g, np.clip((total - t) / fout, 0.0, 1.0))
        return g

    if head + 1 >= tail - 1:  # the two fades touch: the whole track
        return _Audio(audio.template, rate, _reencode(audio, 0, len(packets) - 1, gain))
    out = list(packets)
    if head >= 0:
        out[: head + 1] = _reencode(audio, 0, head, gain)
    if tail < len(packets):
        out[tail:] = _reencode(audio, tail, len(packets) - 1, gain)
    return _Audio(audio.template, rate, out)


def _file_audio(path: Path, total: int, fps: float) -> _Audio:
    """The audio track of one file (an audio job's output) as packets, ending with the video."""
    packets, rate, size = _audio_packets(path)
    end = round(total * rate / fps)
    kept = [(d, pts, dur or size) for d, pts, dur in packets if pts < end]
    data, pts, dur = kept[-1]
    kept[-1] = (data, pts, max(1, min(dur, end - pts)))
    return _Audio(path, rate, kept)


# --- writing the spans ------------------------------------------------------------------------


def _splice(video: Sequence[tuple[Path, int, int]], audio: _Audio | None, out: Path, *, fps: float, cancel: CancelToken) -> None:
    """Write ``out``: the frames [start, end) of each (file, start, end) in turn, their packets
    re-timed, never decoded, and ``audio``'s packets interleaved by time (faststart mp4)."""
    try:
        with av.open(str(out), mode="w", format="mp4", container_options={"movflags": "+faststart"}) as output:
            with _demuxer(video[0][0]) as first:
                vout = output.add_stream_from_template(first.streams.video[0])
            aout: av.audio.stream.AudioStream | None = None
            if audio is not None:
                with _demuxer(audio.template) as src:
                    aout = output.add_stream_from_template(src.streams.audio[0])
            queue = deque(audio.packets if audio is not None else [])
            a_tb = Fraction(1, audio.rate) if audio is not None else Fraction(1)

            def audio_until(seconds: float | None) -> None:
                while queue and (seconds is None or queue[0][1] * a_tb <= seconds):
                    data, pts, dur = queue.popleft()
                    packet = av.Packet(data)
                    packet.pts = packet.dts = pts
                    packet.duration, packet.time_base = dur, a_tb
                    assert aout is not None  # packets are queued only with an audio stream
                    packet.stream = aout
                    output.mux(packet)

            offset = 0  # frames written
            last_dts: Fraction | None = None
            for path, start, end in video:
                with _demuxer(path) as src:
                    stream = src.streams.video[0]
                    tb, base = stream.time_base or Fraction(1, 90000), stream.start_time or 0
                    ticks = 1 / (fps * float(tb))
                    shift = round((offset - start) * ticks) - base
                    for packet in src.demux(stream):
                        if packet.pts is None or not packet.size:
                            continue
                        index = round((packet.pts - base) / ticks)
                        if not start <= index < end:
                            continue
                        packet.dts = (packet.pts if packet.dts is None else packet.dts) + shift
                        packet.pts += shift
                        if not packet.duration:
                            packet.duration = round(ticks)
                        dts = Fraction(packet.dts) * tb
                        if last_dts is not None and dts <= last_dts:
                            raise MediaError(f"{path.name}: its frames cannot follow the previous span's (decoding order)")
                        last_dts = dts
                        audio_until(float(dts))
                        packet.stream = vout
                        output.mux(packet)
                        if index % 64 == 0:
                            cancel.check()
                offset += end - start
            audio_until(None)
    except av.FFmpegError as exc:
        raise MediaError(f"writing {out.name}: {exc}") from exc


# --- the stitch -------------------------------------------------------------------------------


def _measured(info: MediaInfo) -> float:
    return info.video_duration_s or info.duration_s


def _mismatch_reason(infos: Sequence[MediaInfo], clips: Sequence[Path]) -> str | None:
    """Why the clips' video cannot be joined by stream copy, or None when it can."""
    first = infos[0]
    for path, info in zip(clips, infos, strict=True):
        if not info.has_video:
            return f"{path.name} has no video stream"
        if info.video_key != first.video_key:
            what = []
            if (info.width, info.height) != (first.width, first.height):
                what.append(f"size {info.width}x{info.height} vs {first.width}x{first.height}")
            if abs(info.fps - first.fps) > 1e-3:
                what.append(f"fps {info.fps:g} vs {first.fps:g}")
            if info.video_codec != first.video_codec:
                what.append(f"codec {info.video_codec} vs {first.video_codec}")
            return f"{path.name} differs from {clips[0].name} ({', '.join(what) or 'codec parameters'})"
    return None


def _temp_output(out: Path) -> Path:
    return out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.tmp{out.suffix or '.mp4'}")


Job = tuple[str, Callable[[CancelToken], None]]  # what it makes, and how (honouring the token)


def _run_jobs(jobs: Sequence[Job], *, workers: int, cancel: CancelToken) -> None:
    """Jobs ``workers`` at a time; when one fails or the stitch is interrupted, the others stop."""
    token = CancelToken(parent=cancel)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            list(pool.map(lambda job: job[1](token), jobs))
        except BaseException:
            token.cancel("the stitch was interrupted")  # stop the other jobs too
            raise


class _Stitch:
    """One stitch: its timeline, the segments ffmpeg encodes for it, its audio."""

    def __init__(
        self,
        clips: list[Path],
        infos: list[MediaInfo],
        out: Path,
        workdir: Path,
        *,
        crossfade: float,
        fade_in: float,
        fade_out: float,
    ) -> None:
        n, first = len(clips), infos[0]
        self.clips, self.infos, self.out, self.workdir = clips, infos, out, workdir
        self.fps = first.fps or 24.0
        self.size = (first.width, first.height)
        self.frames = [max(1, round(_measured(i) * self.fps)) for i in infos]
        self.crossfade = round(crossfade * self.fps) if n > 1 else 0
        overlap = crossfade if n > 1 else 0.0
        # each fade takes at most half of what its clip shows outside a crossfade
        self.fade_in = min(fade_in, (_measured(infos[0]) - overlap) / 2)
        self.fade_out = min(fade_out, (_measured(infos[-1]) - overlap) / 2)
        self.total = sum(self.frames) - (n - 1) * self.crossfade
        self.mismatch = _mismatch_reason(infos, clips)
        self.method: Literal["copy", "reencode", "crossfade"] = "crossfade" if self.crossfade else "copy"
        self.notes: list[str] = []
        if self.crossfade:
            self.notes.append(f"crossfade {crossfade:g} s between {n} clips")
        if self.mismatch:
            self.method = "reencode" if not self.crossfade else self.method
            self.notes.append(f"re-encoded to {first.width}x{first.height} @ {first.fps:g} fps: {self.mismatch}")
        # a segment among copied frames takes the clips' look; re-encoded clips are made square-pixelled
        self.look: dict[str, object] = video_look(clips[0]) if self.mismatch is None else {"sar": "1/1"}
        self.with_audio = all(i.has_audio for i in infos)
        if any(i.has_audio for i in infos) and not self.with_audio:
            self.notes.append("audio dropped: not every clip has an audio track")

    def _cuts(self) -> list[Sequence[int] | None]:
        """Where each clip may be cut (None: nowhere, it is encoded whole); only the clips a fade or a
        crossfade touches are scanned, the others are copied whole."""
        if self.mismatch is not None:
            return [None] * len(self.clips)
        cuts: list[Sequence[int] | None] = []
        for i, clip in enumerate(self.clips):
            touched = self.crossfade or (i == 0 and self.fade_in > 0) or (i == len(self.clips) - 1 and self.fade_out > 0)
            if not touched:
                cuts.append((0, self.frames[i]))
                continue
            scan = scan_video(clip, self.fps)
            cuts.append(scan.cuts if scan.frames == self.frames[i] else None)
        return cuts

    def _segments(self, timeline: list[Copy | Encode], extra: list[Job], *, check: bool) -> dict[int, Path] | None:
        """Encode the timeline's segments (and the ``extra`` jobs); None when ``check`` and the
        segments' video parameters differ from the clips' (clips from another encoder: their frames
        could not sit among copied ones)."""
        jobs: list[Job] = []
        paths: dict[int, Path] = {}
        start = 0
        for k, item in enumerate(timeline):
            if isinstance(item, Encode):
                paths[k] = self.workdir / f"seg_{k:03d}.mp4"
                what = f"stitch {self.out.name}: segment {k + 1} of {len(timeline)}"
                pictures = functools.partial(
                    segment_frames,
                    self.clips,
                    self.frames,
                    item,
                    fps=self.fps,
                    size=self.size,
                    normalize=self.mismatch is not None,
                    fade_in=self.fade_in if start == 0 else 0.0,
                    fade_out=self.fade_out if start + item.count == self.total else 0.0,
                )
                args = segment_args(paths[k], frames=item.count, fps=self.fps, size=self.size, look=self.look)
                log = self.workdir / f"seg_{k:03d}.log"
                jobs.append((what, functools.partial(self._encode, args, pictures, what, log)))
            start += item.count
        w, h = self.size
        _run_jobs(jobs + extra, workers=STITCH_WORKERS if w * h <= STITCH_WORKERS_PIXELS else 1, cancel=self.cancel)
        if check and len(jobs) < len(timeline) and any(probe(p).video_key != self.infos[0].video_key for p in paths.values()):
            return None
        return paths

    @staticmethod
    def _encode(args: list[str], pictures: Callable[[], Iterator[bytes]], what: str, log: Path, cancel: CancelToken) -> None:
        encode_frames(args, pictures(), what=what, log=log, cancel=cancel)

    def _copied_audio(self) -> _Audio | None:
        """The audio by packets, when it can be: no crossfade, the same audio format in every clip."""
        if not self.with_audio or self.crossfade or len({i.audio_key for i in self.infos}) != 1:
            return None
        try:
            starts = [sum(self.frames[:i]) for i in range(len(self.clips))]
            audio = _copied_audio(self.clips, starts, self.total, self.fps)
            if self.fade_in > 0 or self.fade_out > 0:
                total = round(self.total * audio.rate / self.fps)
                audio = _refaded(audio, fade_in=self.fade_in, fade_out=self.fade_out, total=total)
            return audio
        except _NoCopy as exc:
            self.notes.append(f"audio re-encoded: {exc}")
            return None

    def _audio_job(self) -> Job:
        args = audio_job_args(
            list(zip(self.clips, self.frames, strict=True)),
            self.workdir / "audio.m4a",
            fps=self.fps,
            crossfade=self.crossfade,
            fade_in=self.fade_in,
            fade_out=self.fade_out,
        )
        what = f"stitch {self.out.name}: audio"
        return what, lambda cancel: run_ffmpeg(args, what=what, cancel=cancel)

    def _one_graph(self) -> tuple[list[tuple[Path, int, int]], _Audio | None]:
        inputs = [(c, _measured(i), i.has_audio) for c, i in zip(self.clips, self.infos, strict=True)]
        path = self.workdir / "graph.mp4"
        crossfade = self.crossfade / self.fps
        args = crossfade_args(
            inputs, path, crossfade=crossfade, fps=self.fps, size=self.size, fade_in=self.fade_in, fade_out=self.fade_out
        )
        run_ffmpeg(args, what=f"stitch {self.out.name}: crossfade", cancel=self.cancel)
        self.notes[0] += "; one filter graph: a clip is shorter than two crossfades"
        self.total = probe(path).frames or self.total
        return [(path, 0, self.total)], _file_audio(path, self.total, self.fps) if self.with_audio else None

    def run(self, cancel: CancelToken) -> tuple[list[tuple[Path, int, int]], _Audio | None]:
        """The video spans and the audio to write, once every ffmpeg job is done."""
        self.cancel = cancel
        fades = {
            "crossfade": self.crossfade,
            "fade_in": round(self.fade_in * self.fps),
            "fade_out": round(self.fade_out * self.fps),
        }
        timeline = stitch_timeline(self.frames, self._cuts(), **fades)
        if timeline is None:
            return self._one_graph()
        audio = self._copied_audio()
        extra = [self._audio_job()] if audio is None and self.with_audio else []
        segments = self._segments(timeline, extra, check=True)
        if segments is None:  # the clips come from another encoder: every frame is encoded
            self.notes.append(f"re-encoded whole: the clips' video parameters differ from vidpipe's encoder ({VIDEO_CODEC})")
            self.method = "crossfade" if self.crossfade else "reencode"
            timeline = stitch_timeline(self.frames, [None] * len(self.clips), **fades)
            assert timeline is not None
            segments = self._segments(timeline, extra, check=False)
            assert segments is not None
        encoded = sum(item.count for item in timeline if isinstance(item, Encode))
        if 0 < encoded < self.total:
            self.notes.append(f"{encoded / self.fps:.2f} of {self.total / self.fps:.2f} s re-encoded, the rest copied")
        video = [
            (self.clips[item.clip], item.start, item.end) if isinstance(item, Copy) else (segments[k], 0, item.count)
            for k, item in enumerate(timeline)
        ]
        if self.with_audio and audio is None:
            audio = _file_audio(self.workdir / "audio.m4a", self.total, self.fps)
        return video, audio


def stitch(
    clips: Sequence[Path],
    out: Path,
    *,
    crossfade: float = 0.0,
    fade_in: float = 0.0,
    fade_out: float = 0.0,
    cancel: CancelToken = NEVER,
) -> StitchResult:
    """Join clips into ``out``. Clips that share codec parameters are joined by copying their
    packets; only the frames a fade or a crossfade changes are encoded again, each from the clip's
    nearest keyframe. Clips that differ are encoded again to the first one's size and rate.
    ``crossfade`` > 0: xfade/acrossfade between clips. ``fade_in`` / ``fade_out`` > 0: the video
    fades in from / out to black over that many seconds, its audio too. The audio is copied by
    packets, each clip's track cut to its video (within half an AAC frame, never drifting), or
    joined by one audio-only job when it cannot be. ``out`` only ever appears complete and valid;
    the work files live in a hidden folder next to it and are removed in every case."""
    clips, out = [Path(c) for c in clips], Path(out)
    if not clips:
        raise InvalidInput("clips", "nothing to stitch: no clips given")
    if not (crossfade >= 0 and math.isfinite(crossfade)):
        raise InvalidInput("crossfade", f"must be >= 0 seconds, got {crossfade}")
    for name, value in (("fade_in", fade_in), ("fade_out", fade_out)):
        if not (value >= 0 and math.isfinite(value)):
            raise InvalidInput(name, f"must be >= 0 seconds, got {value}")
    infos = [probe(c) for c in clips]
    shortest = min(_measured(i) for i in infos)
    if crossfade > 0 and len(clips) > 1 and crossfade >= shortest:
        raise InvalidInput("crossfade", f"{crossfade:g} s must be shorter than the shortest clip ({shortest:.2f} s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_output(out)
    workdir = tmp.with_suffix(".work")
    workdir.mkdir()
    try:
        plan = _Stitch(clips, infos, out, workdir, crossfade=crossfade, fade_in=fade_in, fade_out=fade_out)
        video, audio = plan.run(cancel)
        _splice(video, audio, tmp, fps=plan.fps, cancel=cancel)
        info = probe(tmp)
        _check_stitched(info, plan.total / plan.fps, fps=plan.fps, name=out.name)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    fields = {k: getattr(info, k) for k in MediaInfo.__dataclass_fields__}
    return StitchResult(**fields, method=plan.method, notes=tuple(plan.notes), clips=tuple(infos))


def _check_stitched(info: MediaInfo, expected_s: float, *, fps: float, name: str) -> None:
    if not info.has_video:
        raise MediaError(f"stitch {name}: the output has no video stream")
    tolerance = max(0.25, 3.0 / (fps or 24))
    if abs(_measured(info) - expected_s) > tolerance:
        raise MediaError(f"stitch {name}: output lasts {_measured(info):.2f} s, expected {expected_s:.2f} s")


# --------------------------------------------------------------------------------------
# Contact sheet
# --------------------------------------------------------------------------------------

SHEET_GAP = 8
SHEET_BACKGROUND = (24, 24, 28)


def _label_height(thumb_width: int) -> int:
    return max(12, thumb_width // 12) + 6


def contact_sheet_size(n: int, *, columns: int, thumb_size: tuple[int, int], labels: bool) -> tuple[int, int]:
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    tw, th = thumb_size
    cell_h = th + (_label_height(tw) if labels else 0)
    return cols * tw + (cols + 1) * SHEET_GAP, rows * cell_h + (rows + 1) * SHEET_GAP


def contact_sheet(pngs: list[bytes], *, columns: int = 4, thumb_width: int = 320, labels: list[str] | None = None) -> bytes:
    """A PNG grid of the images (thumbnails keep the first image's aspect ratio; others are letterboxed)."""
    buf = io.BytesIO()
    contact_sheet_image(pngs, columns=columns, thumb_width=thumb_width, labels=labels).save(buf, format="PNG")
    return buf.getvalue()


def contact_sheet_image(
    pngs: list[bytes], *, columns: int = 4, thumb_width: int = 320, labels: list[str] | None = None
) -> Image.Image:
    """The grid of ``contact_sheet`` as an image (for callers that also want it in another format)."""
    if not pngs:
        raise InvalidInput("pngs", "no images for a contact sheet")
    if columns < 1 or thumb_width < 8:
        raise InvalidInput("columns", f"need columns >= 1 and thumb_width >= 8, got {columns} and {thumb_width}")
    if labels is not None and len(labels) != len(pngs):
        raise InvalidInput("labels", f"{len(labels)} labels for {len(pngs)} images")
    # Each image is shrunk as soon as it is decoded: 17 keyframes of 1080p held at full size were
    # ~100 MB, which the process kept (freed memory is not handed back) for the rest of the run.
    images: list[Image.Image] = []
    thumb = (thumb_width, thumb_width)
    for i, data in enumerate(pngs):
        try:
            with Image.open(io.BytesIO(data)) as im:
                image = im.convert("RGB")
        except Exception as exc:  # Pillow raises several unrelated types for bad input
            raise MediaError(f"contact sheet: image {i} does not decode ({exc})") from exc
        if not images:
            thumb = (thumb_width, max(1, round(thumb_width * image.height / image.width)))
        image.thumbnail(thumb, Image.Resampling.LANCZOS)
        images.append(image)
    sheet = Image.new(
        "RGB", contact_sheet_size(len(images), columns=columns, thumb_size=thumb, labels=labels is not None), SHEET_BACKGROUND
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(10, thumb_width // 12))
    cols = max(1, min(columns, len(images)))
    cell_h = thumb[1] + (_label_height(thumb_width) if labels is not None else 0)
    for i, img in enumerate(images):
        x = SHEET_GAP + (i % cols) * (thumb[0] + SHEET_GAP)
        y = SHEET_GAP + (i // cols) * (cell_h + SHEET_GAP)
        sheet.paste(img, (x + (thumb[0] - img.width) // 2, y + (thumb[1] - img.height) // 2))
        if labels is not None:
            draw.text((x + 2, y + thumb[1] + 3), ellipsize(draw, labels[i], font, thumb[0] - 4), fill=(230, 230, 230), font=font)
    return sheet


def ellipsize(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """``text`` cut with an ellipsis so that it fits in ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if draw.textlength(text[:mid].rstrip() + "…", font=font) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


__all__ = [
    "Blend",
    "ClipInput",
    "Copy",
    "Encode",
    "Frames",
    "MediaInfo",
    "StitchResult",
    "VideoScan",
    "audio_job_args",
    "audio_out_kwargs",
    "check_ffmpeg",
    "contact_sheet",
    "contact_sheet_image",
    "contact_sheet_size",
    "crossfade_args",
    "crossfade_offsets",
    "dimensions",
    "ellipsize",
    "encode_frames",
    "ffmpeg_exe",
    "ffmpeg_number",
    "probe",
    "probe_bytes",
    "probe_file",
    "read_frame",
    "release_freed_memory",
    "run_ffmpeg",
    "scan_video",
    "segment_args",
    "stitch",
    "stitch_timeline",
    "video_look",
    "video_out_kwargs",
]
