"""`polling`: the Veo poll schedule learned from the ledger against the fixed backoff, and what a
poisoned history does to it, before and after issue 21.

At 1/10 time: every operation takes 6 ± 2 s on the wire emulator (uniform, seeded: a 60 ± 20 s
Veo clip), vidpipe's poll settings scaled the same way (backoff 0.5 s doubling to 1 s for the
defaults 5 → 10 s; `poll_interval_s` 0.5 for 5; the model's first-poll ceiling 6 s for 60). Each
operation goes the way the clips step makes it, with the real google-genai SDK and a real SQLite
ledger: submit, record `submitted_at`, wait (on `vidpipe_core.polling.poll_schedule` when
learning), record DONE with `completed_at`, the measured length and what the polls saw
(`observed_columns`, None for a re-attached operation). `THREADS` operations wait at once.

- fixed: `VIDPIPE_POLL_LEARN=false`, on an empty ledger (its rows then seed the learned modes);
- learned q: a ledger holding the fixed batch's rows, then `GENERATIONS` batches one after the
  other, each learning from the latest 50 clips before it (does the first poll creep?);
- poisoned history, before and after: on a fresh ledger each, a clean batch, then a batch
  "killed" after submitting (no wait), dead for `DOWNTIME_S` and re-attached (polled at once, as
  a resume does), then an overloaded spell (every poll answered `SLOW_POLL_S` late), then fresh
  batches on the normal emulator. "before" learns by the rule until issue 21 (kept here only:
  `_old_schedule`, the quantile of `completed_at - submitted_at` less one interval), "after" by
  `poll_schedule`.

Per operation: polls (the emulator's count), lag = first poll that saw it done − the moment it
was done (the emulator records both), CPU of the waiting thread (`time.thread_time` around
`wait`: SDK requests, JSON, the done answer's decode) and its wall time (worker-seconds: the
thread is held for the whole wait whatever the schedule); in the poisoned runs also the first
poll the emulator saw and the clip's wall time (`completed_at - submitted_at`)."""

from __future__ import annotations

import json
import math
import statistics
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import EmulatorProcess, Report, fresh_home, log, remove_home, table

VEO = "veo-3.1-generate-001"
SCALE = 0.1  # 1/10 time
LATENCY_S, JITTER_S = 60 * SCALE, 20 * SCALE
POLL = {"poll_initial_s": 5 * SCALE, "poll_max_s": 10 * SCALE, "poll_interval_s": 5 * SCALE, "poll_timeout_s": 120.0}
FIRST_POLL_MAX_S = {"*": 60 * SCALE}  # the default ceilings (60 s; 30 s for the fast models) at 1/10
QUANTILES = (0.25, 0.5)
THREADS = 12
SEED = 12
DOWNTIME_S = 100 * SCALE  # the killed run's process stays dead this long before the resume
SLOW_POLL_S = 20 * SCALE  # the overloaded spell: every poll answered this much later
LEARN_WINDOW = 50  # the default poll_learn_window


@dataclass
class Op:
    name: str
    cpu_s: float
    wall_s: float
    first_poll_s: float | None  # the schedule's, after submission; None on the backoff
    clip_s: float = 0.0  # completed_at - submitted_at, as the ledger records it


def _operations(emu: EmulatorProcess) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(emu.url + "/_emulator/operations", timeout=60) as resp:
        return {t["name"]: t for t in json.loads(resp.read())}


def _request() -> Any:
    import io

    from PIL import Image

    from vidpipe_core.providers.base import ClipRequest

    def png(color: tuple[int, int, int]) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (256, 144), color).save(out, format="PNG")
        return out.getvalue()

    # One request for every operation: the emulator encodes its clip once.
    return ClipRequest(
        project_id="bench",
        scene_index=0,
        prompt="a kite over the hills",
        start_png=png((10, 20, 30)),
        end_png=png((200, 210, 220)),
        duration_s=4,
        aspect_ratio="16:9",
        generate_audio=False,
    )


def _ledger(root: Path, name: str, learn: bool, quantile: float = 0.25) -> Any:
    from vidpipe_core.config import Settings
    from vidpipe_core.models import Project
    from vidpipe_core.services import Services

    settings = Settings(
        data_dir=root / name,
        poll_learn=learn,
        poll_learn_quantile=quantile,
        poll_first_max_s=FIRST_POLL_MAX_S,
        retry_initial_s=0.05,
        retry_max_s=0.5,
        **POLL,
    )
    services = Services.create(settings, housekeeping=False)
    with services.db.session() as s:
        s.add(Project(id="bench", prompt="bench", spec={}))
    return services


