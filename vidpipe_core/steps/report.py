"""What a step did, per scene, for metadata, the CLI and tests."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


class Action(str, enum.Enum):
    GENERATED = "generated"
    REUSED = "reused"
    REATTACHED = "reattached"  # a paid operation from an earlier run was picked up, not resubmitted
    REPAIRED = "repaired"  # a damaged file was obtained again at no cost (operation re-fetched, animatic re-rendered)
    DAMAGED = "damaged"  # a damaged file that only a paid regeneration can replace
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass
class ItemReport:
    index: int
    action: Action
    fingerprint: str
    cost_usd: float = 0.0
    duration_s: float | None = None
    path: str | None = None
    detail: str = ""


@dataclass
class StepReport:
    stage: str
    provider: str
    model: str
    items: list[ItemReport] = field(default_factory=list)
    projected_usd: float = 0.0

    @property
    def cost_usd(self) -> float:
        return round(sum(i.cost_usd for i in self.items), 6)

    def count(self, action: Action) -> int:
        return sum(1 for i in self.items if i.action == action)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(i.action.value for i in self.items)
        return {a.value: c.get(a.value, 0) for a in Action}


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    message: str
    scene: int | None = None
    done: int = 0
    total: int = 0
    item: ItemReport | None = None  # what became of the scene, when the event says it is finished
    heartbeat: bool = False  # "still waiting" (a poll, a first poll's countdown): a log may keep one in a while
    opening: bool = False  # "rendering X", whose end ("X rendered") follows: the live display shows it, a log may not


Progress = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    return None
