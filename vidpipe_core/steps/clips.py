"""Clips step: one video operation per scene, in parallel up to a limit.

The ledger row moves CLAIMED -> SUBMITTED (operation name committed *before* the first poll)
-> DONE / REJECTED / FAILED. A later run finds a SUBMITTED row and re-attaches to the paid
operation instead of submitting again; a DONE row with its file is reused."""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vidpipe_core import media
from vidpipe_core.cost import guard_budget, usage_cost, video_cost
from vidpipe_core.errors import MediaError, ProviderError, SafetyRejected, VidpipeError
from vidpipe_core.models import ClipStatus, VideoClip, utcnow
from vidpipe_core.providers import clip_provider
from vidpipe_core.providers.base import ClipOutcomeKind, ClipProvider, ClipRequest
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.services import Services
from vidpipe_core.steps.keyframes import spent_usd
from vidpipe_core.steps.report import Action, ItemReport, Progress, ProgressEvent, StepReport, no_progress
from vidpipe_core.steps.state import ClipState, ProjectState, resolve_state
from vidpipe_core.storage import Layout, sha256_bytes

log = logging.getLogger("vidpipe.clips")


def default_run_id() -> str:
    return f"pid-{os.getpid()}"


@dataclass
class _Job:
    clip: ClipState
    request: ClipRequest


def make_clips(
    services: Services,
    project_id: str,
    *,
    run_id: str | None = None,
    concurrency: int | None = None,
    progress: Progress = no_progress,
) -> StepReport:
    state = resolve_state(services, project_id)
    missing_frames = [f.index for f in state.frames if not f.done]
    if not state.has_storyboard or missing_frames:
        raise VidpipeError(f"project {project_id!r} is missing keyframes {missing_frames}; materialize keyframes first")
    spec, settings = state.spec, services.settings
    provider = clip_provider(spec.providers.clips, settings)
    model = provider.model_for(spec)
    report = StepReport("clips", provider.name, model)
    run_id = run_id or default_run_id()

    to_pay = [c for c in state.clips if _needs_submission(c)]
    report.projected_usd = video_cost(settings, model, len(to_pay) * spec.clip_duration, spec.generate_audio)
    guard_budget("clips", spent_usd(services, project_id), report.projected_usd, spec.max_cost_usd)

    jobs = [_Job(c, _request(services, state, c)) for c in state.clips]
    total = len(jobs)
    workers = max(1, min(concurrency or settings.clip_concurrency, total))
    done_count = 0

    def run(job: _Job) -> ItemReport:
        nonlocal done_count
        item = _run_scene(services, spec, job, provider, model, run_id, progress)
        done_count += 1
        progress(ProgressEvent("clips", f"scene {job.clip.index} {item.action.value}", scene=job.clip.index, done=done_count, total=total))
        return item

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidpipe-clip") as pool:
        report.items = list(pool.map(run, jobs))

    failed = [i for i in report.items if i.action == Action.FAILED]
    if failed:
        raise ProviderError("clips", "; ".join(f"scene {i.index}: {i.detail}" for i in failed))
    rejected = [i for i in report.items if i.action == Action.REJECTED]
    if rejected and spec.safety_policy != "skip":
        raise SafetyRejected("clips", rejected[0].index, [f"scene {i.index}: {i.detail}" for i in rejected])
    return report


def _needs_submission(c: ClipState) -> bool:
    return c.row is None or c.row.status in (ClipStatus.CLAIMED, ClipStatus.FAILED)


def _request(services: Services, state: ProjectState, c: ClipState) -> ClipRequest:
    spec = state.spec
    start, end = state.frames[c.index].row, state.frames[c.index + 1].row
    assert start and end and start.path and end.path
    return ClipRequest(
        project_id=spec.id, scene_index=c.index, prompt=c.prompt,
        start_png=services.store.read_bytes(spec.id, start.path), end_png=services.store.read_bytes(spec.id, end.path),
        duration_s=spec.clip_duration, aspect_ratio=spec.aspect_ratio, generate_audio=spec.generate_audio,
        negative_prompt=spec.negative_prompt, seed=spec.seed,
    )


