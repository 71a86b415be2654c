"""Keyframes step: N+1 frames in order (each conditioned on the one before: continuity).
Frames whose fingerprint is already stored are reused, never rendered again."""
from __future__ import annotations

import io
import os

from PIL import Image
from sqlalchemy import select

from vidpipe_core import locks
from vidpipe_core.cost import guard_budget, image_cost, usage_cost
from vidpipe_core.errors import VidpipeError
from vidpipe_core.models import Keyframe, KeyframeStatus, VideoClip
from vidpipe_core.providers import keyframe_provider
from vidpipe_core.providers.base import KeyframeRequest
from vidpipe_core.services import Services
from vidpipe_core.steps.report import Action, ItemReport, Progress, ProgressEvent, StepReport, no_progress
from vidpipe_core.steps.state import frame_caption, resolve_state
from vidpipe_core.storage import Layout, sha256_bytes


def spent_usd(services: Services, project_id: str) -> float:
    """What the project's keyframes and clips have cost so far (the ledger)."""
    with services.db.session() as s:
        frames = sum(r.cost_usd for r in s.scalars(select(Keyframe).where(Keyframe.project_id == project_id)))
        clips = sum(r.cost_usd for r in s.scalars(select(VideoClip).where(VideoClip.project_id == project_id)))
    return frames + clips


def make_keyframes(services: Services, project_id: str, *, run_id: str | None = None,
                   progress: Progress = no_progress) -> StepReport:
    run_id = run_id or f"local-{os.getpid()}"
    with locks.project_lock(services, project_id, run_id, wait_s=services.settings.lock_wait_s) as holder:
        return _make_keyframes(services, project_id, holder, progress)


def _make_keyframes(services: Services, project_id: str, holder: locks.Holder, progress: Progress) -> StepReport:
    state = resolve_state(services, project_id)
    if not state.has_storyboard or state.style is None:
        raise VidpipeError(f"project {project_id!r} has no storyboard yet; materialize the storyboard first")
    spec, settings = state.spec, services.settings
    provider = keyframe_provider(spec.providers.keyframes, settings)
    model = provider.model_for(spec)
    report = StepReport("keyframes", provider.name, model)

    missing = sum(1 for f in state.frames if not f.done)
    report.projected_usd = image_cost(settings, model, missing)
    guard_budget("keyframes", spent_usd(services, project_id), report.projected_usd, spec.max_cost_usd)

    total = len(state.frames)
    reference: bytes | None = None
    for k in range(total):
        if k > 0:
            # Fingerprints chain on the previous frame's bytes; resolve again after each render.
            state = resolve_state(services, project_id) if not state.frames[k].fingerprint else state
        frame = state.frames[k]
        assert frame.fingerprint is not None
        if frame.done and frame.row is not None and frame.row.path and services.store.exists(project_id, frame.row.path):
            reference = services.store.read_bytes(project_id, frame.row.path)
            report.items.append(ItemReport(k, Action.REUSED, frame.fingerprint, path=frame.row.path))
            progress(ProgressEvent("keyframes", f"frame {k} reused", scene=k, done=k + 1, total=total))
            continue
        locks.heartbeat(services, project_id, holder)
        progress(ProgressEvent("keyframes", f"rendering frame {k}", scene=k, done=k, total=total))
        request = KeyframeRequest(project_id=project_id, frame_index=k, prompt=frame.prompt,
                                  caption=frame_caption(state.scenes, k), style=state.style,
                                  aspect_ratio=spec.aspect_ratio, reference_png=reference)
        png, usage = provider.render(request)
        with Image.open(io.BytesIO(png)) as im:
            im.load()
            width, height = im.size
        relpath = Layout.keyframe(k, frame.fingerprint)
        services.store.write_bytes(project_id, relpath, png)
        cost = usage_cost(settings, model, usage)
        _record(services, project_id, k, frame.fingerprint, provider.name, model, relpath, sha256_bytes(png), width, height, cost)
        reference = png
        report.items.append(ItemReport(k, Action.GENERATED, frame.fingerprint, cost_usd=cost, path=relpath))
        progress(ProgressEvent("keyframes", f"frame {k} rendered", scene=k, done=k + 1, total=total))
        state = resolve_state(services, project_id)
    return report


def _record(services: Services, project_id: str, k: int, fp: str, provider: str, model: str, relpath: str,
            sha: str, width: int, height: int, cost: float) -> None:
    """Record a stored frame as done (the bytes are already in place)."""
    with services.db.session() as s:
        row = s.scalars(select(Keyframe).where(Keyframe.project_id == project_id, Keyframe.frame_index == k,
                                               Keyframe.fingerprint == fp)).first()
        if row is None:
            row = Keyframe(project_id=project_id, frame_index=k, fingerprint=fp, provider=provider, model=model)
            s.add(row)
        row.status, row.path, row.sha256, row.width, row.height = KeyframeStatus.DONE, relpath, sha, width, height
        row.cost_usd = (row.cost_usd or 0.0) + cost
        row.error = None
