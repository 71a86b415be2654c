"""Provider selection: per project and per stage, `auto` meaning google when credentials exist."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import cast

from vidpipe_core.config import ProviderName, Settings
from vidpipe_core.errors import ConfigurationError, InvalidInput
from vidpipe_core.providers.base import ClipProvider, KeyframeProvider, NarrationProvider, StoryboardProvider
from vidpipe_core.speech import GEMINI_VOICES
from vidpipe_core.steps import CLIPS, KEYFRAMES, STORYBOARD

PROVIDERS = ("animatic", "google")
PROVIDER_STAGES = (STORYBOARD, KEYFRAMES, CLIPS)  # the stages a provider makes (characters use the keyframe provider)
# The narration is said by the clips' provider: Veo clips get Gemini's narrator, an animatic preview
# (free) the offline one. Both offer Gemini's voice names (the animatic reads every one with
# espeak-ng's voice of the project's language), so a project keeps its voice when its clips move
# from the preview to Veo.


def google_ready(env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    from vidpipe_core.providers.google.client import google_credentials_status

    return google_credentials_status(os.environ if env is None else env)


def resolve_stage_providers(settings: Settings, provider: str | None = None, **per_stage: str | None) -> dict[str, ProviderName]:
    """The provider of each stage: explicit per-stage choice > explicit project choice > settings > auto."""
    for key, value in [("provider", provider), *((f"{stage}_provider", v) for stage, v in per_stage.items())]:
        if value is not None and value not in (*PROVIDERS, "auto"):
            raise InvalidInput(key, f"unknown provider {value!r}", ", ".join(("auto", *PROVIDERS)))

    def auto(value: str) -> ProviderName:
        if value != "auto":
            return cast(ProviderName, value)  # checked against PROVIDERS above
        return "google" if google_ready()[0] else "animatic"

    default = auto(provider or settings.provider)
    # Per-stage settings apply only when the project did not name one provider for all stages.
    configured = (
        {}
        if provider
        else {
            STORYBOARD: settings.storyboard_provider,
            KEYFRAMES: settings.keyframe_provider,
            CLIPS: settings.clip_provider,
        }
    )
    chosen = {stage: auto(per_stage.get(stage) or configured.get(stage) or default) for stage in PROVIDER_STAGES}
    if "google" in chosen.values():
        ok, message = google_ready()
        if not ok:
            raise ConfigurationError(message)
    return chosen


def storyboard_provider(name: str, settings: Settings) -> StoryboardProvider:
    if name == "google":
        from vidpipe_core.providers.google import GoogleStoryboard

        return GoogleStoryboard(settings)
    from vidpipe_core.providers.animatic import AnimaticProvider

    return AnimaticProvider(settings)


def keyframe_provider(name: str, settings: Settings) -> KeyframeProvider:
    if name == "google":
        from vidpipe_core.providers.google import GoogleKeyframes

        return GoogleKeyframes(settings)
    from vidpipe_core.providers.animatic import AnimaticProvider

    return AnimaticProvider(settings)


def clip_provider(name: str, settings: Settings) -> ClipProvider:
    if name == "google":
        from vidpipe_core.providers.google import GoogleClips

        return GoogleClips(settings)
    from vidpipe_core.providers.animatic import AnimaticProvider

    return AnimaticProvider(settings)


def narration_provider(name: str, settings: Settings) -> NarrationProvider:
    """The narrator of a project whose clips ``name`` makes."""
    if name == "google":
        from vidpipe_core.providers.google.speech import GoogleSpeech

        return GoogleSpeech(settings)
    from vidpipe_core.providers.animatic.speech import AnimaticSpeech

    return AnimaticSpeech(settings)


def narrator_voices() -> tuple[str, ...]:
    """The voices a project may name: every narrator offers Gemini's."""
    return GEMINI_VOICES
