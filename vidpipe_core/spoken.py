"""What the final mix is told about the words of a project: one line of narration or dialogue per
scene, with the audio actually made for it. The narration step produces these; the stitch step
places the audio under the picture and times the subtitles from them. A leaf module both import."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SpokenKind = Literal["narration", "dialogue"]


@dataclass(frozen=True)
class SpokenLine:
    """One scene's line. ``scene_index`` is 0-based (people read ``scenes.scene_number``).

    ``audio`` is a local WAV of exactly the speech as made (after any tempo change), or None when
    no audio exists for it (dialogue: Veo speaks it inside the clip; narration offline without a
    speech engine: silence, the subtitles are still made). ``duration_s`` is the length of the
    speech in seconds, measured from the audio where there is one; the subtitle cue lasts that long
    from the line's start inside its scene (``offset_s`` after the scene begins)."""

    scene_index: int
    text: str
    kind: SpokenKind
    duration_s: float
    audio: Path | None = None
    offset_s: float = 0.0
