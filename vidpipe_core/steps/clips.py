"""Clips step: one video operation per scene, in parallel up to a limit.

The ledger row moves CLAIMED -> SUBMITTED (operation name committed *before* the first poll)
-> DONE / REJECTED / FAILED. A later run finds a SUBMITTED row and re-attaches to the paid
operation instead of submitting again; a DONE row with its file is reused. A run holds the
project lock for the whole step, and each live operation holds a slot of the global limiter
and one of the step's ``concurrency`` threads from submission until its video is downloaded;
the video is then checked, saved and recorded on another thread, while its thread submits the
next scene."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vidpipe_core import media
from vidpipe_core.approvals import AwaitingApproval, gate
from vidpipe_core.cancel import CancelToken
from vidpipe_core.cost import guard_budget, usage_cost, video_cost
from vidpipe_core.errors import MediaError, ProviderError, SafetyRejected, VidpipeError
from vidpipe_core.integrity import Damage, DamagedArtifacts, read_checked
from vidpipe_core.models import ClipStatus, VideoClip, utcnow
from vidpipe_core.polling import observed_columns, poll_schedule
from vidpipe_core.providers import clip_provider
from vidpipe_core.providers.base import ClipOutcome, ClipOutcomeKind, ClipProvider, ClipRequest, NoLimit, SlotLimiter
from vidpipe_core.scenes import check_scene_indices, frame_label, scene_label
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.services import Services
from vidpipe_core.steps import CLIPS
from vidpipe_core.steps.frame_feed import FrameFeed
from vidpipe_core.steps.locking import default_run_id, step_lock
from vidpipe_core.steps.report import Action, ItemReport, Progress, ProgressEvent, StepReport, no_progress
from vidpipe_core.steps.state import ClipState, ProjectState, damaged_clips, resolve_state, resubmits_rejected, spent_usd
from vidpipe_core.storage import Layout, sha256_bytes

log = logging.getLogger("vidpipe.clips")

SAFE_PREFIX = "A gentle, family-friendly rendition suitable for all audiences. "


def rephrase_for_safety(prompt: str, reasons: list[str], attempt: int) -> str:
    """A deterministic, more conservative prompt: drop words the provider quoted in its reasons,
    drop the scene/style context after the first attempt, and ask for a gentle rendition."""
    quoted = {w.lower() for r in reasons for w in re.findall(r"['\"]([^'\"]{2,40})['\"]", r)}
    text = prompt if attempt <= 1 else prompt.split("\n\n", 1)[0]
    for word in quoted:
        text = re.sub(re.escape(word), "", text, flags=re.IGNORECASE)
    return SAFE_PREFIX + re.sub(r"\s{2,}", " ", text).strip()


def take_seed(spec: ProjectSpec, variant: str) -> int | None:
    if not variant:
        return spec.seed
    return ((spec.seed or 0) + int(hashlib.sha256(variant.encode()).hexdigest()[:8], 16)) % 2**31


def new_takes(services: Services, project_id: str, scenes: list[int], token: str) -> ProjectSpec:
    """Record a regeneration take for the scenes (0-based indices, validated; an error names them
    1-based, as they were typed), so their clips get new fingerprints."""
    from vidpipe_core.projects import load_spec, update_spec

    spec = load_spec(services, project_id)
    check_scene_indices(scenes, spec.scenes)
    spec = spec.model_copy(update={"takes": {**spec.takes, **{str(i): token for i in scenes}}})
    update_spec(services, spec)
    return spec


def make_clips(
    services: Services,
    project_id: str,
    *,
    run_id: str | None = None,
    concurrency: int | None = None,
    slots: SlotLimiter | None = None,
    repair: bool = False,
    progress: Progress = no_progress,
    frames: FrameFeed | None = None,
    committed_usd: float | None = None,
    lock: bool = True,
) -> StepReport:
    """``frames``: the keyframes step is rendering this project's frames in this run, and each
    scene waits for its two (see frame_feed); the caller holds the project's lock (``lock=False``)
    and gives what is spent plus what the keyframes step may still spend (``committed_usd``), so
    the budget is checked against the frames not yet paid for too."""
    with step_lock(services, project_id, run_id) if lock else nullcontext():
        return _make_clips(
            services,
            project_id,
            run_id or default_run_id(),
            concurrency,
            slots or NoLimit(),
            repair,
            progress,
            frames,
            committed_usd,
        )


def _make_clips(
    services: Services,
    project_id: str,
    run_id: str,
    concurrency: int | None,
    slots: SlotLimiter,
    repair: bool,
    progress: Progress,
    frames: FrameFeed | None,
    committed_usd: float | None,
) -> StepReport:
    state = resolve_state(services, project_id)
    missing_frames = [f.index for f in state.frames if not f.done] if frames is None else []
    if not state.has_storyboard or missing_frames:
        n = len(state.scenes)
        raise VidpipeError(
            f"project {project_id!r} is missing {', '.join(frame_label(k, n) for k in missing_frames) or 'its storyboard'}; "
            f"run `vidpipe render {project_id}` (it makes them first)"
        )
    spec, settings = state.spec, services.settings
    provider = clip_provider(spec.providers.clips, settings)
    model = provider.model_for(spec)
    report = StepReport(CLIPS, provider.name, model)

    # The review gate: a clip no approval covers is not paid for (the covered ones go on), and the
    # step ends with AwaitingApproval after them.
    held = gate(services, state)
    clips = [c for c in state.clips if c.index not in held.waiting]
    to_pay = len([c for c in state.clips_to_pay() if c.index not in held.waiting])
    if repair:
        to_pay += len(damaged_clips(services, state))  # at worst every damaged clip is paid for again
    report.projected_usd = video_cost(settings, model, to_pay * spec.clip_duration, spec.generate_audio)
    spent = spent_usd(services, project_id) if committed_usd is None else committed_usd
    guard_budget(CLIPS, spent, report.projected_usd, spec.max_cost_usd, project_id)

    total = len(clips)
    counter = {"done": 0}
    lock = threading.Lock()
    cancel = CancelToken(frames.interrupt if frames is not None else None)

    def beat(scene: int, line: str, heartbeat: bool = False, opening: bool = False) -> None:
        event = ProgressEvent(
            CLIPS,
            f"{scene_label(scene)}: {line}",
            scene=scene,
            done=counter["done"],
            total=total,
            heartbeat=heartbeat,
            opening=opening,
        )
        progress(event)

    def run(c: ClipState) -> ItemReport | Future[ItemReport]:
        now = state
        if frames is not None:  # the scene's two frames are being rendered in this run: wait, then look again
            frames.wait_for_scene(c.index, cancel)
            now = resolve_state(services, project_id)
            c = now.clips[c.index]
        worker = _SceneWorker(services, now, c, provider, model, run_id, slots, beat, cancel, repair)
        result = worker.run()
        if isinstance(result, ItemReport):
            return reported(c, result)
        return finisher.submit(lambda: reported(c, result()))

    def reported(c: ClipState, item: ItemReport) -> ItemReport:
        with lock:
            counter["done"] += 1
            done = counter["done"]
        progress(
            ProgressEvent(CLIPS, f"{scene_label(c.index)} {item.action.value}", scene=c.index, done=done, total=total, item=item)
        )
        return item

    workers = max(1, min(concurrency or settings.clip_concurrency, total))
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidpipe-clip") as pool,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidpipe-clip-save") as finisher,
    ):
        try:
            report.items = [r.result() if isinstance(r, Future) else r for r in pool.map(run, clips)]
        except BaseException as exc:
            # An interrupt (SIGTERM/SIGINT, a terminated run) or a failure lands here in the main
            # thread; the other scenes stop waiting within half a second instead of blocking the
            # exit until their operations finish. Submitted operations stay in the ledger.
            cancel.cancel(f"{type(exc).__name__} in the clips step")
            pool.shutdown(wait=False, cancel_futures=True)
            finisher.shutdown(wait=False, cancel_futures=True)
            raise

    failed = [i for i in report.items if i.action == Action.FAILED]
    damaged = [i for i in report.items if i.action == Action.DAMAGED]
    if len(failed) == 1 and not damaged:  # one scene: the error carries it (the CLI and --json show it)
        raise ProviderError(CLIPS, failed[0].detail, scene=failed[0].index)
    if failed:
        raise ProviderError(CLIPS, "; ".join(f"{scene_label(i.index)}: {i.detail}" for i in failed + damaged))
    if damaged:
        cost = video_cost(settings, model, len(damaged) * spec.clip_duration, spec.generate_audio)
        raise DamagedArtifacts(
            CLIPS,
            project_id,
            [Damage(f"the clip of {scene_label(i.index)}", i.detail, "no free copy is left") for i in damaged],
            cost,
        )
    rejected = [i for i in report.items if i.action == Action.REJECTED]
    if rejected and spec.safety_policy != "skip":
        raise SafetyRejected(CLIPS, rejected[0].index, [f"{scene_label(i.index)}: {i.detail}" for i in rejected])
    if held.closed:
        raise AwaitingApproval(held)
    return report


class _SceneWorker:
    """One scene's way through the ledger: reuse (bytes checked against the ledger), repair a
    damaged file from its operation, re-attach, or submit (and, under the `retry` safety policy,
    resubmit a rephrased prompt a bounded number of times)."""

    def __init__(
        self,
        services: Services,
        state: ProjectState,
        clip: ClipState,
        provider: ClipProvider,
        model: str,
        run_id: str,
        slots: SlotLimiter,
        beat,
        cancel: CancelToken,
        repair: bool,
    ) -> None:
        self.services, self.state, self.spec, self.clip = services, state, state.spec, clip
        self.provider, self.model, self.run_id, self.slots, self.beat = provider, model, run_id, slots, beat
        self.cancel, self.repair_paid = cancel, repair
        assert clip.fingerprint is not None
        self.fp: str = clip.fingerprint

    @functools.cached_property
    def request(self) -> ClipRequest:
        return _request(self.services, self.state, self.clip)

    def item(self, action: Action, **kw: Any) -> ItemReport:
        return ItemReport(self.clip.index, action, self.fp, **kw)

    def on_poll(self, line: str, *, opening: bool = False) -> None:
        self.beat(self.clip.index, line, heartbeat=not opening, opening=opening)

    def run(self) -> ItemReport | Callable[[], ItemReport]:
        """The scene's item, or (a video has arrived) what saves and records it: the caller runs
        that after this thread has moved on to the next scene."""
        self.cancel.check()
        row = _claim(self.services, self.spec, self.clip, self.provider, self.model, self.run_id)
        if row.status == ClipStatus.DONE and row.path:
            _data, problem = read_checked(self.services.store, self.spec.id, row.path, row.sha256)
            if problem is None:
                return self.item(Action.REUSED, duration_s=row.duration_s, path=row.path)
            repaired, row = self.repair(row, problem)
            if repaired is not None:
                return repaired
        action = Action.GENERATED
        while True:
            request = self.request
            if row.status == ClipStatus.REJECTED:
                reasons = list(row.safety_reasons or [])
                if not resubmits_rejected(self.spec.safety_policy, reasons, self.services.settings.safety_retries):
                    return self.item(Action.REJECTED, detail="; ".join(reasons) or "rejected by the safety filter")
                request = replace(request, prompt=rephrase_for_safety(request.prompt, reasons, len(reasons)))
            reattach = row.status == ClipStatus.SUBMITTED and bool(row.operation_name)
            if reattach:
                action = Action.REATTACHED
                request = replace(request, prompt=row.prompt_used or request.prompt)
            with self.slots.hold(self.clip.index, self.cancel):
                if reattach:
                    operation = row.operation_name or ""
                    self.beat(self.clip.index, f"re-attaching to {operation}")
                else:
                    try:
                        operation = self.provider.submit(request, self.model, cancel=self.cancel)
                    except ProviderError as exc:
                        _update(self.services, row.id, status=ClipStatus.FAILED, error=str(exc), attempts=row.attempts + 1)
                        return self.item(Action.FAILED, detail=exc.detail)
                    row = _update(
                        self.services,
                        row.id,
                        status=ClipStatus.SUBMITTED,
                        operation_name=operation,
                        submitted_at=utcnow(),
                        claimed_by=self.run_id,
                        attempts=row.attempts + 1,
                        prompt_used=request.prompt,
                        error=None,
                        **observed_columns(None),
                    )
                    self.beat(self.clip.index, f"submitted {operation}")
                # When to poll: learned from what the polls of earlier clips of this model and length saw.
                schedule = poll_schedule(self.services, self.provider.name, self.model, request.duration_s, row.submitted_at)
                try:
                    outcome = self.provider.wait(operation, request, self.model, self.on_poll, self.cancel, schedule)
                except ProviderError as exc:
                    # The operation may still finish: it stays SUBMITTED so the next run re-attaches.
                    return self.item(Action.FAILED, detail=exc.detail)
            # Only a wait that began at the submission saw the provider's latency: a re-attached
            # operation's polls also saw the time its run was dead, and teach the schedule nothing.
            if reattach:
                outcome = replace(outcome, observed=None)
            if outcome.kind == ClipOutcomeKind.DONE and outcome.video:
                # The slot is free again: the video is checked, saved and recorded off this thread.
                return functools.partial(self.saved, row, outcome, action)
            result = self.finish(row, outcome, action)
            if result is not None:
                return result
            row = _get(self.services, row.id)  # rejected: loop decides whether to rephrase

    def repair(self, row: VideoClip, problem: str) -> tuple[ItemReport | None, VideoClip]:
        """A DONE clip whose file is damaged: fetch it again from its operation (free), or report
        what regenerating costs; with ``repair`` the row is set to FAILED so the caller pays."""
        s, index = self.services, self.clip.index
        why = "there is no operation to fetch it from"
        if row.operation_name:
            self.beat(index, f"clip file damaged ({problem}); fetching it again from {row.operation_name}")
            request = replace(self.request, prompt=row.prompt_used or self.request.prompt)
            try:
                with self.slots.hold(index, self.cancel):
                    outcome = self.provider.wait(row.operation_name, request, self.model, self.on_poll, cancel=self.cancel)
            except ProviderError as exc:
                why = f"its operation no longer gives it ({exc})"
            else:
                info, why = _usable_video(outcome)
                if info is not None and outcome.video is not None:
                    s.store.write_bytes(self.spec.id, row.path or Layout.clip(index, self.fp), outcome.video)
                    row = _update(s, row.id, sha256=sha256_bytes(outcome.video), duration_s=info.duration_s, error=None)
                    return self.item(
                        Action.REPAIRED,
                        duration_s=info.duration_s,
                        path=row.path,
                        detail=f"damaged file ({problem}) fetched again from its operation at no cost",
                    ), row
        cost = video_cost(s.settings, self.model, self.spec.clip_duration, self.spec.generate_audio)
        note = f"damaged: {problem}; {why}"
        if not self.repair_paid:
            _update(s, row.id, error=note)
            return self.item(Action.DAMAGED, detail=f"{note}; regenerating it costs ${cost:.2f}"), row
        self.beat(index, f"{note}; regenerating it (${cost:.2f}, --repair)")
        return None, _update(s, row.id, status=ClipStatus.FAILED, error=note + "; regenerated on request")

    def saved(self, row: VideoClip, outcome: ClipOutcome, action: Action) -> ItemReport:
        item = self.finish(row, outcome, action)
        assert item is not None, "only a rejection asks for another attempt"
        return item

    def finish(self, row: VideoClip, outcome: ClipOutcome, action: Action) -> ItemReport | None:
        s, spec = self.services, self.spec
        if outcome.kind == ClipOutcomeKind.REJECTED:
            attempt = len(row.safety_reasons or []) + 1
            reasons = [*(row.safety_reasons or []), f"attempt {attempt}: " + ("; ".join(outcome.reasons) or "no reason given")]
            _update(s, row.id, status=ClipStatus.REJECTED, safety_reasons=reasons, completed_at=utcnow())
            return None
        if outcome.kind == ClipOutcomeKind.FAILED or not outcome.video:
            error = outcome.error or "the provider returned no video"
            _update(s, row.id, status=ClipStatus.FAILED, error=error, completed_at=utcnow())
            return self.item(Action.FAILED, detail=error)
        try:
            info = media.probe_bytes(outcome.video)
        except MediaError as exc:
            _update(s, row.id, status=ClipStatus.FAILED, error=str(exc), completed_at=utcnow())
            return self.item(Action.FAILED, detail=f"the returned video does not decode: {exc}")
        relpath = Layout.clip(self.clip.index, self.fp)
        s.store.write_bytes(spec.id, relpath, outcome.video)
        cost = usage_cost(s.settings, self.model, outcome.usage, audio=spec.generate_audio)
        _update(
            s,
            row.id,
            status=ClipStatus.DONE,
            path=relpath,
            sha256=sha256_bytes(outcome.video),
            duration_s=info.duration_s,
            cost_usd=(row.cost_usd or 0.0) + cost,
            completed_at=utcnow(),
            error=None,
            **observed_columns(outcome.observed),
        )
        return self.item(action, cost_usd=cost, duration_s=info.duration_s, path=relpath)


def _usable_video(outcome: ClipOutcome) -> tuple[media.MediaInfo | None, str]:
    """What the outcome's video is when it decodes, else (None, why not)."""
    if outcome.kind != ClipOutcomeKind.DONE or not outcome.video:
        return None, f"its operation no longer gives the video ({outcome.error or outcome.kind.value})"
    try:
        return media.probe_bytes(outcome.video), ""
    except MediaError as exc:
        return None, f"the video fetched again does not decode ({exc})"


