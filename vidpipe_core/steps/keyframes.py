"""Keyframes step: N+1 frames in order (each conditioned on the one before: continuity).
Frames whose fingerprint is already stored are reused, never rendered again, once their bytes
match the ledger; a damaged frame is rendered again only when that is free and gives the same
bytes (the animatic), or when the user agrees to pay (``repair``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

from sqlalchemy import select

from vidpipe_core.cost import guard_budget, image_cost, usage_cost, video_cost
from vidpipe_core.errors import VidpipeError
from vidpipe_core.integrity import Damage, DamagedArtifacts, read_checked
from vidpipe_core.models import Keyframe
from vidpipe_core.providers import clip_provider, keyframe_provider
from vidpipe_core.providers.base import CharacterSheet, KeyframeProvider, KeyframeRequest
from vidpipe_core.scenes import frame_label
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.services import Services
from vidpipe_core.steps import KEYFRAMES
from vidpipe_core.steps.locking import step_lock
from vidpipe_core.steps.report import Action, ItemReport, Progress, ProgressEvent, StepReport, no_progress
from vidpipe_core.steps.state import (
    FrameState,
    ProjectState,
    checked_frames,
    checked_sheets,
    frame_caption,
    frame_fingerprint,
    record_image,
    resolve_state,
    sheet_shas,
    spent_usd,
)
from vidpipe_core.storage import Layout, sha256_bytes


@dataclass
class KeyframesReport(StepReport):
    """The step's report and the frames as it left them, in order: each frame's ledger row and the
    bytes that match it (read and checked against the ledger, or just rendered, written and
    recorded). The contact sheet and the keyframes check use these bytes; nothing reads the
    files again."""

    spec: ProjectSpec | None = None
    frames: list[FrameState] = field(default_factory=list)
    pngs: list[bytes] = field(default_factory=list)
    # The project as the step resolved it (its frames as it left them): the review desk's scenes,
    # sheets and clips still to pay, without resolving the project again.
    state: ProjectState | None = None


def make_keyframes(
    services: Services,
    project_id: str,
    *,
    run_id: str | None = None,
    repair: bool = False,
    progress: Progress = no_progress,
    on_frame: Callable[[int, bytes], None] | None = None,
    on_planned: Callable[[float], None] | None = None,
    lock: bool = True,
) -> KeyframesReport:
    """``on_frame(k, png)``: each frame's bytes as soon as the step has them (reused or rendered
    and recorded), in order, e.g. to shrink it for the contact sheet while the next is made.
    ``on_planned(committed_usd)``: once the budget allows the frames, before the first is paid for,
    what is spent plus what this step may spend (the clips step made beside it checks its own
    cost against that). ``lock=False``: the caller holds the project's lock."""
    with step_lock(services, project_id, run_id) if lock else nullcontext():
        return _make_keyframes(services, project_id, repair, progress, on_frame or (lambda _k, _png: None), on_planned)


def _request(state: ProjectState, k: int, reference: bytes | None, sheets: dict[str, bytes]) -> KeyframeRequest:
    assert state.style is not None, "the keyframes step checks for a storyboard before any request"
    appearance = {c.name: c.appearance for c in state.style.characters}
    return KeyframeRequest(
        project_id=state.spec.id,
        frame_index=k,
        prompt=state.frames[k].prompt,
        caption=frame_caption(state.scenes, k),
        style=state.style,
        aspect_ratio=state.spec.aspect_ratio,
        reference_png=reference,
        characters=tuple(CharacterSheet(n, appearance[n], sheets[n]) for n in state.frames[k].characters),
        variant=state.spec.frame_take(k),
    )


def _sheets(services: Services, state: ProjectState) -> dict[str, bytes]:
    """The bytes of every character's sheet, checked against the ledger; the step refuses to start
    while one is not made or damaged (the characters step makes and repairs them)."""
    project_id = state.spec.id
    missing = [c.name for c in state.sheets_to_make()]
    if missing:
        raise VidpipeError(
            f"keyframes: the reference sheet of {', '.join(map(repr, missing))} is not made yet; materialize the "
            f"characters asset first (`vidpipe resume {project_id}` does)"
        )
    good, damaged = checked_sheets(services, state)
    if damaged:
        which = "; ".join(f"{name!r}: {problem}" for name, problem in damaged.items())
        raise VidpipeError(
            f"keyframes: the reference sheet of {which}; the characters step repairs it (`vidpipe resume {project_id}`)"
        )
    return good


