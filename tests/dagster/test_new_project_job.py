"""The `new_project` job creates a project from the UI like `vidpipe new` does (same fields, both
built from one model: test_one_request.py; same rules, same messages, every problem at once), and
the `render_new_project` sensor asks for an ordinary `render_project` run of its partition. Real
Dagster instance, real job runs."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from vidpipe_core.projects import list_projects, load_spec
from vidpipe_dagster.cli import app
from vidpipe_dagster.create import EXISTING_TAG, PROJECT_TAG
from vidpipe_dagster.partitions import projects_partitions

PROMPT = "A lighthouse keeper feeds a seagull at dusk"


def _defs():  # type: ignore[no-untyped-def]
    from vidpipe_dagster.definitions import defs

    return defs()


def _launch(vp_env, **config):  # type: ignore[no-untyped-def]
    """Run new_project in the project's Dagster instance, as the daemon would."""
    job = _defs().resolve_job_def("new_project")
    return job.execute_in_process(
        run_config={"ops": {"register_project": {"config": config}}}, instance=vp_env.instance(), raise_on_error=False
    )


def _registered(vp_env) -> tuple[list[str], list[str]]:
    rows = [p.id for p in list_projects(vp_env.services())]
    return rows, sorted(vp_env.instance().get_dynamic_partitions(projects_partitions.name))


def _sensor_request(vp_env, result):  # type: ignore[no-untyped-def]
    """Evaluate render_new_project on the SUCCESS event of ``result``'s run."""
    instance = vp_env.instance()
    run = instance.get_run_by_id(result.run_id)
    [success] = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    sensor = _defs().resolve_sensor_def("render_new_project")
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=success.dagster_event, dagster_instance=instance, dagster_run=run
    )
    return sensor(context)


def test_the_job_registers_the_project_and_the_sensor_requests_its_render(vp_env):
    result = _launch(vp_env, prompt=PROMPT, scenes=2, clip_duration=1, provider="animatic")
    assert result.success
    project_id = "a-lighthouse-keeper-feeds"
    assert _registered(vp_env) == ([project_id], [project_id])
    spec = load_spec(vp_env.services(), project_id)
    assert (spec.scenes, spec.clip_duration, spec.providers.clips) == (2, 1, "animatic")
    run = vp_env.instance().get_run_by_id(result.run_id)
    assert (run.tags[PROJECT_TAG], run.tags[EXISTING_TAG]) == (project_id, "false")

    request = _sensor_request(vp_env, result)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == project_id
    assert request.job_name in (None, "render_project")
    assert request.run_key == f"new_project:{result.run_id}"
    sensor = _defs().resolve_sensor_def("render_new_project")
    assert [t.job_name for t in sensor.targets] == ["render_project"]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_the_same_spec_again_finds_the_project_and_force_makes_another(vp_env):
    config = {"prompt": PROMPT, "scenes": 2, "provider": "animatic"}
    first = _launch(vp_env, **config)
    again = _launch(vp_env, **config)
    assert first.success and again.success
    instance = vp_env.instance()
    assert instance.get_run_by_id(again.run_id).tags[EXISTING_TAG] == "true"
    assert len(_registered(vp_env)[0]) == 1
    forced = _launch(vp_env, **config, force=True)
    assert forced.success
    rows, partitions = _registered(vp_env)
    assert len(rows) == 2 and rows == partitions


def test_a_bad_spec_names_every_problem_and_registers_nothing(vp_env):
    """An unknown field (which a strict config would have refused alone, at launch) and a value the
    spec refuses fail the run together; no row, no partition, no folder."""
    result = _launch(vp_env, prompt=PROMPT, aspect_ratio="4:3", scene=2, scenes=40)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("3 problems: (1) scene: is not a known field; did you mean 'scenes'?")
    assert "aspect_ratio: '4:3' is not supported (allowed: 16:9, 9:16)" in message
    assert "scenes: 40 is out of range (allowed: 1-24)" in message
    assert _registered(vp_env) == ([], [])
    assert not (Path(vp_env.services().store.root) / "projects").exists()
    assert PROJECT_TAG not in vp_env.instance().get_run_by_id(result.run_id).tags
    # nothing for the sensor to do: it watches successful runs only, and this one registered nothing
    assert vp_env.instance().get_run_by_id(result.run_id).status == dg.DagsterRunStatus.FAILURE


def test_an_empty_prompt_is_the_message_of_vidpipe_new(vp_env):
    result = _launch(vp_env, prompt="   ")
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.user_failure_data.description == "prompt: is empty; describe the video you want"
    assert _registered(vp_env) == ([], [])


def test_the_definitions_load_with_the_new_jobs_and_sensor():
    """What the webserver and daemon load: job, op and sensor names must not collide."""
    defs = _defs()
    dg.Definitions.validate_loadable(defs)
    jobs = {job.name for job in defs.get_repository_def().get_all_jobs()}
    assert {"render_project", "new_project", "delete_project"} <= jobs


def test_no_render_is_requested_while_a_run_of_the_partition_is_waiting(vp_env):
    from vidpipe_dagster.definitions import render_project_job
    from vidpipe_dagster.runner import _remote_origin

    result = _launch(vp_env, prompt=PROMPT, scenes=2, provider="animatic")
    assert result.success
    project_id = vp_env.instance().get_run_by_id(result.run_id).tags[PROJECT_TAG]
    queued = vp_env.instance().create_run_for_job(
        job_def=render_project_job(),
        tags={"dagster/partition": project_id},
        status=dg.DagsterRunStatus.QUEUED,
        remote_job_origin=_remote_origin("render_project"),
    )
    skipped = _sensor_request(vp_env, result)
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == f"project {project_id} already has run {queued.run_id} (QUEUED)"


def test_vidpipe_new_and_the_job_name_the_same_problems_in_the_same_words(vp_env):
    from typer.testing import CliRunner

    cli = CliRunner().invoke(app, ["new", PROMPT, "--aspect-ratio", "4:3", "--scenes", "40", "--json"])
    assert cli.exit_code == 2
    error = json.loads(cli.stdout)["error"]
    assert error["message"] == (
        "2 problems: (1) aspect_ratio: '4:3' is not supported (allowed: 16:9, 9:16) "
        "(2) scenes: 40 is out of range (allowed: 1-24)"
    )
    result = _launch(vp_env, prompt=PROMPT, aspect_ratio="4:3", scenes=40)
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.user_failure_data.description == error["message"]
    assert _registered(vp_env) == ([], [])


def test_format_characters_fail_the_job_naming_them_and_emoji_register(vp_env):
    result = _launch(vp_env, prompt=f"{PROMPT} \u202eksud ta", style="ink\u2066wash", id="keeper\u200b")
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("3 problems: (1) prompt: contains an invisible format character (U+202E RIGHT-TO-LEFT OVERRIDE")
    assert "(2) style: contains an invisible format character (U+2066 LEFT-TO-RIGHT ISOLATE at position 4)" in message
    assert "(3) id: contains an invisible format character (U+200B ZERO WIDTH SPACE at position 7)" in message
    assert _registered(vp_env) == ([], [])

    family = "👩\u200d👩\u200d👧"
    result = _launch(vp_env, prompt=f"{PROMPT} with a family {family}", id="keeper", provider="animatic")
    assert result.success
    assert load_spec(vp_env.services(), "keeper").prompt == f"{PROMPT} with a family {family}"
