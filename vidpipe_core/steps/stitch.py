"""Stitch step: join the current clips into final.mp4 (stream copy, or crossfade re-encode)."""
from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from vidpipe_core import locks, media
from vidpipe_core.errors import VidpipeError
from vidpipe_core.models import ClipStatus
from vidpipe_core.services import Services
from vidpipe_core.steps.report import Progress, ProgressEvent, no_progress
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.storage import Layout


@dataclass
class FinalResult:
    path: str
    uri: str
    info: media.MediaInfo
    expected_duration_s: float
    crossfade: float
    scenes: list[int]
    skipped: dict[int, str] = field(default_factory=dict)   # scene -> safety reason
    audio_expected: bool = False


def make_final(services: Services, project_id: str, *, crossfade: float | None = None, run_id: str | None = None,
               progress: Progress = no_progress) -> FinalResult:
    with locks.project_lock(services, project_id, run_id or f"local-{os.getpid()}", wait_s=services.settings.lock_wait_s):
        return _make_final(services, project_id, crossfade, progress)


def _make_final(services: Services, project_id: str, crossfade: float | None, progress: Progress) -> FinalResult:
    state = resolve_state(services, project_id)
    spec = state.spec
    crossfade = spec.crossfade if crossfade is None else crossfade
    included, skipped, missing = [], {}, []
    for c in state.clips:
        if c.row is not None and c.row.status == ClipStatus.DONE and c.row.path:
            included.append(c)
        elif c.row is not None and c.row.status == ClipStatus.REJECTED and spec.safety_policy == "skip":
            skipped[c.index] = "; ".join(c.row.safety_reasons or []) or "rejected by the safety filter"
        else:
            missing.append(c.index)
    if not state.clips or missing:
        raise VidpipeError(f"project {project_id!r} has no finished clip for scenes {missing or 'all'}; materialize clips first")
    if not included:
        raise VidpipeError(f"project {project_id!r}: every scene was rejected by the safety filter; nothing to stitch")

    progress(ProgressEvent("final_video", f"stitching {len(included)} clips", total=1))
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="vidpipe-stitch-") as tmp:
        paths = [stack.enter_context(services.store.local_copy(project_id, c.row.path)) for c in included]  # type: ignore[union-attr,arg-type]
        durations = [media.probe(p).duration_s for p in paths]
        out = Path(tmp) / "final.mp4"
        info = media.stitch(paths, out, crossfade=crossfade)
        target = services.store.put_file(project_id, Layout.FINAL, out)
    expected = sum(durations) - max(0, len(durations) - 1) * crossfade
    progress(ProgressEvent("final_video", "final video written", done=1, total=1))
    return FinalResult(path=target, uri=services.store.uri(project_id, Layout.FINAL), info=info, expected_duration_s=expected,
                       crossfade=crossfade, scenes=[c.index for c in included], skipped=skipped, audio_expected=spec.generate_audio)
