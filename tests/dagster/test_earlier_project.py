"""Nothing but a project's own artifacts is ever reported. An id registered again (after vidpipe's
database was lost or moved away, or after `vidpipe delete`) is a new project: `list`, `list --json`,
`status --json` and the Dagster UI's summary show no final video until this project renders one,
and the files the earlier project left are moved aside, never deleted, and named."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from tests.helpers import VIDPIPE, latest_metadata
from vidpipe_core import media
from vidpipe_core.storage import Layout
from vidpipe_dagster.cli import app
from vidpipe_dagster.runner import failure_message, register, render

PROMPT = "A red kite over green hills"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _lose_the_database(data_dir: Path, away: Path) -> None:
    """What a user does: move vidpipe.db (and its journal) away; the Dagster home and the artifacts stay."""
    away.mkdir()
    for name in ("vidpipe.db", "vidpipe.db-wal", "vidpipe.db-shm"):
        if (data_dir / name).exists():
            (data_dir / name).rename(away / name)


def _rendered_by_another_process(project_id: str, scenes: int) -> None:
    """Register and render in a `vidpipe` process of its own, so this one never opens the database
    that is then moved away."""
    env = dict(os.environ)
    for args in (("new", PROMPT, "--id", project_id, "--scenes", str(scenes)), ("render", project_id)):
        done = subprocess.run([VIDPIPE, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr


def _shows_no_final_video(vp_env, project_id: str) -> None:  # type: ignore[no-untyped-def]
    piped = _cli("list").splitlines()  # not a terminal: the tab-separated lines of docs/cli.md
    assert [line.split("\t")[0] for line in piped] == [project_id]
    assert piped[0].split("\t")[4] == "-"
    assert [p["final_video"] for p in json.loads(_cli("list", "--json"))] == [None]
    status = json.loads(_cli("status", project_id, "--json"))
    assert "final_video" not in status["paths"] and "storyboard" not in status["paths"]
    assert "contact_sheet" not in status["paths"]
    assert status["next"][0].startswith(f"never rendered: `vidpipe render {project_id}`")
    # The Dagster UI: the partition's latest final_video materialization says there is none yet.
    ui = latest_metadata(vp_env.instance(), "final_video", project_id)
    assert "path" not in ui and "sha256" not in ui
    assert "No final video yet" in ui["summary"]


def test_a_lost_database_never_shows_the_earlier_video(vp_env, tmp_path):
    _rendered_by_another_process("lost", scenes=1)
    artifacts = vp_env.data_dir / "artifacts"
    old = artifacts / "projects/lost/final.mp4"
    old_sha = _sha(old.read_bytes())
    _lose_the_database(vp_env.data_dir, tmp_path / "away")

    again = CliRunner().invoke(app, ["new", PROMPT, "--id", "lost", "--scenes", "2", "--json"])
    assert again.exit_code == 0, again.output
    _shows_no_final_video(vp_env, "lost")

    moved = json.loads(again.stdout)["earlier_files"]
    assert moved and Path(moved).parent == artifacts / "superseded/lost"
    assert f"they were moved to {moved} (nothing was deleted)" in again.stderr
    # Moved aside, whole and unchanged: nothing of it is left where the new project writes.
    assert _sha((Path(moved) / "final.mp4").read_bytes()) == old_sha
    assert {p.name for p in Path(moved).iterdir()} >= {"final.mp4", "storyboard.json", "clips", "keyframes"}
    assert not (artifacts / "projects/lost").exists()
    status = json.loads(_cli("status", "lost", "--json"))
    assert status["earlier_files"] == moved
    assert moved in _cli("status", "lost")
    assert moved in latest_metadata(vp_env.instance(), "final_video", "lost")["summary"]

    result = render("lost")
    assert result.success, failure_message(result)
    listed = _cli("list").splitlines()[0].split("\t")[4]
    assert listed == str(artifacts / "projects/lost/final.mp4")
    assert abs(media.probe(listed).duration_s - 2.0) <= 0.25  # this project's two scenes, not the earlier one
    assert json.loads(_cli("status", "lost", "--json"))["paths"]["final_video"] == listed
    assert latest_metadata(vp_env.instance(), "final_video", "lost")["path"] == listed
    assert _sha((Path(moved) / "final.mp4").read_bytes()) == old_sha  # still kept


def test_a_deleted_project_registered_again_shows_no_earlier_video(vp_env):
    spec = register(PROMPT, id="again", scenes=1)
    assert render(spec.id).success
    assert "deleted" in CliRunner().invoke(app, ["delete", spec.id, "--yes"]).output
    register(PROMPT, id="again", scenes=1)
    _shows_no_final_video(vp_env, "again")
    assert json.loads(_cli("status", "again", "--json"))["earlier_files"] is None  # delete removed them
    assert render("again").success
    assert json.loads(_cli("list", "--json"))[0]["final_video"] == vp_env.services().store.uri("again", Layout.FINAL)


def test_a_changed_final_video_is_not_reported(vp_env):
    spec = register(PROMPT, id="changed", scenes=1)
    assert render(spec.id).success
    final = Path(vp_env.services().store.path(spec.id, Layout.FINAL))
    final.write_bytes(final.read_bytes() + b"\0")  # not the file the materialization recorded
    assert json.loads(_cli("list", "--json"))[0]["final_video"] is None
    assert "final_video" not in json.loads(_cli("status", spec.id, "--json"))["paths"]


def test_on_s3_an_earlier_projects_keys_are_moved_aside(vp_env, s3, monkeypatch, tmp_path):
    monkeypatch.setenv("VIDPIPE_ARTIFACTS_URL", s3.url)
    _rendered_by_another_process("lost-s3", scenes=1)
    before = {k: _sha(s3.get(k)) for k in s3.keys()}
    prefix = "vidpipe/projects/lost-s3/"
    assert f"{prefix}{Layout.FINAL}" in before
    _lose_the_database(vp_env.data_dir, tmp_path / "away")

    register(PROMPT, id="lost-s3", scenes=1)
    _shows_no_final_video(vp_env, "lost-s3")
    moved = json.loads(_cli("status", "lost-s3", "--json"))["earlier_files"]
    assert moved.startswith(f"s3://{s3.bucket}/vidpipe/superseded/lost-s3/")
    place = moved.removeprefix(f"s3://{s3.bucket}/") + "/"
    after = {k: _sha(s3.get(k)) for k in s3.keys()}
    assert not [k for k in after if k.startswith(prefix)]  # nothing left under the project's prefix
    assert {k.replace(place, prefix): v for k, v in after.items()} == before  # every key, byte for byte

    assert render("lost-s3").success
    assert json.loads(_cli("list", "--json"))[0]["final_video"] == f"s3://{s3.bucket}/{prefix}{Layout.FINAL}"
    assert {k: v for k, v in ((k, _sha(s3.get(k))) for k in s3.keys()) if k.startswith(place)} == {
        k: v for k, v in after.items() if k.startswith(place)
    }


def test_earlier_files_that_cannot_be_moved_aside_refuse_the_registration(vp_env):
    artifacts = vp_env.data_dir / "artifacts"
    left = artifacts / "projects/blocked/final.mp4"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"an earlier project's video")
    (artifacts / "superseded").write_text("a file where the folder for earlier projects would go")

    result = CliRunner().invoke(app, ["new", PROMPT, "--id", "blocked"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and str(left.parent) in result.stderr and "move them elsewhere" in result.stderr
    assert left.read_bytes() == b"an earlier project's video"  # left where it was
    assert json.loads(_cli("list", "--json")) == []  # no project, and the id is still free
    assert not vp_env.instance().has_dynamic_partition("projects", "blocked")


def test_an_inbox_file_that_registers_an_id_again_gets_a_clean_project(vp_env, monkeypatch):
    import dagster as dg

    from vidpipe_core.config import get_settings
    from vidpipe_core.models import CharacterSheetRow, Keyframe, Project, Scene, VideoClip
    from vidpipe_dagster.definitions import defs
    from vidpipe_dagster.resources import VidpipeResource
    from vidpipe_dagster.sensors import inbox_sensor

    spec = register(PROMPT, id="inbox-again", scenes=1)
    assert render(spec.id).success
    old_sha = _sha(Path(vp_env.services().store.path(spec.id, Layout.FINAL)).read_bytes())
    with vp_env.services().db.session() as s:  # the ledger loses the project; its files and Dagster's records stay
        for model in (VideoClip, Keyframe, CharacterSheetRow, Scene, Project):
            s.query(model).filter((model.id if model is Project else model.project_id) == spec.id).delete()

    monkeypatch.setenv("VIDPIPE_INBOX_MIN_AGE_S", "0")
    inbox = get_settings().resolved_inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "again.yaml").write_text(f"prompt: {PROMPT}\nid: inbox-again\nscenes: 1\n")
    instance = vp_env.instance()
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), definitions=defs(), resources={"vidpipe": VidpipeResource()}
    )
    result = inbox_sensor(context)
    assert [r.partition_key for r in result.run_requests or []] == ["inbox-again"]

    _shows_no_final_video(vp_env, "inbox-again")
    moved = json.loads(_cli("status", "inbox-again", "--json"))["earlier_files"]
    assert _sha((Path(moved) / "final.mp4").read_bytes()) == old_sha
    assert moved in latest_metadata(instance, "final_video", "inbox-again")["summary"]