def _claim(services: Services, spec: ProjectSpec, c: ClipState, provider: ClipProvider, model: str, run_id: str) -> VideoClip:
    """The scene's ledger row, inserted as CLAIMED when new. The unique key (project, scene,
    fingerprint) makes a concurrent second insert fail instead of paying twice."""
    assert c.fingerprint is not None
    with services.db.session() as s:
        row = s.scalars(select(VideoClip).where(VideoClip.project_id == spec.id, VideoClip.scene_index == c.index,
                                                VideoClip.fingerprint == c.fingerprint)).first()
        if row is None:
            row = VideoClip(project_id=spec.id, scene_index=c.index, fingerprint=c.fingerprint, status=ClipStatus.CLAIMED,
                            provider=provider.name, model=model, claimed_by=run_id, heartbeat_at=utcnow())
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                row = s.scalars(select(VideoClip).where(VideoClip.project_id == spec.id, VideoClip.scene_index == c.index,
                                                        VideoClip.fingerprint == c.fingerprint)).one()
        return row


def _update(services: Services, row_id: int, **fields: object) -> None:
    with services.db.session() as s:
        row = s.get(VideoClip, row_id)
        assert row is not None
        for key, value in fields.items():
            setattr(row, key, value)


def _run_scene(services: Services, spec: ProjectSpec, job: _Job, provider: ClipProvider, model: str, run_id: str,
               progress: Progress) -> ItemReport:
    c, req = job.clip, job.request
    assert c.fingerprint is not None
    row = _claim(services, spec, c, provider, model, run_id)
    relpath = Layout.clip(c.index, c.fingerprint)

    if row.status == ClipStatus.DONE and row.path and services.store.exists(spec.id, row.path):
        return ItemReport(c.index, Action.REUSED, c.fingerprint, duration_s=row.duration_s, path=row.path)
    if row.status == ClipStatus.REJECTED:
        return ItemReport(c.index, Action.REJECTED, c.fingerprint, detail="; ".join(row.safety_reasons or []))

    action = Action.GENERATED
    if row.status == ClipStatus.SUBMITTED and row.operation_name:
        action = Action.REATTACHED
        operation = row.operation_name
        progress(ProgressEvent("clips", f"scene {c.index}: re-attaching to {operation}", scene=c.index))
    else:
        progress(ProgressEvent("clips", f"scene {c.index}: submitting", scene=c.index))
        try:
            operation = provider.submit(req, model)
        except ProviderError as exc:
            _update(services, row.id, status=ClipStatus.FAILED, error=str(exc), attempts=row.attempts + 1)
            return ItemReport(c.index, Action.FAILED, c.fingerprint, detail=str(exc))
        _update(services, row.id, status=ClipStatus.SUBMITTED, operation_name=operation, submitted_at=utcnow(),
                claimed_by=run_id, attempts=row.attempts + 1, prompt_used=req.prompt, error=None)

    def on_poll(line: str) -> None:
        _update(services, row.id, heartbeat_at=utcnow())
        progress(ProgressEvent("clips", f"scene {c.index}: {line}", scene=c.index))

    try:
        outcome = provider.wait(operation, req, model, on_poll)
    except ProviderError as exc:
        # The operation may still finish: keep it SUBMITTED so the next run re-attaches.
        return ItemReport(c.index, Action.FAILED, c.fingerprint, detail=str(exc))

    if outcome.kind == ClipOutcomeKind.REJECTED:
        _update(services, row.id, status=ClipStatus.REJECTED, safety_reasons=outcome.reasons, completed_at=utcnow())
        return ItemReport(c.index, Action.REJECTED, c.fingerprint, detail="; ".join(outcome.reasons) or "no reason given")
    if outcome.kind == ClipOutcomeKind.FAILED or not outcome.video:
        error = outcome.error or "the provider returned no video"
        _update(services, row.id, status=ClipStatus.FAILED, error=error, completed_at=utcnow())
        return ItemReport(c.index, Action.FAILED, c.fingerprint, detail=error)
    try:
        info = media.probe_bytes(outcome.video)
    except MediaError as exc:
        _update(services, row.id, status=ClipStatus.FAILED, error=str(exc), completed_at=utcnow())
        return ItemReport(c.index, Action.FAILED, c.fingerprint, detail=f"the returned video does not decode: {exc}")
    services.store.write_bytes(spec.id, relpath, outcome.video)
    cost = usage_cost(services.settings, model, outcome.usage, audio=spec.generate_audio)
    _update(services, row.id, status=ClipStatus.DONE, path=relpath, sha256=sha256_bytes(outcome.video),
            duration_s=info.duration_s, cost_usd=cost, completed_at=utcnow(), error=None)
    return ItemReport(c.index, action, c.fingerprint, cost_usd=cost, duration_s=info.duration_s, path=relpath)
