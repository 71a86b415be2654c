"""Both databases on PostgreSQL: vidpipe's own (VIDPIPE_DATABASE_URL) and the Dagster instance
(dagster.postgres.yaml). Each test session works in freshly created databases on the server
named by VIDPIPE_TEST_POSTGRES_URL, dropped at the end (see pg.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.postgres.pg import POSTGRES_YAML, REPO, PgEnv, PgServer
from vidpipe_core import media
from vidpipe_core.storage import Layout
from vidpipe_dagster.cli import failure_message, register, render_project

VIDPIPE = str(Path(sys.executable).parent / "vidpipe")
PROCESS_TIMEOUT_S = 180

# Imports everything first, says it is ready, then waits for the go file: the interesting part
# of two such processes starts within milliseconds of each other.
BARRIER_RUNNER = """
import pathlib, sys, time
from vidpipe_core.db import migrate
from vidpipe_dagster.cli import render_project
import vidpipe_dagster.definitions
ready, go, action = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
ready.touch()
deadline = time.monotonic() + 120
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("never got the go signal")
    time.sleep(0.005)
if action == "migrate":
    migrate(sys.argv[4])
else:
    result = render_project(sys.argv[4], show=False)
    sys.exit(0 if result.success else 1)
"""


def run_together(tmp_path: Path, jobs: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    """Start one BARRIER_RUNNER per job, release them at once, return their results in order."""
    go = tmp_path / f"go-{time.monotonic_ns()}"
    procs = []
    for i, args in enumerate(jobs):
        ready = tmp_path / f"{go.name}-ready-{i}"
        log = open(tmp_path / f"{go.name}-{i}.log", "w+")
        procs.append((ready, log, subprocess.Popen([sys.executable, "-c", BARRIER_RUNNER, str(ready), str(go), *args],
                                                   cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)))
    deadline = time.monotonic() + 120
    while not all(ready.exists() for ready, _, _ in procs):
        assert time.monotonic() < deadline, "the runners never got ready"
        for _, log, p in procs:
            if p.poll() is not None:
                log.seek(0)
                raise AssertionError(f"runner exited early ({p.returncode}):\n{log.read()[-4000:]}")
        time.sleep(0.02)
    go.touch()
    results = []
    for _, log, p in procs:
        try:
            p.wait(PROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.seek(0)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, log.read(), ""))
        log.close()
    return results


def _final_video_ok(services, project_id: str, scenes: int) -> None:  # type: ignore[no-untyped-def]
    final = services.store.path(project_id, Layout.FINAL)
    info = media.probe(final)
    assert info.has_video and (info.width, info.height) == (256, 144)
    assert abs(info.duration_s - scenes) <= 0.25
    assert media.read_frame(final, "last").size == (256, 144)


def test_postgres_yaml_matches_the_local_instance_except_storage():
    """dagster.postgres.yaml is dagster.yaml plus Postgres storage; nothing else drifts."""
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())
    pg = yaml.safe_load(POSTGRES_YAML.read_text())
    storage = pg.pop("storage")
    assert pg == local
    db = storage["postgres"]["postgres_db"]
    assert db == {
        "hostname": {"env": "VIDPIPE_PG_HOST"}, "port": {"env": "VIDPIPE_PG_PORT"},
        "username": {"env": "VIDPIPE_PG_USER"}, "password": {"env": "VIDPIPE_PG_PASSWORD"},
        "db_name": {"env": "VIDPIPE_PG_DAGSTER_DB"}}


@pytest.mark.postgres
def test_render_with_both_databases_on_postgres(pg_env: PgEnv):
    spec = register("A ferry crosses a fjord at dusk. Lights come on in the village. The ferry docks.",
                    id="pg-fjord", scenes=3, clip_duration=1, provider="animatic")
    result = render_project(spec.id, show=False)
    assert result.success, failure_message(result)

    vp = pg_env.vp
    services = vp.services()
    assert services.db.engine.dialect.name == "postgresql"
    _final_video_ok(services, spec.id, 3)

    instance = vp.instance()
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    # Nothing fell back to SQLite.
    assert not (vp.data_dir / "vidpipe.db").exists()
    assert not list(vp.dagster_home.rglob("*.db")), list(vp.dagster_home.rglob("*.db"))

    server, vdb, ddb = pg_env.server, pg_env.vidpipe_db, pg_env.dagster_db
    q = server.query
    assert q(vdb, "SELECT prompt FROM projects WHERE id = %s", (spec.id,)) == [(spec.prompt,)]
    assert q(vdb, "SELECT count(*) FROM scenes WHERE project_id = %s", (spec.id,)) == [(3,)]
    assert q(vdb, "SELECT count(*) FROM keyframes WHERE project_id = %s", (spec.id,)) == [(4,)]
    assert q(vdb, "SELECT count(*) FROM video_clips WHERE project_id = %s", (spec.id,)) == [(3,)]

    assert q(ddb, "SELECT status FROM runs WHERE run_id = %s", (result.run_id,)) == [("SUCCESS",)]
    assert q(ddb, "SELECT count(*) FROM dynamic_partitions WHERE partitions_def_name = 'projects' AND partition = %s",
             (spec.id,)) == [(1,)]
    materialized = q(ddb, "SELECT asset_key FROM event_logs WHERE run_id = %s AND partition = %s "
                          "AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY id", (result.run_id, spec.id))
    assert [r[0] for r in materialized] == ['["storyboard"]', '["keyframes"]', '["clips"]', '["final_video"]']


@pytest.mark.postgres
def test_migrate_is_idempotent_and_safe_to_race(pg_server: PgServer, tmp_path: Path):
    from alembic.script import ScriptDirectory

    from vidpipe_core.db import alembic_config

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDPIPE_")} | {"VIDPIPE_DATA_DIR": str(tmp_path)}
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()

    # `vidpipe migrate` twice on a fresh database: the second run is a no-op.
    db = pg_server.create_database("migrate")
    url = pg_server.sqlalchemy_url(db)
    for attempt in (1, 2):
        proc = subprocess.run([VIDPIPE, "migrate"], env={**env, "VIDPIPE_DATABASE_URL": url},
                              capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
        assert proc.returncode == 0, f"migrate #{attempt}: {proc.stdout}{proc.stderr}"
        assert pg_server.query(db, "SELECT version_num FROM alembic_version") == [(head,)]
    assert {"projects", "scenes", "keyframes", "video_clips"} <= set(pg_server.tables(db))
    assert not (tmp_path / "vidpipe.db").exists()
    pg_server.drop_database(db)

    # First use by two processes at the same moment (a run worker and a sensor tick on a new
    # deployment): both end with the schema, neither fails.
    for _ in range(2):
        db = pg_server.create_database("race")
        url = pg_server.sqlalchemy_url(db)
        results = run_together(tmp_path, [["migrate", url], ["migrate", url]], env)
        for r in results:
            assert r.returncode == 0, f"concurrent first-use migration failed:\n{r.stdout[-3000:]}"
        assert pg_server.query(db, "SELECT version_num FROM alembic_version") == [(head,)]
        pg_server.drop_database(db)


@pytest.mark.postgres
def test_two_projects_render_at_the_same_time(pg_env: PgEnv, tmp_path: Path):
    ids = ("pg-ants", "pg-bees")
    register("Ants carry a leaf across a log. They reach the nest.", id=ids[0], scenes=2, clip_duration=1, provider="animatic")
    register("Bees circle a sunflower. One lands on it.", id=ids[1], scenes=2, clip_duration=1, provider="animatic")

    results = run_together(tmp_path, [["render", pid] for pid in ids], dict(os.environ))
    for pid, r in zip(ids, results):
        assert r.returncode == 0, f"render {pid} failed:\n{r.stdout[-5000:]}"

    services, instance = pg_env.vp.services(), pg_env.vp.instance()
    records = []
    for pid in ids:
        _final_video_ok(services, pid, 2)
        runs = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/partition": pid}))
        assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
        records.append(runs[0])
    a, b = records
    assert a.start_time < b.end_time and b.start_time < a.end_time, "the two runs did not overlap"
