"""Throwaway PostgreSQL databases for tests, on the server named by VIDPIPE_TEST_POSTGRES_URL.

Every database is created fresh (`vidpipe_test_<worker>_<purpose>_<random>`) on that server and
dropped at the end of the session, so tests never see each other's leftovers or a developer's
data, and the xdist workers of one `make test` never share a database (nor its advisory locks and
Dagster pools, which are per database). Fixtures:
`pg_server` (skips with a visible reason when the variable is unset), `pg_databases` (one
database for vidpipe, one for the Dagster instance) and `pg_env` (`vp_env` switched to both:
VIDPIPE_DATABASE_URL and dagster.postgres.yaml with its VIDPIPE_PG_* variables)."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy.engine import URL, make_url

ENV = "VIDPIPE_TEST_POSTGRES_URL"
REPO = Path(__file__).resolve().parents[2]
POSTGRES_YAML = REPO / "dagster.postgres.yaml"


class PgServer:
    """A PostgreSQL server we may create and drop databases on."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if not parsed.drivername.startswith("postgresql"):
            raise ValueError(f"{ENV} must be a postgresql URL, got {parsed.drivername!r}")
        self.url: URL = parsed.set(drivername="postgresql+psycopg2")
        self.created: list[str] = []

    def connect(self, database: str | None = None):  # type: ignore[no-untyped-def]
        u = self.url
        conn = psycopg2.connect(
            host=u.host or "localhost",
            port=u.port or 5432,
            user=u.username,
            password=u.password,
            dbname=database or u.database or "postgres",
            **{k: v for k, v in u.query.items()},
        )
        conn.autocommit = True
        return conn

    def create_database(self, purpose: str) -> str:
        # Random, so test sessions and xdist workers on one server never meet; the worker id
        # (gw0, gw1, ...) says whose a leftover of a killed run was.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"vidpipe_test_{worker}_{purpose}_{secrets.token_hex(4)}"
        conn = self.connect()  # not `with conn`: in psycopg2 that opens a transaction even in autocommit
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()
        self.created.append(name)
        return name

    def drop_database(self, name: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                # Pools of this process (vidpipe's engines, Dagster's storage) may still hold connections.
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        finally:
            conn.close()
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            self.drop_database(name)

    def sqlalchemy_url(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def dagster_env(self, database: str) -> dict[str, str]:
        """The variables dagster.postgres.yaml reads."""
        u = self.url
        return {
            "VIDPIPE_PG_HOST": u.host or "localhost",
            "VIDPIPE_PG_PORT": str(u.port or 5432),
            "VIDPIPE_PG_USER": u.username or os.environ.get("PGUSER", "postgres"),
            "VIDPIPE_PG_PASSWORD": u.password or "",
            "VIDPIPE_PG_DAGSTER_DB": database,
        }

    def query(self, database: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall()
        finally:
            conn.close()

    def reset_pools(self, database: str) -> None:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                for table in ("concurrency_limits", "concurrency_slots", "pending_steps"):
                    if table in self.tables(database):
                        cur.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
        finally:
            conn.close()

    def tables(self, database: str) -> list[str]:
        return [r[0] for r in self.query(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]

    def dump_text(self, database: str) -> dict[str, str]:
        """Every row of every table in `database`, as text (`row::text`), by table."""
        out = {}
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                for table in self.tables(database):
                    cur.execute(sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table)))
                    out[table] = "\n".join(r[0] for r in cur.fetchall())
        finally:
            conn.close()
        return out


@dataclass
class PgEnv:
    vp: Any  # the VidpipeEnv of the test
    server: PgServer
    vidpipe_db: str
    dagster_db: str

    @property
    def database_url(self) -> str:
        return self.server.sqlalchemy_url(self.vidpipe_db)


@pytest.fixture(scope="session")
def pg_server():  # type: ignore[no-untyped-def]
    url = os.environ.get(ENV)
    if not url:
        pytest.skip(f"{ENV} is not set (e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/test); PostgreSQL tests skipped")
    server = PgServer(url)
    try:
        yield server
    finally:
        server.drop_all()


@pytest.fixture(scope="session")
def pg_databases(pg_server: PgServer) -> tuple[str, str]:
    """(vidpipe database, Dagster database), fresh for this test session."""
    return pg_server.create_database("vidpipe"), pg_server.create_database("dagster")


@pytest.fixture
def pg_env(vp_env, pg_server: PgServer, pg_databases: tuple[str, str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`vp_env` with vidpipe's database and the Dagster instance on PostgreSQL. The databases
    live for the session; the concurrency pools (limits, slots, queue) are reset after each test,
    so a limit one test sets never throttles the next."""
    vidpipe_db, dagster_db = pg_databases
    env = PgEnv(vp=vp_env, server=pg_server, vidpipe_db=vidpipe_db, dagster_db=dagster_db)
    monkeypatch.setenv("VIDPIPE_DATABASE_URL", env.database_url)
    for key, value in pg_server.dagster_env(dagster_db).items():
        monkeypatch.setenv(key, value)
    vp_env.dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(POSTGRES_YAML, vp_env.dagster_home / "dagster.yaml")
    yield env
    pg_server.reset_pools(dagster_db)
