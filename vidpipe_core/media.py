"""The one ffmpeg wrapper and prober of vidpipe.

ffmpeg command lines are built with ffmpeg-python by pure functions (``*_args``) that return
the arguments *after* the program name, so they can be unit-tested without running anything;
``run_ffmpeg`` prepends the binary from imageio-ffmpeg (``IMAGEIO_FFMPEG_EXE`` wins) and runs
it with stderr captured. Probing and decoding use PyAV; there is no ffprobe.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import ffmpeg
import imageio_ffmpeg
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
AUDIO_CODEC = "aac"
AUDIO_RATE = 48000
AUDIO_BITRATE = "128k"
THREADS = 2
FFMPEG_TIMEOUT_S = 900.0
STITCH_WORKERS = 2  # ffmpeg jobs at once for a segmented crossfade (memory: two processes)

_GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")
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
    copy_key: str = ""  # equal keys => streams can be joined by stream copy

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


def _copy_key(vs: av.video.stream.VideoStream | None, as_: av.audio.stream.AudioStream | None) -> str:
    parts: list[bytes] = []
    if vs is not None:
        cc = vs.codec_context
        parts += [
            str(
                (
                    cc.name,
                    cc.profile,
                    cc.width,
                    cc.height,
                    str(cc.format.name if cc.format else None),
                    str(vs.average_rate),
                    str(vs.time_base),
                )
            ).encode(),
            bytes(cc.extradata or b""),
        ]
    if as_ is not None:
        ac = as_.codec_context
        parts += [str((ac.name, ac.profile, ac.sample_rate, ac.layout.nb_channels)).encode(), bytes(ac.extradata or b"")]
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()[:16]


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
        copy_key=_copy_key(vs, as_),
    )


def probe(path: str | Path) -> MediaInfo:
    """Stream facts of a media file; MediaError naming the file when it does not decode."""
    path = Path(path)
    try:
        with av.open(str(path), mode="r") as container:
            return _probe_container(container, path.stat().st_size)
    except (av.FFmpegError, MediaError, OSError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable media file ({exc})") from exc


def probe_bytes(data: bytes, *, name: str = "<bytes>") -> MediaInfo:
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            return _probe_container(container, len(data))
    except (av.FFmpegError, MediaError, OSError, ValueError) as exc:
        raise MediaError(f"{name}: not a readable media file ({exc})") from exc


def read_frame(path: str | Path, at: float | Literal["first", "last"]) -> Image.Image:
    """One decoded RGB frame: the first, the last, or the one showing at ``at`` seconds."""
    path = Path(path)
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise MediaError("no video stream")
            stream = container.streams.video[0]
            frame = _pick_frame(container, stream, at)
            return frame.to_image().convert("RGB")
    except (av.FFmpegError, MediaError, OSError, ValueError) as exc:
        raise MediaError(f"{path}: cannot decode a frame at {at!r} ({exc})") from exc


def _pick_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, at: float | Literal["first", "last"]
) -> av.VideoFrame:
    if at == "first":
        for frame in container.decode(stream):
            return frame
        raise MediaError("no decodable video frame")
    if at == "last":
        last = None
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

ClipInput = tuple[Path, float, bool]  # (path, measured duration in seconds, has_audio)


def _concat_list_line(path: Path) -> str:
    escaped = str(Path(path).resolve()).replace("'", "'\\''")
    return f"file '{escaped}'\n"


def concat_args(list_file: Path, out: Path) -> list[str]:
    """Concat demuxer, stream copy: no re-encode, bounded by disk speed."""
    return (
        ffmpeg.input(str(list_file), f="concat", safe=0)
        .output(str(out), c="copy", movflags="+faststart", f="mp4")
        .overwrite_output()
        .get_args()
    )


def concat_with_audio_jobs(
    inputs: Sequence[ClipInput], list_file: Path, audio_file: Path, out: Path, *, fps: float
) -> list[tuple[str, list[str]]]:
    """Join clips whose video streams can be copied: one job re-encodes the joined audio (each clip's
    track padded or cut to its video's length), the last muxes the copied video with it."""
    parts = _normalized_inputs(inputs, fps=fps, size=(2, 2), with_audio=True)
    tracks = [a for _, a in parts if a is not None]
    audio = ffmpeg.concat(*tracks, v=0, a=1) if len(tracks) > 1 else tracks[0]
    audio_job = ffmpeg.output(audio, str(audio_file), vn=None, f="mp4", **audio_out_kwargs()).overwrite_output().get_args()
    video = ffmpeg.input(str(list_file), f="concat", safe=0).video
    muxed = ffmpeg.output(video, ffmpeg.input(str(audio_file)).audio, str(out), c="copy", movflags="+faststart", f="mp4")
    return [("join audio", audio_job), ("concat", muxed.overwrite_output().get_args())]


def crossfade_offsets(durations: Sequence[float], crossfade: float) -> list[float]:
    """xfade offsets: offset_i = sum(d_0..d_i) - (i+1)*crossfade, for i in 0..n-2."""
    offsets, total = [], 0.0
    for i, d in enumerate(durations[:-1]):
        total += d
        offsets.append(round(total - (i + 1) * crossfade, 6))
    return offsets


def _normalized_inputs(
    inputs: Sequence[ClipInput], *, fps: float, size: tuple[int, int], with_audio: bool
) -> list[tuple[ffmpeg.nodes.FilterableStream, ffmpeg.nodes.FilterableStream | None]]:
    """Each input scaled/padded to ``size`` at ``fps`` in yuv420p; audio resampled and padded/cut
    to the clip's measured video duration so A/V stay in sync after joining."""
    w, h = size
    out = []
    for path, duration, _ in inputs:
        src = ffmpeg.input(str(path))
        v = (
            src.video.filter("scale", w, h, force_original_aspect_ratio="decrease")
            .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2")
            .filter("setsar", 1)
            .filter("fps", _rate(fps))
            .filter("format", PIX_FMT)
        )
        a = None
        if with_audio:
            a = (
                src.audio.filter("aformat", sample_fmts="fltp", sample_rates=AUDIO_RATE, channel_layouts="stereo")
                .filter("apad")
                .filter("atrim", duration=ffmpeg_number(duration))
                .filter("asetpts", "PTS-STARTPTS")
            )
        out.append((v, a))
    return out


def _acrossfade_chain(tracks: Sequence[ffmpeg.nodes.FilterableStream], crossfade: float) -> ffmpeg.nodes.FilterableStream:
    audio = tracks[0]
    for a in tracks[1:]:
        audio = ffmpeg.filter([audio, a], "acrossfade", d=ffmpeg_number(crossfade), c1="tri", c2="tri")
    return audio


def _encode(streams: list[ffmpeg.nodes.FilterableStream], out: Path, *, fps: float, with_audio: bool) -> list[str]:
    kwargs = {**video_out_kwargs(fps), "f": "mp4"}
    if with_audio:
        kwargs.update(audio_out_kwargs())
    return ffmpeg.output(*streams, str(out), **kwargs).overwrite_output().get_args()


def reencode_concat_args(inputs: Sequence[ClipInput], out: Path, *, fps: float, size: tuple[int, int]) -> list[str]:
    """Join clips that cannot be stream-copied: normalise each, then the concat filter."""
    with_audio = all(has_audio for _, _, has_audio in inputs)
    parts = _normalized_inputs(inputs, fps=fps, size=size, with_audio=with_audio)
    flat = [s for v, a in parts for s in ((v, a) if with_audio else (v,))]
    joined = ffmpeg.concat(*flat, v=1, a=1 if with_audio else 0).node
    streams = [joined[0]] + ([joined[1]] if with_audio else [])
    return _encode(streams, out, fps=fps, with_audio=with_audio)


def crossfade_args(inputs: Sequence[ClipInput], out: Path, *, crossfade: float, fps: float, size: tuple[int, int]) -> list[str]:
    """xfade chain for video and acrossfade chain for audio (only when every input has audio).

    Offsets come from the *measured* durations in ``inputs``; the output lasts
    sum(d) - (n-1)*crossfade."""
    if crossfade <= 0:
        raise InvalidInput("crossfade", f"must be > 0 for a crossfade, got {crossfade}")
    with_audio = all(has_audio for _, _, has_audio in inputs)
    parts = _normalized_inputs(inputs, fps=fps, size=size, with_audio=with_audio)
    offsets = crossfade_offsets([d for _, d, _ in inputs], crossfade)
    video = parts[0][0]
    for (v, _), offset in zip(parts[1:], offsets, strict=True):
        video = ffmpeg.filter(
            [video, v], "xfade", transition="fade", duration=ffmpeg_number(crossfade), offset=ffmpeg_number(offset)
        )
    streams = [video]
    if with_audio:
        streams.append(_acrossfade_chain([a for _, a in parts], crossfade))
    return _encode(streams, out, fps=fps, with_audio=with_audio)


@dataclass(frozen=True)
class CrossfadeSegments:
    """A crossfade as small ffmpeg jobs: each clip's body and each transition (two clips' ends)
    encoded apart, the audio in one audio-only job, then a stream-copy mux of all of them.
    ffmpeg holds at most two decoded inputs at a time, whatever the number of clips (the single
    xfade graph of ``crossfade_args`` holds every input: ~200 MiB each at 1080p)."""

    jobs: list[tuple[str, list[str]]]  # (what, args), to run in order
    concat_list: str  # text of the concat demuxer list of the video segments
    list_file: Path
    expected_frames: int
    fps: float

    @property
    def expected_s(self) -> float:
        return self.expected_frames / self.fps


def crossfade_segment_plan(
    inputs: Sequence[ClipInput], out: Path, *, crossfade: float, fps: float, size: tuple[int, int], workdir: Path
) -> CrossfadeSegments | None:
    """Plan a crossfade as segments in ``workdir`` (frames counted at ``fps``), or None when a
    clip is too short for its fades not to overlap (fade-in and fade-out of one clip need two
    crossfades of length), in which case only the single xfade graph expresses it."""
    if crossfade <= 0:
        raise InvalidInput("crossfade", f"must be > 0 for a crossfade, got {crossfade}")
    n = len(inputs)
    c = round(crossfade * fps)
    frames = [round(d * fps) for _, d, _ in inputs]
    if n < 2 or c < 1 or any(f < c * (1 if i in (0, n - 1) else 2) for i, f in enumerate(frames)):
        return None
    with_audio = all(has_audio for _, _, has_audio in inputs)
    fade_s = c / fps

    def video(i: int) -> ffmpeg.nodes.FilterableStream:
        return _normalized_inputs([inputs[i]], fps=fps, size=size, with_audio=False)[0][0]

    def cut(v: ffmpeg.nodes.FilterableStream, start: int, end: int) -> ffmpeg.nodes.FilterableStream:
        return v.filter("trim", start_frame=start, end_frame=end).filter("setpts", "PTS-STARTPTS")

    jobs: list[tuple[str, list[str]]] = []
    segments: list[Path] = []

    def add(what: str, stream: ffmpeg.nodes.FilterableStream) -> None:
        seg = workdir / f"seg_{len(segments):03d}.mp4"
        segments.append(seg)
        jobs.append((what, _encode([stream], seg, fps=fps, with_audio=False)))

    for i in range(n):
        start, end = (0 if i == 0 else c), frames[i] - (0 if i == n - 1 else c)
        if end > start:
            add(f"clip {i + 1} body", cut(video(i), start, end))
        if i < n - 1:
            fade = ffmpeg.filter(
                [cut(video(i), frames[i] - c, frames[i]), cut(video(i + 1), 0, c)],
                "xfade",
                transition="fade",
                duration=ffmpeg_number(fade_s),
                offset=0,
            )
            add(f"crossfade {i + 1}->{i + 2}", fade)
    expected_frames = sum(frames) - (n - 1) * c
    list_file = workdir / "segments.txt"
    concat = ffmpeg.input(str(list_file), f="concat", safe=0).video
    if with_audio:
        # Audio is small: one job joins all of it, trimmed to each clip's frames so A/V stay aligned.
        framed = [(path, f / fps, True) for (path, _, _), f in zip(inputs, frames, strict=True)]
        audio = _acrossfade_chain([a for _, a in _normalized_inputs(framed, fps=fps, size=size, with_audio=True)], fade_s)
        audio_file = workdir / "audio.m4a"
        jobs.append(
            (
                "crossfade audio",
                ffmpeg.output(audio, str(audio_file), vn=None, f="mp4", **audio_out_kwargs()).overwrite_output().get_args(),
            )
        )
        muxed = ffmpeg.output(concat, ffmpeg.input(str(audio_file)).audio, str(out), c="copy", movflags="+faststart", f="mp4")
    else:
        muxed = ffmpeg.output(concat, str(out), c="copy", movflags="+faststart", f="mp4")
    jobs.append(("join segments", muxed.overwrite_output().get_args()))
    return CrossfadeSegments(jobs, "".join(_concat_list_line(p) for p in segments), list_file, expected_frames, fps)


def _measured(info: MediaInfo) -> float:
    return info.video_duration_s or info.duration_s


def _mismatch_reason(infos: Sequence[MediaInfo], clips: Sequence[Path]) -> str | None:
    """Why the clips cannot be joined by stream copy, or None when they can."""
    first = infos[0]
    for path, info in zip(clips, infos, strict=True):
        if not info.has_video:
            return f"{path.name} has no video stream"
        if info.copy_key != first.copy_key:
            what = []
            if (info.width, info.height) != (first.width, first.height):
                what.append(f"size {info.width}x{info.height} vs {first.width}x{first.height}")
            if abs(info.fps - first.fps) > 1e-3:
                what.append(f"fps {info.fps:g} vs {first.fps:g}")
            if info.video_codec != first.video_codec:
                what.append(f"codec {info.video_codec} vs {first.video_codec}")
            if info.has_audio != first.has_audio or info.audio_codec != first.audio_codec:
                what.append(f"audio {info.audio_codec} vs {first.audio_codec}")
            return f"{path.name} differs from {clips[0].name} ({', '.join(what) or 'codec parameters'})"
    return None


def _temp_output(out: Path) -> Path:
    return out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.tmp{out.suffix or '.mp4'}")


@dataclass(frozen=True)
class _StitchPlan:
    method: Literal["copy", "reencode", "crossfade"]
    jobs: list[tuple[str, list[str]]]  # ffmpeg runs, in order; the last one writes the output
    expected_s: float
    notes: tuple[str, ...]


def _plan_stitch(clips: list[Path], infos: list[MediaInfo], tmp: Path, workdir: Path, crossfade: float) -> _StitchPlan:
    """Choose how to join: crossfade re-encode, stream copy, or re-encode to the first clip's format."""
    first = infos[0]
    inputs = [(c, _measured(i), i.has_audio) for c, i in zip(clips, infos, strict=True)]
    total = sum(d for _, d, _ in inputs)
    silent = (
        ("audio dropped: not every clip has an audio track",)
        if any(i.has_audio for i in infos) and not all(i.has_audio for i in infos)
        else ()
    )
    size = (first.width, first.height)
    if crossfade > 0 and len(clips) > 1:
        note = f"crossfade {crossfade:g} s between {len(clips)} clips (re-encoded)"
        segmented = crossfade_segment_plan(inputs, tmp, crossfade=crossfade, fps=first.fps, size=size, workdir=workdir)
        if segmented is not None:
            segmented.list_file.write_text(segmented.concat_list, encoding="utf-8")
            return _StitchPlan("crossfade", segmented.jobs, segmented.expected_s, (note, *silent))
        args = crossfade_args(inputs, tmp, crossfade=crossfade, fps=first.fps, size=size)
        return _StitchPlan(
            "crossfade",
            [("crossfade", args)],
            total - (len(clips) - 1) * crossfade,
            (note + "; one filter graph: a clip is shorter than two crossfades", *silent),
        )
    mismatch = _mismatch_reason(infos, clips)
    if mismatch is None:
        list_file = workdir / "clips.txt"
        list_file.write_text("".join(_concat_list_line(c) for c in clips), encoding="utf-8")
        if not all(i.has_audio for i in infos):
            return _StitchPlan("copy", [("concat", concat_args(list_file, tmp))], total, ())
        # Video by stream copy; the audio joined in one small audio-only job, each clip's track cut to
        # its video's length: copied AAC tracks would each bring their encoder priming and last
        # partial frame (~24 ms a clip), so the audio would outlast the video and drift from it.
        audio_file = workdir / "audio.m4a"
        return _StitchPlan("copy", concat_with_audio_jobs(inputs, list_file, audio_file, tmp, fps=first.fps), total, ())
    args = reencode_concat_args(inputs, tmp, fps=first.fps, size=size)
    return _StitchPlan(
        "reencode",
        [("re-encode", args)],
        total,
        (f"re-encoded to {first.width}x{first.height} @ {first.fps:g} fps: {mismatch}", *silent),
    )


def fade_args(clip: Path, info: MediaInfo, out: Path, *, fade_in: float, fade_out: float) -> list[str]:
    """Re-encode one clip (same encoder settings, so it still joins by stream copy) fading in from
    black over its first ``fade_in`` seconds and out to black over its last ``fade_out``: its first
    frame is black (fade in) and its last frame is black (fade out). The audio fades with it and is
    padded or cut to the video's length."""
    seconds = _measured(info)
    frame_s = 1.0 / (info.fps or 24)
    src = ffmpeg.input(str(clip))
    video = src.video
    if fade_in > 0:
        video = video.filter("fade", t="in", st=0, d=ffmpeg_number(fade_in))
    if fade_out > 0:  # fully black from the last frame's timestamp on
        video = video.filter("fade", t="out", st=ffmpeg_number(max(0.0, seconds - frame_s - fade_out)), d=ffmpeg_number(fade_out))
    streams = [video.filter("format", PIX_FMT)]
    kwargs = {**video_out_kwargs(info.fps), "f": "mp4"}
    if info.has_audio:
        audio = (
            src.audio.filter("aformat", sample_fmts="fltp", sample_rates=AUDIO_RATE, channel_layouts="stereo")
            .filter("apad")
            .filter("atrim", duration=ffmpeg_number(seconds))
            .filter("asetpts", "PTS-STARTPTS")
        )
        if fade_in > 0:
            audio = audio.filter("afade", t="in", st=0, d=ffmpeg_number(fade_in))
        if fade_out > 0:
            audio = audio.filter("afade", t="out", st=ffmpeg_number(max(0.0, seconds - fade_out)), d=ffmpeg_number(fade_out))
        streams.append(audio)
        kwargs.update(audio_out_kwargs())
    kwargs["frames:v"] = info.frames or round(seconds * (info.fps or 24))
    return ffmpeg.output(*streams, str(out), **kwargs).overwrite_output().get_args()


def _faded(
    clips: list[Path],
    infos: list[MediaInfo],
    workdir: Path,
    *,
    fade_in: float,
    fade_out: float,
    crossfade: float,
    cancel: CancelToken,
) -> tuple[list[Path], list[MediaInfo]]:
    """The clips with the first one faded in and the last one faded out (each fade at most half of
    what the clip shows outside a crossfade); only those one or two clips are re-encoded."""
    clips, infos = list(clips), list(infos)
    ends = {0: (fade_in, 0.0)} if len(clips) > 1 else {0: (fade_in, fade_out)}
    if len(clips) > 1:
        ends[len(clips) - 1] = (0.0, fade_out)
    for i, (fin, fout) in ends.items():
        room = _measured(infos[i]) - (crossfade if len(clips) > 1 else 0.0)
        fin, fout = min(fin, room / 2), min(fout, room / 2)
        if fin <= 0 and fout <= 0:
            continue
        faded = workdir / f"faded_{i:03d}.mp4"
        run_ffmpeg(fade_args(clips[i], infos[i], faded, fade_in=fin, fade_out=fout), what=f"fade {clips[i].name}", cancel=cancel)
        clips[i], infos[i] = faded, probe(faded)
    return clips, infos


def stitch(
    clips: Sequence[Path],
    out: Path,
    *,
    crossfade: float = 0.0,
    fade_in: float = 0.0,
    fade_out: float = 0.0,
    cancel: CancelToken = NEVER,
) -> StitchResult:
    """Join clips into ``out``: stream copy when they share codec parameters, else a re-encode;
    crossfade > 0 re-encodes with xfade/acrossfade. ``fade_in`` / ``fade_out`` > 0: the video
    fades in from / out to black over that many seconds, its audio too (only the first and last
    clips are re-encoded for it). ``out`` only ever appears complete and valid; the work files
    live in a hidden folder next to it and are removed in every case."""
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
        if fade_in > 0 or fade_out > 0:
            clips, infos = _faded(clips, infos, workdir, fade_in=fade_in, fade_out=fade_out, crossfade=crossfade, cancel=cancel)
        plan = _plan_stitch(clips, infos, tmp, workdir, crossfade)
        *parts, (last_what, last_args) = plan.jobs
        # The parts are independent (segments of a crossfade); two at a time keeps both cores busy
        # through each ffmpeg's start-up and short encodes, and bounds memory at two processes.
        jobs_token = CancelToken(parent=cancel)
        with ThreadPoolExecutor(max_workers=STITCH_WORKERS) as pool:
            try:
                list(pool.map(lambda job: run_ffmpeg(job[1], what=f"stitch {out.name}: {job[0]}", cancel=jobs_token), parts))
            except BaseException:
                jobs_token.cancel("the stitch was interrupted")  # stop the other ffmpeg job too
                raise
        run_ffmpeg(last_args, what=f"stitch {out.name}: {last_what}", cancel=cancel)
        info = probe(tmp)
        _check_stitched(info, plan.expected_s, fps=infos[0].fps, name=out.name)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    fields = {k: getattr(info, k) for k in MediaInfo.__dataclass_fields__}
    return StitchResult(**fields, method=plan.method, notes=plan.notes)


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
    images = []
    for i, data in enumerate(pngs):
        try:
            images.append(Image.open(io.BytesIO(data)).convert("RGB"))
        except Exception as exc:  # Pillow raises several unrelated types for bad input
            raise MediaError(f"contact sheet: image {i} does not decode ({exc})") from exc
    w0, h0 = images[0].size
    thumb = (thumb_width, max(1, round(thumb_width * h0 / w0)))
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
        fitted = img.copy()
        fitted.thumbnail(thumb, Image.Resampling.LANCZOS)
        sheet.paste(fitted, (x + (thumb[0] - fitted.width) // 2, y + (thumb[1] - fitted.height) // 2))
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
    "ClipInput",
    "MediaInfo",
    "StitchResult",
    "audio_out_kwargs",
    "check_ffmpeg",
    "concat_args",
    "contact_sheet",
    "contact_sheet_image",
    "contact_sheet_size",
    "crossfade_args",
    "crossfade_offsets",
    "dimensions",
    "ellipsize",
    "ffmpeg_exe",
    "ffmpeg_number",
    "probe",
    "probe_bytes",
    "read_frame",
    "reencode_concat_args",
    "run_ffmpeg",
    "stitch",
    "video_out_kwargs",
]
