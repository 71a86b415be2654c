"""Secrets never reach storage or logs: with a sentinel Google API key in the environment (and
Vertex AI mode switched on) a project rendered with the offline provider leaves no trace of the
key in the Dagster instance (every file under DAGSTER_HOME: SQLite databases, compute logs), in
vidpipe's database and artifacts, or in anything printed. On PostgreSQL too, when configured.
(The google provider's own leak test against the emulator is in tests/core/test_google_provider.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.postgres.pg import PgEnv, pg_databases, pg_env, pg_server  # noqa: F401  (fixtures)
from vidpipe_core.storage import Layout
from vidpipe_dagster.cli.progress import _render
from vidpipe_dagster.runner import register

DAGSTER = str(Path(sys.executable).parent / "dagster")
REAL_KEY_SHAPE = re.compile(r"AIza[0-9A-Za-z_-]{30,}")
SECRET_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")


@pytest.fixture
def sentinel(monkeypatch: pytest.MonkeyPatch) -> str:
    """A unique, obviously fake key in the SDK's variables, Vertex AI mode on."""
    value = f"vidpipe-sentinel-{uuid.uuid4()}"
    assert not REAL_KEY_SHAPE.search(value)
    for var in SECRET_VARS:
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("VIDPIPE_PROVIDER", "animatic")  # chosen explicitly: no network
    return value


def render_two_ways(prefix: str) -> dict[str, bytes]:
    """One project in-process (the CLI's path, progress printed) and one through `dagster job
    execute` (a run worker with compute-log capture). Returns the subprocess's output."""
    inproc, cli = f"{prefix}-inproc", f"{prefix}-cli"
    for pid in (inproc, cli):
        spec = register(
            f"A locksmith opens an old safe. Inside is a map. ({pid})", id=pid, scenes=2, clip_duration=1, provider="animatic"
        )
        assert spec.providers.storyboard == spec.providers.keyframes == spec.providers.clips == "animatic"
    result = _render(inproc)
    assert result.success
    proc = subprocess.run(
        [
            DAGSTER,
            "job",
            "execute",
            "-m",
            "vidpipe_dagster.definitions",
            "-j",
            "render_project",
            "--tags",
            json.dumps({"dagster/partition": cli}),
        ],
        env=dict(os.environ),
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:].decode("utf-8", "replace")
    return {"`dagster job execute` stdout": proc.stdout, "`dagster job execute` stderr": proc.stderr}


def files_under(*roots: Path) -> dict[str, bytes]:
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                out[str(path)] = path.read_bytes()
    return out


def assert_absent(secret: str, blobs: dict[str, bytes]) -> None:
    needle = secret.encode()
    leaks = [name for name, data in blobs.items() if needle in data]
    assert not leaks, f"the secret appears in: {leaks}"


def test_sentinel_key_is_nowhere_in_instance_db_artifacts_or_logs(vp_env, sentinel, capfd, caplog):
    outputs = render_two_ways("secret")
    captured = capfd.readouterr()
    outputs |= {
        "captured stdout": captured.out.encode(),
        "captured stderr": captured.err.encode(),
        "log records": caplog.text.encode(),
    }

    files = files_under(vp_env.dagster_home, vp_env.data_dir)
    # The scan sees the real thing: databases, compute logs and artifacts, with the project's data in them.
    services = vp_env.services()
    vidpipe_db = str(vp_env.data_dir / "vidpipe.db")
    assert any(name.startswith(vidpipe_db) and b"A locksmith opens an old safe" in data for name, data in files.items())
    assert any(
        name.endswith(".db") and name.startswith(str(vp_env.dagster_home)) and b"secret-cli" in data
        for name, data in files.items()
    ), "no Dagster SQLite database mentions the project"
    compute_logs = [n for n in files if n.endswith((".out", ".err")) and n.startswith(str(vp_env.dagster_home))]
    assert compute_logs, "no compute logs were captured under DAGSTER_HOME"
    assert any(b"secret-cli" in files[n] or b"[clips]" in files[n] for n in compute_logs)
    for pid in ("secret-inproc", "secret-cli"):
        assert str(services.store.path(pid, Layout.FINAL)) in files
    assert b"final video written" in outputs["captured stdout"] + outputs["captured stderr"]  # progress was printed

    assert_absent(sentinel, files)
    assert_absent(sentinel, outputs)


@pytest.mark.postgres
def test_sentinel_key_is_nowhere_in_postgres(pg_env: PgEnv, sentinel, capfd):  # noqa: F811  (the fixture)
    outputs = render_two_ways("pg-secret")
    captured = capfd.readouterr()
    outputs |= {"captured stdout": captured.out.encode(), "captured stderr": captured.err.encode()}

    tables = {
        f"{db}.{table}": text.encode()
        for db in (pg_env.dagster_db, pg_env.vidpipe_db)
        for table, text in pg_env.server.dump_text(db).items()
    }
    assert b"pg-secret-cli" in tables[f"{pg_env.dagster_db}.event_logs"]
    assert b"pg-secret-cli" in tables[f"{pg_env.dagster_db}.runs"]
    assert b"A locksmith opens an old safe" in tables[f"{pg_env.vidpipe_db}.projects"]

    assert_absent(sentinel, tables)
    assert_absent(sentinel, files_under(pg_env.vp.dagster_home, pg_env.vp.data_dir))
    assert_absent(sentinel, outputs)