def _frame_bytes(services: Services, state: ProjectState, k: int) -> bytes:
    row = state.frames[k].row
    assert row is not None and row.path
    data, problem = read_checked(services.store, state.spec.id, row.path, row.sha256)
    if problem is not None or data is None:
        raise VidpipeError(
            f"{frame_label(k, len(state.scenes))} is damaged ({problem}); "
            f"run `vidpipe resume {state.spec.id}` to repair it before clips are made from it"
        )
    return data


def _request(services: Services, state: ProjectState, c: ClipState) -> ClipRequest:
    spec = state.spec
    variant = spec.takes.get(str(c.index), "")
    return ClipRequest(
        project_id=spec.id,
        scene_index=c.index,
        prompt=c.prompt,
        start_png=_frame_bytes(services, state, c.index),
        end_png=_frame_bytes(services, state, c.index + 1),
        duration_s=spec.clip_duration,
        aspect_ratio=spec.aspect_ratio,
        generate_audio=spec.generate_audio,
        negative_prompt=spec.negative_prompt,
        seed=take_seed(spec, variant),
        variant=variant,
    )


def _claim(services: Services, spec: ProjectSpec, c: ClipState, provider: ClipProvider, model: str, run_id: str) -> VideoClip:
    """The scene's ledger row, inserted as CLAIMED when new; the unique key (project, scene,
    fingerprint) turns a concurrent second insert into a read of the first."""
    where = (VideoClip.project_id == spec.id, VideoClip.scene_index == c.index, VideoClip.fingerprint == c.fingerprint)
    with services.db.session() as s:
        row = s.scalars(select(VideoClip).where(*where)).first()
        if row is not None:
            return row
        row = VideoClip(
            project_id=spec.id,
            scene_index=c.index,
            fingerprint=c.fingerprint,
            status=ClipStatus.CLAIMED,
            provider=provider.name,
            model=model,
            claimed_by=run_id,
            heartbeat_at=utcnow(),
        )
        s.add(row)
        try:
            s.flush()
        except IntegrityError:
            s.rollback()
            return s.scalars(select(VideoClip).where(*where)).one()
        return row


def _get(services: Services, row_id: int) -> VideoClip:
    with services.db.session() as s:
        row = s.get(VideoClip, row_id)
        assert row is not None
        return row


def _update(services: Services, row_id: int, **fields: object) -> VideoClip:
    with services.db.session() as s:
        row = s.get(VideoClip, row_id)
        assert row is not None
        for key, value in fields.items():
            setattr(row, key, value)
        return row
