"""One look at the inbox (what the sensor's tick runs): every ready file is registered, recognised
as an earlier request, or rejected, exactly once. The project row is written before the file is
moved; a crash in between is finished by the next look (the digest finds the row, the file is
moved). A file that cannot be moved is left and named once; a database that cannot be reached
leaves every file for the next look, refusing none."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from vidpipe_core.config import Settings
from vidpipe_core.errors import InvalidInput
from vidpipe_core.inbox.files import InboxSettings, display_name
from vidpipe_core.inbox.folders import (
    ACCEPTED,
    ERROR_SUFFIX,
    REJECTED,
    InboxDirs,
    accept_file,
    free_path,
    list_inbox,
    move,
    open_inbox,
    reject_file,
)
from vidpipe_core.inbox.parse import InboxEntry, parse_inbox_file
from vidpipe_core.inbox.queries import project_source, registered_digests
from vidpipe_core.projects import claim_id, create_project, project_exists
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.services import Services


def register_entry(services: Services, entry: InboxEntry, dirs: InboxDirs) -> tuple[ProjectSpec, Path]:
    """Write the project row (source names the accepted path), then move the file there."""
    generated = entry.request.id is None
    if not generated and project_exists(services, entry.spec.id):
        raise InvalidInput(
            "id",
            f"{entry.spec.id!r} is already taken by another project; choose another id "
            "or remove the id field to have one generated",
        )
    spec = claim_id(services, entry.spec, generated=generated)
    target = free_path(dirs.path / ACCEPTED, f"{spec.id}--{entry.name}", dirs.accepted)
    spec = create_project(services, spec, project_source(target.name, entry.digest))
    move(entry.path, dirs, dirs.accepted, target)
    return spec, target


# One look at the folder -------------------------------------------------------------------------

Log = Callable[[str, str], None]  # (level, message)


def _parse_guarded(path: Path, settings: Settings, limits: InboxSettings, log: Log, dir_fd: int) -> InboxEntry:
    """parse_inbox_file, with any unexpected failure turned into a rejection: parsing has no side
    effects, and a file that fails the same way on every tick must not block the inbox."""
    try:
        return parse_inbox_file(path, settings, limits, dir_fd=dir_fd)
    except (InvalidInput, OSError):
        raise
    except Exception as exc:
        text = display_name(str(exc)[:200])
        log("error", f"{display_name(path.name)}: unexpected {type(exc).__name__} while parsing: {text}")
        raise InvalidInput("file", f"could not be parsed ({type(exc).__name__}: {text})") from None


class DatabaseUnavailable(Exception):
    """The database cannot be reached at all: every file would fail the same way, so none is refused."""


def _db_reason(exc: BaseException) -> str:
    """The driver's first line, short: never the statement and its parameters."""
    cause = getattr(exc, "orig", None) or exc
    text = next(iter(str(cause).strip().splitlines()), "")[:200]
    return display_name(f"{type(cause).__name__}: {text}" if text else type(cause).__name__)


def _is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)) or bool(
        getattr(exc, "connection_invalidated", False)
    )


def _register_guarded(services: Services, entry: InboxEntry, dirs: InboxDirs) -> tuple[ProjectSpec, Path]:
    """register_entry, with the database's refusal of this one file (a value it cannot store) turned
    into the file's rejection: the same file would fail on every tick and hold up the ones behind it."""
    try:
        return register_entry(services, entry, dirs)
    except (SQLAlchemyError, ValueError) as exc:
        if _is_unavailable(exc):
            raise DatabaseUnavailable(_db_reason(exc)) from exc
        raise InvalidInput(
            "file", f"the database refused it ({_db_reason(exc)}); check its text for unusual characters"
        ) from None


@dataclass
class InboxTick:
    registered: list[tuple[str, Path]] = field(default_factory=list)  # (project id, accepted file)
    duplicates: list[tuple[str, Path]] = field(default_factory=list)  # identical to an existing project
    rejected: list[tuple[Path, str]] = field(default_factory=list)  # (rejected file, reason)
    stuck: dict[str, str] = field(default_factory=dict)  # file key -> why it could not be moved
    waiting: int = 0  # still being written
    deferred: int = 0  # over the per-tick cap
    unavailable: int = 0  # left: the database could not be reached
    present: set[str] = field(default_factory=set)  # keys of files still in the inbox


def _evaluate(
    services: Services, path: Path, dirs: InboxDirs, limits: InboxSettings, known: dict[str, str], tick: InboxTick, log: Log
) -> None:
    """Register, recognise or reject one file, and record which in ``tick``."""
    shown = display_name(path.name)
    try:
        entry = _parse_guarded(path, services.settings, limits, log, dirs.inbox)
        existing = known.get(entry.digest)
        if existing is not None:
            target = accept_file(path, dirs, existing)
            tick.duplicates.append((existing, target))
            log(
                "info",
                f"{shown}: same request as project {existing!r}; no new project "
                f"(moved to {ACCEPTED}/{display_name(target.name)})",
            )
            return
        spec, target = _register_guarded(services, entry, dirs)
    except InvalidInput as exc:
        target = reject_file(path, dirs, str(exc))
        tick.rejected.append((target, str(exc)))
        log(
            "warning",
            f"{shown}: rejected - {exc} (moved to {REJECTED}/{display_name(target.name)}, "
            f"reason in {display_name(target.name)}{ERROR_SUFFIX})",
        )
        return
    known[entry.digest] = spec.id
    tick.registered.append((spec.id, target))
    log("info", f"{shown}: registered project {spec.id!r} (moved to {ACCEPTED}/{display_name(target.name)})")


def process_inbox(
    services: Services,
    limits: InboxSettings | None = None,
    *,
    skip: Iterable[str] = (),
    now: float | None = None,
    log: Log | None = None,
) -> InboxTick:
    """Evaluate up to ``inbox_max_files_per_tick`` ready files: register, recognise or reject each once.

    ``skip`` holds keys (see ``file_key``) of files that could not be moved earlier; they are not
    evaluated again until they change. A linked inbox, accepted/ or rejected/ folder raises
    ConfigurationError before anything is read or moved."""
    limits = limits or InboxSettings()
    log = log or (lambda level, msg: None)
    skip = set(skip)
    with open_inbox(services.settings) as dirs:
        listing = list_inbox(dirs, limits, now)
        tick = InboxTick(waiting=listing.waiting)
        keys = listing.ready
        tick.present = {k for k in keys.values() if k in skip}
        todo = [p for p, k in keys.items() if k not in skip]
        tick.deferred = max(0, len(todo) - limits.inbox_max_files_per_tick)
        batch = todo[: limits.inbox_max_files_per_tick]
        known = registered_digests(services) if batch else {}  # request digest -> project id
        for index, path in enumerate(batch):
            try:
                _evaluate(services, path, dirs, limits, known, tick, log)
            except DatabaseUnavailable as exc:  # not the file's fault: leave it and the rest for the next tick
                tick.unavailable = len(batch) - index
                log(
                    "error",
                    f"the database is unavailable ({exc}); {tick.unavailable} file(s) stay in the inbox for the next tick",
                )
                break
            except FileNotFoundError:  # taken away while we looked: nothing to do
                continue
            except OSError as exc:  # cannot read or move it: leave it, say so once, look again when it changes
                key = keys[path]
                tick.stuck[key] = str(exc)
                tick.present.add(key)
                log(
                    "error",
                    f"{display_name(path.name)}: could not be processed ({display_name(str(exc))}); it stays "
                    "in the inbox and is not evaluated again until it changes",
                )
    return tick
