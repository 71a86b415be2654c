"""The stitch's ffmpeg command lines, built with ffmpeg-python by pure functions that return the
arguments *after* the program name (unit-tested without running anything): a segment's encoder
(``segment_args``), the audio-only job (``audio_job_args``) and the one filter graph over every
clip (``crossfade_args``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ffmpeg

from vidpipe_core.errors import InvalidInput
from vidpipe_core.media.encoding import AUDIO_RATE, PIX_FMT, _rate, audio_out_kwargs, ffmpeg_number, video_out_kwargs

ClipInput = tuple[Path, float, bool]  # (path, measured duration in seconds, has_audio)
SEGMENT_X264_PARAMS = "rc-lookahead=5"  # a short look-ahead bounds the encoder's memory (frames held)


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
