"""The review gate (issue 23): a project under review renders to its keyframes and stops before Veo
is paid, with a successful run; `approve` pays for exactly the clips it covers; an edit after the
approval waits for a new one; every way of starting a run (the CLI, `dagster job execute`, a UI
"Materialize all") goes through the same guard; `render --until STAGE`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import dagster as dg
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from vidpipe_core.models import ApprovalRow
from vidpipe_core.steps import CLIPS, FINAL_VIDEO, KEYFRAMES, STAGES
from vidpipe_dagster.cli import app
from vidpipe_dagster.review import APPROVED, APPROVED_BY_TAG, AWAITING, FROM_UI_TAG, RENDER_RUN_TAG, REVIEW_TAG

VEO_PER_SECOND = 0.40
SCENES, CLIP_S = 3, 4


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _json(result: Any) -> dict[str, Any]:
    return json.loads(result.stdout)


def _submissions(emu) -> int:  # type: ignore[no-untyped-def]
    return int(emu.stats()["requests"].get("video_submit", 0))


def _materialized(instance: dg.DagsterInstance, asset: str, partition: str) -> bool:
    return bool(instance.get_materialized_partitions(dg.AssetKey(asset)) & {partition})


def _decoded_seconds(path: Path) -> tuple[float, int]:
    """The video's duration and the number of its frames that decode."""
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(video=0))
        assert container.duration is not None
        return container.duration / 1e6, frames


