"""The offline provider: a free, deterministic preview of timing and continuity.

Storyboard: the prompt split into beats by a local planner (``planner``). Keyframes: Pillow
drawings whose palette comes from the style and whose composition comes from the frame prompt's
words (``drawing``). Clips: camera moves and cross-dissolves from start frame to end frame (``motion``).
No network, no key; the same input always gives the same bytes."""

from __future__ import annotations

from vidpipe_core.providers.animatic.provider import AnimaticProvider

__all__ = ["AnimaticProvider"]
