"""`polling`: the Veo poll schedule learned from the ledger against the fixed backoff.

At 1/10 time: every operation takes 6 ± 2 s on the wire emulator (uniform, seeded: a 60 ± 20 s
Veo clip), vidpipe's poll settings scaled the same way (backoff 0.5 s doubling to 1 s for the
defaults 5 → 10 s; `poll_interval_s` 0.5 for 5). Each operation goes the way the clips step makes
it, with the real google-genai SDK and a real SQLite ledger: submit, record `submitted_at`, wait
(on `vidpipe_core.polling.poll_schedule` when learning), record DONE with `completed_at` and the
measured length. `THREADS` operations wait at once.

- fixed: `VIDPIPE_POLL_LEARN=false`, on an empty ledger (its rows then seed the learned modes);
- learned q: a ledger holding the fixed batch's rows, then `GENERATIONS` batches one after the
  other, each learning from the latest 50 clips before it (does the first poll creep?).

Per operation: polls (the emulator's count), lag = first poll that saw it done − the moment it
was done (the emulator records both), CPU of the waiting thread (`time.thread_time` around
`wait`: SDK requests, JSON, the done answer's decode) and its wall time (worker-seconds: the
thread is held for the whole wait whatever the schedule)."""

from __future__ import annotations

import json
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
QUANTILES = (0.25, 0.5)
THREADS = 12
SEED = 12


@dataclass
class Op:
    name: str
    cpu_s: float
    wall_s: float
    first_poll_s: float | None  # the schedule's, after submission; None on the backoff


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

    with source.db.session() as s:
        rows = [(r.submitted_at, r.completed_at, r.duration_s, r.operation_name) for r in s.scalars(select(VideoClip))]
    with target.db.session() as s:
        for submitted, completed, length, operation in rows:
            s.add(_row(operation, submitted, completed, length))


def _row(operation: str, submitted: Any, completed: Any, length: float) -> Any:
    from vidpipe_core.models import ClipStatus, VideoClip

    return VideoClip(
        project_id="bench",
        scene_index=0,
        fingerprint=uuid.uuid4().hex,
        status=ClipStatus.DONE,
        provider="google",
        model=VEO,
        operation_name=operation,
        duration_s=length,
        submitted_at=submitted,
        completed_at=completed,
    )


def _one(services: Any, request: Any) -> Op:
    """One clip as the clips step makes it."""
    from vidpipe_core import media
    from vidpipe_core.models import utcnow
    from vidpipe_core.polling import poll_schedule
    from vidpipe_core.providers.base import ClipOutcomeKind
    from vidpipe_core.providers.google import GoogleClips

    clips = GoogleClips(services.settings)
    operation = clips.submit(request, VEO)
    submitted = utcnow()
    schedule = poll_schedule(services, "google", VEO, request.duration_s, submitted)
    cpu, wall = time.thread_time(), time.perf_counter()
    outcome = clips.wait(operation, request, VEO, schedule=schedule)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if outcome.kind is not ClipOutcomeKind.DONE or outcome.video is None:
        raise RuntimeError(f"operation {operation} ended {outcome.kind.value}: {outcome.error}")
    length = media.probe_bytes(outcome.video).duration_s
    with services.db.session() as s:
        s.add(_row(operation, submitted, utcnow(), length))
    return Op(operation, cpu, wall, None if schedule is None else schedule.first_poll_s)


def _batch(services: Any, emu: EmulatorProcess, n: int) -> dict[str, Any]:
    request = _request()
    with ThreadPoolExecutor(THREADS, thread_name_prefix="bench-clip") as pool:
        ops = list(pool.map(lambda _: _one(services, request), range(n)))
    timings = _operations(emu)
    polls = [timings[o.name]["polls"] for o in ops]
    lags = [timings[o.name]["lag_s"] for o in ops]
    firsts = [o.first_poll_s for o in ops if o.first_poll_s is not None]
    return {
        "n": n,
        "polls": polls,
        "lag_s": lags,
        "cpu_ms": [o.cpu_s * 1000 for o in ops],
        "wait_s": [o.wall_s for o in ops],
        "first_poll_s": firsts,
        "latency_s": [timings[o.name]["latency_s"] for o in ops],
    }


def _p(values: list[float], q: float) -> float:
    from vidpipe_core.polling import quantile

    return quantile(values, q)


def run(quick: bool = False) -> Report:
    n = 12 if quick else 36
    generations = 2 if quick else 4
    root = fresh_home("polling")
    batches: list[tuple[str, int, dict[str, Any]]] = []
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
    report = Report("polling", "Veo polling: learned schedule vs fixed backoff")
    report.setup = [
        f"{n} operations per batch, {THREADS} waiting at once; latency {LATENCY_S:g} ± {JITTER_S:g} s uniform "
        f"(emulator seed {SEED}) = a {LATENCY_S / SCALE:.0f} ± {JITTER_S / SCALE:.0f} s Veo clip at 1/10 time; 4 s clips",
        f"poll settings at 1/10: backoff {POLL['poll_initial_s']:g} s doubling to {POLL['poll_max_s']:g} s; learned: first "
        f"poll at the quantile less one poll_interval_s ({POLL['poll_interval_s']:g} s), then every {POLL['poll_interval_s']:g} s",
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
    report.data = {
        "batches": [{"schedule": label, "generation": g, **b} for label, g, b in batches],
        "settings": {"latency_s": LATENCY_S, "jitter_s": JITTER_S, "threads": THREADS, "seed": SEED, **POLL},
    }
    return report


if __name__ == "__main__":
    import sys

    from bench.__main__ import run_one

    sys.exit(run_one("polling", "--quick" in sys.argv, run))
