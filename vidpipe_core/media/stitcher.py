"""The stitch: clips probed, the timeline planned (``plan``), the segments and the audio job run
by ffmpeg a few at a time, the spans written (``mux``) into a hidden file that replaces the
output only when it is complete and checked."""

from __future__ import annotations

import functools
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import InvalidInput, MediaError
from vidpipe_core.media.audio import _Audio, _copied_audio, _file_audio, _NoCopy, _refaded
from vidpipe_core.media.commands import audio_job_args, crossfade_args, segment_args
from vidpipe_core.media.encoding import VIDEO_CODEC
from vidpipe_core.media.frames import segment_frames
from vidpipe_core.media.mux import _splice
from vidpipe_core.media.plan import Copy, Encode, scene_spans, stitch_timeline
from vidpipe_core.media.probe import MediaInfo, probe, scan_video, video_look
from vidpipe_core.media.runner import encode_frames, run_ffmpeg

STITCH_WORKERS = 2  # segments encoded at once (both cores busy through each encoder's start-up)
STITCH_WORKERS_PIXELS = 1280 * 720  # larger frames: one at a time (memory: x264 holds ~160 MiB at 1080p)


@dataclass(frozen=True)
class StitchResult(MediaInfo):
    """A MediaInfo of the stitched file plus how it was made."""

    method: Literal["copy", "reencode", "crossfade"] = "copy"
    notes: tuple[str, ...] = ()
    clips: tuple[MediaInfo, ...] = ()  # what each input was found to be (no need to probe them again)
    spans: tuple[tuple[float, float], ...] = ()  # where each clip shows in the output, [start, end) seconds


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
    spans = tuple((a / plan.fps, b / plan.fps) for a, b in scene_spans(plan.frames, plan.crossfade))
    return StitchResult(**fields, method=plan.method, notes=tuple(plan.notes), clips=tuple(infos), spans=spans)


def _check_stitched(info: MediaInfo, expected_s: float, *, fps: float, name: str) -> None:
    if not info.has_video:
        raise MediaError(f"stitch {name}: the output has no video stream")
    tolerance = max(0.25, 3.0 / (fps or 24))
    if abs(_measured(info) - expected_s) > tolerance:
        raise MediaError(f"stitch {name}: output lasts {_measured(info):.2f} s, expected {expected_s:.2f} s")
