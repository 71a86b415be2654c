"""Engine, sessions and migrations. Alembic is the only thing that creates tables."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from vidpipe_core.errors import ConfigurationError, one_line, redact_url, scrub_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 7_406_011_873  # any constant shared by every vidpipe process

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def display_url(url: str) -> str:
    """The database URL fit for a message: the password hidden."""
    try:
        parsed = make_url(url)
    except Exception:
        return redact_url(url)
    if parsed.password is None and not parsed.query:
        return url
    shown = parsed.render_as_string(hide_password=True)
    return redact_url(shown) if parsed.query else shown  # libpq also takes ?password=


_BAD_PORT = re.compile(r"invalid literal for int\(\) with base 10: (?P<port>.*)$")


def database_error(url: str, exc: BaseException) -> ConfigurationError:
    """One line for a database that cannot be used: the setting, its value without the
    password, the cause, and what to change."""
    cause = scrub_url(one_line(exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc), url)
    port = _BAD_PORT.search(str(exc)) if isinstance(exc, ValueError) else None
    if port is not None:  # SQLAlchemy's parser: int(port), unexplained
        cause = scrub_url(f"its port {port['port']} is not a number", url)
    if isinstance(exc, ImportError):
        fix = "install the database driver it names (e.g. `pip install psycopg2-binary`) or use a URL whose driver is installed"
    elif isinstance(exc, (ArgumentError, ValueError)):
        fix = "use a SQLAlchemy URL such as sqlite:////abs/path/vidpipe.db or postgresql+psycopg2://user@host:5432/vidpipe"
    elif isinstance(exc, OSError):
        fix = "use a location this user can create and write (the default SQLite file lives under VIDPIPE_DATA_DIR)"
    else:
        fix = "check that the database is running and reachable with these credentials, or point the setting at one that is"
    return ConfigurationError(f"VIDPIPE_DATABASE_URL={display_url(url)} cannot be used: {cause}; {fix}")


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def engine_for(url: str) -> Engine:
    """One engine per URL; ConfigurationError naming VIDPIPE_DATABASE_URL when the URL is
    malformed (a port that is not a number included), its driver is missing or its folder cannot
    be created."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            try:
                engine = _create_engine(url)
            except (ArgumentError, ImportError, OSError, ValueError) as exc:  # ValueError: a port that is no number
                raise database_error(url, exc) from exc
            _engines[url] = engine
        return engine


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def _sqlite_migration_lock(url: str) -> Iterator[None]:
    """Two processes migrating a fresh SQLite file at once (a daemon's sensor and a CLI command on
    a new data dir) would both create the tables, and the second fail with "table projects already
    exists": the second waits for the first on a lock file next to the database."""
    path = url.split("///", 1)[-1] if url.startswith("sqlite") else ""
    if not path or path == ":memory:":
        yield
        return
    import fcntl

    try:
        fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError:  # a folder this user cannot write: the migration itself says so
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def migrate(url: str) -> None:
    """Bring the schema to the newest revision (idempotent, safe to call on every start).
    ConfigurationError naming VIDPIPE_DATABASE_URL when the database cannot be reached or written."""
    from alembic import command

    with _lock:
        if url in _migrated:
            return
    engine = engine_for(url)
    cfg = alembic_config(url)
    try:
        with _sqlite_migration_lock(url), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two processes migrating a fresh database at once: the second waits for the first.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except DBAPIError as exc:  # unreachable, refused, unknown database, read-only file, no privilege
        raise database_error(url, exc) from exc
    with _lock:
        _migrated.add(url)


class Database:
    """A migrated database at one URL, handing out sessions."""

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        self.url = url
        if auto_migrate:
            migrate(url)
        self.engine = engine_for(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise
