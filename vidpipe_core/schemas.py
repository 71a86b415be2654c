"""Pydantic models at the boundaries: the project spec (user input), the storyboard (LLM output)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from vidpipe_core.config import ProviderName, Review, SafetyPolicy
from vidpipe_core.scenes import scene_label
from vidpipe_core.speech import MAX_CUE_CHARS, MAX_NARRATION_CHARS


class Character(BaseModel):
    name: str = Field(description="Short name used in scene prompts")
    appearance: str = Field(description="Fixed visual description repeated in every prompt that shows the character")


class StyleGuide(BaseModel):
    visual_style: str = Field(description="Overall look, medium and lighting")
    color_palette: list[str] = Field(description="3-6 colours (names or #hex) used throughout")
    camera_style: str = Field(description="Lenses, framing and movement conventions")
    characters: list[Character] = Field(default_factory=list, description="Recurring characters")

    def prompt_suffix(self) -> str:
        parts = [f"Style: {self.visual_style}.", f"Palette: {', '.join(self.color_palette)}.", f"Camera: {self.camera_style}."]
        for c in self.characters:
            parts.append(f"{c.name}: {c.appearance}.")
        return " ".join(parts)


class ScenePlan(BaseModel):
    """One scene as planned. Its index is its position in the storyboard, never a claimed field."""

    description: str = Field(description="What happens in the scene, one or two sentences")
    start_frame_prompt: str = Field(description="Image prompt for the first frame")
    end_frame_prompt: str = Field(description="Image prompt for the last frame")
    motion_prompt: str = Field(description="How the camera and subjects move from first to last frame")
    transition_notes: str = Field(default="", description="How this scene hands over to the next")
    characters: list[str] = Field(
        default_factory=list,
        description="Names (from the style guide's characters) of the characters this scene shows; empty for none",
    )
    # The words and sound (a plan made before them has none: empty, and nothing changes for it).
    narration: str = Field(
        default="",
        max_length=MAX_NARRATION_CHARS,
        description="Voice-over read by the narrator over this scene, at most about 2.5 words per second of the clip; "
        "empty for none",
    )
    dialogue: str = Field(
        default="",
        max_length=MAX_CUE_CHARS,
        description='Words spoken on screen, as: Speaker says: "the words" (Veo speaks them in the clip); empty for none',
    )
    sound: str = Field(
        default="", max_length=MAX_CUE_CHARS, description="Sound effects and ambience heard in the scene; empty for none"
    )


class Storyboard(BaseModel):
    title: str = Field(description="Short title of the video")
    style_guide: StyleGuide
    scenes: list[ScenePlan]

    @model_validator(mode="after")
    def _characters_are_known(self) -> Storyboard:
        """Each character has one name, and a scene shows only characters the style guide
        describes (their reference sheets are made from those descriptions). Scenes are numbered
        from 1 in the messages."""
        names = [c.name for c in self.style_guide.characters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"style_guide.characters names {', '.join(map(repr, repeated))} more than once; names must be unique"
            )
        known = set(names)
        listed = ", ".join(map(repr, names)) or "none"
        for index, scene in enumerate(self.scenes):
            unknown = [n for n in scene.characters if n not in known]
            if unknown:
                raise ValueError(
                    f"{scene_label(index)} lists {', '.join(map(repr, unknown))}, not among the style guide's characters "
                    f"({listed}); a scene may only name characters from style_guide.characters"
                )
            twice = sorted({n for n in scene.characters if scene.characters.count(n) > 1})
            if twice:
                raise ValueError(f"{scene_label(index)} lists {', '.join(map(repr, twice))} more than once")
        return self


class GivenFile(BaseModel):
    """A person's own file, copied into the project folder at registration (`userfiles`)."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="Where the copy is, relative to the project folder")
    sha256: str
    size: int
    source: str = Field(default="", exclude=True)  # where it was read from; only the registration copies it


class GivenCharacter(BaseModel):
    """A character the person named: the storyboard keeps its name (and appearance, when given);
    with an image, that image is its reference sheet."""

    model_config = ConfigDict(extra="forbid")
    name: str
    appearance: str | None = None
    image: GivenFile | None = None


