"""The Veo poll schedule learned from what earlier polls saw (vidpipe_core/polling.py): what it
learns from real ledger rows on SQLite and PostgreSQL (and what it leaves out: re-attached
operations, loose observations), a poisoned history, how fast it comes down, and what it does to a
real google-genai SDK waiting on the wire emulator (polls counted by the emulator)."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.core.test_google_provider import clip_request
from tests.emulator_fixtures import emulator, google_env  # noqa: F401
from vidpipe_core import media
from vidpipe_core.cancel import CancelToken, Interrupted
from vidpipe_core.config import Settings
from vidpipe_core.models import ClipStatus, Project, VideoClip, utc, utcnow
from vidpipe_core.polling import (
    LATER_POLLS,
    Observed,
    PollSchedule,
    bracket,
    interval_quantile,
    later_polls,
    observations,
    observed_columns,
    poll_schedule,
    quantile,
    schedule_from,
)
from vidpipe_core.providers.base import ClipOutcomeKind
from vidpipe_core.providers.google import GoogleClips
from vidpipe_core.services import Services
from vidpipe_emulator import Emulator

VEO = "veo-3.1-generate-001"


# --- ledger rows ------------------------------------------------------------------------------


def add_project(services: Services, project_id: str) -> None:
    with services.db.session() as s:
        s.add(Project(id=project_id, prompt="a kite", spec={}))


def add_clip(
    services: Services,
    project_id: str,
    scene: int,
    *,
    running_s: float | None = None,
    asked_s: float | None = None,
    answer_s: float = 0.05,
    completed_s: float | None = None,
    watched: bool = True,
    model: str = VEO,
    provider: str = "google",
    length_s: float | None = 4.04,
    status: ClipStatus = ClipStatus.DONE,
    ended_ago_s: float = 0.0,
) -> None:
    """A ledger row as the clips step leaves it, times in seconds after its submission: the last
    poll that saw it running sent at ``running_s`` (None: its first poll saw it done), the poll
    that saw it done sent at ``asked_s`` (default: running_s + 0.2) and answered ``answer_s``
    later, completed (downloaded, saved) at ``completed_s`` (default: that answer + 0.1).
    ``watched=False``: re-attached after a resume, no observation. It ended ``ended_ago_s`` ago."""
    if asked_s is None:
        assert running_s is not None
        asked_s = running_s + 0.2
    seen_s = asked_s + answer_s
    completed_s = seen_s + 0.1 if completed_s is None else completed_s
    submitted = utcnow() - timedelta(seconds=ended_ago_s + completed_s)

    def at(offset: float | None) -> Any:
        return None if offset is None else submitted + timedelta(seconds=offset)

    with services.db.session() as s:
        s.add(
            VideoClip(
                project_id=project_id,
                scene_index=scene,
                fingerprint=uuid.uuid4().hex,
                status=status,
                provider=provider,
                model=model,
                operation_name=f"op-{uuid.uuid4().hex}",
                duration_s=length_s,
                submitted_at=submitted,
                completed_at=at(completed_s) if status != ClipStatus.SUBMITTED else None,
                running_seen_at=at(running_s) if watched else None,
                done_asked_at=at(asked_s) if watched else None,
                done_seen_at=at(seen_s) if watched else None,
            )
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Services:
    """Services on a fresh SQLite file, or on the session's PostgreSQL database (skipped without
    VIDPIPE_TEST_POSTGRES_URL). The PostgreSQL ledger is shared by the session's tests, so each
    test here uses a model name of its own."""
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_env").database_url
    return Services.create(Settings(data_dir=tmp_path, database_url=url), housekeeping=False)


def test_quantile_interpolates_between_order_statistics() -> None:
    assert quantile([40.0, 10.0, 30.0, 20.0], 0.25) == pytest.approx(17.5)
    assert quantile([40.0, 10.0, 30.0, 20.0], 0.5) == pytest.approx(25.0)
    assert quantile([7.0], 0.9) == 7.0
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_what_one_observation_teaches() -> None:
    interval = 5.0  # tight: the done poll answered within one interval + max(interval, 1 s) of the running poll's sending
    # Seen running at 40 s, done at the next poll: the latency lies between.
    assert bracket(Observed(running_s=40.0, asked_s=45.0, seen_s=45.3), interval) == (40.0, 45.3)
    assert bracket(Observed(running_s=40.0, asked_s=49.0, seen_s=50.0), interval) == (40.0, 50.0)  # exactly at the bound
    # The next poll came late (a stalled process) or answered slowly (a busy machine): left out.
    assert bracket(Observed(running_s=40.0, asked_s=100.0, seen_s=100.2), interval) is None
    assert bracket(Observed(running_s=40.0, asked_s=45.0, seen_s=50.5), interval) is None
    # Done at its first poll, answered promptly: some time since the submission.
    assert bracket(Observed(running_s=None, asked_s=30.0, seen_s=30.4), interval) == (0.0, 30.4)
    # ... answered slowly: it says nothing about when it was done.
    assert bracket(Observed(running_s=None, asked_s=30.0, seen_s=36.0), interval) is None
    # Below one second the bound on an answer stays one second (a done answer carries the video).
    assert bracket(Observed(running_s=2.0, asked_s=2.2, seen_s=3.1), 0.2) == (2.0, 3.1)
    assert bracket(Observed(running_s=2.0, asked_s=2.2, seen_s=3.3), 0.2) is None


def test_the_quantile_of_intervals_spreads_each_over_itself() -> None:
    assert interval_quantile([(10.0, 10.0), (20.0, 20.0), (30.0, 30.0), (40.0, 40.0)], 0.25) == pytest.approx(10.0)
    assert interval_quantile([(10.0, 11.0), (20.0, 21.0), (30.0, 31.0), (40.0, 41.0)], 0.25) == pytest.approx(11.0)
    assert interval_quantile([(10.0, 11.0), (20.0, 21.0), (30.0, 31.0), (40.0, 41.0)], 0.5) == pytest.approx(21.0)
    # Half of the operations done at a first poll at 40 s: a quarter of the mixture lies below 20 s.
    assert interval_quantile([(0.0, 40.0), (0.0, 40.0), (50.0, 51.0), (52.0, 53.0)], 0.25) == pytest.approx(20.0)
    # A quarter done at it: the first poll stays where the rest were seen.
    assert interval_quantile([(0.0, 40.0), (50.0, 51.0), (52.0, 53.0), (54.0, 55.0)], 0.25) == pytest.approx(40.0)
    with pytest.raises(ValueError):
        interval_quantile([], 0.5)


def test_the_later_polls_come_where_earlier_clips_were_done() -> None:
    """After the first poll (q0.25), polls at the quantiles that split the rest of the learned
    mixture in equal shares: close together where the clips were done close together (never
    closer than a quarter interval), never further apart than one interval, none after the timeout."""
    # Clips all done between 40.0 and 40.5 s (watched every 5 s: brackets of 5.5 s): polls every 1.25 s through it.
    wide = [(35.0 + i * 0.05, 40.5 + i * 0.05) for i in range(10)]
    first = interval_quantile(wide, 0.25)
    polls = later_polls(wide, 0.25, first, 5.0, 600.0)
    assert len(polls) == LATER_POLLS == 3
    gaps = [b - a for a, b in zip((first, *polls), polls, strict=False)]
    assert all(1.25 - 1e-6 <= g <= 5.0 + 1e-6 for g in gaps), gaps
    assert polls[-1] == pytest.approx(max(b for _, b in wide), abs=1e-3)  # the last where the latest clip was seen done
    # Tight brackets (polls found them within 0.1 s): a quarter interval apart, from the first poll on.
    tight = [(4.0 + i * 0.01, 4.1 + i * 0.01) for i in range(8)]
    first = interval_quantile(tight, 0.25)
    assert later_polls(tight, 0.25, first, 0.4, 60.0) == pytest.approx([first + 0.1, first + 0.2, first + 0.3], abs=2e-3)
    # Spread far beyond the first poll (capped at a ceiling): one interval apart, as without them.
    assert later_polls([(100.0, 101.0)] * 3, 0.25, 45.0, 5.0, 600.0) == (50.0, 55.0, 60.0)
    # None at or after the poll timeout.
    assert later_polls([(100.0, 101.0)] * 3, 0.25, 45.0, 5.0, 55.0) == (50.0,)


def test_the_wait_after_a_running_poll_goes_to_the_next_learned_poll_ahead() -> None:
    schedule = PollSchedule(
        first_poll_s=40.0, interval_s=4.0, samples=5, quantile=0.25, quantile_s=40.0, then_s=(41.0, 41.5, 44.0)
    )
    assert schedule.min_gap_s == 1.0
    assert schedule.next_wait_s(40.02) == pytest.approx(1.0)  # to 41.0
    assert schedule.next_wait_s(41.1) == pytest.approx(1.0)  # 41.5 is ahead, but never closer than a quarter interval
    assert schedule.next_wait_s(42.0) == pytest.approx(2.0)  # to 44.0
    assert schedule.next_wait_s(44.2) == 4.0  # past the learned polls: every interval
    assert schedule.next_wait_s(300.0) == 4.0  # re-attached long after: every interval
    assert "then at 41.00, 41.50, 44.00s, then every 4s" in schedule.describe()


def test_learns_only_from_watched_done_clips_of_the_same_provider_model_and_length_across_projects(ledger: Services) -> None:
    model = f"veo-test-{uuid.uuid4().hex[:8]}"
    for project in ("p-one", "p-two"):
        add_project(ledger, f"{project}-{model}")
    one, two = f"p-one-{model}", f"p-two-{model}"
    # What it learns from: DONE, watched from submission, google, this model, measured length within 0.5 s of 4, both projects.
    add_clip(ledger, one, 0, running_s=40.0, model=model, ended_ago_s=40)
    add_clip(ledger, two, 0, running_s=10.0, model=model, ended_ago_s=30, length_s=4.4)
    add_clip(ledger, one, 1, running_s=30.0, model=model, ended_ago_s=20, length_s=3.6)
    add_clip(ledger, two, 1, running_s=20.0, model=model, ended_ago_s=10)
    # What it must leave out.
    add_clip(ledger, one, 2, running_s=99.0, model=model, length_s=6.04)  # another length
    add_clip(ledger, one, 3, running_s=99.0, model=model, length_s=3.4)  # just outside the tolerance
    add_clip(ledger, one, 4, running_s=99.0, model=f"{model}-fast")  # another model
    add_clip(ledger, one, 5, running_s=99.0, model=model, provider="animatic")  # another provider
    add_clip(ledger, two, 2, running_s=99.0, model=model, status=ClipStatus.FAILED)
    add_clip(ledger, two, 3, running_s=99.0, model=model, status=ClipStatus.REJECTED)
    add_clip(ledger, two, 4, running_s=99.0, model=model, status=ClipStatus.SUBMITTED)
    add_clip(ledger, two, 5, running_s=99.0, model=model, length_s=None)
    add_clip(ledger, two, 6, running_s=99.0, model=model, watched=False)  # re-attached after a resume

    seen = observations(ledger, "google", model, 4, window=50)
    assert [o.running_s for o in seen] == pytest.approx([20.0, 30.0, 10.0, 40.0], abs=1e-3)
    assert [o.running_s for o in observations(ledger, "google", model, 4, window=3)] == pytest.approx(
        [20.0, 30.0, 10.0], abs=1e-3
    )

    now = utcnow()
    schedule = poll_schedule(ledger, "google", model, 4, submitted_at=now)
    assert schedule is not None
    assert schedule.samples == 4 and schedule.quantile == 0.25 and schedule.early == 0
    assert schedule.interval_s == min(ledger.settings.poll_interval_s, ledger.settings.poll_max_s) == 5.0
    # Each seen running at those times and done 0.25 s later: a quarter of the mixture lies below 10.25 s.
    assert schedule.quantile_s == schedule.first_poll_s == pytest.approx(10.25, abs=1e-3)
    assert not schedule.capped and schedule.ceiling_s == 60.0  # the '*' entry: an unknown model
    assert schedule.first_wait_s(now) == pytest.approx(10.25, abs=1e-3)
    assert schedule.first_wait_s(now + timedelta(seconds=10)) == pytest.approx(0.25, abs=1e-3)
    assert schedule.basis() == "learned from 4 earlier clips of this model and length"
    # A resumed operation submitted long ago is polled at once.
    resumed = poll_schedule(ledger, "google", model, 4, submitted_at=now - timedelta(hours=1))
    assert resumed is not None and resumed.first_wait_s() == 0.0
    # No clip of another length: nothing learned, the backoff.
    assert poll_schedule(ledger, "google", model, 8, submitted_at=now) is None


def test_a_poisoned_history_teaches_only_the_provider_latency(ledger: Services) -> None:
    """The issue's history, scaled: 3 s operations polled every 0.2 s. Four clips re-attached after
    a kill and 100 s of downtime (recorded at ~145 s), and an overloaded spell: polls answered after
    4-6 s, one stall of 30 s between two polls. completed_at - submitted_at of these rows says
    "about two minutes"; the schedule still polls before the operations' 3 s."""
    model = f"veo-test-{uuid.uuid4().hex[:8]}"
    project = f"p-{model}"
    add_project(ledger, project)
    settings = ledger.settings.model_copy(update={"poll_interval_s": 0.2, "poll_max_s": 0.2, "poll_timeout_s": 60.0})
    services = Services(settings=settings, db=ledger.db, store=ledger.store)
    scene = iter(range(100))
    # A clean render: seen running at 2.8-2.9 s, done 0.2 s later.
    for running in (2.8, 2.85, 2.9):
        add_clip(services, project, next(scene), running_s=running, model=model, ended_ago_s=300)
    # Killed after submitting, dead for 100 s, resumed: the re-attached polls saw only the dead time.
    for took in (144.0, 145.0, 145.5, 146.0):
        add_clip(
            services, project, next(scene), asked_s=took, completed_s=took + 0.5, watched=False, model=model, ended_ago_s=200
        )
    # The overloaded spell: each poll answered 4-6 s after it was sent, or a 30 s stall between two.
    for running, asked, answer in ((0.0, 5.2, 5.1), (2.0, 8.0, 4.0), (1.0, 31.0, 0.3)):
        add_clip(services, project, next(scene), running_s=running, asked_s=asked, answer_s=answer, model=model, ended_ago_s=100)
    for asked, answer in ((60.0, 4.5), (58.0, 6.0)):  # done at a (too late) first poll, answered slowly
        add_clip(services, project, next(scene), running_s=None, asked_s=asked, answer_s=answer, model=model, ended_ago_s=50)
    with ledger.db.session() as s:
        took = [(utc(r.completed_at) - utc(r.submitted_at)).total_seconds() for r in s.query(VideoClip).filter_by(model=model)]
    assert quantile(took, 0.25) > 2 * 3.0 and quantile(took, 0.5) > 40  # what the old rule learned from: poisoned

    schedule = poll_schedule(services, "google", model, 4, submitted_at=utcnow())
    assert schedule is not None and schedule.samples == 3  # the clean render only
    assert 2.8 <= schedule.first_poll_s <= 3.0


