"""Editing one scene in place (scene row and storyboard.json together): every field a reviewer may
change is a row of `SCENE_FIELDS`, which `vidpipe edit` and the `edit_scene` job both read; and the
project's budget and safety policy (settings no fingerprint includes: changing them re-buys nothing)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from vidpipe_core.errors import InvalidInput, VidpipeError
from vidpipe_core.models import Project, Scene
from vidpipe_core.scene_fields import SCENE_FIELDS, SceneField, options_text
from vidpipe_core.scenes import check_scene_indices, frame_label, frame_number, scene_list, scene_number
from vidpipe_core.schemas import ProjectSpec, Storyboard
from vidpipe_core.services import Services
from vidpipe_core.speech import check_line
from vidpipe_core.steps.narration import resolve_lines
from vidpipe_core.steps.state import resolve_state, stored_document, write_storyboard_file
from vidpipe_core.text import check_text


@dataclass(frozen=True)
class SceneEdit:
    """What an edit left to regenerate: 0-based frame and scene indices of a project of ``scenes``
    scenes, and the character sheets to make."""

    frames: list[int]
    clips: list[int]
    scenes: int
    sheets: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # the fields whose value changed
    narration: list[int] = field(default_factory=list)  # scenes whose narration line is to be said again

    def summary(self) -> str:
        """The sheets, frames and clips to regenerate, as people number them."""
        frames = ", ".join(frame_label(k, self.scenes) for k in self.frames) or "none"
        clips = f"the clip{'s' if len(self.clips) > 1 else ''} of {scene_list(self.clips)}" if self.clips else "none"
        text = f"frames to regenerate: {frames}; clips to regenerate: {clips}"
        if self.sheets:
            text = f"reference sheets to make: {', '.join(map(repr, self.sheets))}; {text}"
        return text + (f"; narration to say again: {scene_list(self.narration)}" if self.narration else "")

    def document(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "sheets": self.sheets,
            "frames": [frame_number(k) for k in self.frames],
            "clip_scenes": [scene_number(i) for i in self.clips],
            "narration_scenes": [scene_number(i) for i in self.narration],
        }


def _text(spec: SceneField, raw: str) -> None:
    """A typed value's own problems: characters a person cannot see, an empty text."""
    check_text(spec.option, raw)
    if not spec.names and not spec.may_be_empty and not raw.strip():
        raise InvalidInput(spec.option, "must not be empty")


def _value(spec: SceneField, raw: str, known: list[str]) -> str | list[str]:
    """A typed value, checked (`_text`, then names from the style guide, once each)."""
    _text(spec, raw)
    if not spec.names:
        return raw.strip()
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(
            spec.option,
            f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not among the style guide's characters",
            ", ".join(map(repr, known)) or "none: the style guide describes no character",
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput(spec.option, f"{', '.join(map(repr, twice))} given more than once")
    return names


def edit_scene(services: Services, project_id: str, index: int, **changes: str | None) -> SceneEdit:
    """Apply the non-None changes (keyed by `SceneField.option`, or by field name) to scene
    ``index`` (0-based); return which sheets, frames and clips no longer match what is stored.
    Every value is checked before anything is written (InvalidInput naming the option)."""
    by_key = {f.option: f for f in SCENE_FIELDS} | {f.name: f for f in SCENE_FIELDS}
    given = {k: v for k, v in changes.items() if v is not None}
    for key, raw in given.items():
        if key not in by_key:
            raise InvalidInput(key, "cannot be edited", ", ".join(f.option for f in SCENE_FIELDS))
        _text(by_key[key], raw)  # before anything is read: a typed value's own problems come first
    before = resolve_state(services, project_id)
    if not before.has_storyboard or before.style is None:
        raise VidpipeError(
            f"project {project_id!r} has no storyboard yet to edit; run `vidpipe render {project_id}` "
            "(or materialize only the storyboard asset) first"
        )
    check_scene_indices([index], len(before.scenes))
    if not given:
        raise InvalidInput("scene", f"nothing to change; pass {options_text()}")
    known = [c.name for c in before.style.characters]
    values = {by_key[k].name: _value(by_key[k], v, known) for k, v in given.items()}
    current = before.scenes[index].model_dump()
    changed = [name for name, v in values.items() if current[name] != v]
    if "narration" in changed:  # refused before anything is written, like every typed value
        check_line(index, str(values["narration"]), before.spec.clip_duration)
    document = copy.deepcopy(stored_document(services, project_id))
    if document is None:
        raise VidpipeError(f"project {project_id!r} has no stored storyboard; run `vidpipe render {project_id}` first")
    if changed:
        document["storyboard"]["scenes"][index].update({k: values[k] for k in changed})
        Storyboard.model_validate(document["storyboard"])  # the plan's own rules hold after the edit
        document["edited"] = True
        with services.db.session() as s:
            row = s.scalars(select(Scene).where(Scene.project_id == project_id, Scene.index == index)).one()
            for key in changed:
                setattr(row, key, values[key])
            project = s.get(Project, project_id)
            assert project is not None
            project.storyboard = document
        write_storyboard_file(services, project_id, document)
    after = resolve_state(services, project_id)
    frames = [f.index for f, g in zip(before.frames, after.frames, strict=True) if f.prompt != g.prompt or not g.done]
    clips = [c.index for c in after.clips if c.status is None or c.index in frames or c.index + 1 in frames]
    sheets = [c.name for c in after.sheets_to_make()]
    # A narration line changes only itself: no frame or clip depends on it.
    said = {line.index for line in resolve_lines(services, after.spec, after.scenes) if line.done}
    narrated = [index] if after.spec.narration and after.scenes[index].narration and index not in said else []
    return SceneEdit(
        frames=frames, clips=sorted(set(clips)), scenes=len(after.scenes), sheets=sheets, changed=changed, narration=narrated
    )


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
