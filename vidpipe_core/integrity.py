"""Stored bytes are checked against the ledger before they are reused.

Every keyframe and clip row records the sha256 of the bytes written for it. A file that is
missing, truncated or overwritten no longer matches, and is then re-obtained without paying
where the provider allows it (a video operation that still holds its result is fetched again;
the animatic provider renders the same bytes again) or reported with what regenerating it costs.
People see scenes numbered from 1; frames are named by the scenes they join."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from vidpipe_core.errors import InvalidInput, VidpipeError
from vidpipe_core.storage import ArtifactStore


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


def frame_tag(k: int, scenes: int) -> str:
    """A short `frame_label` for a thumbnail: "scene 1 start", "scene 1 end / 2 start", "scene 3 end"."""
    if k == 0:
        return "scene 1 start"
    if k >= scenes:
        return f"scene {scenes} end"
    return f"scene {k} end / {k + 1} start"


def check_scene_indices(indices: list[int], scenes: int) -> None:
    """Refuse 0-based indices outside a project of ``scenes`` scenes, in the 1-based numbers the
    person typed (the CLI and run config take scene numbers from 1 and subtract one)."""
    bad = sorted({i for i in indices if not 0 <= i < scenes})
    if bad:
        which = ", ".join(str(i + 1) for i in bad)
        note = "; scenes are numbered from 1" if bad[0] < 0 else ""
        raise InvalidInput("scene", f"{which} {'is' if len(bad) == 1 else 'are'} out of range{note}", f"1-{scenes}")


def digest_problem(data: bytes | None, expected_sha256: str | None) -> str | None:
    """None when ``data`` is what the ledger recorded; else what is wrong with it."""
    if data is None:
        return "the file is missing"
    if not data:
        return "the file is empty"
    if expected_sha256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            return (
                f"its content does not match the ledger ({len(data)} bytes, sha256 {actual[:12]}..., "
                f"recorded {expected_sha256[:12]}...)"
            )
    return None


def read_checked(
    store: ArtifactStore, project_id: str, relpath: str, expected_sha256: str | None
) -> tuple[bytes | None, str | None]:
    """The stored bytes and None, or (whatever was read, the problem)."""
    try:
        data = store.read_bytes(project_id, relpath)
    except FileNotFoundError:
        return None, "the file is missing"
    except IsADirectoryError:
        return None, "a folder stands where the file should be"
    return data, digest_problem(data, expected_sha256)


@dataclass(frozen=True)
class Damage:
    what: str  # "the clip of scene 3", "the frame between scenes 2 and 3"
    problem: str
    repair: str  # what fixes it, and what it costs


class DamagedArtifacts(VidpipeError):
    """Stored files that no longer match the ledger and cannot be re-obtained for free."""

    def __init__(self, stage: str, project_id: str, damage: list[Damage], cost_usd: float, note: str = "") -> None:
        self.damage, self.cost_usd = damage, cost_usd
        lines = "; ".join(f"{d.what}: {d.problem}; {d.repair}" for d in damage)
        super().__init__(
            f"{stage}: {lines}. {note + ' ' if note else ''}Paying ${cost_usd:.2f} to regenerate is your call: "
            f"`vidpipe resume {project_id} --repair` (or run config `repair_damaged: true`)"
        )
