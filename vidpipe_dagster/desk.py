"""The review desk: what the keyframes partition page shows a person deciding whether to pay for
the clips. Each scene's prompts and characters (a markdown table, scenes and frames numbered from
1, one column per editable field of `vidpipe_core.scene_fields`), the character sheets (named and
linked: their images are on the characters page already, and the event log keeps each image
once), the projected clip cost, and how to approve (the `approve_project` job and a copyable
config) or steer (`edit_scene`, `retake`), for a project under review. The contact sheet is the
keyframes asset's own."""

from __future__ import annotations

from typing import Any

import dagster as dg

from vidpipe_core.cost import estimate
from vidpipe_core.scene_fields import SCENE_FIELDS, SceneField
from vidpipe_core.scenes import frame_number, scene_number
from vidpipe_core.services import Services
from vidpipe_core.steps import CHARACTERS
from vidpipe_core.steps.state import ProjectState
from vidpipe_core.steps.storyboard import stage_models
from vidpipe_dagster.review import APPROVE_OP, APPROVE_PROJECT_JOB

APPROVE_JOB, APPROVE_OP = APPROVE_PROJECT_JOB, APPROVE_OP  # the job the desk tells a reviewer to launch


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split()) or "-"


def _column(field: SceneField) -> str:
    return field.option.replace("_", " ").capitalize()


def _value(state: ProjectState, index: int, field: SceneField) -> str:
    if field.name == "start_frame_prompt" and index > 0:
        return f"(scene {scene_number(index - 1)}'s end frame)"  # continuity: only scene 1's start is drawn from it
    value: Any = getattr(state.scenes[index], field.name)
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return str(value)


def scene_table(state: ProjectState) -> str:
    """One row per scene: its number, its frames (as `vidpipe retake --frame` takes them), then one
    column per editable field."""
    head = ["Scene", "Frames", *(_column(f) for f in SCENE_FIELDS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i in range(len(state.scenes)):
        cells = [str(scene_number(i)), f"{frame_number(i)} → {frame_number(i + 1)}"]
        cells += [_cell(_value(state, i, f)) for f in SCENE_FIELDS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sheet_list(services: Services, state: ProjectState) -> str:
    if not state.sheets:
        return "No scene shows a character."
    page = f"/assets/{CHARACTERS}?view=partitions&partition={state.spec.id}"
    lines = [f"The sheets are shown on the [characters page]({page}); every frame that shows a character is drawn on its sheet."]
    for sheet in state.sheets:
        where = services.store.uri(state.spec.id, sheet.row.path) if sheet.row is not None and sheet.row.path else "not made"
        frames = [str(frame_number(f.index)) for f in state.frames if sheet.name in f.characters]
        lines.append(f"- **{_cell(sheet.name)}**: {_cell(sheet.character.appearance)} (frames {', '.join(frames)}): `{where}`")
    return "\n".join(lines)


def clip_projection(services: Services, state: ProjectState) -> tuple[float, int]:
    """What the clips still to pay for cost (`cost.estimate`) and how many they are."""
    clips = state.clips_left_to_pay()
    models = stage_models(services, state.spec)
    return round(estimate(services.settings, state.spec, models, frames=0, clips=clips, sheets=0).clips_usd, 4), clips


def approve_config(project_id: str, clips_usd: float) -> str:
    """The YAML the approve_project Launchpad takes for this project."""
    return (
        f"ops:\n  {APPROVE_OP}:\n    config:\n      project_id: {project_id}\n"
        f"      # max_cost_usd: {clips_usd:.2f}  # optional: refuse to pay more than this for the clips\n"
    )


def approve_markdown(project_id: str, clips_usd: float, clips: int) -> str:
    if clips == 0:
        return (
            "Every clip of these keyframes is made: nothing to approve. A change (`vidpipe edit`, `vidpipe retake`, "
            "or the `edit_scene` and `retake` jobs) says what it would re-make and cost."
        )
    config = approve_config(project_id, clips_usd)
    return (
        f"**The clips would cost ${clips_usd:.2f} ({clips} clip{'s' if clips != 1 else ''}).** To pay for them, launch "
        f"the `{APPROVE_JOB}` job (Jobs → {APPROVE_JOB} → Launchpad) with:\n\n```yaml\n{config}```\n\n"
        f"or run `vidpipe approve {project_id}`. To steer first: `vidpipe edit {project_id} --scene N ...` or the "
        f"`edit_scene` job; a new take of a frame or sheet: `vidpipe retake {project_id} --frame K` "
        "(or `--character NAME`) or the `retake` job; each says what it re-makes and costs."
    )


def desk_metadata(services: Services, state: ProjectState) -> dict[str, Any]:
    """The keyframes materialization's review-desk entries: none for a project not under review
    (its clips are made in the same run, nobody decides on them here, and every render's event log
    would carry the desk; bench/README.md, eventlog)."""
    if state.spec.review == "none":
        return {}
    clips_usd, clips = clip_projection(services, state)
    return {
        "scenes": dg.MetadataValue.md(scene_table(state)),
        "character_sheets": dg.MetadataValue.md(sheet_list(services, state)),
        "projected_clip_cost_usd": clips_usd,
        "approve": dg.MetadataValue.md(approve_markdown(state.spec.id, clips_usd, clips)),
    }
