"""Projects made from the inbox, read from the database (the truth, not a tick's memory).

A registered project's ``source`` is ``inbox:accepted/<project-id>--<name>;sha256=<digest>``. The
digest is of the parsed request (``ProjectRequest.digest``), so re-dropping identical content finds
the project it made instead of making a second one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from vidpipe_core.inbox.folders import ACCEPTED
from vidpipe_core.models import Project, utc
from vidpipe_core.services import Services

SOURCE_PREFIX = "inbox:"
DIGEST_MARK = ";sha256="


def project_source(accepted_name: str, digest: str) -> str:
    return f"{SOURCE_PREFIX}{ACCEPTED}/{accepted_name}{DIGEST_MARK}{digest}"


def source_digest(source: str) -> str | None:
    if not source.startswith(SOURCE_PREFIX) or DIGEST_MARK not in source:
        return None
    return source.rsplit(DIGEST_MARK, 1)[1]


def source_file(source: str) -> str:
    """The accepted file's path relative to the inbox, from a project's source."""
    return source.removeprefix(SOURCE_PREFIX).rsplit(DIGEST_MARK, 1)[0]


@dataclass(frozen=True)
class InboxProject:
    id: str
    source: str
    created_at: datetime  # aware UTC


def registered_digests(services: Services) -> dict[str, str]:
    """Request digest -> project id, for every project made from the inbox."""
    with services.db.session() as s:
        rows = s.execute(select(Project.id, Project.source).where(Project.source.like(f"{SOURCE_PREFIX}%"))).all()
    return {d: pid for pid, src in rows if (d := source_digest(src))}


def inbox_projects(
    services: Services, *, since: datetime | None = None, ids: list[str] | None = None, limit: int | None = None
) -> list[InboxProject]:
    """Projects made from the inbox, oldest first: created at or after `since`, or among `ids`."""
    q = select(Project.id, Project.source, Project.created_at).where(Project.source.like(f"{SOURCE_PREFIX}%"))
    if ids is not None:
        q = q.where(Project.id.in_(ids))
    if since is not None:
        q = q.where(Project.created_at >= since)
    q = q.order_by(Project.created_at, Project.id)
    if limit is not None:
        q = q.limit(limit)
    with services.db.session() as s:
        return [InboxProject(pid, src, utc(created)) for pid, src, created in s.execute(q).all()]