def _copy_rows(source: Any, target: Any) -> None:
    from sqlalchemy import select

    from vidpipe_core.models import VideoClip

    columns = ("submitted_at", "completed_at", "duration_s", "operation_name", "running_seen_at", "done_asked_at", "done_seen_at")
    with source.db.session() as s:
        rows = [{c: getattr(r, c) for c in columns} for r in s.scalars(select(VideoClip))]
    with target.db.session() as s:
        for row in rows:
            s.add(_row(**row))


def _row(**columns: Any) -> Any:
    from vidpipe_core.models import ClipStatus, VideoClip

    return VideoClip(
        project_id="bench",
        scene_index=0,
        fingerprint=uuid.uuid4().hex,
        status=ClipStatus.DONE,
        provider="google",
        model=VEO,
        **columns,
    )


def _old_schedule(services: Any, length_s: float, submitted: Any) -> Any:
    """The rule until issue 21, kept for this benchmark only: the quantile of the latest 50
    matching clips' ``completed_at - submitted_at`` less one interval, capped by nothing but the
    wait's ``poll_timeout_s``."""
    from sqlalchemy import select

    from vidpipe_core.models import ClipStatus, VideoClip, utc
    from vidpipe_core.polling import LENGTH_TOLERANCE_S, PollSchedule, interval_of, quantile

    settings = services.settings
    query = (
        select(VideoClip.submitted_at, VideoClip.completed_at)
        .where(
            VideoClip.status == ClipStatus.DONE,
            VideoClip.model == VEO,
            VideoClip.duration_s >= length_s - LENGTH_TOLERANCE_S,
            VideoClip.duration_s <= length_s + LENGTH_TOLERANCE_S,
            VideoClip.submitted_at.is_not(None),
            VideoClip.completed_at.is_not(None),
        )
        .order_by(VideoClip.completed_at.desc(), VideoClip.id.desc())
        .limit(settings.poll_learn_window)
    )
    with services.db.session() as s:
        took = [(utc(c) - utc(b)).total_seconds() for b, c in s.execute(query).all()]
    if len(took) < settings.poll_learn_min_samples:
        return None
    interval = interval_of(settings)
    q = quantile(took, settings.poll_learn_quantile)
    return PollSchedule(max(0.0, q - interval), interval, len(took), settings.poll_learn_quantile, q, submitted_at=submitted)


def _schedule(services: Any, rule: str, length_s: float, submitted: Any) -> Any:
    from vidpipe_core.polling import poll_schedule

    if rule == "before":
        return _old_schedule(services, length_s, submitted)
    return poll_schedule(services, "google", VEO, length_s, submitted)


def _one(services: Any, request: Any, rule: str = "after") -> Op:
    """One clip as the clips step makes it."""
    from vidpipe_core.providers.google import GoogleClips

    clips = GoogleClips(services.settings)
    operation = clips.submit(request, VEO)
    return _finish(services, request, operation, _submitted_now(), rule, reattached=False)


def _submitted_now() -> Any:
    from vidpipe_core.models import utcnow

    return utcnow()


def _finish(services: Any, request: Any, operation: str, submitted: Any, rule: str, *, reattached: bool) -> Op:
    """Wait for ``operation`` on the schedule ``rule`` teaches and record it DONE (what the polls
    saw only when the wait began at its submission, as the clips step does)."""
    from vidpipe_core import media
    from vidpipe_core.models import utc, utcnow
    from vidpipe_core.polling import observed_columns
    from vidpipe_core.providers.base import ClipOutcomeKind
    from vidpipe_core.providers.google import GoogleClips

    clips = GoogleClips(services.settings)
    schedule = _schedule(services, rule, request.duration_s, submitted)
    cpu, wall = time.thread_time(), time.perf_counter()
    outcome = clips.wait(operation, request, VEO, schedule=schedule)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if outcome.kind is not ClipOutcomeKind.DONE or outcome.video is None:
        raise RuntimeError(f"operation {operation} ended {outcome.kind.value}: {outcome.error}")
    length = media.probe_bytes(outcome.video).duration_s
    completed = utcnow()
    observed = observed_columns(None if reattached else outcome.observed)
    with services.db.session() as s:
        s.add(_row(operation_name=operation, submitted_at=submitted, completed_at=completed, duration_s=length, **observed))
    first = None if schedule is None else schedule.first_poll_s
    return Op(operation, cpu, wall, first, (completed - utc(submitted)).total_seconds())