def cascade_cost(services: Services, state: ProjectState, first_frame: int) -> float:
    """What regenerating frame ``first_frame`` costs: through continuity, every later frame and
    every clip from the scene that ends on it are made again."""
    spec, s = state.spec, services.settings
    frames = len(state.frames) - first_frame
    clips = len(state.scenes) - max(0, first_frame - 1)
    k_model = keyframe_provider(spec.providers.keyframes, s).model_for(spec)
    c_model = clip_provider(spec.providers.clips, s).model_for(spec)
    return image_cost(s, k_model, frames) + video_cost(s, c_model, clips * spec.clip_duration, spec.generate_audio)


def _check_stored(
    services: Services, state: ProjectState, provider: KeyframeProvider, repair: bool
) -> tuple[dict[int, bytes], dict[int, str]]:
    """The stored frames that match the ledger (row id -> bytes) and the damaged ones (index ->
    problem). Frames the provider renders again for free are left to the loop; the others fail
    the step unless ``repair`` allows paying."""
    good, damaged = checked_frames(services, state)
    if damaged and not repair and not getattr(provider, "reproducible", False):
        first, n = min(damaged), len(state.scenes)
        cost = cascade_cost(services, state, first)
        found = [
            Damage(frame_label(k, n), problem, f"{provider.name} cannot render the same image again")
            for k, problem in sorted(damaged.items())
        ]
        raise DamagedArtifacts(
            KEYFRAMES,
            state.spec.id,
            found,
            cost,
            note=f"Through continuity, a new {frame_label(first, n).removeprefix('the ')} also "
            "changes every frame and clip after it.",
        )
    return good, damaged


def _make_keyframes(
    services: Services,
    project_id: str,
    repair: bool,
    progress: Progress,
    on_frame: Callable[[int, bytes], None],
    on_planned: Callable[[float], None] | None,
) -> KeyframesReport:
    state = resolve_state(services, project_id)  # once: the loop chains each frame on the one before
    if not state.has_storyboard or state.style is None:
        raise VidpipeError(f"project {project_id!r} has no storyboard yet; run `vidpipe render {project_id}`")
    spec, settings = state.spec, services.settings
    provider = keyframe_provider(spec.providers.keyframes, settings)
    model = provider.model_for(spec)
    report = KeyframesReport(KEYFRAMES, provider.name, model, spec=spec)
    sheets = _sheets(services, state)
    good, damaged = _check_stored(services, state, provider, repair)

    missing = sum(1 for f in state.frames if not f.done)
    if damaged and not getattr(provider, "reproducible", False):
        missing = len(state.frames) - min(damaged)  # paid repair: the cascade from the first damaged frame
    report.projected_usd = image_cost(settings, model, missing)
    spent = spent_usd(services, project_id)
    guard_budget(KEYFRAMES, spent, report.projected_usd, spec.max_cost_usd, project_id)
    if on_planned is not None:
        on_planned(spent + report.projected_usd)

    total, n = len(state.frames), len(state.scenes)
    reference: bytes | None = None
    reference_sha: str | None = None
    ledger = functools.cache(lambda: _keyframe_rows(services, project_id))
    for k in range(total):
        frame = _chained(state, provider, k, reference_sha, ledger)
        assert frame.fingerprint is not None
        if frame.done and frame.row is not None and k not in damaged:
            data, problem = good.get(frame.row.id), None
            if data is None:  # a row that became current during this run (after a render upstream)
                data, problem = read_checked(services.store, project_id, frame.row.path or "", frame.row.sha256)
            if problem is None and data is not None:
                reference, reference_sha = data, frame.row.sha256
                report.pngs.append(data)
                on_frame(k, data)
                report.items.append(ItemReport(k, Action.REUSED, frame.fingerprint, path=frame.row.path))
                progress(ProgressEvent(KEYFRAMES, f"{frame_label(k, n)} reused", scene=k, done=k + 1, total=total))
                continue
            damaged[k] = problem or "unreadable"
        reference = _render(services, state, frame, provider, model, reference, sheets, damaged.get(k), repair, report, progress)
        assert frame.row is not None  # _render recorded it
        reference_sha = frame.row.sha256
        report.pngs.append(reference)
        on_frame(k, reference)
    report.frames, report.state = state.frames, state
    return report


