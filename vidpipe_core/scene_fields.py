"""The fields of a scene a reviewer may change, one row each (`SCENE_FIELDS`): `vidpipe edit`'s
options, the `edit_scene` job's config and the edit step all read this table, so a new editable
field is one more row. A leaf: the CLI reads it without loading the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vidpipe_core.errors import InvalidInput
from vidpipe_core.scenes import scene_index


@dataclass(frozen=True)
class SceneField:
    """One field of a scene a reviewer may change: its `ScenePlan` / `Scene` attribute, the option
    that sets it (the CLI's ``--<option>``, the `edit_scene` job's config key), and its help. Every
    entry point reads this table, so a new editable field is one more row."""

    name: str
    option: str
    help: str
    names: bool = False  # a list of character names (typed comma-separated; empty: none)
    may_be_empty: bool = False  # an empty value is a value (a scene without narration)

    @property
    def flag(self) -> str:
        return f"--{self.option.replace('_', '-')}"


SCENE_FIELDS: tuple[SceneField, ...] = (
    SceneField("description", "description", "What happens in the scene, one or two sentences (part of its clip's prompt)."),
    SceneField(
        "start_frame_prompt",
        "start_frame",
        "Image prompt of the first frame; scene 1 only (a later scene starts where the one before ends).",
    ),
    SceneField(
        "end_frame_prompt",
        "end_frame",
        "Image prompt of the scene's last frame, which is also the next scene's first (every later frame and clip "
        "is made again).",
    ),
    SceneField(
        "motion_prompt", "motion", "How the camera and subjects move from the first frame to the last (the clip's prompt)."
    ),
    SceneField(
        "characters",
        "characters",
        "The characters the scene shows, comma-separated names from the style guide (empty for none); its frames "
        "are drawn on their reference sheets.",
        names=True,
    ),
    SceneField(
        "narration",
        "narration",
        'The scene\'s voice-over line ("" for none); only its narration is said again.',
        may_be_empty=True,
    ),
)
FIELDS = tuple(f.name for f in SCENE_FIELDS)


def field_by_option(option: str) -> SceneField:
    return next(f for f in SCENE_FIELDS if f.option == option)


def options_text() -> str:
    """The options that change a scene, as the CLI spells them."""
    return ", ".join(f.flag for f in SCENE_FIELDS)


def scene_changes(
    scene: int | None, changes: Mapping[str, str | None], *, settings_given: bool
) -> tuple[int, dict[str, str]] | None:
    """The scene (0-based) and the given field values of an edit, as `vidpipe edit` and the
    `edit_scene` job take them (a scene number from 1, values keyed by `SceneField.option`); None
    when the edit changes only project settings. InvalidInput (nothing written) when a field is
    given without a scene, or nothing at all is."""
    given = {k: v for k, v in changes.items() if v is not None}
    unknown = [k for k in given if k not in {f.option for f in SCENE_FIELDS}]
    if unknown:
        raise InvalidInput(unknown[0], "cannot be edited", ", ".join(f.option for f in SCENE_FIELDS))
    if given and scene is None:
        raise InvalidInput("scene", f"is needed with {options_text()}: give its number, from 1")
    if given or not settings_given:  # nothing at all: edit_scene names what can be passed
        if scene is None:
            raise InvalidInput("edit", f"nothing to change; pass --scene N with {options_text()}, or --max-cost, --safety-policy")
        return scene_index(scene), given
    return None
