"""Runs whose process died are marked failed and what they held is freed, by whoever looks next.

A run that executes a vidpipe step records who runs it in its tags: the owning process
(``vidpipe/pid``, ``vidpipe/pid_started``, ``vidpipe/host``) and a heartbeat
(``vidpipe/heartbeat``, UTC epoch seconds) renewed every ``heartbeat_interval_s`` (15 s) while a
step runs. A celery run is owned by its run worker instead (``vidpipe/owner: run-worker``): it
tags itself and beats for the whole run, while its steps run on workers anywhere. A STARTED run
is dead when

- on this host: its process no longer exists (or the pid now belongs to a newer process);
- on another host: its heartbeat (or, before the first beat, its start) is older than
  ``heartbeat_stale_s`` (120 s).

A dead run is reported failed (Dagster's run record, with the reason) and its slots in the
``video-operations`` pool are freed. Runs that already ended but still hold slots (their process
was killed after the end was recorded) are freed too. This runs when a step waits for a slot,
in ``vidpipe resume`` and from the ``heal_dead_runs`` sensor under the daemon, so nothing waits
for an operator. Read-only callers (``--dry-run``, ``status``) only ask. A run is read again
just before it is marked failed; one whose tags or heartbeat changed since it was judged is
left alone (its owner showed life: a slow beat, a step taken over by another worker)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dagster as dg

from vidpipe_core.heartbeat import Heartbeat
from vidpipe_core.liveness import owner_pid, process_alive, process_started, this_host

PID_TAG = "vidpipe/pid"
PID_STARTED_TAG = "vidpipe/pid_started"
HOST_TAG = "vidpipe/host"
HEARTBEAT_TAG = "vidpipe/heartbeat"
OWNER_TAG = "vidpipe/owner"  # "run-worker": the run worker owns the run (celery), steps do not re-tag it
RUN_WORKER = "run-worker"
# What healing compares between judging a run dead and marking it failed (see fail_dead_run).
LIVENESS_TAGS = (PID_TAG, PID_STARTED_TAG, HOST_TAG, HEARTBEAT_TAG, OWNER_TAG)
PARTITION_TAG = "dagster/partition"

ACTIVE = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def owner_tags(pid: int | None = None) -> dict[str, str]:
    """The tags that say which process runs this run (``pid``, default the step's owner), with a
    first heartbeat."""
    pid = owner_pid() if pid is None else pid
    started = process_started(pid)
    tags = {PID_TAG: str(pid), HOST_TAG: this_host(), HEARTBEAT_TAG: f"{time.time():.3f}"}
    if started is not None:
        tags[PID_STARTED_TAG] = f"{started:.3f}"
    return tags


def names_this_owner(tags: Mapping[str, str], fresh_within_s: float) -> bool:
    """Whether a run's ``tags`` already name this step's owner process (pid, its start time, host)
    with a heartbeat younger than ``fresh_within_s``: then a step need not write them again (the
    run's creation in `runner.render`, or the step before in this process, did)."""
    expected = owner_tags()
    if any(tags.get(key) != expected.get(key) for key in (PID_TAG, PID_STARTED_TAG, HOST_TAG)):
        return False
    beat = _float(tags.get(HEARTBEAT_TAG))
    return beat is not None and time.time() - beat < fresh_within_s  # (written to the ms: may be ahead by 0.5 ms)


def run_worker_tags() -> dict[str, str]:
    """The tags of a run owned by its run worker (this process: the celery executor's loop, which
    lives for the whole run while its steps run as tasks on other processes and hosts)."""
    return {**owner_tags(os.getpid()), OWNER_TAG: RUN_WORKER}


def heartbeat_tags() -> dict[str, str]:
    return {HEARTBEAT_TAG: f"{time.time():.3f}"}


def run_heartbeat(instance: dg.DagsterInstance, run_id: str, interval_s: float, name: str) -> Heartbeat:
    """A thread that renews the run's heartbeat tag every ``interval_s`` while its block runs
    (the step's process, or a celery run's run worker)."""
    return Heartbeat(interval_s, lambda: instance.add_run_tags(run_id, heartbeat_tags()), name=f"{name}-{run_id[:8]}")


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Liveness:
    alive: bool
    why: str  # for people: "pid 123 on host-a is gone", "heartbeat 300 s old (limit 120 s)"
    tagged: bool = True  # False: no vidpipe step has recorded its process yet


def run_liveness(
    run: dg.DagsterRun, stale_after_s: float, *, started_at: float | None = None, now: float | None = None
) -> Liveness:
    """Whether a run that has not ended still has a live process behind it.
    A run with no vidpipe tags yet (queued, starting) counts as alive: Dagster's own run
    monitoring handles runs that never start."""
    now = time.time() if now is None else now
    tags = run.tags
    pid, host = tags.get(PID_TAG), tags.get(HOST_TAG)
    if not pid or not host:
        return Liveness(True, "no vidpipe step has started yet", tagged=False)
    alive = process_alive(int(pid), host, _float(tags.get(PID_STARTED_TAG)))
    if alive is not None:
        return Liveness(alive, f"pid {pid} on {host} is {'running' if alive else 'gone'}")
    beat = _float(tags.get(HEARTBEAT_TAG)) or started_at
    if beat is None:
        return Liveness(True, f"pid {pid} on {host}, no heartbeat yet")
    age = now - beat
    return Liveness(age <= stale_after_s, f"pid {pid} on {host}, heartbeat {age:.0f} s old (dead after {stale_after_s:.0f} s)")


def describe_run(run: dg.DagsterRun, liveness: Liveness | None = None) -> str:
    project = run.tags.get(PARTITION_TAG)
    parts = [f"project {project}"] if project else []
    if liveness is not None:
        parts.append(liveness.why)
    return f"run {run.run_id[:8]}" + (f" ({', '.join(parts)})" if parts else "")


@dataclass
class HealReport:
    failed_runs: dict[str, str] = field(default_factory=dict)  # run id -> description: marked failed
    freed_runs: list[str] = field(default_factory=list)  # ended runs whose slots were freed
    live_holders: list[str] = field(default_factory=list)  # runs that hold slots and are alive

    def __bool__(self) -> bool:
        return bool(self.failed_runs or self.freed_runs)

    def lines(self) -> list[str]:
        return [f"{r}: its process is dead; marked it failed and freed its slots" for r in self.failed_runs.values()] + [
            f"{r}: freed the video-operations slots it still held" for r in self.freed_runs
        ]


def instance_liveness(instance: dg.DagsterInstance, run: dg.DagsterRun, stale_after_s: float) -> Liveness:
    """run_liveness, with the run's start time (one more query) only when it has no heartbeat."""
    started_at = None
    if HEARTBEAT_TAG not in run.tags:
        records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[run.run_id]), limit=1)
        if records:
            started_at = records[0].start_time or records[0].create_timestamp.timestamp()
    return run_liveness(run, stale_after_s, started_at=started_at)