def test_it_comes_down_as_fast_as_it_goes_up(ledger: Services) -> None:
    """A provider at ~5 s turns slow (~50 s), then fast again. Going up, the slow clips must fill
    three quarters of the window before the first poll follows (q0.25); coming down,
    every clip found done at its first poll pulls the next first poll earlier, and it is halved
    in no more clips than it took to go half-way up."""
    model = f"veo-test-{uuid.uuid4().hex[:8]}"
    project = f"p-{model}"
    add_project(ledger, project)
    settings = ledger.settings.model_copy(update={"poll_learn_window": 20})
    services = Services(settings=settings, db=ledger.db, store=ledger.store)
    scene = iter(range(1000))
    ago = iter(range(10_000, 0, -10))  # each clip ends after the one before
    for i in range(20):
        add_clip(services, project, next(scene), running_s=5.0 + (i * 7 % 20) * 0.05, model=model, ended_ago_s=next(ago))

    def first_poll() -> float:
        schedule = poll_schedule(services, "google", model, 4)
        assert schedule is not None
        return schedule.first_poll_s

    low = first_poll()
    assert 5.0 <= low <= 5.5
    up = 0
    while first_poll() < 25.0:  # slow clips, seen running at ~50 s
        add_clip(services, project, next(scene), running_s=50.0 + (up * 7 % 20) * 0.5, model=model, ended_ago_s=next(ago))
        up += 1
    assert up >= 15  # three quarters of the window
    for i in range(up, 20):  # the window full of slow clips
        add_clip(services, project, next(scene), running_s=50.0 + (i * 7 % 20) * 0.5, model=model, ended_ago_s=next(ago))
    top = first_poll()
    assert 51.0 <= top <= 53.0

    firsts = [top]
    while firsts[-1] > top / 2 + 0.01:  # fast again: done at the first poll, answered at once
        add_clip(services, project, next(scene), running_s=None, asked_s=firsts[-1], model=model, ended_ago_s=next(ago))
        firsts.append(first_poll())
    down = len(firsts) - 1
    assert all(later <= earlier for earlier, later in zip(firsts, firsts[1:], strict=False)), firsts
    assert firsts[1] < firsts[0], firsts  # the first early clip already moves it
    assert down <= up, (down, up, firsts)
    learned = poll_schedule(services, "google", model, 4)
    assert learned is not None and learned.early == down
    assert f"{down} of them done at their first poll" in learned.basis()


