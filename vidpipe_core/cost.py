"""The one home of prices: what a call cost, what the rest of a project will cost, and the budget guard.

Every cost vidpipe records (the ledger: keyframe and clip rows, the storyboard document) and every
cost it projects (the estimate, the budget guard, repair prices) is :func:`usage_cost` of a
:class:`Usage`: a finished call prices what it consumed, a projection prices what a call would
consume. Projection and ledger therefore apply the same rates and the same fallbacks.

The rates come from ``Settings.prices`` (``VIDPIPE_PRICES``; see :mod:`vidpipe_core.config`), and
nothing else reads that table. Each rate prices one quantity: input and output tokens per million,
images each, video per second. A clip without audio costs ``per_second_no_audio``, or
``per_second`` when the model's entry has no ``per_second_no_audio``.

A model with no entry in the table has no known price. Pricing something it consumed raises
:class:`ConfigurationError` naming the model: counting it as free would let the budget guard wave
through any spend. An entry without rates (``"animatic": {}``) is free, and a usage that consumed
nothing costs nothing whatever the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from vidpipe_core.config import Settings
from vidpipe_core.errors import BudgetExceeded, ConfigurationError
from vidpipe_core.providers.base import Usage
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.speech import WORDS_PER_SECOND, estimated_seconds
from vidpipe_core.steps import CLIPS, KEYFRAMES, NARRATION, STORYBOARD

# Typical storyboard call size, for estimates before the call is made.
STORYBOARD_INPUT_TOKENS = 1200
STORYBOARD_OUTPUT_TOKENS_PER_SCENE = 350
# Characters with a reference sheet, for estimates before the storyboard says how many there are
# (never more than one per scene).
TYPICAL_CHARACTERS = 2
# Text to speech: a token is about four characters of text; Gemini's audio is 25 tokens a second.
CHARS_PER_TOKEN = 4
AUDIO_TOKENS_PER_S = 25
TYPICAL_WORD = "words"  # a typical line, before the storyboard has written one, is made of these


def _rates(settings: Settings, model: str) -> Mapping[str, float]:
    try:
        return settings.prices[model]
    except KeyError:
        raise ConfigurationError(
            f"no price for model {model!r}, so its cost cannot be projected or recorded; add it to the price "
            f'table, e.g. VIDPIPE_PRICES=\'{{"{model}": {{"per_second": 0.4}}}}\' (rates: input_per_mtok, '
            "output_per_mtok, per_image, per_second, per_second_no_audio; {} for a free model)"
        ) from None


def _video_rate(rates: Mapping[str, float], *, audio: bool) -> float:
    if audio:
        return rates.get("per_second", 0.0)
    return rates.get("per_second_no_audio", rates.get("per_second", 0.0))


def usage_cost(settings: Settings, model: str, usage: Usage, *, audio: bool | None = None) -> float:
    """USD that ``usage`` of ``model`` costs: the one pricing rule, for the ledger and for projections.

    ``audio`` says whether the video seconds had sound; it is required when there are any.
    ``usage.cost_usd`` is not read: the cost always follows from what was consumed.
    """
    if usage.video_seconds and audio is None:
        raise ValueError("a video's price depends on its audio: pass audio=True or audio=False")
    if not (usage.input_tokens or usage.output_tokens or usage.images or usage.video_seconds):
        return 0.0
    rates = _rates(settings, model)
    return (
        usage.input_tokens / 1e6 * rates.get("input_per_mtok", 0.0)
        + usage.output_tokens / 1e6 * rates.get("output_per_mtok", 0.0)
        + usage.images * rates.get("per_image", 0.0)
        + usage.video_seconds * _video_rate(rates, audio=bool(audio))
    )


def priced(settings: Settings, model: str, usage: Usage, *, audio: bool | None = None) -> Usage:
    """``usage`` with ``cost_usd`` set by :func:`usage_cost` (what providers report)."""
    return replace(usage, cost_usd=usage_cost(settings, model, usage, audio=audio))


# Projections: the same rule applied to what calls would consume. -------------------------------


def image_cost(settings: Settings, model: str, images: int = 1) -> float:
    return usage_cost(settings, model, Usage(images=images))


def video_cost(settings: Settings, model: str, seconds: float, audio: bool) -> float:
    return usage_cost(settings, model, Usage(video_seconds=float(seconds)), audio=audio)


def storyboard_cost(settings: Settings, model: str, scenes: int) -> float:
    """A storyboard call of typical size (the real one is priced by the tokens it used)."""
    usage = Usage(input_tokens=STORYBOARD_INPUT_TOKENS, output_tokens=STORYBOARD_OUTPUT_TOKENS_PER_SCENE * scenes)
    return usage_cost(settings, model, usage)


def speech_usage(text: str) -> Usage:
    """What saying ``text`` consumes: its text tokens in, the audio of its estimated length out."""
    if not text.strip():
        return Usage()
    return Usage(
        input_tokens=max(1, len(text) // CHARS_PER_TOKEN),
        output_tokens=round(estimated_seconds(text) * AUDIO_TOKENS_PER_S),
    )


def narration_cost(settings: Settings, model: str, lines: list[str]) -> float:
    """Saying each of ``lines`` once (an empty line is not said)."""
    return sum(usage_cost(settings, model, speech_usage(line)) for line in lines)


def typical_lines(spec: ProjectSpec) -> list[str]:
    """Each scene's line at the longest the storyboard asks for, before it is written."""
    return [" ".join([TYPICAL_WORD] * int(spec.clip_duration * WORDS_PER_SECOND))] * spec.scenes