def changed_since(judged: dg.DagsterRun, current: dg.DagsterRun) -> bool:
    """The run's owner or heartbeat tags differ from those it was judged by: someone (its run
    worker, a redelivered step) showed life since, so it is not for healing to fail."""
    return any(judged.tags.get(tag) != current.tags.get(tag) for tag in LIVENESS_TAGS)


def fail_dead_run(instance: dg.DagsterInstance, run: dg.DagsterRun, liveness: Liveness, *, dry_run: bool = False) -> bool:
    """Mark ``run`` (judged dead by ``liveness``) failed and free its slots. The run is read again
    just before: when it ended meanwhile only its slots are freed; when its tags or heartbeat
    changed since it was judged, nothing is done and False is returned."""
    if dry_run:
        return True
    current = instance.get_run_by_id(run.run_id)
    if current is not None and current.status in FINISHED:  # another process healed it just now
        free_run_slots(instance, run.run_id)
        return True
    if current is not None and changed_since(run, current):
        return False
    instance.report_run_failed(
        run,
        f"vidpipe: the run's process is dead ({liveness.why}); marked failed and its "
        "video-operations slots freed. Paid operations stay in the ledger: "
        f"`vidpipe resume {run.tags.get(PARTITION_TAG, '<id>')}` continues the project.",
    )
    free_run_slots(instance, run.run_id)
    return True


def free_run_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    """Release what a dead run still holds (its process cannot do it any more)."""
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def heal_runs(
    instance: dg.DagsterInstance,
    runs: Iterable[dg.DagsterRun],
    stale_after_s: float,
    *,
    dry_run: bool = False,
    report: HealReport | None = None,
) -> HealReport:
    """Mark the dead ones among ``runs`` (not ended) failed and free their slots."""
    report = report or HealReport()
    for run in runs:
        if run.status in FINISHED:
            continue
        liveness = instance_liveness(instance, run, stale_after_s)
        if liveness.alive:
            continue
        if fail_dead_run(instance, run, liveness, dry_run=dry_run):
            report.failed_runs[run.run_id] = describe_run(run, liveness)
    return report


def heal_pool(instance: dg.DagsterInstance, pool: str, stale_after_s: float, *, dry_run: bool = False) -> HealReport:
    """Free the slots of ``pool`` held or queued for by runs that ended or whose process is dead."""
    report = HealReport()
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return report
    info = storage.get_concurrency_info(pool)
    holders = {s.run_id for s in info.claimed_slots} | {p.run_id for p in info.pending_steps}
    for run_id in sorted(holders):
        run = instance.get_run_by_id(run_id)
        if run is None:
            continue  # not a run of this instance (Dagster frees the slots of a run it deletes)
        if run.status in FINISHED:
            if not dry_run:
                free_run_slots(instance, run_id)
            report.freed_runs.append(f"run {run_id[:8]} ({run.status.value.lower()})")
            continue
        liveness = instance_liveness(instance, run, stale_after_s)
        if liveness.alive:
            if run_id in {s.run_id for s in info.claimed_slots}:
                report.live_holders.append(describe_run(run, liveness))
            continue
        if fail_dead_run(instance, run, liveness, dry_run=dry_run):
            report.failed_runs[run_id] = describe_run(run, liveness)
    return report


def heal_instance(instance: dg.DagsterInstance, pool: str, stale_after_s: float, *, dry_run: bool = False) -> HealReport:
    """Every unfinished run of the instance, then the pool (the daemon's sweep)."""
    report = heal_runs(instance, instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE)), stale_after_s, dry_run=dry_run)
    pool_report = heal_pool(instance, pool, stale_after_s, dry_run=dry_run)
    report.failed_runs.update(pool_report.failed_runs)
    report.freed_runs += pool_report.freed_runs
    report.live_holders = pool_report.live_holders
    return report