def test_the_first_poll_is_capped_per_model_and_below_the_poll_timeout(ledger: Services) -> None:
    fast = f"veo-test-{uuid.uuid4().hex[:8]}-fast"
    project = f"p-{fast}"
    add_project(ledger, project)
    for i in range(3):
        add_clip(ledger, project, i, running_s=500.0 + i, model=fast)  # really slow clips: 500 s
    table = {"poll_first_max_s": {fast: 45.0}}
    capped = Services(settings=ledger.settings.model_copy(update=table), db=ledger.db, store=ledger.store)
    schedule = poll_schedule(capped, "google", fast, 4)
    assert schedule is not None and schedule.first_poll_s == 45.0 and schedule.quantile_s > 500
    assert schedule.capped and schedule.basis().endswith("; capped at 45s")
    # Any other model: the '*' entry (60 s); never more than half the poll timeout.
    other = Services(settings=ledger.settings.model_copy(update={"poll_timeout_s": 50.0}), db=ledger.db, store=ledger.store)
    assert [s.first_poll_s for s in (poll_schedule(ledger, "google", fast, 4), poll_schedule(other, "google", fast, 4)) if s] == [
        60.0,
        25.0,
    ]


def test_too_few_samples_or_learning_off_keeps_the_backoff(ledger: Services) -> None:
    model = f"veo-test-{uuid.uuid4().hex[:8]}"
    project = f"p-{model}"
    add_project(ledger, project)
    add_clip(ledger, project, 0, running_s=50.0, model=model)
    add_clip(ledger, project, 1, running_s=60.0, model=model)
    add_clip(ledger, project, 2, running_s=10.0, asked_s=70.0, model=model)  # loose: does not count
    assert poll_schedule(ledger, "google", model, 4) is None  # 2 < poll_learn_min_samples (3)
    add_clip(ledger, project, 3, running_s=70.0, model=model)
    learned = poll_schedule(ledger, "google", model, 4)
    # Three seen running at 50, 60, 70 s, done 0.25 s later: a quarter of the mixture lies below 50.1875 s.
    assert learned is not None and learned.samples == 3 and learned.first_poll_s == pytest.approx(50.1875, abs=1e-3)

    off = Services(settings=ledger.settings.model_copy(update={"poll_learn": False}), db=ledger.db, store=ledger.store)
    assert poll_schedule(off, "google", model, 4) is None
    median = ledger.settings.model_copy(update={"poll_learn_quantile": 0.5, "poll_interval_s": 30.0, "poll_max_s": 8.0})
    by_median = schedule_from(observations(ledger, "google", model, 4, 50), median, model)
    # The median (in the bracket seen at 60 s; the first poll capped at the '*' ceiling), the interval capped by poll_max_s.
    assert by_median is not None and by_median.interval_s == 8.0 and by_median.quantile_s == pytest.approx(60.125, abs=1e-3)
    assert by_median.first_poll_s == 60.0 and by_median.capped


