"""The two shapes a video operation's wait and the poll schedule share: what the polls of one wait
saw (:class:`PollObservation`, which a provider returns with a clip) and when to poll
(:class:`PollSchedule`, which vidpipe_core.polling learns from those observations and a provider
follows). A leaf: the providers and the polling module both import it, it imports neither."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

from vidpipe_core.models import utc, utcnow


@dataclass(frozen=True)
class PollObservation:
    """What the polls of one wait saw (wall clock, aware UTC): when the last poll that found the
    operation running was sent (None: the first poll found it done), and when the poll that first
    found it done was sent and answered. The provider's latency lies between the first and the
    last; vidpipe_core.polling learns from it."""

    running_seen_at: datetime | None
    done_asked_at: datetime
    done_seen_at: datetime


@dataclass(frozen=True)
class PollSchedule:
    """Poll one operation first ``first_poll_s`` after its submission, then every ``interval_s``."""

    first_poll_s: float
    interval_s: float
    samples: int  # how many earlier clips it was learned from
    quantile: float
    quantile_s: float  # that quantile of the intervals their latencies lie in
    early: int = 0  # of them, how many were done at their first poll
    ceiling_s: float = math.inf  # the model's ceiling (or half poll_timeout_s), where it applied
    submitted_at: datetime | None = None  # the operation's submission (ledger); None: now

    @property
    def capped(self) -> bool:
        return self.quantile_s > self.ceiling_s

    def first_wait_s(self, now: datetime | None = None) -> float:
        """Seconds from ``now`` to the first poll: 0 for an operation submitted long ago."""
        if self.submitted_at is None:
            return self.first_poll_s
        elapsed = ((now or utcnow()) - utc(self.submitted_at)).total_seconds()
        return max(0.0, self.first_poll_s - elapsed)

    def for_operation(self, submitted_at: datetime | None) -> PollSchedule:
        return replace(self, submitted_at=submitted_at)

    def basis(self) -> str:
        """Where the first poll comes from, for a progress line: "learned from 9 earlier clips …"."""
        text = f"learned from {self.samples} earlier clips of this model and length"
        if self.early:
            text += f", {self.early} of them done at their first poll"
        if self.capped:
            text += f"; capped at {self.ceiling_s:g}s"
        return text

    def describe(self) -> str:
        return (
            f"first poll {self.first_poll_s:.1f}s after submission (q{self.quantile:g} of {self.samples} earlier clips: "
            f"{self.quantile_s:.1f}s{f', capped at {self.ceiling_s:g}s' if self.capped else ''}), then every {self.interval_s:g}s"
        )


__all__ = ["PollObservation", "PollSchedule"]
