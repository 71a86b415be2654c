"""`vidpipe delete` removes a project or a stray partition with everything vidpipe keeps for it, and
nothing else; a partition with no project behind it is harmless (a run of it writes nothing).
Real Dagster instance, real runs, the real command."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from vidpipe_core import locks
from vidpipe_core.models import CharacterSheetRow, Keyframe, Project, Scene, VideoClip
from vidpipe_core.steps import STAGES
from vidpipe_dagster import runner
from vidpipe_dagster.cli import app

cli = CliRunner()
PROMPT = "A red kite dances over a green hill"
ASSETS = STAGES


def _delete(*args: str):  # type: ignore[no-untyped-def]
    return cli.invoke(app, ["delete", *args])


def _rows(vp_env, project_id: str) -> dict[str, int]:
    with vp_env.services().db.session() as s:
        return {
            model.__name__: s.query(model).filter(model.project_id == project_id).count()
            for model in (Scene, CharacterSheetRow, Keyframe, VideoClip)
        } | {"Project": int(s.get(Project, project_id) is not None)}


def _materialized(instance: dg.DagsterInstance, project_id: str) -> list[str]:
    found = []
    for name in ASSETS:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[project_id]), limit=1
        ).records
        if records:
            found.append(name)
    return found


def _folder(vp_env, project_id: str) -> Path:
    return Path(vp_env.services().store.project_root(project_id))


def test_delete_removes_folder_rows_and_partition_and_keeps_dagster_history(vp_env):
    spec = runner.register(PROMPT, scenes=2, clip_duration=1, provider="animatic")
    result = runner.render(spec.id)
    assert result.success
    instance = vp_env.instance()
    assert _folder(vp_env, spec.id).is_dir() and _materialized(instance, spec.id) == list(ASSETS)
    before = _rows(vp_env, spec.id)
    assert before.pop("CharacterSheetRow") >= 1  # the animatic casts at least one character
    assert before == {"Scene": 2, "Keyframe": 3, "VideoClip": 2, "Project": 1}
    other = runner.register("A blue boat on a calm lake", scenes=1, clip_duration=1, provider="animatic")

    out = _delete(spec.id, "--yes", "--json")
    assert out.exit_code == 0, out.output
    document = json.loads(out.stdout)
    assert document == {
        "project_id": spec.id,
        "exit_code": 0,
        "deleted": {"project": True, "folder": True, "partition": True},
    }
    assert not _folder(vp_env, spec.id).exists()
    assert _rows(vp_env, spec.id) == {"Scene": 0, "CharacterSheetRow": 0, "Keyframe": 0, "VideoClip": 0, "Project": 0}
    assert not instance.has_dynamic_partition("projects", spec.id)
    # Dagster's history stays (its SQL storages cannot wipe one partition); a project created again
    # under this id has a new nonce, so status and resume ignore those materializations
    assert instance.get_run_by_id(result.run_id) is not None
    assert _materialized(instance, spec.id) == list(ASSETS)
    again_spec = runner.register(PROMPT, id=spec.id, scenes=2, clip_duration=1, provider="animatic")
    from vidpipe_dagster.resume import plan_resume

    assert plan_resume(instance, vp_env.services(), again_spec.id).assets == list(ASSETS)
    assert _delete(spec.id, "--yes").exit_code == 0
    # the other project is untouched
    assert _rows(vp_env, other.id)["Project"] == 1 and instance.has_dynamic_partition("projects", other.id)

    again = _delete(spec.id, "--yes")
    assert again.exit_code == 2 and f"project {spec.id!r} does not exist" in again.stderr


def test_delete_is_refused_while_the_project_lock_is_held_and_nothing_is_removed(vp_env):
    spec = runner.register(PROMPT, scenes=2, clip_duration=1, provider="animatic")
    services = vp_env.services()
    _folder(vp_env, spec.id).mkdir(parents=True)
    (_folder(vp_env, spec.id) / "storyboard.json").write_text("{}")
    holder = locks.acquire(services, spec.id, "run-that-renders")  # this (live) process holds it
    try:
        out = _delete(spec.id, "--yes", "--json")
        assert out.exit_code == 3, out.output
        assert json.loads(out.stdout)["error"]["error"] == "ProjectBusy"
        assert f"project {spec.id!r} is being rendered by run run-that-renders" in out.stderr
        assert _rows(vp_env, spec.id)["Project"] == 1
        assert (_folder(vp_env, spec.id) / "storyboard.json").is_file()
        assert vp_env.instance().has_dynamic_partition("projects", spec.id)
    finally:
        locks.release(services, spec.id, holder.encode())
    assert _delete(spec.id, "--yes").exit_code == 0
    assert not _folder(vp_env, spec.id).exists()


def test_delete_is_refused_while_a_run_of_the_partition_is_queued(vp_env):
    from vidpipe_dagster.definitions import render_project_job
    from vidpipe_dagster.runner import _remote_origin

    spec = runner.register(PROMPT, scenes=2, clip_duration=1, provider="animatic")
    instance = vp_env.instance()
    run = instance.create_run_for_job(
        job_def=render_project_job(),
        tags={"dagster/partition": spec.id},
        status=dg.DagsterRunStatus.QUEUED,
        remote_job_origin=_remote_origin("render_project"),
    )
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.QUEUED  # what the UI's launch makes
    out = _delete(spec.id, "--yes")
    assert out.exit_code == 3, out.output
    assert "waiting to start" in out.stderr
    assert _rows(vp_env, spec.id)["Project"] == 1


def test_a_bare_partition_is_harmless_and_delete_removes_it(vp_env):
    """A partition added with no project (the launch dialog's "Add a partition") fails its run in
    the first step with one line naming the fixes, writes nothing; `vidpipe delete` removes it."""
    from dagster._core.execution.api import execute_run

    from vidpipe_dagster.jobs import render_project_in_process

    instance = vp_env.instance()
    instance.add_dynamic_partitions("projects", ["stray"])
    run = instance.create_run_for_job(job_def=render_project_in_process(), tags={"dagster/partition": "stray"})
    result = execute_run(dg.reconstructable(render_project_in_process), run, instance, raise_on_error=False)
    assert not result.success
    [failure] = runner.failures(result)
    assert (failure.step, failure.error_class) == ("storyboard", "ConfigurationError")
    assert "\n" not in failure.message
    assert failure.message.startswith("nothing done for project 'stray': vidpipe's database (sqlite:///")
    assert '`vidpipe new "<prompt>" --id stray`' in failure.message
    assert "the `new_project` job (Jobs -> new_project -> Launchpad, `id: stray`)" in failure.message
    assert "remove it with `vidpipe delete stray`" in failure.message
    starts = [e.step_key for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)]
    assert starts == ["storyboard"]
    assert not (Path(vp_env.services().store.root) / "projects").exists()

    refused = cli.invoke(app, ["render", "stray"])  # the CLI says the same in its own words
    assert refused.exit_code == 2 and "project 'stray' does not exist" in refused.stderr

    out = _delete("stray", "--yes", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["deleted"] == {"project": False, "folder": False, "partition": True}
    assert not instance.has_dynamic_partition("projects", "stray")


@pytest.mark.parametrize("hostile", ["..", "../outside", "a/../../outside", "/etc", "Outside", "x" * 64, "a_b"])
def test_a_hostile_id_is_refused_and_nothing_outside_is_touched(vp_env, hostile):
    outside = vp_env.data_dir.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "keep.txt").write_text("mine")
    out = _delete(hostile, "--yes", "--json")
    assert out.exit_code == 2, out.output
    assert json.loads(out.stdout)["error"]["error"] == "InvalidInput"
    assert (outside / "keep.txt").read_text() == "mine"


def test_a_project_folder_that_is_a_link_is_not_followed(vp_env):
    spec = runner.register(PROMPT, scenes=2, clip_duration=1, provider="animatic")
    elsewhere = vp_env.data_dir.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    folder = _folder(vp_env, spec.id)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(elsewhere)
    out = _delete(spec.id, "--yes")
    assert out.exit_code == 2, out.output
    assert "is a symbolic link" in out.stderr
    assert (elsewhere / "keep.txt").read_text() == "mine"
    assert _rows(vp_env, spec.id)["Project"] == 1


def test_without_yes_and_without_a_terminal_nothing_is_deleted(vp_env):
    spec = runner.register(PROMPT, scenes=2, clip_duration=1, provider="animatic")
    out = _delete(spec.id)
    assert out.exit_code == 2
    assert "needs confirmation and stdin is not a terminal; pass --yes" in out.stderr
    assert _rows(vp_env, spec.id)["Project"] == 1


def test_the_delete_project_job_needs_confirm_then_deletes(vp_env):
    from vidpipe_dagster.definitions import defs

    spec = runner.register(PROMPT, scenes=2, clip_duration=1, provider="animatic")
    job = defs().resolve_job_def("delete_project")

    def launch(**config):  # type: ignore[no-untyped-def]
        return job.execute_in_process(
            run_config={"ops": {"remove_project": {"config": config}}}, instance=vp_env.instance(), raise_on_error=False
        )

    unconfirmed = launch(project_id=spec.id)
    assert not unconfirmed.success
    [failure] = [e for e in unconfirmed.all_events if e.is_step_failure]
    assert "confirm: is false; set it to true" in failure.step_failure_data.user_failure_data.description
    assert _rows(vp_env, spec.id)["Project"] == 1
    assert launch(project_id=spec.id, confirm=True).success
    assert _rows(vp_env, spec.id)["Project"] == 0
    assert not vp_env.instance().has_dynamic_partition("projects", spec.id)