@pytest.fixture
def reviewed(gp, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The google provider against the emulator with the default review setting (auto: keyframes,
    since Veo costs money)."""
    monkeypatch.delenv("VIDPIPE_REVIEW", raising=False)
    return gp


def test_review_stops_before_veo_then_approve_pays_once_and_an_edit_waits_again(reviewed):
    vp_env, g = reviewed
    emu = g.emulator
    new = _cli(
        "new", "A red kite over green hills at noon", "--id", "kite-review", "--scenes", str(SCENES), "--clip-duration", "4"
    )
    assert new.exit_code == 0, new.output
    pid = new.stdout.strip()

    # 1. The render makes the storyboard, sheets and keyframes, and stops before Veo: a successful run.
    first = _cli("render", pid, "--json")
    assert first.exit_code == 0, first.output
    document = _json(first)
    assert document["status"] == "awaiting_approval" and document["video"] is None
    assert _submissions(emu) == 0
    instance = vp_env.instance()
    run = instance.get_run_by_id(document["run_id"])
    assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags[REVIEW_TAG] == AWAITING
    assert _materialized(instance, KEYFRAMES, pid)
    assert not _materialized(instance, CLIPS, pid) and not _materialized(instance, FINAL_VIDEO, pid)
    cost = SCENES * CLIP_S * VEO_PER_SECOND
    assert f"awaiting approval: the clips would cost ${cost:.2f} ({SCENES} scenes); approve with `vidpipe approve {pid}`" in (
        first.stderr
    )

    status = _cli("status", pid, "--json")
    assert status.exit_code == 0, status.output
    review = _json(status)["review"]
    assert review["review"] == "keyframes" and review["awaiting_approval"] is True
    assert review["scenes"] == [1, 2, 3] and review["projected_cost_usd"] == pytest.approx(cost)
    assert _json(status)["next"][0] == review["message"]

    # 2. Approve: exactly N Veo submissions and a video that decodes whole.
    approved = _cli("approve", pid, "--json")
    assert approved.exit_code == 0, approved.output
    assert _submissions(emu) == SCENES
    document = _json(approved)
    assert document["status"] == "success" and document["approval"]["scenes"] == [1, 2, 3]
    seconds, frames = _decoded_seconds(Path(document["video"]))
    assert abs(seconds - SCENES * CLIP_S) <= 0.25 and frames > SCENES * CLIP_S * 10
    services = vp_env.services()
    with services.db.session() as s:
        [row] = s.scalars(select(ApprovalRow).where(ApprovalRow.project_id == pid)).all()
        assert (row.kind, row.source, [e["scene"] for e in row.scenes]) == ("approve", "cli", [1, 2, 3])
        assert row.estimate_usd == pytest.approx(cost) and row.storyboard_fingerprint
        assert all(e["start_frame"] and e["end_frame"] and e["clip"] for e in row.scenes)

    # 3. A second approve of the unchanged project pays nothing, and says so.
    again = _cli("approve", pid, "--json")
    assert again.exit_code == 0, again.output
    assert _json(again)["approval"]["recorded"] is False and "nothing to approve" in again.stderr
    assert _submissions(emu) == SCENES

    # 4. An end-frame edit of scene 2 changes frames 3 and 4 (continuity), so the clips of scenes 2
    # and 3: a render stops before them; scene 1 stays covered and reused.
    edit = _cli("edit", pid, "--scene", "2", "--end-frame", "The kite dives towards a blue lake")
    assert edit.exit_code == 0, edit.output
    held = _cli("render", pid, "--json")
    assert held.exit_code == 0, held.output
    assert _json(held)["status"] == "awaiting_approval" and _submissions(emu) == SCENES
    assert "the clips of scenes 2, 3 (changed since the last approval)" in held.stderr
    assert _json(_cli("status", pid, "--json"))["review"]["scenes"] == [2, 3]

    # ... and the new approval pays only for those two.
    second = _cli("approve", pid, "--json")
    assert second.exit_code == 0, second.output
    assert _json(second)["approval"]["scenes"] == [2, 3]
    assert _submissions(emu) == SCENES + 2
    seconds, _frames = _decoded_seconds(Path(_json(second)["video"]))
    assert abs(seconds - SCENES * CLIP_S) <= 0.25


def test_materialize_all_of_clips_and_final_video_under_review_spends_nothing(reviewed):
    """What the UI's "Materialize all" launches: the global asset job, here of clips and final_video."""
    from vidpipe_dagster.definitions import build_defs
    from vidpipe_dagster.resources import VidpipeResource
    from vidpipe_dagster.runner import register, render

    vp_env, g = reviewed
    spec = register("A paper boat in the rain", id="boat-review", scenes=2, clip_duration=4)
    assert spec.review == "keyframes"
    assert render(spec.id, assets=list(STAGES[:3])).success  # storyboard, characters, keyframes
    instance = vp_env.instance()
    job = build_defs(VidpipeResource()).resolve_implicit_global_asset_job_def()
    assert job.name == "__ASSET_JOB"
    result = job.execute_in_process(
        instance=instance,
        partition_key=spec.id,
        asset_selection=[dg.AssetKey(CLIPS), dg.AssetKey(FINAL_VIDEO)],
        tags={FROM_UI_TAG: "true"},
        raise_on_error=False,
    )
    assert result.success
    assert _submissions(g.emulator) == 0
    assert not _materialized(instance, CLIPS, spec.id) and not _materialized(instance, FINAL_VIDEO, spec.id)
    skipped = [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SKIPPED]
    assert skipped == [FINAL_VIDEO]
    [observation] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION]
    assert "awaiting approval: the clips would cost $3.20 (2 scenes)" in str(
        observation.asset_observation_data.asset_observation.metadata["review"].value
    )


