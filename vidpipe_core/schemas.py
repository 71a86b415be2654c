"""Pydantic models at the boundaries: the project spec (user input), the storyboard (LLM output)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vidpipe_core.config import ProviderName, SafetyPolicy
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
    # A spec stored before narration existed has none of these: no narration, and nothing it paid for changes.
    narration: bool = False
    voice: str | None = None  # the narrator's voice (None: the narration provider's default)
    language: str | None = None  # BCP-47 code of the narration (None: the default setting)
    takes: dict[str, str] = Field(default_factory=dict)
    """Scene index -> regeneration token; a new token makes a new clip from the same inputs."""
