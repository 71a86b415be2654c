"""The Veo poll schedule learned from the ledger (vidpipe_core/polling.py): what it learns from
real ledger rows on SQLite and PostgreSQL, and what it does to a real google-genai SDK waiting on
the wire emulator (polls counted by the emulator)."""

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
from vidpipe_core.models import ClipStatus, Project, VideoClip, utcnow
from vidpipe_core.polling import PollSchedule, learned_durations, poll_schedule, quantile, schedule_from
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
    took_s: float,
    model: str = VEO,
    provider: str = "google",
    length_s: float | None = 4.04,
    status: ClipStatus = ClipStatus.DONE,
    ended_ago_s: float = 0.0,
    completed: bool = True,
) -> None:
    """A ledger row as the clips step leaves it: submitted_at, then completed_at ``took_s`` later."""
    ended = utcnow() - timedelta(seconds=ended_ago_s)
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
                submitted_at=ended - timedelta(seconds=took_s),
                completed_at=ended if completed else None,
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


def test_learns_only_from_done_clips_of_the_same_provider_model_and_length_across_projects(ledger: Services) -> None:
    model = f"veo-test-{uuid.uuid4().hex[:8]}"
    for project in ("p-one", "p-two"):
        add_project(ledger, f"{project}-{model}")
    one, two = f"p-one-{model}", f"p-two-{model}"
    # What it learns from: DONE, google, this model, measured length within 0.5 s of 4, both projects.
    add_clip(ledger, one, 0, took_s=40.0, model=model, ended_ago_s=40)
    add_clip(ledger, two, 0, took_s=10.0, model=model, ended_ago_s=30, length_s=4.4)
    add_clip(ledger, one, 1, took_s=30.0, model=model, ended_ago_s=20, length_s=3.6)
    add_clip(ledger, two, 1, took_s=20.0, model=model, ended_ago_s=10)
    # What it must leave out.
    add_clip(ledger, one, 2, took_s=99.0, model=model, length_s=6.04)  # another length
    add_clip(ledger, one, 3, took_s=99.0, model=model, length_s=3.4)  # just outside the tolerance
    add_clip(ledger, one, 4, took_s=99.0, model=f"{model}-fast")  # another model
    add_clip(ledger, one, 5, took_s=99.0, model=model, provider="animatic")  # another provider
    add_clip(ledger, two, 2, took_s=99.0, model=model, status=ClipStatus.FAILED)
    add_clip(ledger, two, 3, took_s=99.0, model=model, status=ClipStatus.REJECTED)
    add_clip(ledger, two, 4, took_s=99.0, model=model, status=ClipStatus.SUBMITTED, completed=False)
    add_clip(ledger, two, 5, took_s=99.0, model=model, length_s=None)

    assert learned_durations(ledger, "google", model, 4, window=50) == pytest.approx([20.0, 30.0, 10.0, 40.0], abs=1e-3)
    assert learned_durations(ledger, "google", model, 4, window=3) == pytest.approx([20.0, 30.0, 10.0], abs=1e-3)

    now = utcnow()
    schedule = poll_schedule(ledger, "google", model, 4, submitted_at=now)
    assert schedule is not None
    assert schedule.samples == 4 and schedule.quantile == 0.25
    assert schedule.quantile_s == pytest.approx(17.5, abs=1e-3)
    assert schedule.interval_s == min(ledger.settings.poll_interval_s, ledger.settings.poll_max_s) == 5.0
    assert schedule.first_poll_s == pytest.approx(12.5, abs=1e-3)  # one interval before the quantile
    assert schedule.first_wait_s(now) == pytest.approx(12.5, abs=1e-3)
    assert schedule.first_wait_s(now + timedelta(seconds=10)) == pytest.approx(2.5, abs=1e-3)
    # A resumed operation submitted long ago is polled at once.
    resumed = poll_schedule(ledger, "google", model, 4, submitted_at=now - timedelta(hours=1))
    assert resumed is not None and resumed.first_wait_s() == 0.0
    # No clip of another length: nothing learned, the backoff.
    assert poll_schedule(ledger, "google", model, 8, submitted_at=now) is None


def test_too_few_samples_or_learning_off_keeps_the_backoff(ledger: Services) -> None:
    model = f"veo-test-{uuid.uuid4().hex[:8]}"
    project = f"p-{model}"
    add_project(ledger, project)
    add_clip(ledger, project, 0, took_s=50.0, model=model)
    add_clip(ledger, project, 1, took_s=60.0, model=model)
    assert poll_schedule(ledger, "google", model, 4) is None  # 2 < poll_learn_min_samples (3)
    add_clip(ledger, project, 2, took_s=70.0, model=model)
    learned = poll_schedule(ledger, "google", model, 4)
    assert learned is not None and learned.samples == 3 and learned.first_poll_s == pytest.approx(50.0, abs=1e-3)

    off = Services(settings=ledger.settings.model_copy(update={"poll_learn": False}), db=ledger.db, store=ledger.store)
    assert poll_schedule(off, "google", model, 4) is None
    median = ledger.settings.model_copy(update={"poll_learn_quantile": 0.5, "poll_interval_s": 30.0, "poll_max_s": 8.0})
    by_median = schedule_from(learned_durations(ledger, "google", model, 4, 50), median)
    # The median (60 s) less one interval, the interval capped by poll_max_s.
    assert by_median is not None and by_median.interval_s == 8.0 and by_median.first_poll_s == pytest.approx(52.0, abs=1e-3)


def test_settings_refuse_a_quantile_outside_zero_to_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDPIPE_POLL_LEARN_QUANTILE", "1.5")
    with pytest.raises(ValueError, match="poll_learn_quantile"):
        Settings(data_dir=tmp_path)


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
    schedule learned from the ledger when ``learn``), record DONE with the measured length."""
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
            )
        )
    return operation, lines


def test_learned_wait_polls_at_most_twice_where_the_backoff_polls_five_times(veo) -> None:  # type: ignore[no-untyped-def]
    services, clips, emu = veo
    with ThreadPoolExecutor(3) as pool:  # three clips on the backoff fill the ledger
        fixed = list(pool.map(lambda i: make_clip(services, clips, i, learn=False), range(3)))
    assert all(polls_of(emu, op) >= 5 for op, _ in fixed), [polls_of(emu, op) for op, _ in fixed]

    operation, lines = make_clip(services, clips, 3, learn=True)
    assert polls_of(emu, operation) <= 2
    # The long first wait said so in progress lines, and made no request before its time.
    waiting = [line for line in lines if "first poll in" in line]
    assert len(waiting) >= 3, lines
    (timing,) = [t for t in emu.operation_timings() if t["name"] == operation]
    first_request = min(r.timestamp for r in emu.records("video_poll") if r.operation == operation)
    assert first_request - timing["submitted_at"] >= 0.5  # nothing was asked during the first wait
    # The emulator saw every operation done, after its latency.
    assert all(t["lag_s"] is not None and t["lag_s"] >= 0 for t in emu.operation_timings())


def test_cancel_during_the_first_wait_makes_no_poll(veo) -> None:  # type: ignore[no-untyped-def]
    services, clips, emu = veo
    for i in range(3):
        add_clip(services, "fox", 10 + i, took_s=120.0)  # clips take two minutes: a long first wait
    request = clip_request(prompt="the fox waits")
    operation = clips.submit(request, VEO)
    schedule = poll_schedule(services, "google", VEO, 4, utcnow())
    assert schedule is not None and schedule.first_wait_s() > 100
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
