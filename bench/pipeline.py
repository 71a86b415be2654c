"""Driving vidpipe for the benchmarks: register a project, render it through Dagster (in-process
or with the default multiprocess executor), and read back what happened when (Dagster's event
log for steps, vidpipe's ledger for clips).

Import this only after the environment (VIDPIPE_*, DAGSTER_HOME, GOOGLE_*) is set."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any


def register(prompt: str, *, scenes: int, clip_duration: int, provider: str, prefix: str, **options: Any) -> str:
    from vidpipe_dagster.runner import register

    project_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    options.setdefault("max_cost_usd", 1000.0)  # 16 Veo clips list at > $25, vidpipe's default budget
    # No narrator unless a bench asks for one: the figures stay comparable with those recorded before
    # narration existed (bench mix measures what the narration and the final mix add).
    options.setdefault("narration", False)
    spec = register(prompt, id=project_id, scenes=scenes, clip_duration=clip_duration, provider=provider, **options)
    return spec.id


def clips_config(concurrency: int | None) -> dict[str, Any]:
    return {"ops": {"clips": {"config": {"concurrency": concurrency}}}} if concurrency else {}


@dataclass
class RunRecord:
    project_id: str
    run_id: str
    success: bool
    wall_s: float  # measured around the call, in this process
    executor: str
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)  # step -> (start, end), epoch seconds
    keyframes_end: float | None = None  # the last "[keyframes]" line in the log (epoch): the last frame recorded
    run_start: float | None = None  # first event of the run (epoch)
    run_end: float | None = None  # last event of the run (epoch)
    call_start: float = 0.0  # epoch time the call was made
    stitch_s: float | None = None  # "[final_video] stitching" -> "final video written"
    clip_spans: list[tuple[float, float]] = field(default_factory=list)  # (submitted_at, completed_at) epoch
    sheets: int = 0  # character reference sheets in the ledger (one image call each when made)
    failure: str = ""

    def step_s(self, step: str) -> float | None:
        if step not in self.steps:
            return None
        a, b = self.steps[step]
        return b - a

    def keyframes_s(self) -> float | None:
        """From the clips step's start to its last "[keyframes]" line (the last frame recorded): the
        step makes the frames and submits each clip as soon as its two frames exist."""
        if "clips" not in self.steps or self.keyframes_end is None:
            return None
        return self.keyframes_end - self.steps["clips"][0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "run_id": self.run_id,
            "success": self.success,
            "wall_s": self.wall_s,
            "executor": self.executor,
            "step_s": {s: self.step_s(s) for s in self.steps},
            "keyframes_s": self.keyframes_s(),
            "before_first_step_s": (min(a for a, _ in self.steps.values()) - self.call_start) if self.steps else None,
            "after_last_step_s": (self.call_start + self.wall_s - max(b for _, b in self.steps.values())) if self.steps else None,
            "stitch_s": self.stitch_s,
            "clip_submit_to_done_s": [b - a for a, b in self.clip_spans],
            "sheets": self.sheets,
            "failure": self.failure,
        }


def _instance():
    from vidpipe_core.config import get_settings
    from vidpipe_dagster.instance import get_instance

    return get_instance(get_settings())


def collect(record: RunRecord, instance=None) -> RunRecord:  # type: ignore[no-untyped-def]
    """Fill step times, stitch time and clip spans from the Dagster event log and vidpipe's ledger."""
    from sqlalchemy import select

    from vidpipe_core.config import get_settings
    from vidpipe_core.models import CharacterSheetRow, VideoClip
    from vidpipe_core.services import Services

    instance = instance or _instance()
    logs = instance.all_logs(record.run_id)
    starts: dict[str, float] = {}
    stitch_from = None
    for entry in logs:
        ts = entry.timestamp
        record.run_start = ts if record.run_start is None else min(record.run_start, ts)
        record.run_end = ts if record.run_end is None else max(record.run_end, ts)
        ev = entry.dagster_event
        msg = entry.user_message or ""
        if ev is not None and ev.event_type_value == "STEP_START" and entry.step_key:
            starts[entry.step_key] = ts
        elif ev is not None and ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in starts:
            record.steps[entry.step_key] = (starts[entry.step_key], ts)
            if ev.event_type_value == "STEP_FAILURE":
                record.failure = msg[:500]
        elif ev is None and msg.startswith("[keyframes]"):
            record.keyframes_end = ts
        elif ev is None and msg.startswith("[final_video] stitching"):
            stitch_from = ts
        elif ev is None and msg.startswith("[final_video] final video written") and stitch_from is not None:
            record.stitch_s = ts - stitch_from
    services = Services.create(get_settings())
    with services.db.session() as s:
        rows = s.scalars(select(VideoClip).where(VideoClip.project_id == record.project_id)).all()
        record.clip_spans = sorted(
            (r.submitted_at.timestamp(), r.completed_at.timestamp()) for r in rows if r.submitted_at and r.completed_at
        )
        record.sheets = len(s.scalars(select(CharacterSheetRow).where(CharacterSheetRow.project_id == record.project_id)).all())
    return record