def test_settings_refuse_a_quantile_outside_zero_to_one_and_a_negative_ceiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDPIPE_POLL_LEARN_QUANTILE", "1.5")
    with pytest.raises(ValueError, match="poll_learn_quantile"):
        Settings(data_dir=tmp_path)
    monkeypatch.delenv("VIDPIPE_POLL_LEARN_QUANTILE")
    monkeypatch.setenv("VIDPIPE_POLL_FIRST_MAX_S", '{"veo-x": -1}')
    with pytest.raises(ValueError, match="poll_first_max_s"):
        Settings(data_dir=tmp_path)
    monkeypatch.setenv("VIDPIPE_POLL_FIRST_MAX_S", '{"veo-x": 12}')
    table = Settings(data_dir=tmp_path).poll_first_max_s
    assert table["veo-x"] == 12.0 and table["*"] == 60.0 and table[VEO] == 60.0  # names only what it changes


# --- the real SDK on the emulator ---------------------------------------------------------------


@pytest.fixture
def veo(tmp_path: Path, google_env: Any) -> tuple[Services, GoogleClips, Emulator]:  # noqa: F811
    """GoogleClips on the emulator (0.8 s operations), polling fast, with a SQLite ledger."""
    emu: Emulator = google_env.emulator
    emu.configure(video_latency_s=0.8)
    settings = Settings(
        data_dir=tmp_path,
        retry_initial_s=0.01,
        retry_max_s=0.05,
        poll_initial_s=0.05,
        poll_max_s=0.1,
        poll_interval_s=0.1,
        poll_timeout_s=30,
        gcs_base_url=google_env.base_url,
    )
    services = Services.create(settings, housekeeping=False)
    add_project(services, "fox")
    return services, GoogleClips(settings), emu


