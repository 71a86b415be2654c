"""Fingerprints of per-scene work: a digest of everything that changes the output.
Equal fingerprint means the stored artifact can be reused instead of paid for again."""

from __future__ import annotations

import hashlib
import json
from typing import Any

FINGERPRINT_VERSION = 1


def _digest(kind: str, fields: dict[str, Any]) -> str:
    payload = json.dumps({"v": FINGERPRINT_VERSION, "kind": kind, **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def keyframe_fingerprint(
    *,
    provider: str,
    model: str,
    prompt: str,
    aspect_ratio: str,
    reference_sha256: str | None,
    render_size: tuple[int, int] | None,
    character_sha256: tuple[str, ...] = (),
    take: str = "",
) -> str:
    """``character_sha256``: the digests of the reference sheets the frame is conditioned on, in
    the storyboard's order. Only a frame with characters has the field, so a frame without them
    keeps the fingerprint it had before characters existed (its ledger row stays current).
    ``take``: a retake's token (a new image from the same prompt); only a retaken frame has the
    field, so every other frame keeps its fingerprint."""
    fields: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "prompt": prompt,
        "aspect_ratio": aspect_ratio,
        "reference": reference_sha256,
        "size": list(render_size) if render_size else None,
    }
    if character_sha256:
        fields["characters"] = list(character_sha256)
    if take:
        fields["take"] = take
    return _digest("keyframe", fields)


def sheet_fingerprint(
    *,
    provider: str,
    model: str,
    name: str,
    appearance: str,
    prompt: str,
    style: dict[str, Any],
    aspect_ratio: str,
    render_size: tuple[int, int] | None,
    take: str = "",
) -> str:
    """A character's reference sheet: what it is drawn from (name, appearance, the full prompt, the
    style guide's look) and how (provider, model, aspect ratio, size). ``take``: a retake's token;
    only a retaken sheet has the field (every other sheet keeps its fingerprint)."""
    fields: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "name": name,
        "appearance": appearance,
        "prompt": prompt,
        "style": style,
        "aspect_ratio": aspect_ratio,
        "size": list(render_size) if render_size else None,
    }
    if take:
        fields["take"] = take
    return _digest("character_sheet", fields)


def given_sheet_fingerprint(*, name: str, image_sha256: str) -> str:
    """A reference sheet that is the person's own image: the character and the image's bytes (no
    provider, model or prompt makes it)."""
    return _digest("given_sheet", {"name": name, "image": image_sha256})


def clip_fingerprint(
    *,
    provider: str,
    model: str,
    prompt: str,
    start_sha256: str,
    end_sha256: str,
    duration_s: int,
    aspect_ratio: str,
    generate_audio: bool,
    negative_prompt: str,
    seed: int | None,
    render: dict[str, Any] | None = None,
) -> str:
    return _digest(
        "clip",
        {
            "provider": provider,
            "model": model,
            "prompt": prompt,
            "start": start_sha256,
            "end": end_sha256,
            "duration": duration_s,
            "aspect_ratio": aspect_ratio,
            "audio": generate_audio,
            "negative": negative_prompt,
            "seed": seed,
            "render": render or {},
        },
    )


def narration_fingerprint(*, provider: str, model: str, text: str, voice: str, language: str) -> str:
    """A scene's narration line: what is said (the text), by whom and how (provider, model, voice,
    language). The scene's length is not in it: a line that fits is the same line."""
    return _digest("narration", {"provider": provider, "model": model, "text": text, "voice": voice, "language": language})
