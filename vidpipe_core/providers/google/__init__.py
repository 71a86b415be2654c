"""The ``google`` provider: Gemini storyboard, Gemini image keyframes, Veo clips on Vertex AI.

One small class per stage protocol (:class:`GoogleStoryboard`, :class:`GoogleKeyframes`,
:class:`GoogleClips`), sharing one lazily built ``genai.Client`` (one per process and environment) through
:class:`GoogleClient`. :class:`GoogleProvider` bundles the three for callers that want all
of them on one client.

The client is built from the SDK's standard environment only (``genai.Client()``):
``GOOGLE_GENAI_USE_VERTEXAI``, ``GOOGLE_CLOUD_PROJECT``, ``GOOGLE_CLOUD_LOCATION``,
``GOOGLE_API_KEY``, ``GOOGLE_VERTEX_BASE_URL``. SDK retries are left off (its default);
every call goes through :func:`vidpipe_core.retry.retry_call` instead.

The package, by concern: ``client`` (credentials, the shared client, what the stages share),
``storyboard``, ``images`` (keyframes and reference sheets), ``clips`` (Veo submit, wait,
outcome) and ``download`` (Cloud Storage, the decode check).
"""

from __future__ import annotations

from typing import Any

from vidpipe_core.config import Settings
from vidpipe_core.providers.google.client import NAME, GoogleClient, _holder, google_credentials_status, redact
from vidpipe_core.providers.google.clips import GoogleClips, operation_ref
from vidpipe_core.providers.google.download import video_decode_error
from vidpipe_core.providers.google.images import (
    GoogleKeyframes,
    aspect_ratio_error,
    keyframe_inputs,
    keyframe_prompt,
    max_input_images,
)
from vidpipe_core.providers.google.storyboard import GoogleStoryboard
from vidpipe_core.steps import CLIPS, KEYFRAMES, STORYBOARD

# --- bundle --------------------------------------------------------------------------------


class GoogleProvider:
    """The three google stage providers on one shared client."""

    name = NAME

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        shared = _holder(client)
        self.storyboard = GoogleStoryboard(settings, shared)
        self.keyframes = GoogleKeyframes(settings, shared)
        self.clips = GoogleClips(settings, shared)

    def for_stage(self, stage: str) -> GoogleStoryboard | GoogleKeyframes | GoogleClips:
        stages: dict[str, GoogleStoryboard | GoogleKeyframes | GoogleClips] = {
            STORYBOARD: self.storyboard,
            KEYFRAMES: self.keyframes,
            CLIPS: self.clips,
        }
        try:
            return stages[stage]
        except KeyError:
            raise ValueError(f"unknown stage {stage!r}; expected storyboard, keyframes or clips") from None


__all__ = [
    "GoogleClient",
    "GoogleClips",
    "GoogleKeyframes",
    "GoogleProvider",
    "GoogleStoryboard",
    "aspect_ratio_error",
    "google_credentials_status",
    "keyframe_inputs",
    "keyframe_prompt",
    "max_input_images",
    "operation_ref",
    "redact",
    "video_decode_error",
]