def polls_of(emu: Emulator, operation: str) -> int:
    (timing,) = [t for t in emu.operation_timings() if t["name"] == operation]
    return int(timing["polls"])


def make_clip(services: Services, clips: GoogleClips, scene: int, *, learn: bool) -> tuple[str, list[str]]:
    """One clip the way the clips step makes it: submit, record submitted_at, wait (on the
    schedule learned from the ledger when ``learn``), record DONE with the measured length and
    what the polls saw."""
    request = clip_request(prompt=f"the fox runs, take {scene}", scene=scene)
    operation = clips.submit(request, VEO)
    submitted = utcnow()
    schedule = poll_schedule(services, "google", VEO, request.duration_s, submitted) if learn else None
    assert (schedule is not None) == learn
    lines: list[str] = []
    outcome = clips.wait(operation, request, VEO, lines.append, schedule=schedule)
    assert outcome.kind is ClipOutcomeKind.DONE and outcome.video is not None, outcome.error
    length = media.probe_bytes(outcome.video).duration_s
    with services.db.session() as s:
        s.add(
            VideoClip(
                project_id="fox",
                scene_index=scene,
                fingerprint=uuid.uuid4().hex,
                status=ClipStatus.DONE,
                provider="google",
                model=VEO,
                operation_name=operation,
                duration_s=length,
                submitted_at=submitted,
                completed_at=utcnow(),
                **observed_columns(outcome.observed),
            )
        )
    return operation, lines