def _batch(services: Any, emu: EmulatorProcess, n: int, rule: str = "after") -> dict[str, Any]:
    request = _request()
    with ThreadPoolExecutor(THREADS, thread_name_prefix="bench-clip") as pool:
        ops = list(pool.map(lambda _: _one(services, request, rule), range(n)))
    return _measure(emu, ops)


def _killed_batch(services: Any, emu: EmulatorProcess, n: int, rule: str) -> dict[str, Any]:
    """``n`` operations submitted by a run that then dies (nothing waits for them), dead for
    DOWNTIME_S, then re-attached by the resume (the schedule of one submitted long ago: at once)."""
    from vidpipe_core.providers.google import GoogleClips

    request = _request()
    clips = GoogleClips(services.settings)
    with ThreadPoolExecutor(THREADS, thread_name_prefix="bench-submit") as pool:
        submitted = list(pool.map(lambda _: (clips.submit(request, VEO), _submitted_now()), range(n)))
    time.sleep(DOWNTIME_S)
    with ThreadPoolExecutor(THREADS, thread_name_prefix="bench-clip") as pool:
        ops = list(pool.map(lambda op: _finish(services, request, op[0], op[1], rule, reattached=True), submitted))
    return _measure(emu, ops)


def _measure(emu: EmulatorProcess, ops: list[Op]) -> dict[str, Any]:
    timings = _operations(emu)
    names = {o.name for o in ops}
    first_seen: dict[str, float] = {}
    for r in emu.requests():
        if r["kind"] == "video_poll" and r["operation"] in names:
            first_seen[r["operation"]] = min(first_seen.get(r["operation"], math.inf), r["timestamp"])
    return {
        "n": len(ops),
        "polls": [timings[o.name]["polls"] for o in ops],
        "lag_s": [timings[o.name]["lag_s"] for o in ops],
        "cpu_ms": [o.cpu_s * 1000 for o in ops],
        "wait_s": [o.wall_s for o in ops],
        "first_poll_s": [o.first_poll_s for o in ops if o.first_poll_s is not None],
        "first_poll_seen_s": [first_seen[o.name] - timings[o.name]["submitted_at"] for o in ops],
        "clip_s": [o.clip_s for o in ops],
        "latency_s": [timings[o.name]["latency_s"] for o in ops],
    }


def _poisoned(root: Path, emu: EmulatorProcess, rule: str, n: int, generations: int) -> list[tuple[str, dict[str, Any]]]:
    """The poisoned history on a fresh ledger, learning by ``rule``: a clean batch, a killed and
    resumed one (3 × n: the poison outnumbers the clean clips in the window, as in the issue's
    fresh ledger), an overloaded spell, then ``generations`` fresh batches."""
    ledger = _ledger(root, f"poisoned-{rule}", learn=True)
    phases: list[tuple[str, dict[str, Any]]] = []
    log(f"polling: poisoned history, {rule}: clean batch, {n} operations")
    phases.append(("clean", _batch(ledger, emu, n, rule)))
    log(f"polling: poisoned history, {rule}: {3 * n} operations killed, dead {DOWNTIME_S:g} s, resumed")
    phases.append((f"killed, dead {DOWNTIME_S:g} s, resumed", _killed_batch(ledger, emu, 3 * n, rule)))
    log(f"polling: poisoned history, {rule}: overloaded spell, {n} operations")
    emu.configure(latency={"video_poll": SLOW_POLL_S})
    try:
        phases.append((f"overloaded (polls answered +{SLOW_POLL_S:g} s)", _batch(ledger, emu, n, rule)))
    finally:
        emu.configure(latency={})
    for g in range(1, generations + 1):
        log(f"polling: poisoned history, {rule}: fresh batch {g}, {n} operations")
        phases.append((f"fresh, batch {g}", _batch(ledger, emu, n, rule)))
    return phases


