"""Resuming a project: clear runs whose process died, then materialize only what is missing."""
from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from vidpipe_core import locks
from vidpipe_core.errors import ProjectBusy
from vidpipe_core.models import ClipStatus, Project
from vidpipe_core.services import Services
from vidpipe_core.steps.state import resolve_state
from vidpipe_dagster.assets import HOST_TAG, PID_TAG
from vidpipe_dagster.pools import free_run_slots
from vidpipe_dagster.status import ASSETS

ACTIVE = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]


@dataclass
class ResumePlan:
    recovered_runs: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)


def recover_dead_runs(instance: dg.DagsterInstance, services: Services, project_id: str) -> list[str]:
    """Mark runs of this partition whose process is gone as failed (and free what they held);
    refuse when a run is still alive."""
    recovered = []
    for run in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": project_id}, statuses=ACTIVE)):
        pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
        alive = locks.process_alive(int(pid), host) if pid and host else None
        if alive is True:
            raise ProjectBusy(project_id, f"run {run.run_id} (pid {pid} on {host})")
        if alive is None:
            continue  # another host, or no step started yet: the run monitor or a human decides
        instance.report_run_failed(run, f"vidpipe resume: the run's process (pid {pid} on {host}) is gone")
        free_run_slots(instance, run.run_id)
        recovered.append(run.run_id)
    with services.db.session() as s:
        row = s.get(Project, project_id)
        holder = row.lock_holder if row else None
    if holder and locks.holder_is_gone(holder):
        locks.release(services, project_id, holder)
    return recovered


def plan_resume(instance: dg.DagsterInstance, services: Services, project_id: str) -> ResumePlan:
    plan = ResumePlan()
    stamps: dict[str, float | None] = {}
    for name in ASSETS:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[project_id]), limit=1).records
        stamps[name] = records[0].timestamp if records else None

    state = resolve_state(services, project_id)
    spec = state.spec
    work = {
        "keyframes": next((f"frame {f.index} missing" for f in state.frames if not f.done), None) if state.frames else None,
        "clips": next((f"scene {c.index} clip {c.status.value if c.status else 'missing'}" for c in state.clips
                       if c.status != ClipStatus.DONE and not (c.status == ClipStatus.REJECTED and spec.safety_policy == "skip")),
                      None) if state.clips else None,
    }
    upstream: float = 0.0
    for name in ASSETS:
        stamp = stamps[name]
        if plan.assets:
            plan.reasons[name] = "downstream of " + plan.assets[0]
        elif stamp is None:
            plan.reasons[name] = "never materialized"
        elif stamp < upstream:
            plan.reasons[name] = "older than its upstream"
        elif work.get(name):
            plan.reasons[name] = str(work[name])
        else:
            upstream = stamp
            continue
        plan.assets.append(name)
        upstream = float("inf")
    return plan
