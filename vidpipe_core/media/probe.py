"""What a media file is, read with PyAV (there is no ffprobe): its streams' facts (``probe``, of
a path or of a file read in place), one decoded frame (``read_frame``), a clip's ends and the
frames showing at a steady rate in one decode (``sample_frames``), where its video may be cut
without decoding (``scan_video``) and the look of its picture (``video_look``)."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Literal

import av
from PIL import Image

from vidpipe_core.errors import InvalidInput, MediaError


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


@dataclass(frozen=True)
class SampledFrames:
    """What one decode of a whole clip gives: its first and last frame, and the frames showing at
    0, 1/rate, 2/rate ... seconds (as ffmpeg's fps filter picks them: the nearest frame)."""

    first: Image.Image
    last: Image.Image
    samples: tuple[Image.Image, ...]


def _scaled(frame: av.VideoFrame, width: int, height: int) -> Image.Image:
    if (frame.width, frame.height) == (width, height):
        return frame.to_image().convert("RGB")
    return frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_image()


def _fit(frame: av.VideoFrame, longest: int) -> tuple[int, int]:
    """The longest side to at most ``longest`` pixels, the other even (ffmpeg's ``scale=N:-2``)."""
    w, h = frame.width, frame.height
    if max(w, h) <= longest:
        return w, h
    if w >= h:
        return longest, max(2, round(h * longest / w / 2) * 2)
    return max(2, round(w * longest / h / 2) * 2), longest


def sample_frames(source: IO[bytes], rate: float, *, name: str, longest: int, end_width: int) -> SampledFrames:
    """Decode ``source`` (a clip, a seekable binary file) once: its first and last frame at most
    ``end_width`` wide, and one frame every 1/``rate`` s, the longest side ``longest`` pixels."""
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.video:
                raise MediaError("no video stream")
            stream = container.streams.video[0]
            step = 1.0 / rate
            samples: list[Image.Image] = []
            first = prev = None
            prev_t = 0.0
            size = (0, 0)
            for frame in container.decode(stream):
                t = float(frame.time or 0.0)
                if first is None:
                    first, size = frame, _fit(frame, longest)
                while len(samples) * step <= t + 1e-9:  # the target lies between the previous frame and this one
                    target = len(samples) * step
                    pick = prev if prev is not None and target - prev_t < t - target else frame
                    samples.append(_scaled(pick, *size))
                prev, prev_t = frame, t
            if first is None or prev is None:
                raise MediaError("no decodable video frame")
            end = prev_t + 1.0 / float(stream.average_rate or 24)
            while len(samples) * step < end - 1e-9:
                samples.append(_scaled(prev, *size))
            ends = [(f, max(2, round(f.height * end_width / f.width))) for f in (first, prev)]
            first_img, last_img = (
                _scaled(f, end_width, h) if f.width > end_width else f.to_image().convert("RGB") for f, h in ends
            )
            return SampledFrames(first_img, last_img, tuple(samples))
    except (av.FFmpegError, MediaError, OSError, ValueError) as exc:
        raise MediaError(f"{name}: cannot decode its frames ({exc})") from exc


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
