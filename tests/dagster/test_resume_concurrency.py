"""Never pay twice: SIGKILL + resume, re-execution from failure, one project rendered twice at
once, a global limit on live video operations across projects, per-scene regeneration."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import dagster as dg
import pytest
from typer.testing import CliRunner

from tests.helpers import VIDPIPE, Output, finish_operations, latest_metadata, mean_abs_diff, spawn, wait_for
from vidpipe_core import media
from vidpipe_core.models import ClipStatus
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.storage import Layout
from vidpipe_dagster.cli import app
from vidpipe_dagster.runner import register, render


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, gp):  # type: ignore[no-untyped-def]
    """The google-provider environment on SQLite, and again with both databases on PostgreSQL."""
    if request.param == "postgres":
        request.getfixturevalue("pg_env")
    return gp


def _kill_while_polling(vp_env, emu, project_id: str, scenes: int) -> str:
    """Start `vidpipe render` in a subprocess and SIGKILL it once every clip is submitted and
    committed; return the id of the Dagster run it leaves STARTED."""
    emu.configure(video_latency_s=30.0)
    proc = spawn("render", project_id)
    services = vp_env.services()

    def all_submitted() -> bool:
        state = resolve_state(services, project_id)
        return len(state.clips) == scenes and all(c.status == ClipStatus.SUBMITTED for c in state.clips)

    out = Output(proc)
    try:
        wait_for(all_submitted, what="every clip SUBMITTED")
        time.sleep(0.3)  # polling is under way
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the render said:\n{out.text()}") from None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    runs = vp_env.instance().get_runs(filters=dg.RunsFilter(tags={"dagster/partition": project_id}))
    assert runs[0].status == dg.DagsterRunStatus.STARTED
    emu.configure(video_latency_s=0.3)
    finish_operations(emu)  # the paid operations are done by now: the next poll sees them done
    return runs[0].run_id


def test_sigkill_during_polling_then_resume_pays_once(backend, request):
    vp_env, g = backend
    spec = register(
        "A glass of water on a windowsill as rain starts", id=f"killed-{request.node.callspec.id}", scenes=3, clip_duration=4
    )
    dead_run = _kill_while_polling(vp_env, g.emulator, spec.id, 3)
    images = g.emulator.request_count("image")

    proc = subprocess.run([VIDPIPE, "resume", spec.id], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"run {dead_run[:8]} (project {spec.id}" in proc.stderr and "its process is dead; marked it failed" in proc.stderr
    # The keyframes and the clips are one step, whose materializations are recorded at its end: the
    # frames are made again from the ledger (reused, not paid), the clips re-attached.
    assert (
        "will materialize: keyframes (never materialized), clips" in proc.stderr
        and "storyboard" not in proc.stderr.split("will materialize:")[1]
    )
    assert g.emulator.request_count("image") == images
    assert sorted(g.emulator.submissions_by_prompt.values()) == [1, 1, 1]

    instance = vp_env.instance()
    assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
    assert latest_metadata(instance, "clips", spec.id)["reattached"] == 3
    info = media.probe(vp_env.services().store.path(spec.id, Layout.FINAL))
    assert info.has_video and abs(info.duration_s - 12.0) <= 0.25
    # A second resume has nothing left to do.
    again = subprocess.run([VIDPIPE, "resume", spec.id], env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_reexecute_from_failure_after_a_crash_pays_once(gp):
    from vidpipe_dagster.definitions import render_project_job
    from vidpipe_dagster.resume import recover_dead_runs

    vp_env, g = gp
    spec = register("Paper lanterns rise over a lake", id="reexec", scenes=2, clip_duration=4)
    dead_run = _kill_while_polling(vp_env, g.emulator, spec.id, 2)
    instance = vp_env.instance()
    assert list(recover_dead_runs(instance, vp_env.services(), spec.id)) == [dead_run]

    # What the UI's "Re-execute from failure" does (the UI carries the parent's partition tag over).
    options = dg.ReexecutionOptions.from_failure(dead_run, instance)
    result = dg.execute_job(
        dg.reconstructable(render_project_job),
        instance=instance,
        reexecution_options=options,
        tags={"dagster/partition": spec.id},
    )
    assert result.success
    executed = {e.step_key for e in result.all_events if e.is_step_success}
    assert executed == {"clips", "final_video"}
    assert sorted(g.emulator.submissions_by_prompt.values()) == [1, 1]
    assert media.probe(vp_env.services().store.path(spec.id, Layout.FINAL)).has_video


def test_two_renders_of_one_partition_never_submit_a_scene_twice(backend, request):
    vp_env, g = backend
    g.emulator.configure(video_latency_s=1.5)
    spec = register("Two trains pass in the night", id=f"twice-{request.node.callspec.id}", scenes=3, clip_duration=4)
    first, second = spawn("render", spec.id), spawn("render", spec.id)
    outs = [p.communicate(timeout=180) for p in (first, second)]
    codes = [first.returncode, second.returncode]
    assert sorted(g.emulator.submissions_by_prompt.values()) == [1, 1, 1]
    assert 0 in codes, outs
    for code, (_out, err) in zip(codes, outs, strict=True):
        if code != 0:
            assert "is being rendered by run" in err, err
    assert media.probe(vp_env.services().store.path(spec.id, Layout.FINAL)).has_video


def test_global_limit_on_live_video_operations_across_projects(backend, request):
    vp_env, g = backend
    g.emulator.configure(video_latency_s=1.0)
    instance = vp_env.instance()
    instance.event_log_storage.set_concurrency_slots("video-operations", 2)
    ids = [
        register(
            f"Project number {i} about a lighthouse", id=f"limit-{request.node.callspec.id}-{i}", scenes=2, clip_duration=4
        ).id
        for i in range(3)
    ]
    procs = [spawn("render", pid) for pid in ids]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert g.emulator.stats()["peak_inflight"] == 2
    assert sum(g.emulator.submissions_by_prompt.values()) == 6
    assert not instance.event_log_storage.get_concurrency_info("video-operations").claimed_slots


def test_regenerate_one_scene_changes_only_its_time_span(vp_env):
    spec = register("A cat wakes up. The cat stretches. The cat jumps onto the sofa.", id="regen", scenes=3, clip_duration=1)
    assert render(spec.id).success
    services = vp_env.services()
    final = services.store.path(spec.id, Layout.FINAL)
    times = [0.0, 0.3, 0.5, 0.7, 1.3, 1.5, 1.7, 2.3, 2.5, 2.7]
    before = [media.read_frame(final, t) for t in times]

    result = CliRunner().invoke(app, ["regenerate", spec.id, "--scene", "2"])  # the middle scene: 1 s to 2 s
    assert result.exit_code == 0, result.output
    instance = vp_env.instance()
    kf = latest_metadata(instance, "keyframes", spec.id)
    clips = latest_metadata(instance, "clips", spec.id)
    assert (kf["generated"], kf["reused"]) == (0, 4)
    assert (clips["generated"], clips["reused"]) == (1, 2)
    after = [media.read_frame(final, t) for t in times]
    diffs = dict(zip(times, (mean_abs_diff(a, b) for a, b in zip(before, after, strict=True)), strict=True))
    for t in (0.0, 0.3, 0.5, 0.7, 2.3, 2.5, 2.7):
        assert diffs[t] < 0.5, f"frame at {t}s changed outside scene 2: {diffs}"
    # A new take of the animatic holds the same start frame under another camera move, so it differs
    # little 0.3 s in and clearly later (the move grows, then the dissolve to the end frame).
    inside = [diffs[t] for t in (1.3, 1.5, 1.7)]
    assert min(inside) > 0.4 and sum(inside) / len(inside) > 1.5, f"scene 2 did not change: {diffs}"
    assert media.probe(final).duration_s == pytest.approx(3.0, abs=0.25)


def test_regenerate_rejects_unknown_scene(vp_env):
    spec = register("A cat naps", id="regen-bad", scenes=2, clip_duration=1)
    result = CliRunner().invoke(app, ["regenerate", spec.id, "--scene", "5"])
    assert result.exit_code == 2 and "scene: 5 is out of range" in result.output and "1-2" in result.output


def test_editing_a_motion_prompt_regenerates_only_that_clip(gp):
    vp_env, g = gp
    spec = register("Leaves fall in an autumn park", id="edit-motion", scenes=3, clip_duration=4)
    assert render(spec.id).success
    stats = g.emulator.stats()["requests"]
    result = CliRunner().invoke(app, ["edit", spec.id, "--scene", "2", "--motion", "Slow pan right across the benches"])
    assert result.exit_code == 0, result.output
    assert "frames to regenerate: none" in result.output and "clips to regenerate: the clip of scene 2." in result.output
    result = CliRunner().invoke(app, ["resume", spec.id])
    assert result.exit_code == 0, result.output
    now = g.emulator.stats()["requests"]
    assert now["text"] == stats["text"] and now["image"] == stats["image"]
    assert now["video_submit"] == stats["video_submit"] + 1
    assert "Slow pan right" in g.emulator.records("video_submit")[-1].prompt


def test_stitch_command_restitches_without_touching_clips(vp_env):
    spec = register("Clouds drift. Birds fly. Sun sets.", id="restitch", scenes=3, clip_duration=2)
    assert render(spec.id).success
    services = vp_env.services()
    clip_mtimes = {p: p.stat().st_mtime_ns for p in (vp_env.data_dir / "artifacts/projects/restitch/clips").iterdir()}
    result = CliRunner().invoke(app, ["stitch", spec.id, "--crossfade", "0.5"])
    assert result.exit_code == 0, result.output
    info = media.probe(services.store.path(spec.id, Layout.FINAL))
    assert abs(info.duration_s - 5.0) <= 0.25 and info.has_audio
    assert clip_mtimes == {p: p.stat().st_mtime_ns for p in clip_mtimes}
    assert CliRunner().invoke(app, ["stitch", spec.id, "--crossfade", "3"]).exit_code == 2


def test_regenerate_through_run_config_makes_one_new_take(vp_env):
    spec = register("A kettle boils. Steam rises. Tea is poured.", id="regen-config", scenes=3, clip_duration=1)
    assert render(spec.id).success
    config = {"ops": {"clips": {"config": {"regenerate_scenes": [2]}}}}
    assert render(spec.id, run_config=config).success
    clips = latest_metadata(vp_env.instance(), "clips", spec.id)
    assert (clips["generated"], clips["reused"]) == (1, 2)
    from vidpipe_core.projects import load_spec

    run_id = vp_env.instance().get_runs(limit=1)[0].run_id
    assert load_spec(vp_env.services(), spec.id).takes == {"1": f"run-{run_id}"}  # scene 2 is index 1 in the database