def test_learned_wait_polls_only_where_earlier_clips_were_done(veo) -> None:  # type: ignore[no-untyped-def]
    services, clips, emu = veo
    with ThreadPoolExecutor(3) as pool:  # three clips on the backoff fill the ledger
        fixed = list(pool.map(lambda i: make_clip(services, clips, i, learn=False), range(3)))
    assert all(polls_of(emu, op) >= 5 for op, _ in fixed), [polls_of(emu, op) for op, _ in fixed]

    operation, lines = make_clip(services, clips, 3, learn=True)
    # The first poll and the learned ones after it, all where the backoff's clips were seen done.
    assert polls_of(emu, operation) <= 1 + LATER_POLLS
    schedule = poll_schedule(services, "google", VEO, 4)
    assert schedule is not None and len(schedule.then_s) == LATER_POLLS
    polled = sorted(r.timestamp for r in emu.records("video_poll") if r.operation == operation)
    (timing,) = [t for t in emu.operation_timings() if t["name"] == operation]
    assert polled[0] - timing["submitted_at"] >= 0.5  # the first poll waited for what the ledger taught
    # The long first wait said so in progress lines, and made no request before its time.
    waiting = [line for line in lines if "first poll in" in line]
    assert len(waiting) >= 3, lines
    (timing,) = [t for t in emu.operation_timings() if t["name"] == operation]
    first_request = min(r.timestamp for r in emu.records("video_poll") if r.operation == operation)
    assert first_request - timing["submitted_at"] >= 0.5  # nothing was asked during the first wait
    # The emulator saw every operation done, after its latency.
    assert all(t["lag_s"] is not None and t["lag_s"] >= 0 for t in emu.operation_timings())


