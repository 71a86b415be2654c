"""Scene numbers as people see them.

The ledger, the storyboard and every list in the code count scenes from 0; every message, label,
option and run config a person reads or types counts them from 1. This module is the one place
that converts between the two: labels for scenes and for the frames that join them, and the
check (with the conversion) of scene numbers a person typed."""

from __future__ import annotations

from collections.abc import Iterable

from vidpipe_core.errors import InvalidInput


def scene_number(index: int) -> int:
    """The number people see for a 0-based scene index."""
    return index + 1


def scene_index(number: int) -> int:
    """The 0-based index of a scene number a person typed (not checked: see `scene_indices`)."""
    return number - 1


def scene_label(index: int) -> str:
    """A 0-based scene index as people number it."""
    return f"scene {index + 1}"


def scene_list(indices: list[int]) -> str:
    """0-based scene indices as people number them: "scene 2", "scenes 1, 3"."""
    numbers = ", ".join(str(i + 1) for i in sorted(set(indices)))
    return f"scene {numbers}" if len(set(indices)) == 1 else f"scenes {numbers}"


def frame_label(k: int, scenes: int) -> str:
    """Frame k (0-based, N scenes have N+1 frames) by the scenes it joins."""
    if k == 0:
        return "the start frame of scene 1"
    if k >= scenes:
        return f"the end frame of scene {scenes}"
    return f"the frame between scenes {k} and {k + 1}"


def frame_number(k: int) -> int:
    """The number people see for a 0-based frame index: frame 1 starts scene 1, frame N+1 ends scene N."""
    return k + 1


def frame_index(number: int, scenes: int) -> int:
    """The 0-based index of a frame number a person typed (from 1), refused outside the N+1 frames
    of a project of ``scenes`` scenes."""
    if not 1 <= number <= scenes + 1:
        note = "; frames are numbered from 1" if number < 1 else ""
        raise InvalidInput(
            "frame",
            f"{number} is out of range{note} (frame 1 starts scene 1, frame {scenes + 1} ends scene {scenes})",
            f"1-{scenes + 1}",
        )
    return number - 1


def frame_tag(k: int, scenes: int) -> str:
    """A short `frame_label` for a thumbnail: "scene 1 start", "scene 1 end / 2 start", "scene 3 end"."""
    if k == 0:
        return "scene 1 start"
    if k >= scenes:
        return f"scene {scenes} end"
    return f"scene {k} end / {k + 1} start"


def scene_indices(numbers: Iterable[int], scenes: int) -> list[int]:
    """Scene numbers a person typed (from 1) as 0-based indices, refused with the numbers as typed
    when any lies outside a project of ``scenes`` scenes."""
    indices = [scene_index(n) for n in numbers]
    check_scene_indices(indices, scenes)
    return indices


def check_scene_indices(indices: list[int], scenes: int) -> None:
    """Refuse 0-based indices outside a project of ``scenes`` scenes, in the 1-based numbers the
    person typed (the CLI and run config take scene numbers from 1 and subtract one)."""
    bad = sorted({i for i in indices if not 0 <= i < scenes})
    if bad:
        which = ", ".join(str(i + 1) for i in bad)
        note = "; scenes are numbered from 1" if bad[0] < 0 else ""
        raise InvalidInput("scene", f"{which} {'is' if len(bad) == 1 else 'are'} out of range{note}", f"1-{scenes}")
