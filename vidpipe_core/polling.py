"""When to poll a video operation: a schedule learned from the ledger.

A Veo clip takes about a minute, and what it takes depends mostly on the model and the clip's
length. Polling from the first second (the backoff of ``poll_initial_s`` doubling up to
``poll_max_s``) spends most of its requests on operations that cannot be done yet. The ledger
already knows how long earlier clips took: ``completed_at - submitted_at`` of every DONE clip.

:func:`poll_schedule` reads the latest ``poll_learn_window`` DONE clips of the same provider and
model whose measured length is within :data:`LENGTH_TOLERANCE_S` of the requested one (the
ledger stores the measured length: 4.04 s for a 4 s request), across all projects, and puts the
first poll at their ``poll_learn_quantile`` less one ``poll_interval_s``, counted from the
operation's submission; after it, a poll every ``poll_interval_s`` (at most ``poll_max_s``).
An operation submitted long ago (a run resumed after a crash) is polled at once.

Why one interval less than the quantile: ``completed_at`` is when a poll *saw* the clip done
(plus its download), not when it finished, so every learned duration is late by up to one
interval. Aiming at the quantile itself would let each batch learn a later figure from the
previous one and creep; aiming one interval early cancels that lag (bench/README.md, polling).

Fewer than ``poll_learn_min_samples`` clips, or ``VIDPIPE_POLL_LEARN=false``: no schedule, and
the provider keeps its backoff.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select

from vidpipe_core.config import Settings
from vidpipe_core.models import ClipStatus, VideoClip, utc, utcnow
from vidpipe_core.services import Services

LENGTH_TOLERANCE_S = 0.5  # a clip "of the same length": measured length within this of the request


@dataclass(frozen=True)
class PollSchedule:
    """Poll one operation first ``first_poll_s`` after its submission, then every ``interval_s``."""

    first_poll_s: float
    interval_s: float
    samples: int  # how many earlier clips it was learned from
    quantile: float
    quantile_s: float  # that quantile of their durations
    submitted_at: datetime | None = None  # the operation's submission (ledger); None: now

    def first_wait_s(self, now: datetime | None = None) -> float:
        """Seconds from ``now`` to the first poll: 0 for an operation submitted long ago."""
        if self.submitted_at is None:
            return self.first_poll_s
        elapsed = ((now or utcnow()) - utc(self.submitted_at)).total_seconds()
        return max(0.0, self.first_poll_s - elapsed)

    def for_operation(self, submitted_at: datetime | None) -> PollSchedule:
        return replace(self, submitted_at=submitted_at)

    def describe(self) -> str:
        return (
            f"first poll {self.first_poll_s:.1f}s after submission (q{self.quantile:g} of {self.samples} earlier clips: "
            f"{self.quantile_s:.1f}s), then every {self.interval_s:g}s"
        )


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` by linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def learned_durations(services: Services, provider: str, model: str, length_s: float, window: int) -> list[float]:
    """``completed_at - submitted_at`` (s) of the latest ``window`` DONE clips of ``provider`` and
    ``model`` whose measured length is within LENGTH_TOLERANCE_S of ``length_s``, newest first."""
    query = (
        select(VideoClip.submitted_at, VideoClip.completed_at)
        .where(
            VideoClip.status == ClipStatus.DONE,
            VideoClip.provider == provider,
            VideoClip.model == model,
            VideoClip.duration_s >= length_s - LENGTH_TOLERANCE_S,
            VideoClip.duration_s <= length_s + LENGTH_TOLERANCE_S,
            VideoClip.submitted_at.is_not(None),
            VideoClip.completed_at.is_not(None),
        )
        .order_by(VideoClip.completed_at.desc(), VideoClip.id.desc())
        .limit(window)
    )
    with services.db.session() as s:
        rows = s.execute(query).all()
    out = []
    for submitted, completed in rows:
        took = (utc(completed) - utc(submitted)).total_seconds()
        if took > 0:  # a clock step backwards would teach nonsense
            out.append(took)
    return out


def schedule_from(durations: Sequence[float], settings: Settings) -> PollSchedule | None:
    """The schedule ``durations`` teach under ``settings``; None when learning is off or they are too few."""
    if not settings.poll_learn or len(durations) < settings.poll_learn_min_samples:
        return None
    interval = min(settings.poll_interval_s, settings.poll_max_s)
    q = quantile(durations, settings.poll_learn_quantile)
    return PollSchedule(
        first_poll_s=max(0.0, q - interval),
        interval_s=interval,
        samples=len(durations),
        quantile=settings.poll_learn_quantile,
        quantile_s=q,
    )


def poll_schedule(
    services: Services, provider: str, model: str, length_s: float, submitted_at: datetime | None = None
) -> PollSchedule | None:
    """The learned schedule for one operation of ``provider``/``model`` making a clip of
    ``length_s`` seconds, submitted at ``submitted_at``; None: use the provider's backoff."""
    settings = services.settings
    if not settings.poll_learn:
        return None
    durations = learned_durations(services, provider, model, length_s, settings.poll_learn_window)
    schedule = schedule_from(durations, settings)
    return None if schedule is None else schedule.for_operation(submitted_at)


__all__ = ["LENGTH_TOLERANCE_S", "PollSchedule", "learned_durations", "poll_schedule", "quantile", "schedule_from"]