@dataclass(frozen=True)
class Estimate:
    storyboard_usd: float
    keyframes_usd: float
    clips_usd: float
    characters_usd: float = 0.0  # the reference sheets (one image each, keyframe model)
    narration_usd: float = 0.0  # the narrator's lines (text to speech)

    @property
    def total_usd(self) -> float:
        return self.storyboard_usd + self.after_storyboard_usd

    @property
    def after_storyboard_usd(self) -> float:
        """What the stages after the storyboard still cost."""
        return self.characters_usd + self.keyframes_usd + self.clips_usd + self.narration_usd


def typical_characters(spec: ProjectSpec) -> int:
    return min(TYPICAL_CHARACTERS, spec.scenes)


def estimate(
    settings: Settings,
    spec: ProjectSpec,
    models: dict[str, str],
    *,
    frames: int | None = None,
    clips: int | None = None,
    sheets: int | None = None,
    lines: list[str] | None = None,
) -> Estimate:
    """Projected cost of a whole project (or of `sheets` character sheets, `frames` keyframes,
    `clips` clips and the narration `lines` still to make). Before the storyboard names the
    characters, `sheets` is None and a typical count is assumed (`TYPICAL_CHARACTERS`, at most one
    per scene); before it writes the lines, `lines` is None and each scene's is assumed as long as
    the storyboard may make it. A project without narration (or `models` without a narration
    model) has none to pay."""
    n = spec.scenes
    frames = n + 1 if frames is None else frames
    clips = n if clips is None else clips
    sheets = typical_characters(spec) if sheets is None else sheets
    return Estimate(
        storyboard_usd=storyboard_cost(settings, models[STORYBOARD], n),
        characters_usd=image_cost(settings, models[KEYFRAMES], sheets),
        keyframes_usd=image_cost(settings, models[KEYFRAMES], frames),
        clips_usd=video_cost(settings, models[CLIPS], clips * spec.clip_duration, spec.generate_audio),
        narration_usd=narration_cost(settings, models[NARRATION], typical_lines(spec) if lines is None else lines)
        if spec.narration and NARRATION in models
        else 0.0,
    )


def guard_budget(stage: str, spent_usd: float, projected_usd: float, allowed_usd: float, project_id: str | None = None) -> None:
    """Fail before a paid call when what is spent plus what this stage would spend exceeds the budget
    (the error names the command that raises the budget of ``project_id``)."""
    if spent_usd + projected_usd > allowed_usd + 1e-9:
        raise BudgetExceeded(stage, spent_usd + projected_usd, allowed_usd, project_id)