def test_approve_project_job_records_the_source_and_its_sensor_starts_the_render(reviewed):
    from dagster._core.execution.api import execute_run

    from vidpipe_dagster.approve import approve_project, render_approved_project
    from vidpipe_dagster.jobs import render_project_in_process
    from vidpipe_dagster.resources import VidpipeResource
    from vidpipe_dagster.runner import register, render

    vp_env, g = reviewed
    spec = register("A lighthouse at dusk", id="light-review", scenes=2, clip_duration=4)
    assert render(spec.id).success and _submissions(g.emulator) == 0
    instance = vp_env.instance()
    resources = {"vidpipe": VidpipeResource()}

    # The Launchpad's default config is a valid, filled example: it runs, and names the missing project.
    example = approve_project.execute_in_process(instance=instance, resources=resources, raise_on_error=False)
    assert not example.success
    [failure] = [e for e in example.all_events if e.is_step_failure]
    assert "my-project" in failure.step_failure_data.user_failure_data.description

    run_config = {"ops": {"approve": {"config": {"project_id": spec.id, "max_cost_usd": 10.0}}}}
    approval = approve_project.execute_in_process(
        instance=instance, resources=resources, run_config=run_config, tags={FROM_UI_TAG: "true"}
    )
    assert approval.success and _submissions(g.emulator) == 0  # approving pays nothing by itself
    services = vp_env.services()
    with services.db.session() as s:
        [row] = s.scalars(select(ApprovalRow).where(ApprovalRow.project_id == spec.id)).all()
        assert (row.source, row.run_id, row.budget_usd) == ("ui", approval.run_id, 10.0)

    context = dg.build_run_status_sensor_context(
        sensor_name=render_approved_project.name,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(approval.run_id),
        dagster_event=approval.get_run_success_event(),
    )
    request = render_approved_project(context)
    assert isinstance(request, dg.RunRequest) and request.partition_key == spec.id
    render_run = instance.create_run_for_job(
        job_def=render_project_in_process(), tags={**request.tags, "dagster/partition": spec.id}
    )
    result = execute_run(dg.reconstructable(render_project_in_process), render_run, instance, raise_on_error=False)
    assert result.success and _submissions(g.emulator) == 2
    assert _materialized(instance, FINAL_VIDEO, spec.id)
    assert instance.get_run_by_id(approval.run_id).tags[RENDER_RUN_TAG] == render_run.run_id
    tags = instance.get_run_by_id(render_run.run_id).tags
    assert tags[APPROVED_BY_TAG] == approval.run_id and tags[REVIEW_TAG] == APPROVED


def test_render_until_keyframes_and_a_bad_stage(vp_env):
    new = _cli("new", "A fox crosses a snowy field", "--id", "fox-until", "--scenes", "2", "--provider", "animatic")
    assert new.exit_code == 0, new.output
    pid = new.stdout.strip()
    instance = vp_env.instance()

    bad = _cli("render", pid, "--until", "nonsense")
    assert bad.exit_code == 2
    assert "'nonsense' is not a stage" in bad.output and ", ".join(STAGES) in bad.output
    assert not instance.get_runs()  # nothing ran

    until = _cli("render", pid, "--until", "keyframes")
    assert until.exit_code == 0, until.output
    assert until.stdout == ""  # no video to print
    assert _materialized(instance, KEYFRAMES, pid)
    assert not _materialized(instance, CLIPS, pid) and not _materialized(instance, FINAL_VIDEO, pid)
    status = _json(_cli("status", pid, "--json"))
    assert status["review"] == {
        "review": "none",
        "awaiting_approval": False,
        "scenes": [],
        "projected_cost_usd": 0.0,
        "message": None,
    }
    # The N + 1 keyframes are in the ledger and decode at the animatic's size; no clip exists yet.
    from vidpipe_core.steps.state import resolve_state

    services = vp_env.services()
    state = resolve_state(services, pid)
    assert [f.done for f in state.frames] == [True, True, True]
    for f in state.frames:
        assert f.row is not None and f.row.path
        with av.open(str(services.store.path(pid, f.row.path))) as image:
            frame = next(image.decode(video=0))
            assert min(frame.width, frame.height) == 144
    assert all(c.row is None for c in state.clips)
    assert not list(Path(services.store.project_root(pid)).rglob("*.mp4"))


def _run_request(instance: dg.DagsterInstance, request: dg.RunRequest, project_id: str) -> Any:
    """What the daemon does with a sensor's run request: a render_project run with its tags, executed."""
    from dagster._core.execution.api import execute_run

    from vidpipe_dagster.jobs import render_project_in_process

    run = instance.create_run_for_job(job_def=render_project_in_process(), tags={**request.tags, "dagster/partition": project_id})
    return run, execute_run(dg.reconstructable(render_project_in_process), run, instance, raise_on_error=False)


