"""Both databases on PostgreSQL: vidpipe's own (VIDPIPE_DATABASE_URL) and the Dagster instance
(dagster.postgres.yaml). Each test session works in freshly created databases on the server
named by VIDPIPE_TEST_POSTGRES_URL, dropped at the end (see pg.py)."""

from __future__ import annotations

import json
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
from vidpipe_core.steps import STAGES
from vidpipe_core.storage import Layout
from vidpipe_dagster.runner import failure_message, register, render

VIDPIPE = str(Path(sys.executable).parent / "vidpipe")
PROCESS_TIMEOUT_S = 180

# Imports everything first, says it is ready, then waits for the go file: the interesting part
# of two such processes starts within milliseconds of each other.
BARRIER_RUNNER = """
import pathlib, sys, time
from vidpipe_core.db import migrate
from vidpipe_dagster.runner import render
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
    result = render(sys.argv[4])
    sys.exit(0 if result.success else 1)
"""


def run_together(tmp_path: Path, jobs: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    """Start one BARRIER_RUNNER per job, release them at once, return their results in order."""
    go = tmp_path / f"go-{time.monotonic_ns()}"
    procs = []
    for i, args in enumerate(jobs):
        ready = tmp_path / f"{go.name}-ready-{i}"
        log = open(tmp_path / f"{go.name}-{i}.log", "w+")
        procs.append(
            (
                ready,
                log,
                subprocess.Popen(
                    [sys.executable, "-c", BARRIER_RUNNER, str(ready), str(go), *args],
                    cwd=tmp_path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
            )
        )
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
        "hostname": {"env": "VIDPIPE_PG_HOST"},
        "port": {"env": "VIDPIPE_PG_PORT"},
        "username": {"env": "VIDPIPE_PG_USER"},
        "password": {"env": "VIDPIPE_PG_PASSWORD"},
        "db_name": {"env": "VIDPIPE_PG_DAGSTER_DB"},
    }


@pytest.mark.postgres
def test_render_with_both_databases_on_postgres(pg_env: PgEnv):
    spec = register(
        "A ferry crosses a fjord at dusk. Lights come on in the village. The ferry docks.",
        id="pg-fjord",
        scenes=3,
        clip_duration=1,
        provider="animatic",
    )
    result = render(spec.id)
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
    assert q(
        ddb, "SELECT count(*) FROM dynamic_partitions WHERE partitions_def_name = 'projects' AND partition = %s", (spec.id,)
    ) == [(1,)]
    materialized = q(
        ddb,
        "SELECT asset_key FROM event_logs WHERE run_id = %s AND partition = %s "
        "AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY id",
        (result.run_id, spec.id),
    )
    # Every stage once, the storyboard first and the final video last (the narration, which needs only
    # the storyboard, runs wherever the executor puts it among the picture's stages).
    order = [json.loads(r[0])[0] for r in materialized]
    assert sorted(order) == sorted(STAGES) and order[0] == STAGES[0] and order[-1] == STAGES[-1]
    assert [s for s in order if s != "narration"] == [s for s in STAGES if s != "narration"]


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
        proc = subprocess.run(
            [VIDPIPE, "migrate"],
            env={**env, "VIDPIPE_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT_S,
        )
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
    for pid, r in zip(ids, results, strict=True):
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


@pytest.mark.postgres
def test_a_nan_budget_is_one_line_and_exit_2_on_postgres(pg_env: PgEnv):
    proc = subprocess.run(
        [VIDPIPE, "new", "A cat naps in the sun.", "--id", "pg-nan-budget", "--max-cost", "nan"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: max_cost_usd: nan is not a finite number; give the budget in USD (allowed: 0 or more)"
    ]
    assert pg_env.server.query(pg_env.vidpipe_db, "SELECT count(*) FROM projects WHERE id = 'pg-nan-budget'") == [(0,)]


def _inbox_tick(instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    """One evaluation of the inbox sensor, its partition requests applied as the daemon would."""
    from vidpipe_dagster.definitions import defs
    from vidpipe_dagster.resources import VidpipeResource
    from vidpipe_dagster.sensors import inbox_sensor

    context = dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        cursor=cursor,
        definitions=defs(),
        resources={"vidpipe": VidpipeResource()},
    )
    result = inbox_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _drop(inbox: Path, name: str, content: str, age_s: float = 0.0) -> None:
    (inbox / name).write_text(content, encoding="utf-8")
    stamp = time.time() - age_s
    os.utime(inbox / name, (stamp, stamp))


@pytest.mark.postgres
def test_inbox_nul_on_postgres_is_rejected_and_later_files_still_registered(pg_env: PgEnv, monkeypatch):
    from vidpipe_core.config import get_settings

    monkeypatch.setenv("VIDPIPE_INBOX_MIN_AGE_S", "0")
    inbox = get_settings().resolved_inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    _drop(inbox, "nul.json", '{"prompt": "x \\u0000 y", "id": "pg-inbox-nul"}', age_s=60)
    _drop(inbox, "nul.yaml", 'prompt: "a \\0 heron"\nid: pg-inbox-nul-yaml\n', age_s=60)
    _drop(inbox, "good.yaml", "prompt: A heron waits in the reeds.\nid: pg-inbox-heron\n")
    instance = pg_env.vp.instance()

    first = _inbox_tick(instance)

    assert [r.partition_key for r in first.run_requests] == ["pg-inbox-heron"]
    assert (
        "prompt: contains a control character (U+0000 at position 3); remove it"
        in (inbox / "rejected" / "nul.json.error.txt").read_text()
    )
    assert "U+0000 at position 3" in (inbox / "rejected" / "nul.yaml.error.txt").read_text()
    assert pg_env.server.query(pg_env.vidpipe_db, "SELECT id FROM projects WHERE id LIKE %s ORDER BY id", ("pg-inbox-%",)) == [
        ("pg-inbox-heron",)
    ]

    _drop(inbox, "later.txt", "A heron catches a fish.")
    second = _inbox_tick(instance, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["a-heron-catches-a-fish"]


@pytest.mark.postgres
def test_a_value_postgres_refuses_rejects_that_file_only(pg_env: PgEnv, monkeypatch):
    """Validation is the first line; if a value still reaches PostgreSQL and is refused there (here:
    validation switched off, a NUL), only that file is rejected and the tick goes on."""
    from vidpipe_core import projects
    from vidpipe_core.config import get_settings
    from vidpipe_core.inbox.files import InboxSettings
    from vidpipe_core.inbox.tick import process_inbox

    monkeypatch.setenv("VIDPIPE_INBOX_MIN_AGE_S", "0")
    monkeypatch.setattr(projects, "check_text", lambda field, value: value)
    inbox = get_settings().resolved_inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    _drop(inbox, "nul.json", '{"prompt": "x \\u0000 y", "id": "pg-refused-nul"}', age_s=60)
    _drop(inbox, "good.yaml", "prompt: An egret lands on a post.\nid: pg-refused-egret\n")
    logged: list[str] = []

    tick = process_inbox(pg_env.vp.services(), InboxSettings(), log=lambda level, msg: logged.append(msg))

    assert [pid for pid, _ in tick.registered] == ["pg-refused-egret"]
    [(rejected, reason)] = tick.rejected
    assert rejected.name == "nul.json"
    assert (
        reason == "file: the database refused it (ValueError: A string literal cannot contain NUL (0x00) characters.); "
        "check its text for unusual characters"
    )
    assert any(msg.startswith("nul.json: rejected - file: the database refused it") for msg in logged)
    assert pg_env.server.query(pg_env.vidpipe_db, "SELECT id FROM projects WHERE id LIKE %s", ("pg-refused-%",)) == [
        ("pg-refused-egret",)
    ]
