"""Heal itself: a dead run never starves other projects (same host: its process is gone; another
host: its heartbeat is stale), SIGTERM stops a render cleanly wherever it waits, and
`vidpipe resume --dry-run` changes nothing. Real `vidpipe` processes, real signals, the real SDK
against the wire emulator, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import dagster as dg
import pytest
from sqlalchemy import select

from tests.helpers import VIDPIPE, Output, finish_operations, spawn, wait_for
from vidpipe_core import media
from vidpipe_core.models import ClipStatus, Keyframe, Project, VideoClip
from vidpipe_core.scratch import owner_tag
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.storage import Layout
from vidpipe_dagster.healing import HEARTBEAT_TAG, HOST_TAG, PARTITION_TAG, PID_TAG, names_this_owner, owner_tags
from vidpipe_dagster.runner import register

POOL = "video-operations"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, gp):  # type: ignore[no-untyped-def]
    if request.param == "postgres":
        request.getfixturevalue("pg_env")
    return gp


def _slots(instance: dg.DagsterInstance) -> tuple[list[str], list[str]]:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return [s.run_id for s in info.claimed_slots], [p.run_id for p in info.pending_steps]


def _submitted(vp_env, project_id: str, count: int):  # type: ignore[no-untyped-def]
    services = vp_env.services()

    def check() -> bool:
        clips = resolve_state(services, project_id).clips
        return sum(1 for c in clips if c.status == ClipStatus.SUBMITTED) >= count

    return check


def _render_and_kill(vp_env, project_id: str, submitted: int) -> str:  # type: ignore[no-untyped-def]
    """`vidpipe render` killed with SIGKILL once `submitted` clips are committed; its run id."""
    proc = spawn("render", project_id)
    try:
        wait_for(_submitted(vp_env, project_id, submitted), what=f"{submitted} clips SUBMITTED")
        time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run = vp_env.instance().get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: project_id}))[0]
    assert run.status == dg.DagsterRunStatus.STARTED
    return run.run_id


def _foreign_run(instance: dg.DagsterInstance, slots: int, heartbeat_age_s: float) -> str:
    """A STARTED run on another host holding `slots` slots of the pool, last heard of
    `heartbeat_age_s` seconds ago (what a render worker on a machine that died leaves behind)."""
    run_id = str(uuid.uuid4())
    instance.add_run(
        dg.DagsterRun(
            job_name="render_project",
            run_id=run_id,
            status=dg.DagsterRunStatus.STARTED,
            tags={
                PARTITION_TAG: "elsewhere",
                PID_TAG: "4242",
                HOST_TAG: "render-worker-7.example",
                HEARTBEAT_TAG: f"{time.time() - heartbeat_age_s:.3f}",
            },
        )
    )
    for i in range(slots):
        assert instance.event_log_storage.claim_concurrency_slot(POOL, run_id, f"clips[scene-{i}]").is_claimed
    return run_id


def test_a_step_writes_the_owner_tags_again_only_when_they_name_another_process_or_have_aged() -> None:
    ours = owner_tags()
    assert names_this_owner(ours, 15.0)
    assert not names_this_owner({**ours, HEARTBEAT_TAG: f"{time.time() - 20:.3f}"}, 15.0)  # aged: beat again
    assert not names_this_owner({**ours, PID_TAG: "1"}, 15.0)  # another process
    assert not names_this_owner({**ours, HOST_TAG: "another-host"}, 15.0)
    assert not names_this_owner({k: v for k, v in ours.items() if k != HEARTBEAT_TAG}, 15.0)
    assert not names_this_owner({}, 15.0)  # a run no step has tagged yet


def test_a_killed_render_does_not_starve_another_project(backend, request):
    vp_env, g = backend
    emu = g.emulator
    instance = vp_env.instance()
    instance.event_log_storage.set_concurrency_slots(POOL, 2)
    suffix = request.node.callspec.id
    dead_project = register("A lighthouse keeper climbs the stairs at night", id=f"dead-{suffix}", scenes=2, clip_duration=4).id
    other = register("A ferry crosses a calm bay at dawn", id=f"other-{suffix}", scenes=3, clip_duration=4).id
    emu.configure(video_latency_s=30.0)
    dead_run = _render_and_kill(vp_env, dead_project, submitted=2)
    assert _slots(instance)[0] == [dead_run, dead_run]  # the dead run holds the whole limit

    emu.reset()  # count only the second project's operations
    emu.configure(video_latency_s=0.5)
    proc = subprocess.run([VIDPIPE, "render", other], env=dict(os.environ), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    # progress goes to stderr; stdout is only the video's path
    assert f"run {dead_run[:8]} (project {dead_project}" in proc.stderr and "its process is dead" in proc.stderr
    assert proc.stdout == f"{vp_env.services().store.uri(other, Layout.FINAL)}\n"
    assert emu.stats()["peak_inflight"] == 2  # the full limit, for the live project
    assert sorted(emu.submissions_by_prompt.values()) == [1, 1, 1]
    assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
    assert _slots(instance) == ([], [])
    info = media.probe(vp_env.services().store.path(other, Layout.FINAL))
    assert info.has_video and abs(info.duration_s - 12.0) <= 0.25


def test_a_dead_run_on_another_host_is_recognised_by_its_stale_heartbeat(backend, request):
    vp_env, g = backend
    instance = vp_env.instance()
    instance.event_log_storage.set_concurrency_slots(POOL, 2)
    foreign = _foreign_run(instance, slots=2, heartbeat_age_s=5)  # alive: heard of 5 s ago
    project = register(
        "Snow falls on a quiet village square", id=f"waits-{request.node.callspec.id}", scenes=2, clip_duration=4
    ).id
    g.emulator.configure(video_latency_s=1.5)  # both operations surely overlap (0.3 s flaked under load)
    proc = spawn("render", project)
    out = Output(proc)
    try:
        # While the other host is alive, the render waits and says who holds the slots.
        wait_for(
            lambda: f"held by run {foreign[:8]} (project elsewhere, pid 4242 on render-worker-7.example" in out.text(),
            timeout=60,
            what="a line naming the holder",
        )
        assert g.emulator.request_count("video_submit") == 0 and proc.poll() is None
        # The other host stops beating: after heartbeat_stale_s (120 s by default) it is dead.
        instance.add_run_tags(foreign, {HEARTBEAT_TAG: f"{time.time() - 300:.3f}"})
        assert proc.wait(timeout=120) == 0, out.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.close()
    assert re.search(r"heartbeat 30\d s old \(dead after 120 s\)", text), text
    run = instance.get_run_by_id(foreign)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert g.emulator.stats()["peak_inflight"] == 2 and _slots(instance) == ([], [])


def test_sigterm_stops_a_render_that_waits_for_a_slot(gp):
    vp_env, g = gp
    instance = vp_env.instance()
    instance.event_log_storage.set_concurrency_slots(POOL, 1)
    _foreign_run(instance, slots=1, heartbeat_age_s=0)  # a live holder that never lets go
    project = register("A kite tugs at its string", id="sigterm-waiting", scenes=1, clip_duration=4).id
    proc = spawn("render", project)
    out = Output(proc)
    try:
        wait_for(lambda: "waited" in out.text(), timeout=60, what="the render to wait for a slot")
        proc.send_signal(signal.SIGTERM)  # what `timeout`, systemd and docker stop send
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.close()
    assert code == 130, text
    assert "stopped by a signal" in text and f"vidpipe resume {project}" in text
    run = instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: project}))[0]
    assert run.status == dg.DagsterRunStatus.FAILURE
    claimed, pending = _slots(instance)
    assert run.run_id not in claimed and run.run_id not in pending
    services = vp_env.services()
    with services.db.session() as s:
        assert s.get(Project, project).lock_holder is None
    assert g.emulator.request_count("video_submit") == 0


def test_sigterm_while_polling_keeps_the_paid_operations_for_resume(gp):
    vp_env, g = gp
    instance = vp_env.instance()
    project = register("Two swans glide under a stone bridge", id="sigterm-polling", scenes=2, clip_duration=4).id
    g.emulator.configure(video_latency_s=60.0)
    proc = spawn("render", project)
    out = Output(proc)
    try:
        wait_for(_submitted(vp_env, project, 2), what="both clips SUBMITTED")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)  # the poll interval is 0.2 s here; a live Veo poll waits 10 s, cut to 0.5 s
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 130, out.close()
    assert _slots(instance) == ([], [])
    clips = resolve_state(vp_env.services(), project).clips
    assert [c.status for c in clips] == [ClipStatus.SUBMITTED, ClipStatus.SUBMITTED]

    g.emulator.configure(video_latency_s=0.2)
    finish_operations(g.emulator)
    resumed = subprocess.run([VIDPIPE, "resume", project], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(g.emulator.submissions_by_prompt.values()) == [1, 1]
    assert media.probe(vp_env.services().store.path(project, Layout.FINAL)).has_video


def _snapshot(vp_env, project: str) -> dict:  # type: ignore[no-untyped-def]
    """Everything `resume` could change: Dagster runs, pool, partitions, materializations, and
    vidpipe's rows and files."""
    instance = vp_env.instance()
    services = vp_env.services()
    runs = sorted((r.run_id, r.status.value, tuple(sorted(r.tags.items()))) for r in instance.get_runs())
    with services.db.session() as s:
        projects = [(p.id, p.lock_holder, str(p.lock_heartbeat), p.nonce) for p in s.scalars(select(Project))]
        frames = [(k.frame_index, k.status.value, k.sha256, k.cost_usd) for k in s.scalars(select(Keyframe))]
        clips = [
            (c.scene_index, c.status.value, c.operation_name, c.attempts, c.sha256, c.error) for c in s.scalars(select(VideoClip))
        ]
    files = sorted(
        (str(p.relative_to(vp_env.data_dir)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in vp_env.data_dir.rglob("*")
        if p.is_file() and not p.name.startswith("vidpipe.db")
    )
    return {
        "runs": runs,
        "slots": _slots(instance),
        "partitions": sorted(instance.get_dynamic_partitions("projects")),
        "events": {run_id: len(instance.all_logs(run_id)) for run_id, _status, _tags in runs},
        "materializations": instance.fetch_materializations(dg.AssetKey("clips"), limit=10).records,
        "projects": projects,
        "frames": frames,
        "clips": clips,
        "files": files,
    }


def test_status_and_resume_dry_run_change_nothing(gp):
    vp_env, g = gp
    project = register("A paper crane unfolds on a desk", id="dry-run", scenes=2, clip_duration=4).id
    g.emulator.configure(video_latency_s=60.0)
    dead_run = _render_and_kill(vp_env, project, submitted=2)
    keyframe = next((vp_env.data_dir / "artifacts/projects/dry-run/keyframes").glob("frame_001_*.png"))
    keyframe.write_bytes(keyframe.read_bytes()[:100])  # and a damaged file to report
    gone = subprocess.Popen(["true"])
    gone.wait()
    (vp_env.data_dir / "tmp").mkdir(exist_ok=True)
    (vp_env.data_dir / "tmp" / f"vidpipe-clip@{owner_tag(gone.pid)}@abc").mkdir()  # housekeeping would remove it
    requests = g.emulator.stats()["requests_total"]
    before = _snapshot(vp_env, project)
    assert before["slots"][0] == [dead_run, dead_run]

    status = subprocess.run([VIDPIPE, "status", project], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and f"run {dead_run[:8]} is dead (pid" in status.stdout
    assert f"`vidpipe resume {project}` marks it failed" in status.stdout
    proc = subprocess.run(
        [VIDPIPE, "resume", project, "--dry-run"], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert f"run {dead_run[:8]}" in proc.stderr and "would mark it failed" in proc.stderr
    assert "damaged: the frame between scenes 1 and 2" in proc.stderr and "would materialize: keyframes" in proc.stderr
    assert _snapshot(vp_env, project) == before
    assert g.emulator.stats()["requests_total"] == requests

    # The same command without --dry-run does what the plan said (and the leftover folder goes).
    g.emulator.configure(video_latency_s=0.2)
    proc = subprocess.run([VIDPIPE, "resume", project], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "--repair" in proc.stderr  # a damaged Gemini frame needs consent to pay
    assert vp_env.instance().get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
    assert not (vp_env.data_dir / "tmp" / f"vidpipe-clip@{owner_tag(gone.pid)}@abc").exists()


def test_the_daemon_sensor_heals_a_dead_run_when_nobody_waits(vp_env):
    from vidpipe_dagster.definitions import defs
    from vidpipe_dagster.resources import VidpipeResource
    from vidpipe_dagster.sensors import heal_dead_runs

    instance = vp_env.instance()
    instance.event_log_storage.set_concurrency_slots(POOL, 2)
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = _foreign_run(instance, slots=2, heartbeat_age_s=0)
    instance.add_run_tags(dead, {HOST_TAG: __import__("socket").gethostname(), PID_TAG: str(gone.pid)})
    live = _foreign_run(instance, slots=0, heartbeat_age_s=10)  # another host, heard of 10 s ago
    ended = str(uuid.uuid4())  # ended, but its slot was never freed
    instance.add_run(dg.DagsterRun(job_name="render_project", run_id=ended, status=dg.DagsterRunStatus.SUCCESS))
    instance.event_log_storage.set_concurrency_slots(POOL, 3)
    assert instance.event_log_storage.claim_concurrency_slot(POOL, ended, "clips[scene-0]").is_claimed

    assert heal_dead_runs in defs().sensors
    context = dg.build_sensor_context(instance=instance, resources={"vidpipe": VidpipeResource()})
    result = heal_dead_runs(context)
    assert isinstance(result, dg.SkipReason) and "1 dead runs marked failed, 1 ended runs' slots freed" in result.skip_message
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(live).status == dg.DagsterRunStatus.STARTED
    assert _slots(instance) == ([], [])
    failure = instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    assert "is gone" in failure.message and "vidpipe resume elsewhere" in failure.message


def test_pool_claims_are_serialised_by_a_lock_chosen_by_storage_class(backend, request):
    """The claim lock follows the storage's class (not its module name); a storage with pools
    but no known lock is refused with the fix named, before any operation is claimed."""
    from vidpipe_core.errors import ConfigurationError
    from vidpipe_dagster.pools import DagsterPoolSlots, claim_lock_kind

    instance = backend[0].instance()
    expected = "postgres" if "postgres" in request.node.callspec.id else "sqlite"
    assert claim_lock_kind(instance) == expected
    assert DagsterPoolSlots(instance, POOL, "run", "clips").lock_kind == expected

    class PostgresLookalike:  # pools supported, module name says postgres, class unknown
        __module__ = "my_company.postgres_event_log"
        supports_global_concurrency_limits = True

    class Lookalike:
        event_log_storage = PostgresLookalike()
        root_directory = str(backend[0].dagster_home)

    with pytest.raises(ConfigurationError, match="has no lock that keeps the video-operations limit"):
        DagsterPoolSlots(Lookalike(), POOL, "run", "clips")  # type: ignore[arg-type]


# A render whose process dies after its run started and before its first step recorded the owner:
# the run names its process from the moment it is created, so it is recognised as dead at once.
_DIE_BEFORE_THE_FIRST_STEP = """
import os, signal, sys
import vidpipe_dagster.asset_step as asset_step
from vidpipe_dagster.runner import render

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # the first step, before it looks at (or writes) the run's owner tags

asset_step.names_this_owner = die
render(sys.argv[1])
"""


def test_a_render_killed_before_its_first_step_is_recognised_as_dead(vp_env):
    project = register("A paper crane unfolds on a desk", id="early-death", scenes=1).id
    proc = subprocess.run(
        [sys.executable, "-c", _DIE_BEFORE_THE_FIRST_STEP, project], env=dict(os.environ), capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (run,) = vp_env.instance().get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: project}))
    assert run.status == dg.DagsterRunStatus.STARTED and PID_TAG in run.tags  # named when it was created
    assert not os.path.exists(f"/proc/{run.tags[PID_TAG]}")  # the killed process

    status = subprocess.run([VIDPIPE, "status", project], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and f"run {run.run_id[:8]} is dead (pid" in status.stdout
    resumed = subprocess.run([VIDPIPE, "resume", project], env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert vp_env.instance().get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert media.probe(str(vp_env.data_dir / "artifacts/projects/early-death/final.mp4")).has_video
