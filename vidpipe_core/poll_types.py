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


MIN_GAP_SHARE = 0.25  # no two polls of one operation closer than this share of the interval


@dataclass(frozen=True)
class PollSchedule:
    """Poll one operation first ``first_poll_s`` after its submission, then at ``then_s`` (seconds
    after submission: where earlier clips were done, denser than ``interval_s`` where most were),
    then every ``interval_s``."""

    first_poll_s: float
    interval_s: float
    samples: int  # how many earlier clips it was learned from
    quantile: float
    quantile_s: float  # that quantile of the intervals their latencies lie in
    early: int = 0  # of them, how many were done at their first poll
    ceiling_s: float = math.inf  # the model's ceiling (or half poll_timeout_s), where it applied
    submitted_at: datetime | None = None  # the operation's submission (ledger); None: now
    then_s: tuple[float, ...] = ()  # the learned polls after the first, seconds after submission, ascending

    @property
    def min_gap_s(self) -> float:
        """The shortest wait between two polls: a quarter of the interval."""
        return self.interval_s * MIN_GAP_SHARE

    @property
    def capped(self) -> bool:
        return self.quantile_s > self.ceiling_s

    def first_wait_s(self, now: datetime | None = None) -> float:
        """Seconds from ``now`` to the first poll: 0 for an operation submitted long ago."""
        return max(0.0, self.first_poll_s - self.since_submission_s(0.0, now))

    def since_submission_s(self, waited_s: float, now: datetime | None = None) -> float:
        """Seconds since the operation's submission (``waited_s``, the wait so far, when it is not known)."""
        if self.submitted_at is None:
            return waited_s
        return ((now or utcnow()) - utc(self.submitted_at)).total_seconds()

    def next_wait_s(self, since_submission_s: float) -> float:
        """The wait after a poll that found the operation running ``since_submission_s`` after its
        submission: to the next learned poll still ahead (at least ``min_gap_s``), else ``interval_s``."""
        for at in self.then_s:
            if at > since_submission_s:
                return min(max(at - since_submission_s, self.min_gap_s), self.interval_s)
        return self.interval_s

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
        then = f"then at {', '.join(f'{t:.2f}' for t in self.then_s)}s, " if self.then_s else ""
        return (
            f"first poll {self.first_poll_s:.1f}s after submission (q{self.quantile:g} of {self.samples} earlier clips: "
            f"{self.quantile_s:.1f}s{f', capped at {self.ceiling_s:g}s' if self.capped else ''}), "
            f"{then}then every {self.interval_s:g}s"
        )


__all__ = ["MIN_GAP_SHARE", "PollObservation", "PollSchedule"]