def _keyframe_rows(services: Services, project_id: str) -> dict[tuple[int, str], Keyframe]:
    """The project's keyframe rows by (frame index, fingerprint)."""
    with services.db.session() as s:
        return {(r.frame_index, r.fingerprint): r for r in s.scalars(select(Keyframe).where(Keyframe.project_id == project_id))}


def _chained(
    state: ProjectState,
    provider: KeyframeProvider,
    k: int,
    reference_sha: str | None,
    ledger: Callable[[], dict[tuple[int, str], Keyframe]],
) -> FrameState:
    """Frame k as it chains on the bytes of frame k-1 as recorded now (and on its characters'
    sheets). When frame k-1 was rendered in this run with new bytes, frame k has a new
    fingerprint, and the ledger row for it (if any) replaces the one resolved at the start.

    ``ledger()``: the project's keyframe rows, read once, when the first frame needs them (one
    query per step, not one per frame after a new one). They stay current while the step runs:
    it holds the project's lock, and frame k's row is written only after frame k is looked up."""
    frame = state.frames[k]
    shas = sheet_shas(state, frame.characters)
    assert shas is not None, "_sheets refuses to start while a sheet is missing"
    fp = frame_fingerprint(provider, state.spec, frame.prompt, reference_sha, shas, state.spec.frame_take(k))
    if fp != frame.fingerprint:
        row = ledger().get((k, fp))
        frame = state.frames[k] = FrameState(index=k, prompt=frame.prompt, fingerprint=fp, row=row, characters=frame.characters)
    return frame


def _render(
    services: Services,
    state: ProjectState,
    frame: FrameState,
    provider: KeyframeProvider,
    model: str,
    reference: bytes | None,
    sheets: dict[str, bytes],
    damage: str | None,
    repair: bool,
    report: StepReport,
    progress: Progress,
) -> bytes:
    """Render frame k and record it (``frame.row`` becomes the recorded row). A damaged frame that
    renders to its recorded bytes is a free repair; new bytes would change every later frame and
    clip, so they need ``repair``."""
    k, n, total, project_id = frame.index, len(state.scenes), len(state.frames), state.spec.id
    damaged = damage is not None
    assert frame.fingerprint is not None
    progress(
        ProgressEvent(
            KEYFRAMES,
            f"{'re-rendering damaged' if damaged else 'rendering'} {frame_label(k, n)}",
            scene=k,
            done=k,
            total=total,
            opening=not damaged,
        )
    )
    # Decoded in full where it was made (`DecodedImage`): nothing that does not decode gets here.
    image, usage = provider.render(_request(state, k, reference, sheets))
    png, (width, height) = image.data, image.size
    sha = sha256_bytes(png)
    if damaged and not repair and frame.row is not None and frame.row.sha256 != sha:
        cost = cascade_cost(services, state, k)
        raise DamagedArtifacts(
            KEYFRAMES,
            project_id,
            [Damage(frame_label(k, n), str(damage), "rendering it again gave different bytes")],
            cost,
            note="Through continuity, new bytes change every frame and clip after it.",
        )
    relpath = Layout.keyframe(k, frame.fingerprint)
    services.store.write_bytes(project_id, relpath, png)
    cost = usage_cost(services.settings, model, usage)
    same = damaged and frame.row is not None and frame.row.sha256 == sha
    key = {"project_id": project_id, "frame_index": k, "fingerprint": frame.fingerprint}
    frame.row = record_image(services, Keyframe, key, provider.name, model, relpath, sha, width, height, cost)
    action = Action.REPAIRED if same else Action.GENERATED
    detail = "damaged file rendered again, same bytes" if same else ("damaged file replaced by a new render" if damaged else "")
    report.items.append(ItemReport(k, action, frame.fingerprint, cost_usd=cost, path=relpath, detail=detail))
    progress(
        ProgressEvent(KEYFRAMES, f"{frame_label(k, n)} {'repaired' if same else 'rendered'}", scene=k, done=k + 1, total=total)
    )
    return png
