"""The project lock: one run renders a project at a time, so two runs of one partition can
never both submit a scene. The holder is recorded with its process, so a holder whose process
is gone (SIGKILL, OOM) is recognised at once on the same host, and by a stale heartbeat elsewhere
(the lock beats every ``heartbeat_interval_s`` from a thread while it is held)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, update

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import ProjectBusy, ProjectNotFound
from vidpipe_core.heartbeat import Heartbeat
from vidpipe_core.liveness import owner_pid, process_alive, process_started, this_host
from vidpipe_core.models import Project, utcnow
from vidpipe_core.retry import backoff_sleep
from vidpipe_core.services import Services


@dataclass(frozen=True)
class Holder:
    run_id: str
    pid: int
    host: str
    started: float | None = None  # the process's start time: a recycled pid is not the holder

    def encode(self) -> str:
        text = f"run={self.run_id} pid={self.pid} host={self.host}"
        return text + (f" started={self.started:.2f}" if self.started is not None else "")

    @classmethod
    def decode(cls, text: str) -> Holder | None:
        try:
            parts = dict(p.split("=", 1) for p in text.split())
            started = float(parts["started"]) if "started" in parts else None
            return cls(parts["run"], int(parts["pid"]), parts["host"], started)
        except (KeyError, ValueError):
            return None

    @classmethod
    def current(cls, run_id: str) -> Holder:
        pid = owner_pid()
        return cls(run_id, pid, this_host(), process_started(pid))

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host})"


def holder_is_gone(holder_text: str | None) -> bool:
    holder = Holder.decode(holder_text or "")
    return holder is not None and process_alive(holder.pid, holder.host, holder.started) is False


def acquire(
    services: Services,
    project_id: str,
    run_id: str,
    *,
    wait_s: float = 0.0,
    stale_after_s: float | None = None,
    cancel: CancelToken = NEVER,
) -> Holder:
    """Take the project's lock for `run_id` (re-entrant for the same run), or raise ProjectBusy
    naming the holder. A holder whose process is gone or whose heartbeat is stale is replaced.
    The waits between claims end (Interrupted) when ``cancel`` is cancelled."""
    stale_after_s = services.settings.heartbeat_stale_s if stale_after_s is None else stale_after_s
    me = Holder.current(run_id)
    deadline = time.monotonic() + wait_s
    while True:
        with services.db.session() as s:
            row = s.get(Project, project_id)
            if row is None:
                raise ProjectNotFound(project_id)
            current = row.lock_holder
            takeover = current is None or (Holder.decode(current) or me).run_id == run_id or holder_is_gone(current)
            stale_before = utcnow() - timedelta(seconds=stale_after_s)
            cond = [Project.lock_holder.is_(None), Project.lock_heartbeat < stale_before]
            if takeover and current is not None:
                cond.append(Project.lock_holder == current)
            claim = (
                update(Project)
                .where(Project.id == project_id, or_(*cond))
                .values(lock_holder=me.encode(), lock_heartbeat=utcnow())
                .execution_options(synchronize_session=False)
            )
            # An UPDATE returns a CursorResult (with rowcount); Session.execute is typed as Result.
            result = cast("CursorResult[Any]", s.execute(claim))
        if result.rowcount == 1:
            return me
        if current is None:
            continue  # another run took it between our read and our update: read who (or retry) at once
        if time.monotonic() >= deadline:
            holder = Holder.decode(current or "")
            raise ProjectBusy(project_id, holder.describe() if holder else (current or "another run"))
        backoff_sleep(min(1.0, max(0.05, deadline - time.monotonic())), cancel)


def heartbeat(services: Services, project_id: str, holder: Holder) -> None:
    with services.db.session() as s:
        s.execute(
            update(Project)
            .where(Project.id == project_id, Project.lock_holder == holder.encode())
            .values(lock_heartbeat=utcnow())
            .execution_options(synchronize_session=False)
        )


def release(services: Services, project_id: str, holder_text: str) -> None:
    with services.db.session() as s:
        s.execute(
            update(Project)
            .where(Project.id == project_id, Project.lock_holder == holder_text)
            .values(lock_holder=None, lock_heartbeat=None)
            .execution_options(synchronize_session=False)
        )


def release_if_gone(services: Services, project_id: str, *, dry_run: bool = False) -> str | None:
    """Release the project's lock when its holder's process is gone; returns the holder freed."""
    with services.db.session() as s:
        row = s.get(Project, project_id)
        holder = row.lock_holder if row else None
    if not holder or not holder_is_gone(holder):
        return None
    if not dry_run:
        release(services, project_id, holder)
    decoded = Holder.decode(holder)
    return decoded.describe() if decoded else holder


@contextmanager
def project_lock(services: Services, project_id: str, run_id: str, *, wait_s: float = 0.0) -> Iterator[Holder]:
    """Hold the lock for the block, beating its heartbeat from a thread."""
    holder = acquire(services, project_id, run_id, wait_s=wait_s)
    try:
        with Heartbeat(
            services.settings.heartbeat_interval_s,
            lambda: heartbeat(services, project_id, holder),
            name=f"vidpipe-lock-{project_id}",
        ):
            yield holder
    finally:
        release(services, project_id, holder.encode())
