"""When to poll a video operation: a schedule learned from what earlier polls saw.

A Veo clip takes about a minute, and what it takes depends mostly on the model and the clip's
length. Polling from the first second (the backoff of ``poll_initial_s`` doubling up to
``poll_max_s``) spends most of its requests on operations that cannot be done yet, so the first
poll waits for what earlier clips of the same model and length teach.

What it learns from. A wait that began at the operation's submission records in the ledger when
the last poll that found the operation running was sent (``running_seen_at``) and when the poll
that first found it done was sent and answered (``done_asked_at``, ``done_seen_at``); the
provider's latency lies between them. Not ``completed_at - submitted_at``: that also counts the
time a process was dead before a resume and the time a busy machine took to poll, download and
save, and one outage taught every later clip to wait minutes for a seconds-long operation
(issue 21). :func:`bracket` turns one observation into the interval its latency lies in, or
leaves it out:

- re-attached after a resume or a restart: nothing is recorded, nothing learned;
- seen running, then done: between the running poll's sending and the done poll's answer, when
  that is tight (at most one interval plus :func:`answer_bound`); a stalled process or a busy
  machine's slow answers widen it, and such observations are left out. So no delay of ours can
  teach a latency later than the provider's by more than that bound;
- done at its first poll, answered promptly (within :func:`answer_bound`): between its submission
  and that poll. The first poll came too late, by an unknown amount.

The first poll is the ``poll_learn_quantile`` of the mixture of these intervals, each taken as
uniform (:func:`interval_quantile`). When no more than that share of operations is done at the
first poll, it follows the latencies seen; when more are, it comes down in proportion (twice the
share: half as late), so every operation found done at its first poll moves the next first poll
earlier, and while it is the newest observation the next first poll comes at least one interval
before its own. It comes down as fast as it goes up: going up, the slower clips must fill three
quarters of the window (q0.25) before it follows them.

:func:`poll_schedule` reads the latest ``poll_learn_window`` DONE clips watched from their
submission, of the same provider and model and a measured length within
:data:`LENGTH_TOLERANCE_S` of the requested one (the ledger stores the measured length: 4.04 s for
a 4 s request), across all projects, and puts the first poll at the ``poll_learn_quantile`` of
these intervals (earlier after a clip done at its first poll, above), counted from the operation's
submission, at most the model's ceiling (``poll_first_max_s``) and half ``poll_timeout_s``; after
it, :data:`LATER_POLLS` polls where the rest of the mixture lies (:func:`later_polls`), then a poll
every ``poll_interval_s`` (at most ``poll_max_s``). With the first poll at q0.25 and then one
interval later, a clip done just after the first poll was seen up to one interval late (in a
traced render on the emulator, 4 s operations, 0.25 s interval: the done poll 0.22-0.24 s after
the operation ended, 0.00-0.03 s with the later polls), for up to three more polls per clip
where clips end close together; where they spread over more than an interval the later polls
are one interval apart, as before (bench/README.md, Veo polling). An operation submitted long ago (a
run resumed after a crash) is polled at once. Fewer than ``poll_learn_min_samples`` intervals, or
``VIDPIPE_POLL_LEARN=false``: no schedule, and the provider keeps its backoff.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from vidpipe_core.config import DEFAULT_FIRST_POLL_MAX_S, Settings
from vidpipe_core.models import ClipStatus, VideoClip, utc
from vidpipe_core.poll_types import MIN_GAP_SHARE, PollObservation, PollSchedule
from vidpipe_core.services import Services

LENGTH_TOLERANCE_S = 0.5  # a clip "of the same length": measured length within this of the request
LATER_POLLS = 3  # learned polls after the first (vidpipe_core.polling.later_polls), then every interval
ANSWER_SLACK_S = 1.0  # a poll's own answer (the done one carries the video) may take this long, or one interval


@dataclass(frozen=True)
class Observed:
    """One operation's observation in seconds after its submission: the last poll that found it
    running was sent at ``running_s`` (None: its first poll found it done), the poll that found
    it done was sent at ``asked_s`` and answered at ``seen_s``."""

    running_s: float | None
    asked_s: float
    seen_s: float


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` by linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def interval_of(settings: Settings) -> float:
    """The wait between polls after the learned first poll."""
    return min(settings.poll_interval_s, settings.poll_max_s)


def answer_bound(interval_s: float) -> float:
    """How long one poll's answer may take for its observation to count as prompt."""
    return max(interval_s, ANSWER_SLACK_S)


def ceiling(settings: Settings, model: str) -> float:
    """The latest first poll for ``model``: its ``poll_first_max_s`` entry ('*' for any other
    model), and never more than half ``poll_timeout_s`` (the rest is for the polls after it)."""
    table = {**DEFAULT_FIRST_POLL_MAX_S, **settings.poll_first_max_s}
    return min(table.get(model, table["*"]), settings.poll_timeout_s / 2)


def bracket(observed: Observed, interval_s: float) -> tuple[float, float] | None:
    """The interval (seconds after submission) the latency lies in, or None when it is too loose."""
    prompt = answer_bound(interval_s)
    if observed.running_s is None:  # done at its first poll: some time before it
        return None if observed.seen_s - observed.asked_s > prompt else (0.0, observed.seen_s)
    if observed.seen_s - observed.running_s > interval_s + prompt:
        return None
    return (max(0.0, observed.running_s), observed.seen_s)