def given_cast_problem(board: Storyboard, given: list[GivenCharacter]) -> str | None:
    """Why ``board`` does not keep the given characters (each in the style guide under its name and
    shown by at least one scene), or None."""
    names = [c.name for c in board.style_guide.characters]
    shown = {n for scene in board.scenes for n in scene.characters}
    dropped = [c.name for c in given if c.name not in names]
    if dropped:
        return f"style_guide.characters lacks the given character(s) {', '.join(map(repr, dropped))}; keep their names exactly"
    unseen = [c.name for c in given if c.name not in shown]
    if unseen:
        return f"no scene shows the given character(s) {', '.join(map(repr, unseen))}"
    return None


def with_given_cast(board: Storyboard, given: list[GivenCharacter]) -> Storyboard:
    """``board`` with each given character's appearance as the person wrote it."""
    wanted = {c.name: c.appearance for c in given if c.appearance}
    if not wanted:
        return board
    characters = [
        c.model_copy(update={"appearance": wanted[c.name]}) if c.name in wanted else c for c in board.style_guide.characters
    ]
    style = board.style_guide.model_copy(update={"characters": characters})
    return board.model_copy(update={"style_guide": style})


class StageProviders(BaseModel):
    model_config = ConfigDict(extra="forbid")
    storyboard: ProviderName
    keyframes: ProviderName
    clips: ProviderName


class ProjectSpec(BaseModel):
    """Everything a project needs, validated before anything is written or spent."""

    # No NaN or infinity: a NaN budget compares false with every cost (the guard never fires), and
    # PostgreSQL's JSON refuses it.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str
    prompt: str
    style: str
    aspect_ratio: Literal["16:9", "9:16"]
    clip_duration: int
    scenes: int
    providers: StageProviders
    generate_audio: bool = True
    negative_prompt: str = ""
    seed: int | None = None
    fast: bool = False
    max_cost_usd: float = 25.0
    safety_policy: SafetyPolicy = "fail"
    crossfade: float = 0.0
    burn_subtitles: bool = False
    """Draw the subtitles into the picture too (they are always a soft track of final.mp4)."""
    characters: list[GivenCharacter] = Field(default_factory=list)
    """The characters the person named (`--character`), in their order."""
    music: GivenFile | None = None
    """The person's music track (`--music`), mixed under the final video."""

    review: Review = "none"
    """keyframes: the clips step pays only for what an approval covers (`vidpipe_core.approvals`). A
    spec stored before the review gate has no field: none, as it was rendered."""
    # A spec stored before narration existed has none of these: no narration, and nothing it paid for changes.
    narration: bool = False
    voice: str | None = None  # the narrator's voice (None: the narration provider's default)
    language: str | None = None  # BCP-47 code of the narration (None: the default setting)
    takes: dict[str, str] = Field(default_factory=dict)
    """Regeneration tokens; a new token makes a new rendition from the same inputs. Keys: a scene
    index (``"2"``: its clip), ``frame_take_key(k)`` (a keyframe's retake) or ``sheet_take_key(name)``
    (a character sheet's retake). A project without a key keeps its fingerprints."""

    def frame_take(self, k: int) -> str:
        return self.takes.get(frame_take_key(k), "")

    def sheet_take(self, name: str) -> str:
        return self.takes.get(sheet_take_key(name), "")

    @model_serializer(mode="wrap")
    def _without_unused_files(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A spec without given characters, music or burned subtitles is written as before they
        existed (a record an earlier version can still read, the same JSON for the same project)."""
        data: dict[str, Any] = handler(self)
        if not self.burn_subtitles:
            data.pop("burn_subtitles", None)
        if not self.characters:
            data.pop("characters", None)
        if self.music is None:
            data.pop("music", None)
        return data


def frame_take_key(k: int) -> str:
    """The `ProjectSpec.takes` key of keyframe k's retake (0-based k)."""
    return f"frame:{k}"


def sheet_take_key(name: str) -> str:
    """The `ProjectSpec.takes` key of a character sheet's retake."""
    return f"sheet:{name}"
