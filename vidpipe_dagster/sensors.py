"""The prompt-inbox sensor: files dropped into the inbox become project partitions and render runs.

Each tick (1) lets ``vidpipe_core.inbox.tick.process_inbox`` register, recognise or reject the ready
files, then (2) asks for a partition and a ``render_project`` run for every inbox project created
since the cursor's watermark. Step 2 reads the database, not step 1's return value, so a project
whose row was written by a tick that crashed (or whose result the daemon never stored) is picked
up by the next tick; run keys (project id + creation time) make a repeated request a no-op.

Cursor (JSON): ``since`` / ``at`` = the newest emitted project's ``created_at`` and the ids emitted
at exactly that instant; ``stuck`` = keys of files that could not be moved (not re-evaluated until
they change). An absent cursor (first tick, or a reset) asks only for projects Dagster has no
partition for, instead of re-requesting every inbox project ever made.

A linked inbox, ``accepted/`` or ``rejected/`` folder fails the tick with one ``ConfigurationError``
(an operator's setup to fix, not a file to refuse); nothing is read or moved until it is fixed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg

from vidpipe_core.errors import ConfigurationError
from vidpipe_core.inbox.files import InboxSettings
from vidpipe_core.inbox.queries import InboxProject, inbox_projects, source_file
from vidpipe_core.inbox.tick import InboxTick, process_inbox
from vidpipe_core.models import utc
from vidpipe_core.projects import earlier_files
from vidpipe_core.services import Services
from vidpipe_dagster.healing import heal_instance
from vidpipe_dagster.jobs import render_project
from vidpipe_dagster.partitions import PROJECTS, projects_partitions
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.runner import supersede_earlier

CURSOR_VERSION = 1
MAX_STUCK = 1000


@dataclass
class InboxCursor:
    since: datetime | None = None
    at: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: str | None) -> InboxCursor:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            since = utc(datetime.fromisoformat(data["since"])) if data.get("since") else None
            return cls(since=since, at=list(data.get("at", [])), stuck=list(data.get("stuck", [])))
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()  # unreadable: behave as a first tick (asks only for unknown partitions)

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "since": self.since.isoformat() if self.since else None,
                "at": self.at,
                "stuck": self.stuck[-MAX_STUCK:],
            },
            separators=(",", ":"),
        )


def run_key(project: InboxProject) -> str:
    """Stable across re-evaluations; new for a project re-created under the same id."""
    return f"{project.id}@{project.created_at:%Y%m%dT%H%M%S.%fZ}"


def pending_projects(
    instance: dg.DagsterInstance, services: Services, cursor: InboxCursor, limit: int, registered: list[str]
) -> tuple[list[InboxProject], datetime | None, list[str]]:
    """Inbox projects to request (oldest first) and the watermark after them."""
    fresh = set(registered)
    if cursor.since is None:
        rows = inbox_projects(services)
        known = set(instance.get_dynamic_partitions(PROJECTS))
        emit = [p for p in rows if p.id not in known or p.id in fresh]
    else:
        rows = inbox_projects(services, since=cursor.since, limit=limit + len(cursor.at))
        rows = [p for p in rows if not (p.created_at == cursor.since and p.id in cursor.at)]
        emit = list(rows)
    since, at = cursor.since, list(cursor.at)
    if rows:
        last = rows[-1].created_at
        same = [p.id for p in rows if p.created_at == last]
        since, at = last, (at + same if last == cursor.since else same)
    missing = fresh - {p.id for p in emit}
    if missing:  # beyond the limit, or created "before" the watermark (clock set back): ask anyway
        emit += inbox_projects(services, ids=sorted(missing))
    return emit, since, at


def _summary(tick: InboxTick, requested: int, limits: InboxSettings, seconds: float) -> str:
    counts = [
        (len(tick.registered), "registered"),
        (len(tick.duplicates), "identical to an existing project"),
        (len(tick.rejected), "rejected"),
        (requested, "run requests"),
        (tick.waiting, "still being written"),
        (len(tick.stuck), "could not be moved"),
        (tick.unavailable, "left for the next tick (the database could not be reached)"),
    ]
    parts = [f"{n} {what}" for n, what in counts if n]
    if tick.deferred:
        parts.append(f"{tick.deferred} left for the next tick (at most {limits.inbox_max_files_per_tick} per tick)")
    return f"inbox: {', '.join(parts) or 'no new files'} ({seconds:.2f} s)"


@dg.sensor(
    job=render_project,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers prompt files dropped into the inbox folder (VIDPIPE_INBOX_DIR) as projects "
    "and requests a render_project run for each; invalid files go to rejected/ with a reason.",
)
def inbox_sensor(context: dg.SensorEvaluationContext, vidpipe: VidpipeResource) -> dg.SensorResult:
    started = time.perf_counter()
    services = vidpipe.services()
    limits = services.settings  # the inbox's limits are settings like any other: the resource's
    cursor = InboxCursor.parse(context.cursor)

    def log(level: str, message: str) -> None:
        getattr(context.log, level)(message)

    try:
        tick = process_inbox(services, limits, skip=cursor.stuck, log=log)
    except ConfigurationError as exc:  # the tick fails with this one message until the folder is fixed
        context.log.error(str(exc))
        raise
    for project_id, _accepted in tick.registered:  # an id registered again: nothing of its predecessor's is shown
        moved = earlier_files(services, project_id)
        if moved:
            context.log.warning(f"project {project_id}: an earlier project with this id had left files; moved to {moved}")
        supersede_earlier(context.instance, services, project_id)
    emit, since, at = pending_projects(
        context.instance, services, cursor, 2 * limits.inbox_max_files_per_tick, [pid for pid, _ in tick.registered]
    )
    stuck = [k for k in cursor.stuck if k in tick.present] + [k for k in tick.stuck if k not in cursor.stuck]
    new_cursor = InboxCursor(since=since, at=at, stuck=stuck).dumps()
    summary = _summary(tick, len(emit), limits, time.perf_counter() - started)
    context.log.info(summary)
    if not emit:
        return dg.SensorResult(skip_reason=summary, cursor=new_cursor)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key(p),
                partition_key=p.id,
                tags={"vidpipe/origin": "inbox", "vidpipe/inbox_file": source_file(p.source)},
            )
            for p in emit
        ],
        dynamic_partitions_requests=[projects_partitions.build_add_request([p.id for p in emit])],
        cursor=new_cursor,
    )


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs whose process died (same host: process gone; other hosts: heartbeat older than "
    "VIDPIPE_HEARTBEAT_STALE_S) as failed and frees the video-operations slots they, or runs that "
    "already ended, still hold. Requests no runs.",
)
def heal_dead_runs(context: dg.SensorEvaluationContext, vidpipe: VidpipeResource) -> dg.SkipReason:
    settings = vidpipe.services().settings
    report = heal_instance(context.instance, settings.video_pool, settings.heartbeat_stale_s)
    for line in report.lines():
        context.log.warning(line)
    summary = (
        f"{len(report.failed_runs)} dead runs marked failed, {len(report.freed_runs)} ended runs' slots freed"
        if report
        else "no dead run"
    )
    return dg.SkipReason(summary)
