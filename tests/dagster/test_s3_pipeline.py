"""Renders with the artifacts in S3 (VIDPIPE_ARTIFACTS_URL=s3://..., moto's S3 server or the one
named by VIDPIPE_TEST_S3_ENDPOINT): every byte lands under the project's prefix, nothing but the
databases stays on local disk, reused bytes are checked in the bucket, and a render can move
from host to host between stages with nothing carried along but the databases and the bucket."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests.helpers import check_results
from tests.postgres.pg import POSTGRES_YAML
from vidpipe_core import media
from vidpipe_core.steps import STAGES
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.storage import Layout
from vidpipe_dagster.cli import app
from vidpipe_dagster.runner import failure_message, register, render

PAID = ("text", "image", "video_submit")
MEDIA = {".mp4", ".png", ".gif", ".jpg", ".webp", ".json"}
# One stage of a project in a process of its own; prints the run id.
STAGE_RUNNER = """
import sys
from vidpipe_dagster.runner import failure_message, render
result = render(sys.argv[1], assets=[sys.argv[2]])
print(result.run_id)
sys.exit(0 if result.success else failure_message(result))
"""


def _paid(emu) -> dict[str, int]:  # type: ignore[no-untyped-def]
    requests = emu.stats()["requests"]
    return {k: requests[k] for k in PAID}


def _probe_from_bucket(s3, key: str, folder: Path) -> media.MediaInfo:  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / Path(key).name
    local.write_bytes(s3.get(key))
    return media.probe(local)


def _local_files(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def test_google_render_with_artifacts_in_s3(gp, s3, tmp_path, monkeypatch, capfd):
    vp_env, g = gp
    emu = g.emulator
    monkeypatch.setenv("VIDPIPE_ARTIFACTS_URL", s3.url)
    spec = register("A lighthouse on a cliff in a storm", id="s3-kite", scenes=2, clip_duration=4)
    result = render(spec.id)
    assert result.success, failure_message(result)
    assert all(check_results(vp_env.instance(), result.run_id).values())

    prefix = f"vidpipe/projects/{spec.id}/"
    keys = s3.keys()
    assert keys and all(k.startswith(prefix) for k in keys), keys
    assert f"{prefix}{Layout.FINAL}" in keys and sum(k.startswith(f"{prefix}clips/") for k in keys) == 2
    info = _probe_from_bucket(s3, f"{prefix}{Layout.FINAL}", tmp_path / "check")
    assert info.video_codec == "h264" and info.audio_codec == "aac" and abs(info.duration_s - 8.0) <= 0.25
    # On local disk: the SQLite database (and its journal, logs), no artifact, no scratch left over.
    local = _local_files(vp_env.data_dir)
    assert not [p for p in local if p.suffix in MEDIA], local
    assert not (vp_env.data_dir / "artifacts").exists()
    assert not list((vp_env.data_dir / "tmp").iterdir()) if (vp_env.data_dir / "tmp").exists() else True
    assert vp_env.data_dir / "vidpipe.db" in local

    # A second render reuses everything (each reused file read back from the bucket and checked).
    paid = _paid(emu)
    assert render(spec.id).success
    assert _paid(emu) == paid

    # A clip truncated in the bucket: `status` finds it, `resume` fetches it again from its operation for free.
    state = resolve_state(vp_env.services(), spec.id)
    clip_key = f"{prefix}{state.clips[1].row.path}"
    s3.put(clip_key, s3.get(clip_key)[:1000])
    status = CliRunner().invoke(app, ["status", spec.id])
    assert status.exit_code == 0 and "damaged" in status.output, status.output
    resumed = CliRunner().invoke(app, ["resume", spec.id])
    assert resumed.exit_code == 0 and "damaged: the clip of scene 2" in resumed.output, resumed.output
    assert _paid(emu) == paid
    assert hashlib.sha256(s3.get(clip_key)).hexdigest() == state.clips[1].row.sha256

    # No AWS secret in any event, output or local file (the Dagster home holds the event log).
    secret = s3.server.secret.encode()
    for path in _local_files(vp_env.data_dir, vp_env.dagster_home):
        assert secret not in path.read_bytes(), f"the AWS secret leaked into {path}"
    events = "\n".join(str(e) for e in vp_env.instance().all_logs(result.run_id))
    assert s3.server.secret not in events
    out, err = capfd.readouterr()
    assert s3.server.secret not in out + err + status.output + resumed.output

    # Delete removes exactly the project's keys.
    s3.put(f"vidpipe/projects/{spec.id}0/storyboard.json", b"{}")
    s3.put(f"vidpipe/projects/{spec.id}x", b"not a project")
    deleted = CliRunner().invoke(app, ["delete", spec.id, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert s3.keys() == [f"vidpipe/projects/{spec.id}0/storyboard.json", f"vidpipe/projects/{spec.id}x"]


def test_no_hidden_local_state(pg_env, s3, tmp_path, monkeypatch):
    """The five stages one at a time, each as if on a new host: its own process with a fresh,
    empty data dir and Dagster home (the previous ones deleted), both databases on PostgreSQL,
    the artifacts in S3. Anything a stage kept on local disk or in memory is gone for the next."""
    monkeypatch.setenv("VIDPIPE_ARTIFACTS_URL", s3.url)
    project_id = f"hosts-{s3.bucket[-8:]}"
    previous: list[Path] = [pg_env.vp.data_dir, pg_env.vp.dagster_home]
    register("A paper boat on a rainy street", id=project_id, scenes=2)
    for n, stage in enumerate(STAGES):
        for folder in previous:
            shutil.rmtree(folder, ignore_errors=True)
        host = tmp_path / f"host{n}"
        data, home = host / "data", host / "dagster_home"
        home.mkdir(parents=True)
        shutil.copyfile(POSTGRES_YAML, home / "dagster.yaml")
        monkeypatch.setenv("VIDPIPE_DATA_DIR", str(data))
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        proc = subprocess.run(
            [sys.executable, "-c", STAGE_RUNNER, project_id, stage], cwd=host, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"{stage}: {proc.stderr[-3000:]}"
        run_id = proc.stdout.strip().splitlines()[-1]
        assert all(check_results(pg_env.vp.instance(), run_id).values()), stage
        previous = [data, home]

    prefix = f"vidpipe/projects/{project_id}/"
    assert all(k.startswith(prefix) for k in s3.keys())
    info = _probe_from_bucket(s3, f"{prefix}{Layout.FINAL}", tmp_path / "check")
    assert info.has_video and info.video_codec == "h264" and abs(info.duration_s - 2.0) <= 0.25
