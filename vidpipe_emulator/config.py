"""Emulator settings and fault-injection knobs.

Both are plain dataclasses so they can be built in Python, merged from the
JSON body of ``POST /_emulator/config`` and echoed back in ``/_emulator/stats``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Endpoint kinds used for counters, latency, ``fail_first`` and ``drop_first``.
ENDPOINT_KINDS: tuple[str, ...] = ("text", "image", "speech", "video_submit", "video_poll", "download")

VIDEO_DELIVERY_MODES: tuple[str, ...] = ("bytes", "uri")


@dataclass
class Settings:
    """Behavioural settings that are not faults."""

    image_height: int = 768
    video_height: int = 720
    #: Seconds from a ``predictLongRunning`` submit until polls report done.
    video_latency_s: float = 2.0
    #: Each operation's latency is ``video_latency_s`` plus a uniform draw from
    #: [-jitter, +jitter] (never below 0), from an RNG seeded with ``seed`` alone
    #: (so jitter does not shift the fault sequence, nor faults the latencies).
    video_latency_jitter_s: float = 0.0
    #: ``"bytes"``: done responses carry ``bytesBase64Encoded``;
    #: ``"uri"``: they carry ``gcsUri`` served by the fake GCS JSON API.
    video_delivery: str = "bytes"
    require_api_key: bool = True
    #: Seed for the RNG behind ``rate_429`` / ``rate_503``.
    seed: int = 0
    fps: int = 24
    bucket: str = "vidpipe-emulator"
    #: How fast the emulated narrator speaks (text to speech): its audio lasts words / this seconds.
    speech_words_per_s: float = 2.5

    def validate(self) -> None:
        if self.video_delivery not in VIDEO_DELIVERY_MODES:
            raise ValueError(f"video_delivery must be one of {VIDEO_DELIVERY_MODES}")
        if self.image_height < 2 or self.video_height < 2:
            raise ValueError("image_height and video_height must be >= 2")
        if self.fps < 1:
            raise ValueError("fps must be >= 1")
        if not self.speech_words_per_s > 0:
            raise ValueError("speech_words_per_s must be > 0")
        if self.video_latency_s < 0 or self.video_latency_jitter_s < 0:
            raise ValueError("video_latency_s and video_latency_jitter_s must be >= 0")


@dataclass
class Faults:
    """Fault injection.

    ``fail_first``, ``drop_first``, ``malformed_json_first_n``,
    ``empty_image_first_n`` and ``stray_character_first_n`` are *armed* whenever they are configured (and on
    reset): they apply to the next matching requests, not to requests made
    before the configuration changed.  For one kind, drops are consumed before
    failures.
    """

    rate_429: float = 0.0
    rate_503: float = 0.0
    #: kind -> status codes returned (in order) for the next requests of that kind.
    fail_first: dict[str, list[int]] = field(default_factory=dict)
    #: kind -> number of next requests of that kind answered by closing the socket.
    drop_first: dict[str, int] = field(default_factory=dict)
    #: kind -> seconds to sleep before answering.
    latency: dict[str, float] = field(default_factory=dict)
    safety_word: str | None = None
    error_word: str | None = None
    never_finish_word: str | None = None
    corrupt_word: str | None = None
    corrupt_video: bool = False
    malformed_json_first_n: int = 0
    empty_image_first_n: int = 0
    #: The next N storyboard answers (JSON with ``style_guide`` and ``scenes``) make the last
    #: scene name a character the style guide does not describe.
    stray_character_first_n: int = 0

    def validate(self) -> None:
        for name in ("fail_first", "drop_first", "latency"):
            unknown = set(getattr(self, name)) - set(ENDPOINT_KINDS)
            if unknown:
                raise ValueError(f"{name}: unknown endpoint kinds {sorted(unknown)}")
        for rate in (self.rate_429, self.rate_503):
            if not 0.0 <= rate <= 1.0:
                raise ValueError("rates must be within [0, 1]")


_SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(Settings))
_FAULT_FIELDS = frozenset(f.name for f in dataclasses.fields(Faults))


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split flat keyword overrides into (settings, faults) dicts.

    A nested ``{"faults": {...}}`` or ``{"settings": {...}}`` is accepted too,
    which is convenient for JSON callers.
    """
    settings: dict[str, Any] = {}
    faults: dict[str, Any] = {}
    for key, value in overrides.items():
        if key == "faults" and isinstance(value, Mapping):
            faults.update(value)
        elif key == "settings" and isinstance(value, Mapping):
            settings.update(value)
        elif key in _SETTINGS_FIELDS:
            settings[key] = value
        elif key in _FAULT_FIELDS:
            faults[key] = value
        else:
            raise ValueError(f"unknown emulator option: {key!r}")
    for key in faults:
        if key not in _FAULT_FIELDS:
            raise ValueError(f"unknown fault option: {key!r}")
    for key in settings:
        if key not in _SETTINGS_FIELDS:
            raise ValueError(f"unknown setting: {key!r}")
    return settings, faults


def _coerce(current: Any, value: Any) -> Any:
    """Coerce JSON values to the type of the current field value."""
    if isinstance(current, bool):
        return bool(value)
    if isinstance(current, int) and not isinstance(value, bool) and isinstance(value, (int, float, str)):
        return int(value)
    if isinstance(current, float) and isinstance(value, (int, float, str)):
        return float(value)
    return value


def apply_settings(base: Settings, changes: Mapping[str, Any]) -> Settings:
    """Return a validated copy of ``base`` with ``changes`` applied."""
    new = dataclasses.replace(base, **{k: _coerce(getattr(base, k), v) for k, v in changes.items()})
    new.validate()
    return new


def apply_faults(base: Faults, changes: Mapping[str, Any]) -> Faults:
    """Return a validated copy of ``base`` with ``changes`` applied."""
    norm: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "fail_first":
            norm[key] = {str(k): [int(c) for c in v] for k, v in dict(value or {}).items()}
        elif key == "drop_first":
            norm[key] = {str(k): int(v) for k, v in dict(value or {}).items()}
        elif key == "latency":
            norm[key] = {str(k): float(v) for k, v in dict(value or {}).items()}
        elif key.endswith("_word"):
            norm[key] = str(value) if value else None
        else:
            norm[key] = _coerce(getattr(base, key), value)
    new = dataclasses.replace(base, **norm)
    new.validate()
    return new
