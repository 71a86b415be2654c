"""Storyboard step: plan the scenes, store storyboard.json and the scene rows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import delete

from vidpipe_core.cost import estimate, guard_budget, usage_cost
from vidpipe_core.errors import ProjectNotFound, ProviderError
from vidpipe_core.models import Project, Scene
from vidpipe_core.projects import load_spec
from vidpipe_core.providers import clip_provider, keyframe_provider, narration_provider, storyboard_provider
from vidpipe_core.schemas import ProjectSpec, Storyboard, given_cast_problem, with_given_cast
from vidpipe_core.services import Services
from vidpipe_core.steps import CLIPS, KEYFRAMES, NARRATION, STORYBOARD
from vidpipe_core.steps.locking import step_lock
from vidpipe_core.steps.report import Progress, ProgressEvent, no_progress
from vidpipe_core.steps.state import (
    load_storyboard_rows,
    shown_characters,
    stored_document,
    storyboard_file_ok,
    write_storyboard_file,
)


@dataclass
class StoryboardResult:
    storyboard: Storyboard
    provider: str
    model: str
    reused: bool
    cost_usd: float
    projected_usd: float  # character sheets + keyframes + clips still to pay for
    fingerprint: str
    repaired: bool = False  # storyboard.json was rewritten from the database


def storyboard_fingerprint(spec: ProjectSpec, provider: str, model: str) -> str:
    fields = {
        "prompt": spec.prompt,
        "style": spec.style,
        "scenes": spec.scenes,
        "aspect": spec.aspect_ratio,
        "duration": spec.clip_duration,
        "provider": provider,
        "model": model,
    }
    if spec.characters:  # only then: a project without given characters keeps its fingerprint
        fields["characters"] = [[c.name, c.appearance] for c in spec.characters]
    if spec.narration:  # a plan with narration lines is another plan; a project without keeps its fingerprint
        fields["narration"] = True
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def stage_models(services: Services, spec: ProjectSpec) -> dict[str, str]:
    s = services.settings
    return {
        STORYBOARD: storyboard_provider(spec.providers.storyboard, s).model_for(spec),
        KEYFRAMES: keyframe_provider(spec.providers.keyframes, s).model_for(spec),
        CLIPS: clip_provider(spec.providers.clips, s).model_for(spec),
        **({NARRATION: narration_provider(spec.providers.clips, s).model_for(spec)} if spec.narration else {}),
    }


def _ensure_file(services: Services, project_id: str, document: dict) -> bool:
    """storyboard.json says what the database says; rewrite it (free) when it is missing or
    damaged. Returns whether it was rewritten."""
    if storyboard_file_ok(services, project_id, document):
        return False
    write_storyboard_file(services, project_id, document)
    return True


def make_storyboard(
    services: Services, project_id: str, *, replan: bool = False, run_id: str | None = None, progress: Progress = no_progress
) -> StoryboardResult:
    """Plan the project. An unchanged project keeps its stored plan unless `replan` is set, so
    re-running a finished project never buys a new plan (and with it new clips) by accident."""
    with step_lock(services, project_id, run_id):
        return _make_storyboard(services, project_id, replan, progress)


def _make_storyboard(services: Services, project_id: str, replan: bool, progress: Progress) -> StoryboardResult:
    spec = load_spec(services, project_id)
    provider = storyboard_provider(spec.providers.storyboard, services.settings)
    model = provider.model_for(spec)
    models = stage_models(services, spec)
    projection = estimate(services.settings, spec, models)
    fingerprint = storyboard_fingerprint(spec, provider.name, model)

    stored = stored_document(services, project_id)
    if stored and not replan and stored.get("fingerprint") == fingerprint:
        board = Storyboard.model_validate(stored["storyboard"])
        repaired = _ensure_file(services, project_id, stored)
        progress(
            ProgressEvent(
                STORYBOARD,
                "storyboard.json was damaged or missing: rewritten from the database at no cost"
                if repaired
                else "reusing the stored storyboard",
                done=1,
                total=1,
            )
        )
        if load_storyboard_rows(services, project_id) != board.scenes:
            _write_scene_rows(services, project_id, board)
        return StoryboardResult(
            board,
            provider.name,
            model,
            True,
            0.0,
            _after_storyboard(services, spec, models, board),
            fingerprint,
            repaired=repaired,
        )

    guard_budget(STORYBOARD, 0.0, projection.total_usd, spec.max_cost_usd, project_id)
    # Its end ("storyboard written", then the asset's count and provider) follows: the live display shows it, a log may not.
    progress(ProgressEvent(STORYBOARD, f"planning {spec.scenes} scenes with {provider.name}", total=1, opening=True))
    board, usage = provider.plan(spec)
    if len(board.scenes) != spec.scenes:
        raise ProviderError(STORYBOARD, f"planned {len(board.scenes)} scenes, {spec.scenes} were asked for")
    dropped = given_cast_problem(board, spec.characters)
    if dropped:
        raise ProviderError(STORYBOARD, f"the storyboard does not keep the characters you gave: {dropped}")
    board = with_given_cast(board, spec.characters)
    cost = usage_cost(services.settings, model, usage)
    document = {
        "fingerprint": fingerprint,
        "provider": provider.name,
        "model": model,
        "cost_usd": cost,
        "storyboard": board.model_dump(mode="json"),
    }
    with services.db.session() as s:
        row = s.get(Project, project_id)
        if row is None:
            raise ProjectNotFound(project_id)
        row.storyboard = document
    write_storyboard_file(services, project_id, document)
    _write_scene_rows(services, project_id, board)
    progress(ProgressEvent(STORYBOARD, "storyboard written", done=1, total=1))
    return StoryboardResult(
        board, provider.name, model, False, cost, _after_storyboard(services, spec, models, board), fingerprint
    )


def _after_storyboard(services: Services, spec: ProjectSpec, models: dict[str, str], board: Storyboard) -> float:
    """What the sheets of the planned characters, the keyframes and the clips will cost."""
    given = {c.name for c in spec.characters if c.image is not None}  # their sheets are the person's images, free
    sheets = len([c for c in shown_characters(board.scenes, board.style_guide) if c.name not in given])
    lines = [scene.narration for scene in board.scenes]
    return estimate(services.settings, spec, models, sheets=sheets, lines=lines).after_storyboard_usd


def _write_scene_rows(services: Services, project_id: str, board: Storyboard) -> None:
    """Replace the scene rows; indices come from position, never from the planner."""
    with services.db.session() as s:
        s.execute(delete(Scene).where(Scene.project_id == project_id))
        for index, plan in enumerate(board.scenes):
            s.add(
                Scene(
                    project_id=project_id,
                    index=index,
                    description=plan.description,
                    start_frame_prompt=plan.start_frame_prompt,
                    end_frame_prompt=plan.end_frame_prompt,
                    motion_prompt=plan.motion_prompt,
                    transition_notes=plan.transition_notes,
                    characters=list(plan.characters),
                    narration=plan.narration,
                    dialogue=plan.dialogue,
                    sound=plan.sound,
                )
            )