def test_a_new_project_under_review_links_its_render_run_which_shows_the_review_state(vp_env):
    """From the UI: `new_project` with `review: keyframes` (here with the free animatic); the render
    run its sensor starts stops at the gate, succeeds, and both runs say so in their tags."""
    from vidpipe_dagster.create import PROJECT_TAG, new_project, render_new_project
    from vidpipe_dagster.resources import VidpipeResource

    instance = vp_env.instance()
    created = new_project.execute_in_process(
        run_config={"ops": {"register_project": {"config": {"prompt": "A kite at noon", "scenes": 2, "review": "keyframes"}}}},
        instance=instance,
        resources={"vidpipe": VidpipeResource()},
    )
    pid = instance.get_run_by_id(created.run_id).tags[PROJECT_TAG]
    context = dg.build_run_status_sensor_context(
        sensor_name=render_new_project.name,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(created.run_id),
        dagster_event=created.get_run_success_event(),
    )
    request = render_new_project(context)
    assert isinstance(request, dg.RunRequest)
    run, result = _run_request(instance, request, pid)
    assert result.success
    assert instance.get_run_by_id(created.run_id).tags[RENDER_RUN_TAG] == run.run_id
    assert instance.get_run_by_id(run.run_id).tags[REVIEW_TAG] == AWAITING
    assert _materialized(instance, KEYFRAMES, pid) and not _materialized(instance, CLIPS, pid)
    # Approved, the same render makes the rest; the new run says so.
    assert _cli("approve", pid).exit_code == 0
    [latest] = instance.get_runs(limit=1)
    assert latest.tags[REVIEW_TAG] == APPROVED and _materialized(instance, FINAL_VIDEO, pid)


def test_a_project_registered_before_the_gate_keeps_rendering_and_its_fingerprints(reviewed):
    """A stored spec without `review` (registered before this change) reads as none: nothing it has
    made is invalidated, and its clips are paid for without an approval, as before."""
    from vidpipe_core.models import Project
    from vidpipe_core.projects import load_spec
    from vidpipe_core.steps.state import resolve_state
    from vidpipe_dagster.runner import register, render

    vp_env, g = reviewed
    spec = register("An owl at dusk", id="owl-old", scenes=2, clip_duration=4, review="none")
    assert render(spec.id, assets=list(STAGES[:3])).success
    services = vp_env.services()
    before = [(f.fingerprint, f.done) for f in resolve_state(services, spec.id).frames]
    clips_before = [c.fingerprint for c in resolve_state(services, spec.id).clips]
    with services.db.session() as s:
        row = s.get(Project, spec.id)
        row.spec = {k: v for k, v in row.spec.items() if k != "review"}  # as an old record has it
    assert load_spec(services, spec.id).review == "none"
    state = resolve_state(services, spec.id)
    assert [(f.fingerprint, f.done) for f in state.frames] == before and [c.fingerprint for c in state.clips] == clips_before
    assert render(spec.id).success
    assert _submissions(g.emulator) == 2 and _materialized(vp_env.instance(), FINAL_VIDEO, spec.id)


def test_regenerate_states_its_cost_and_counts_as_its_own_approval(reviewed):
    vp_env, g = reviewed
    new = _cli("new", "A heron in the reeds", "--id", "heron-review", "--scenes", "2", "--clip-duration", "4")
    pid = new.stdout.strip()
    assert _cli("render", pid).exit_code == 0 and _submissions(g.emulator) == 0
    assert _cli("approve", pid).exit_code == 0 and _submissions(g.emulator) == 2
    again = _cli("regenerate", pid, "--scene", "2")
    assert again.exit_code == 0, again.output
    assert f"{pid}: regenerate of scene 2 recorded: $1.60 for 1 clip" in again.stderr
    assert _submissions(g.emulator) == 3  # the new take, and nothing else
    with vp_env.services().db.session() as s:
        rows = s.scalars(select(ApprovalRow).where(ApprovalRow.project_id == pid).order_by(ApprovalRow.id)).all()
        assert [(r.kind, [e["scene"] for e in r.scenes]) for r in rows] == [("approve", [1, 2]), ("regenerate", [2])]