def interval_quantile(intervals: Sequence[tuple[float, float]], q: float) -> float:
    """The ``q`` quantile of the mixture of ``intervals`` (each uniform over itself, a point when
    empty, all weighted alike): the least x where the share of the mixture at or below x reaches q."""
    if not intervals:
        raise ValueError("quantile of no intervals")

    def share(x: float) -> float:
        total = 0.0
        for low, high in intervals:
            total += (1.0 if x >= low else 0.0) if high <= low else min(1.0, max(0.0, (x - low) / (high - low)))
        return total / len(intervals)

    low, high = min(a for a, _ in intervals), max(b for _, b in intervals)
    while high - low > 1e-6:
        middle = (low + high) / 2
        low, high = (low, middle) if share(middle) >= q else (middle, high)
    return high


def observed_columns(observation: PollObservation | None) -> dict[str, datetime | None]:
    """The ledger columns (video_clips) that keep ``observation``; all None for an operation not
    watched from its submission (re-attached), which is then never learned from."""
    if observation is None:
        return {"running_seen_at": None, "done_asked_at": None, "done_seen_at": None}
    return {
        "running_seen_at": observation.running_seen_at,
        "done_asked_at": observation.done_asked_at,
        "done_seen_at": observation.done_seen_at,
    }


def observations(services: Services, provider: str, model: str, length_s: float, window: int) -> list[Observed]:
    """The latest ``window`` DONE clips of ``provider`` and ``model`` whose measured length is
    within LENGTH_TOLERANCE_S of ``length_s`` and whose polls were watched from their
    submission, newest first."""
    query = (
        select(VideoClip.submitted_at, VideoClip.running_seen_at, VideoClip.done_asked_at, VideoClip.done_seen_at)
        .where(
            VideoClip.status == ClipStatus.DONE,
            VideoClip.provider == provider,
            VideoClip.model == model,
            VideoClip.duration_s >= length_s - LENGTH_TOLERANCE_S,
            VideoClip.duration_s <= length_s + LENGTH_TOLERANCE_S,
            VideoClip.submitted_at.is_not(None),
            VideoClip.done_asked_at.is_not(None),
            VideoClip.done_seen_at.is_not(None),
        )
        .order_by(VideoClip.done_seen_at.desc(), VideoClip.id.desc())
        .limit(window)
    )
    with services.db.session() as s:
        rows = s.execute(query).all()
    out = []
    for submitted, running, asked, seen in rows:
        start = utc(submitted)
        asked_s, seen_s = (utc(asked) - start).total_seconds(), (utc(seen) - start).total_seconds()
        if seen_s < 0 or asked_s > seen_s:  # a clock step backwards would teach nonsense
            continue
        out.append(Observed(None if running is None else (utc(running) - start).total_seconds(), asked_s, seen_s))
    return out


def schedule_from(observed: Sequence[Observed], settings: Settings, model: str) -> PollSchedule | None:
    """The schedule ``observed`` teaches under ``settings`` for ``model``; None when learning is
    off or too few observations are tight enough to learn from."""
    if not settings.poll_learn:
        return None
    interval = interval_of(settings)
    learned = [(o, b) for o in observed if (b := bracket(o, interval)) is not None]
    if len(learned) < settings.poll_learn_min_samples:
        return None
    q = interval_quantile([b for _, b in learned], settings.poll_learn_quantile)
    top = ceiling(settings, model)
    first = min(q, top)
    newest = learned[0][0]
    if newest.running_s is None:  # the latest clip was done at its first poll: come earlier than it did
        first = min(first, max(0.0, newest.asked_s - interval))
    brackets = [b for _, b in learned]
    return PollSchedule(
        first_poll_s=first,
        interval_s=interval,
        samples=len(learned),
        quantile=settings.poll_learn_quantile,
        quantile_s=q,
        early=sum(1 for o, _ in learned if o.running_s is None),
        ceiling_s=top,
        then_s=later_polls(brackets, settings.poll_learn_quantile, first, interval, settings.poll_timeout_s),
    )


def later_polls(
    brackets: Sequence[tuple[float, float]], q: float, first_s: float, interval_s: float, timeout_s: float
) -> tuple[float, ...]:
    """The polls after the first, seconds after submission: at the quantiles that split the rest of
    the learned mixture (above ``q``) into LATER_POLLS equal shares, each at least a quarter of
    ``interval_s`` and at most ``interval_s`` after the one before, none after ``timeout_s``.
    Where the clips were done close together the polls come close together: a clip is seen done
    within about a quarter interval of when the earlier ones were, not up to one interval late."""
    polls: list[float] = []
    previous = first_s
    for j in range(1, LATER_POLLS + 1):
        at = interval_quantile(brackets, min(1.0, q + j * (1.0 - q) / LATER_POLLS))
        at = min(max(at, previous + interval_s * MIN_GAP_SHARE), previous + interval_s)
        if at >= timeout_s:
            break
        polls.append(round(at, 3))
        previous = at
    return tuple(polls)


def poll_schedule(
    services: Services, provider: str, model: str, length_s: float, submitted_at: datetime | None = None
) -> PollSchedule | None:
    """The learned schedule for one operation of ``provider``/``model`` making a clip of
    ``length_s`` seconds, submitted at ``submitted_at``; None: use the provider's backoff."""
    settings = services.settings
    if not settings.poll_learn:
        return None
    observed = observations(services, provider, model, length_s, settings.poll_learn_window)
    schedule = schedule_from(observed, settings, model)
    return None if schedule is None else schedule.for_operation(submitted_at)


__all__ = [
    "LENGTH_TOLERANCE_S",
    "Observed",
    "PollSchedule",
    "answer_bound",
    "ceiling",
    "bracket",
    "interval_of",
    "interval_quantile",
    "later_polls",
    "observations",
    "observed_columns",
    "poll_schedule",
    "quantile",
    "schedule_from",
]