def test_the_polls_bracket_the_moment_the_operation_was_done(veo) -> None:  # type: ignore[no-untyped-def]
    """What the wait records: the last poll that found the operation running was sent before the
    emulator made it done, the poll that found it done answered after: the interval learned from
    it holds the latency, whatever the polls' own delays."""
    services, clips, emu = veo
    emu.configure(video_latency_s=0.6, latency={"video_poll": 0.15})  # slow answers widen the bracket
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda i: make_clip(services, clips, i, learn=False), range(3)))
    timings = {t["name"]: t for t in emu.operation_timings()}
    with services.db.session() as s:
        rows = s.query(VideoClip).filter_by(project_id="fox").all()
    assert len(rows) == 3
    for row in rows:
        timing = timings[row.operation_name]
        assert row.running_seen_at is not None and row.done_asked_at is not None and row.done_seen_at is not None
        running, asked, seen = (utc(t).timestamp() for t in (row.running_seen_at, row.done_asked_at, row.done_seen_at))
        assert running < timing["done_at"] <= seen, (running, timing, seen)
        assert running < asked < seen
        start = utc(row.submitted_at).timestamp()
        learned = bracket(Observed(running - start, asked - start, seen - start), 1.0)
        assert learned is not None and learned[0] < timing["latency_s"] <= learned[1]


def test_cancel_during_the_first_wait_makes_no_poll(veo) -> None:  # type: ignore[no-untyped-def]
    services, clips, emu = veo
    for i in range(3):
        add_clip(services, "fox", 10 + i, running_s=120.0)  # clips take two minutes: a long first wait
    request = clip_request(prompt="the fox waits")
    operation = clips.submit(request, VEO)
    schedule = poll_schedule(services, "google", VEO, 4, utcnow())
    assert schedule is not None and schedule.capped and schedule.first_wait_s() > 10  # capped at half the poll timeout (30 s)
    cancel = CancelToken()
    lines: list[str] = []
    started = threading.Event()
    failure: list[BaseException] = []

    def on_poll(line: str) -> None:
        lines.append(line)
        started.set()

    def wait() -> None:
        try:
            clips.wait(operation, request, VEO, on_poll, cancel, schedule)
        except BaseException as exc:
            failure.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert started.wait(10), "no progress line in the first wait"
    cancel.cancel("the run was terminated")
    waiter.join(10)
    assert not waiter.is_alive(), "the first wait did not end on cancel"
    assert len(failure) == 1 and isinstance(failure[0], Interrupted)
    assert polls_of(emu, operation) == 0
    assert emu.request_count("video_poll") == 0


def test_an_operation_submitted_long_ago_is_polled_at_once(veo) -> None:  # type: ignore[no-untyped-def]
    services, clips, emu = veo
    emu.configure(video_latency_s=0.0)
    request = clip_request(prompt="the fox is back")
    operation = clips.submit(request, VEO)
    long_ago = PollSchedule(first_poll_s=60.0, interval_s=0.1, samples=3, quantile=0.25, quantile_s=60.1)
    lines: list[str] = []
    outcome = clips.wait(operation, request, VEO, lines.append, schedule=long_ago.for_operation(utcnow() - timedelta(hours=2)))
    assert outcome.kind is ClipOutcomeKind.DONE
    assert polls_of(emu, operation) == 1
    assert not [line for line in lines if "first poll in" in line]


def test_emulator_latency_jitter_is_seeded_and_bounded(google_env: Any, tmp_path: Path) -> None:  # noqa: F811
    settings = Settings(data_dir=tmp_path, retry_initial_s=0.01, retry_max_s=0.05)
    clips = GoogleClips(settings)
    seen = []
    for _run in range(2):
        emu = google_env.emulator
        emu.configure(video_latency_s=6.0, video_latency_jitter_s=2.0, seed=11)
        emu.reset()
        for _ in range(6):
            clips.submit(clip_request(prompt="jitter"), VEO)  # one prompt: one encode
        seen.append([t["latency_s"] for t in emu.operation_timings()])
    assert seen[0] == seen[1]  # same seed, same latencies
    assert all(4.0 <= x <= 8.0 for x in seen[0]) and len(set(seen[0])) == 6
    assert all(t["lag_s"] is None and t["polls"] == 0 for t in google_env.emulator.operation_timings())
    # The same over HTTP, for a benchmark that runs the emulator in another process.
    with urllib.request.urlopen(f"{google_env.base_url}/_emulator/operations", timeout=10) as resp:
        assert [t["latency_s"] for t in json.loads(resp.read())] == seen[1]