def test_an_approval_the_budget_cannot_pay_records_nothing(reviewed):
    from vidpipe_core.projects import load_spec

    vp_env, g = reviewed
    pid = _cli("new", "A ferry at dawn", "--id", "ferry-review", "--scenes", "2", "--clip-duration", "4").stdout.strip()
    assert _cli("render", pid).exit_code == 0
    refused = _cli("approve", pid, "--max-cost", "1")
    assert refused.exit_code == 1
    assert "clips: projected cost $3.4" in refused.output and "exceeds the project budget $1.00" in refused.output
    assert _submissions(g.emulator) == 0
    assert load_spec(vp_env.services(), pid).max_cost_usd == 25.0  # the refused budget was not stored
    with vp_env.services().db.session() as s:
        assert s.scalars(select(ApprovalRow)).all() == []
    assert _json(_cli("status", pid, "--json"))["review"]["awaiting_approval"] is True
    assert _cli("approve", pid, "--max-cost", "5").exit_code == 0
    assert _submissions(g.emulator) == 2 and load_spec(vp_env.services(), pid).max_cost_usd == 5.0


def test_a_retake_under_review_states_its_cost_and_is_its_own_approval(reviewed):
    """`vidpipe retake` and the `retake` job (through its sensor's render run) of an approved project
    under review pay for exactly the clips their cascade names, with no `approve`, and record a
    `retake` approval each (the CLI's from `cli`, the job's from where the job was launched)."""
    from dagster._core.execution.api import execute_run

    from vidpipe_dagster.jobs import render_project_in_process
    from vidpipe_dagster.resources import VidpipeResource
    from vidpipe_dagster.steering import render_retake, retake

    vp_env, g = reviewed
    pid = _cli("new", "A lighthouse keeper at dusk", "--id", "keeper-retake", "--scenes", "3", "--clip-duration", "4").stdout
    pid = pid.strip()
    assert _cli("render", pid).exit_code == 0 and _cli("approve", pid).exit_code == 0
    assert _submissions(g.emulator) == 3

    cli = _cli("retake", pid, "--frame", "4", "--yes")  # the end frame of scene 3: its clip only
    assert cli.exit_code == 0, cli.output
    assert "re-makes" in cli.stderr and "$1.60" in cli.stderr  # the cost is said first
    assert _submissions(g.emulator) == 4 and _materialized(vp_env.instance(), FINAL_VIDEO, pid)

    instance = vp_env.instance()
    run_config = {"ops": {"take_again": {"config": {"project": pid, "frame": 4, "dry_run": False}}}}
    job = retake.execute_in_process(
        instance=instance, resources={"vidpipe": VidpipeResource()}, run_config=run_config, tags={FROM_UI_TAG: "true"}
    )
    assert job.success and _submissions(g.emulator) == 4  # the job itself pays for no clip
    context = dg.build_run_status_sensor_context(
        sensor_name=render_retake.name,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(job.run_id),
        dagster_event=job.get_run_success_event(),
    )
    request = render_retake(context)
    assert isinstance(request, dg.RunRequest)
    render_run = instance.create_run_for_job(job_def=render_project_in_process(), tags={**request.tags, "dagster/partition": pid})
    result = execute_run(dg.reconstructable(render_project_in_process), render_run, instance, raise_on_error=False)
    assert result.success and _submissions(g.emulator) == 5  # scene 3's clip again, with no `approve`
    with vp_env.services().db.session() as s:
        rows = s.scalars(select(ApprovalRow).where(ApprovalRow.project_id == pid).order_by(ApprovalRow.id)).all()
        assert [(r.kind, r.source, [e["scene"] for e in r.scenes]) for r in rows] == [
            ("approve", "cli", [1, 2, 3]),
            ("retake", "cli", [3]),
            ("retake", "ui", [3]),
        ]
