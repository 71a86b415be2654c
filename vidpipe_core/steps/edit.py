"""Editing one scene's prompts in place (scene row and storyboard.json together), and the project's
budget and safety policy (settings no fingerprint includes: changing them re-buys nothing)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from vidpipe_core.errors import InvalidInput, VidpipeError
from vidpipe_core.models import Project, Scene
from vidpipe_core.scenes import check_scene_indices, frame_label, scene_list
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.services import Services
from vidpipe_core.speech import check_line
from vidpipe_core.steps.narration import resolve_lines
from vidpipe_core.steps.state import resolve_state, stored_document, write_storyboard_file
from vidpipe_core.text import check_text

FIELDS = ("description", "start_frame_prompt", "end_frame_prompt", "motion_prompt", "narration")
MAY_BE_EMPTY = ("narration",)  # an empty line: the scene is not narrated


@dataclass(frozen=True)
class SceneEdit:
    """What an edit left to regenerate: 0-based frame and scene indices of a project of ``scenes`` scenes."""

    frames: list[int]
    clips: list[int]
    scenes: int
    narration: list[int] = field(default_factory=list)  # scenes whose narration line is to be said again

    def summary(self) -> str:
        """The frames, clips and narration lines to regenerate, as people number them."""
        frames = ", ".join(frame_label(k, self.scenes) for k in self.frames) or "none"
        clips = f"the clip{'s' if len(self.clips) > 1 else ''} of {scene_list(self.clips)}" if self.clips else "none"
        text = f"frames to regenerate: {frames}; clips to regenerate: {clips}"
        return text + (f"; narration to say again: {scene_list(self.narration)}" if self.narration else "")


def edit_scene(services: Services, project_id: str, index: int, **changes: str | None) -> SceneEdit:
    """Apply the non-None changes to scene ``index`` (0-based); return which frames and clips no
    longer match what is stored."""
    given = {k: v for k, v in changes.items() if v is not None}
    for key, value in given.items():
        if key not in FIELDS:
            raise InvalidInput(key, "cannot be edited", ", ".join(FIELDS))
        check_text(key, value)
        if not value.strip() and key not in MAY_BE_EMPTY:
            raise InvalidInput(key, "must not be empty")
    before = resolve_state(services, project_id)
    if not before.has_storyboard:
        raise VidpipeError(
            f"project {project_id!r} has no storyboard yet to edit; run `vidpipe render {project_id}` "
            "(or materialize only the storyboard asset) first"
        )
    check_scene_indices([index], len(before.scenes))
    if not given:
        raise InvalidInput("scene", "nothing to change; pass --description, --start-frame, --end-frame, --motion or --narration")
    if "narration" in given:
        check_line(index, given["narration"].strip(), before.spec.clip_duration)  # refused before anything is written
    document = copy.deepcopy(stored_document(services, project_id))
    if document is None:
        raise VidpipeError(f"project {project_id!r} has no stored storyboard; run `vidpipe render {project_id}` first")
    document["storyboard"]["scenes"][index].update({k: v.strip() for k, v in given.items()})
    document["edited"] = True
    with services.db.session() as s:
        row = s.scalars(select(Scene).where(Scene.project_id == project_id, Scene.index == index)).one()
        for key, value in given.items():
            setattr(row, key, value.strip())
        project = s.get(Project, project_id)
        assert project is not None
        project.storyboard = document
    write_storyboard_file(services, project_id, document)
    after = resolve_state(services, project_id)
    frames = [f.index for f, g in zip(before.frames, after.frames, strict=True) if f.prompt != g.prompt or not g.done]
    clips = [c.index for c in after.clips if c.status is None or c.index in frames or c.index + 1 in frames]
    # Only this scene's line can change: its frames and clips do not depend on it.
    said = {line.index for line in resolve_lines(services, after.spec, after.scenes) if line.done}
    narrated = [index] if after.spec.narration and after.scenes[index].narration and index not in said else []
    return SceneEdit(frames=frames, clips=sorted(set(clips)), scenes=len(after.scenes), narration=narrated)


def settings_update(*, max_cost_usd: float | None = None, safety_policy: str | None = None) -> dict[str, Any]:
    """The project settings a user may change after registering, validated (InvalidInput naming the
    field, nothing written): the budget in USD and the safety policy. Only the given ones."""
    from vidpipe_core.projects import SAFETY_POLICIES, check_budget

    update: dict[str, Any] = {}
    if max_cost_usd is not None:
        update["max_cost_usd"] = check_budget(max_cost_usd)
    if safety_policy is not None:
        if safety_policy not in SAFETY_POLICIES:
            raise InvalidInput("safety_policy", f"{safety_policy!r} is unknown", ", ".join(SAFETY_POLICIES))
        update["safety_policy"] = safety_policy
    return update


def edit_settings(services: Services, project_id: str, update: dict[str, Any]) -> ProjectSpec:
    """Store a `settings_update` in the project's spec; returns the new spec."""
    from vidpipe_core.projects import load_spec, update_spec

    spec = load_spec(services, project_id).model_copy(update=update)
    update_spec(services, spec)
    return spec