def render_in_process(project_id: str, concurrency: int | None = None) -> RunRecord:
    """`vidpipe_dagster.runner.render`: execute_in_process, recorded in the instance."""
    from vidpipe_dagster.runner import render

    call = time.time()
    t = time.perf_counter()
    result = render(project_id, run_config=clips_config(concurrency))
    wall = time.perf_counter() - t
    return collect(RunRecord(project_id, result.run_id, bool(result.success), wall, "in_process", call_start=call))


def _reconstructable_job():  # type: ignore[no-untyped-def]
    import dagster as dg

    return dg.reconstructable(resolved_multiprocess_job)


def resolved_multiprocess_job():  # type: ignore[no-untyped-def]
    """`render_project` with Dagster's default multiprocess executor (each step a new process).
    The product job runs in-process since 2026-11-25; this variant keeps measuring what that saved."""
    import dagster as dg

    from vidpipe_dagster.assets import render_assets
    from vidpipe_dagster.definitions import defs

    job = dg.define_asset_job(
        "render_project_multiprocess", selection=dg.AssetSelection.assets(*render_assets), executor_def=dg.multiprocess_executor
    )
    return dg.Definitions.merge(defs(), dg.Definitions(jobs=[job])).resolve_job_def("render_project_multiprocess")


def render_multiprocess(project_id: str, concurrency: int | None = None) -> RunRecord:
    """`dg.execute_job` of `render_project` with Dagster's default multiprocess executor (every
    step in its own fresh Python process), what `dagster job execute` and the daemon's run worker
    used before the job was switched to the in-process executor. The parent process is warm."""
    import dagster as dg

    instance = _instance()
    call = time.time()
    t = time.perf_counter()
    result = dg.execute_job(
        _reconstructable_job(), instance=instance, run_config=clips_config(concurrency), tags={"dagster/partition": project_id}
    )
    wall = time.perf_counter() - t
    return collect(RunRecord(project_id, result.run_id, bool(result.success), wall, "multiprocess", call_start=call), instance)


def run_core_steps(project_id: str, concurrency: int | None = None) -> dict[str, float]:
    """The four vidpipe_core steps called directly, in sequence (no Dagster); seconds per step."""
    from vidpipe_core.config import get_settings
    from vidpipe_core.services import Services
    from vidpipe_core.steps.clips import make_clips
    from vidpipe_core.steps.keyframes import make_keyframes
    from vidpipe_core.steps.stitch import make_final
    from vidpipe_core.steps.storyboard import make_storyboard

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    services = Services.create(get_settings())
    t = time.perf_counter()
    make_storyboard(services, project_id)
    out["storyboard"] = time.perf_counter() - t
    t = time.perf_counter()
    make_keyframes(services, project_id)
    out["keyframes"] = time.perf_counter() - t
    t = time.perf_counter()
    make_clips(services, project_id, concurrency=concurrency)
    out["clips"] = time.perf_counter() - t
    t = time.perf_counter()
    make_final(services, project_id)
    out["final_video"] = time.perf_counter() - t
    out["total"] = time.perf_counter() - t0
    return out
