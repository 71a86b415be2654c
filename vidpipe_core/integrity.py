"""Stored bytes are checked against the ledger before they are reused.

Every keyframe and clip row records the sha256 of the bytes written for it. A file that is
missing, truncated or overwritten no longer matches, and is then re-obtained without paying
where the provider allows it (a video operation that still holds its result is fetched again;
the animatic provider renders the same bytes again) or reported with what regenerating it costs.
How a damaged scene or frame is named for people: vidpipe_core.scenes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from vidpipe_core.errors import VidpipeError
from vidpipe_core.storage import ArtifactStore


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
