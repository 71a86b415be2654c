"""The stitch planner: which frames of which clip are copied as packets and which are encoded
again (pure: it reads no file).

A stitch is a timeline of spans. Most are frames of a clip taken as they are: their packets,
never decoded. The rest are segments ffmpeg encodes: the frames a fade or a crossfade changes,
widened to the clip's nearest keyframes so that every copied span starts on one (a clip whose
only keyframe is its first frame is re-encoded whole). PyAV's mp4 muxer then writes the spans
one after the other, re-timed, with the audio: copied packet by packet (each clip's track cut
to its video within half an AAC frame, the fades' own frames re-encoded), or for a crossfade or
clips that differ, joined by one audio-only ffmpeg job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class _Range:
    """Frames [start, end) of clip ``clip``."""

    clip: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Copy(_Range):
    """Frames [start, end) of clip ``clip`` taken as they are: their packets, re-timed."""


@dataclass(frozen=True)
class Frames(_Range):
    """Frames [start, end) of clip ``clip``, decoded for a segment."""


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


def scene_spans(frames: Sequence[int], crossfade: int = 0) -> list[tuple[int, int]]:
    """Where each clip shows in the stitched timeline, [start, end) in frames: a crossfade starts
    the next clip ``crossfade`` frames before the previous one ends (both show during it)."""
    spans, start = [], 0
    c = crossfade if len(frames) > 1 else 0
    for f in frames:
        spans.append((start, start + f))
        start += f - c
    return spans
