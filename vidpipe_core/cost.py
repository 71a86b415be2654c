"""Prices, estimates before spending, and the budget guard."""
from __future__ import annotations

from dataclasses import dataclass

from vidpipe_core.config import Settings
from vidpipe_core.errors import BudgetExceeded
from vidpipe_core.providers.base import Usage
from vidpipe_core.schemas import ProjectSpec

# Typical storyboard call size, for estimates before the call is made.
STORYBOARD_INPUT_TOKENS = 1200
STORYBOARD_OUTPUT_TOKENS_PER_SCENE = 350


def text_cost(settings: Settings, model: str, input_tokens: int, output_tokens: int) -> float:
    p = settings.price(model)
    return input_tokens / 1e6 * p.get("input_per_mtok", 0.0) + output_tokens / 1e6 * p.get("output_per_mtok", 0.0)


def image_cost(settings: Settings, model: str, images: int = 1) -> float:
    return images * settings.price(model).get("per_image", 0.0)


def video_cost(settings: Settings, model: str, seconds: float, audio: bool) -> float:
    p = settings.price(model)
    rate = p.get("per_second", 0.0) if audio else p.get("per_second_no_audio", p.get("per_second", 0.0))
    return seconds * rate


def usage_cost(settings: Settings, model: str, usage: Usage, audio: bool = True) -> float:
    if usage.cost_usd:
        return usage.cost_usd
    return (
        text_cost(settings, model, usage.input_tokens, usage.output_tokens)
        + image_cost(settings, model, usage.images)
        + video_cost(settings, model, usage.video_seconds, audio)
    )


@dataclass(frozen=True)
class Estimate:
    storyboard_usd: float
    keyframes_usd: float
    clips_usd: float

    @property
    def total_usd(self) -> float:
        return self.storyboard_usd + self.keyframes_usd + self.clips_usd


def estimate(settings: Settings, spec: ProjectSpec, models: dict[str, str], *, frames: int | None = None, clips: int | None = None) -> Estimate:
    """Projected cost of a whole project (or of `frames` keyframes and `clips` clips still to make)."""
    n = spec.scenes
    frames = n + 1 if frames is None else frames
    clips = n if clips is None else clips
    return Estimate(
        storyboard_usd=text_cost(settings, models["storyboard"], STORYBOARD_INPUT_TOKENS, STORYBOARD_OUTPUT_TOKENS_PER_SCENE * n),
        keyframes_usd=image_cost(settings, models["keyframes"], frames),
        clips_usd=video_cost(settings, models["clips"], clips * spec.clip_duration, spec.generate_audio),
    )


def guard_budget(stage: str, spent_usd: float, projected_usd: float, allowed_usd: float) -> None:
    """Fail before a paid call when what is spent plus what this stage would spend exceeds the budget."""
    if spent_usd + projected_usd > allowed_usd + 1e-9:
        raise BudgetExceeded(stage, spent_usd + projected_usd, allowed_usd)