def _p(values: list[float], q: float) -> float:
    from vidpipe_core.polling import quantile

    return quantile(values, q)


def run(quick: bool = False) -> Report:
    n = 12 if quick else 36
    generations = 2 if quick else 4
    n_poisoned, fresh_batches = (6, 2) if quick else (12, 3)
    root = fresh_home("polling")
    batches: list[tuple[str, int, dict[str, Any]]] = []
    poisoned: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    try:
        with EmulatorProcess(video_latency_s=LATENCY_S, latency={}, image_height=64, video_height=64) as emu:
            emu.configure(video_latency_jitter_s=JITTER_S, seed=SEED)
            emu.point_sdk_here()
            log(f"polling: fixed backoff, {n} operations")
            fixed_ledger = _ledger(root, "fixed", learn=False)
            batches.append(("fixed backoff", 0, _batch(fixed_ledger, emu, n)))
            for q in QUANTILES:
                ledger = _ledger(root, f"q{q}", learn=True, quantile=q)
                _copy_rows(fixed_ledger, ledger)
                for g in range(1, (generations if q == 0.25 else max(1, generations // 2)) + 1):
                    log(f"polling: learned q{q:g}, generation {g}, {n} operations")
                    batches.append((f"learned q{q:g}" + (" (default)" if q == 0.25 else ""), g, _batch(ledger, emu, n)))
            for rule in ("before", "after"):
                emu.configure(seed=SEED)  # the same latencies for both rules
                poisoned[rule] = _poisoned(root, emu, rule, n_poisoned, fresh_batches)
    finally:
        remove_home(root)

    base = batches[0][2]
    base_polls, base_lag = statistics.median(base["polls"]), _p(base["lag_s"], 0.9)
    rows = []
    for label, g, b in batches:
        polls, lag90 = statistics.median(b["polls"]), _p(b["lag_s"], 0.9)
        rows.append(
            (
                label,
                g or "–",
                f"{statistics.median(b['first_poll_s']):.2f}" if b["first_poll_s"] else "at once",
                f"{polls:g}" + ("" if not g else f" ({base_polls / polls:.1f}× fewer)"),
                f"{statistics.mean(b['polls']):.2f}",
                f"{_p(b['lag_s'], 0.5):.2f}",
                f"{lag90:.2f}" + ("" if not g else f" ({lag90 / base_lag:.2f}×)"),
                f"{statistics.median(b['cpu_ms']):.1f}",
                f"{statistics.median(b['wait_s']):.2f}",
            )
        )
    report = Report("polling", "Veo polling: learned schedule vs fixed backoff, and after a poisoned history")
    report.setup = [
        f"{n} operations per batch, {THREADS} waiting at once; latency {LATENCY_S:g} ± {JITTER_S:g} s uniform "
        f"(emulator seed {SEED}) = a {LATENCY_S / SCALE:.0f} ± {JITTER_S / SCALE:.0f} s Veo clip at 1/10 time; 4 s clips",
        f"poll settings at 1/10: backoff {POLL['poll_initial_s']:g} s doubling to {POLL['poll_max_s']:g} s; learned: first "
        f"poll at the quantile of the intervals earlier clips were done in (last seen running .. first seen done; at "
        f"most {FIRST_POLL_MAX_S['*']:g} s, the model's ceiling at 1/10), then every {POLL['poll_interval_s']:g} s",
        "learned modes start from a ledger holding the fixed batch's clips; each generation learns from the latest 50 before it",
        "lag = the first poll that saw the operation done − the moment it was done (emulator clock); CPU = the waiting "
        "thread's time.thread_time() over wait(); wait s = the wait's wall time (the worker thread is held for it)",
    ]
    report.tables.append(
        table(
            [
                "schedule",
                "generation",
                "first poll after submit (s, median)",
                "polls/op median",
                "polls/op mean",
                "lag p50 (s)",
                "lag p90 (s)",
                "CPU in wait (ms/clip, median)",
                "wait (s/clip, median)",
            ],
            rows,
        )
    )
    report.setup.append(
        f"poisoned history, per rule on a fresh ledger: a clean batch of {n_poisoned}; {3 * n_poisoned} operations submitted "
        f"by a run that dies, dead {DOWNTIME_S:g} s ({DOWNTIME_S / SCALE:.0f} s at full scale), re-attached by the resume; "
        f"{n_poisoned} operations while every poll is answered {SLOW_POLL_S:g} s late (an overloaded spell); then "
        f"{fresh_batches} fresh batches of {n_poisoned}. before = the rule until issue 21 (quantile of completed_at − "
        "submitted_at, less one interval); after = vidpipe_core.polling. 'first poll seen' is the emulator's first poll "
        "request after the submission; clip = completed_at − submitted_at (the ledger)"
    )
    prows = []
    for rule, phases in poisoned.items():
        for phase, b in phases:
            ratio = [c / lat for c, lat in zip(b["clip_s"], b["latency_s"], strict=True)]
            prows.append(
                (
                    rule,
                    phase,
                    f"{statistics.median(b['first_poll_s']):.2f}" if b["first_poll_s"] else "at once",
                    f"{statistics.median(b['first_poll_seen_s']):.2f}",
                    f"{statistics.median(b['polls']):g}",
                    f"{statistics.median(b['clip_s']):.2f} ({max(b['clip_s']):.2f})",
                    f"{statistics.median(ratio):.2f}",
                )
            )
    report.tables.append(
        table(
            [
                "rule",
                "phase",
                "first poll after submit (s, learned, median)",
                "first poll seen (s, median)",
                "polls/op median",
                "clip s, median (max)",
                "clip / its latency, median",
            ],
            prows,
            align=["l", "l", "r", "r", "r", "r", "r"],
        )
    )
    default = [b for label, _, b in batches if label.startswith("learned q0.25")]
    pooled = {k: [x for b in default for x in b[k]] for k in ("polls", "lag_s", "cpu_ms", "wait_s")}
    report.notes = [
        f"learned q0.25 over its {len(default)} generations: median {statistics.median(pooled['polls']):g} polls/op "
        f"against {base_polls:g} fixed, lag p90 {_p(pooled['lag_s'], 0.9):.2f} s against {base_lag:.2f} s, CPU in wait "
        f"{statistics.median(pooled['cpu_ms']):.1f} against {statistics.median(base['cpu_ms']):.1f} ms/clip, wait "
        f"{statistics.median(pooled['wait_s']):.2f} against {statistics.median(base['wait_s']):.2f} s/clip",
        "first poll after submission, learned q0.25, generation by generation (does it creep?): "
        + ", ".join(f"{statistics.median(b['first_poll_s']):.2f} s" for b in default),
    ]
    fresh = {rule: [b for phase, b in phases if phase.startswith("fresh")] for rule, phases in poisoned.items()}
    first = {rule: statistics.median(b[0]["first_poll_seen_s"]) for rule, b in fresh.items()}
    clip = {rule: statistics.median(x for b in bs for x in b["clip_s"]) for rule, bs in fresh.items()}
    report.notes += [
        f"after the poisoned history, the first fresh batch's first poll came {first['before']:.2f} s after submission "
        f"before and {first['after']:.2f} s after ({first['before'] / first['after']:.1f}× sooner; latency "
        f"{LATENCY_S:g} ± {JITTER_S:g} s); over the {fresh_batches} fresh batches a clip took {clip['before']:.2f} s before "
        f"and {clip['after']:.2f} s after (median; {clip['before'] / clip['after']:.2f}×)",
        "first poll of the fresh batches, batch by batch (before | after): "
        + ", ".join(
            f"{statistics.median(b['first_poll_seen_s']):.2f} | {statistics.median(a['first_poll_seen_s']):.2f} s"
            for b, a in zip(fresh["before"], fresh["after"], strict=True)
        ),
    ]
    report.data = {
        "batches": [{"schedule": label, "generation": g, **b} for label, g, b in batches],
        "poisoned": {rule: [{"phase": phase, **b} for phase, b in phases] for rule, phases in poisoned.items()},
        "settings": {
            "latency_s": LATENCY_S,
            "jitter_s": JITTER_S,
            "threads": THREADS,
            "seed": SEED,
            "downtime_s": DOWNTIME_S,
            "slow_poll_s": SLOW_POLL_S,
            "poll_first_max_s": FIRST_POLL_MAX_S,
            **POLL,
        },
    }
    return report


if __name__ == "__main__":
    import sys

    from bench.__main__ import run_one

    sys.exit(run_one("polling", "--quick" in sys.argv, run))
