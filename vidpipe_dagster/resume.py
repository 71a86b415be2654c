"""Resuming a project: clear runs whose process died, then materialize only what is missing,
out of date, damaged, or made for an earlier project record with the same id."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from vidpipe_core import locks
from vidpipe_core.errors import ProjectBusy
from vidpipe_core.scenes import frame_label, scene_label
from vidpipe_core.services import Services
from vidpipe_core.steps import CHARACTERS, CLIPS, FINAL_VIDEO, KEYFRAMES, NARRATION, STAGES, STORYBOARD
from vidpipe_core.steps.inspect import Finding, find_damage
from vidpipe_core.steps.narration import pending_line
from vidpipe_core.steps.state import ProjectState, project_nonce, resolve_state
from vidpipe_dagster.healing import ACTIVE, PARTITION_TAG, describe_run, heal_runs, instance_liveness
from vidpipe_dagster.materializations import belongs_to_project, final_video_problem, latest_materialization


@dataclass
class ResumePlan:
    assets: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    damaged: list[Finding] = field(default_factory=list)

    @property
    def repair_cost_usd(self) -> float:
        return sum(f.paid_usd for f in self.damaged)


def recover_dead_runs(
    instance: dg.DagsterInstance, services: Services, project_id: str, *, dry_run: bool = False
) -> dict[str, str]:
    """Mark this partition's runs whose process is dead as failed, free what they held and the
    project lock of a dead holder; refuse when a run is still alive. With ``dry_run`` only say
    what would be done. Returns the dead runs: run id -> description."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: project_id}, statuses=ACTIVE))
    stale = services.settings.heartbeat_stale_s
    for run in runs:
        liveness = instance_liveness(instance, run, stale)
        if liveness.alive and liveness.tagged:
            raise ProjectBusy(project_id, describe_run(run, liveness))
    report = heal_runs(instance, runs, stale, dry_run=dry_run)
    locks.release_if_gone(services, project_id, dry_run=dry_run)
    return report.failed_runs


def _pending_work(services: Services, state: ProjectState) -> dict[str, str | None]:
    """The first thing each stage still has to make (None when nothing)."""
    n = len(state.scenes)
    frame = next(iter(state.frames_to_make()), None)
    clip = next(iter(state.clips_to_finish()), None)
    sheet = next(iter(state.sheets_to_make()), None)
    return {
        CHARACTERS: f"the reference sheet of {sheet.name!r} missing" if sheet is not None else None,
        KEYFRAMES: f"{frame_label(frame.index, n)} missing" if frame is not None else None,
        CLIPS: (
            f"the clip of {scene_label(clip.index)} is {clip.status.value if clip.status else 'missing'}"
            if clip is not None
            else None
        ),
        NARRATION: pending_line(services, state.spec, state.scenes) if state.has_storyboard else None,
    }


def plan_resume(
    instance: dg.DagsterInstance,
    services: Services,
    project_id: str,
    state: ProjectState | None = None,
    damaged: list[Finding] | None = None,
) -> ResumePlan:
    """What `vidpipe resume` would materialize and why; reads only. ``state`` and ``damaged``
    (what `resolve_state` and `find_damage` give) spare a caller that has them a second read."""
    plan = ResumePlan()
    nonce = project_nonce(services, project_id)
    state = state or resolve_state(services, project_id)
    plan.damaged = find_damage(services, state) if damaged is None else damaged
    work = _pending_work(services, state)
    for finding in plan.damaged:
        work[finding.stage] = work.get(finding.stage) or f"{finding.what} is damaged"
    upstream = 0.0
    stamps: dict[str, float] = {}
    for name in STAGES:
        record = latest_materialization(instance, name, project_id)
        if plan.assets:
            reason: str | None = "downstream of " + plan.assets[0]
        elif record is None and name == CHARACTERS and state.has_storyboard and not state.sheets:
            continue  # planned before characters existed, or shows none: no sheet to make, nothing downstream to redo
        elif record is None and name == NARRATION and not state.spec.narration:
            continue  # no narration (every project registered before it): nothing to say, the video needs none
        elif record is None:
            reason = "never materialized"
        elif not belongs_to_project(record, nonce):
            reason = "its materialization belongs to an earlier project with this id"
        elif record.timestamp < (stamps.get(STORYBOARD, 0.0) if name == NARRATION else upstream):
            reason = "older than its upstream"  # the narration's one upstream is the storyboard
        elif name == FINAL_VIDEO:
            reason = final_video_problem(services, project_id, record)
        else:
            reason = work.get(name)
        if reason is None:
            if record is not None:
                stamps[name] = record.timestamp
                upstream = max(upstream, record.timestamp)
            continue
        plan.reasons[name] = reason
        plan.assets.append(name)
    return plan
