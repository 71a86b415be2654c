"""The celery executor's liveness rules, without a broker (the real thing runs in
tests/servers/test_celery.py): the run worker owns a celery run and a step does not re-tag it;
healing backs off from a run that showed life after it was judged dead; a step delivered (or
redelivered) to a run that has ended refuses to run; the broker URL, whose password is a secret,
is in no executor config, run or CLI output."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import uuid

import dagster as dg
import pytest
from dagster._core.execution.retries import RetryMode
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import pack_value, serialize_value

from vidpipe_core.cancel import CancelToken
from vidpipe_core.liveness import this_host
from vidpipe_core.projects import load_spec
from vidpipe_dagster.healing import (
    HOST_TAG,
    OWNER_TAG,
    PARTITION_TAG,
    PID_STARTED_TAG,
    PID_TAG,
    RUN_WORKER,
    heal_runs,
    owner_tags,
    run_liveness,
    run_worker_tags,
)
from vidpipe_dagster.runner import register


def _tags_in_child(queue) -> None:  # type: ignore[no-untyped-def]
    queue.put((os.getpid(), run_worker_tags()[PID_TAG], owner_tags()[PID_TAG]))


def test_the_run_worker_tags_its_own_pid_even_as_a_spawned_child():
    """A run worker started by multiprocessing (the code server spawns the daemon's run workers)
    records its own pid, not its parent's: owner_tags() would name the parent (the owner of a
    multiprocess step), which outlives a killed run worker and would keep its run alive."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_tags_in_child, args=(queue,))
    child.start()
    own, run_worker_pid, step_owner_pid = queue.get(timeout=60)
    child.join(30)
    assert run_worker_pid == str(own)
    assert step_owner_pid == str(os.getpid()) != run_worker_pid
    tags = run_worker_tags()
    assert tags[OWNER_TAG] == RUN_WORKER and tags[PID_TAG] == str(os.getpid()) and tags[HOST_TAG] == this_host()
    assert float(tags[PID_STARTED_TAG]) > 0


def _started_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name="render_project", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags))
    return run_id


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_healing_backs_off_when_the_run_showed_life_after_it_was_judged(vp_env):
    instance = vp_env.instance()
    dead = {PID_TAG: str(_dead_pid()), HOST_TAG: this_host(), OWNER_TAG: RUN_WORKER, PARTITION_TAG: "p"}
    revived, control = _started_run(instance, dead), _started_run(instance, dead)
    judged = instance.get_runs(filters=dg.RunsFilter(run_ids=[revived, control]))
    assert all(not run_liveness(run, 120).alive for run in judged)
    # Between the judgement and the marking, `revived` got a new owner (a run worker re-tagged it).
    instance.add_run_tags(revived, run_worker_tags())
    report = heal_runs(instance, judged, 120)
    assert set(report.failed_runs) == {control}
    assert instance.get_run_by_id(revived).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]
    assert instance.get_run_by_id(control).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]
    # Judged again, it is alive (this process): nothing to heal.
    assert not heal_runs(instance, instance.get_runs(filters=dg.RunsFilter(run_ids=[revived])), 120)


def _step_args(instance: dg.DagsterInstance, run_id: str, step: str) -> tuple[dict, dict]:
    from vidpipe_dagster.definitions import render_project_job

    recon = dg.reconstructable(render_project_job)
    args = ExecuteStepArgs(
        job_origin=recon.get_python_origin(),
        run_id=run_id,
        step_keys_to_execute=[step],
        instance_ref=instance.get_ref(),
        retry_mode=RetryMode.DISABLED,
        known_state=None,
        print_serialized_events=True,
    )
    return pack_value(args), recon.to_dict()  # type: ignore[return-value]


def _run_of(instance: dg.DagsterInstance, project_id: str, tags: dict[str, str]) -> dg.DagsterRun:
    from vidpipe_dagster.definitions import render_project_job

    job = render_project_job()
    return instance.create_run_for_job(
        job_def=job,
        run_config={},
        tags={**job.run_tags, PARTITION_TAG: project_id, **tags},
        job_code_origin=dg.reconstructable(render_project_job).get_python_origin(),
    )


def _kinds(instance: dg.DagsterInstance, run_id: str, step: str) -> list[str]:
    return [e.dagster_event.event_type_value for e in instance.all_logs(run_id) if e.dagster_event and e.step_key == step]


def test_a_step_runs_for_a_live_run_without_retagging_it_and_refuses_an_ended_one(vp_env):
    from vidpipe_dagster.celery_executor import run_step

    instance = vp_env.instance()
    spec = register("a lighthouse keeper feeds a seal", scenes=1)
    # The run worker: another live process (a stand-in that sleeps), as on another host.
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        tags = {**owner_tags(owner.pid), OWNER_TAG: RUN_WORKER}
        run = _run_of(instance, spec.id, tags)
        events = run_step(*_step_args(instance, run.run_id, "storyboard"), worker="w1@test")
        kinds = [e.split('"event_type_value": "', 1)[1].split('"', 1)[0] for e in events if "event_type_value" in e]
        assert "STEP_SUCCESS" in kinds, kinds
        after = instance.get_run_by_id(run.run_id)
        assert after is not None and after.tags[PID_TAG] == str(owner.pid) and after.tags[OWNER_TAG] == RUN_WORKER
        assert load_spec(vp_env.services(), spec.id).id == spec.id

        # The same step delivered again after it succeeded does nothing.
        assert run_step(*_step_args(instance, run.run_id, "storyboard"), worker="w3@test") == []
        assert _kinds(instance, run.run_id, "storyboard").count("STEP_START") == 1

        # The run ends (its run worker died and healing failed it); the next step is then delivered.
        instance.report_run_failed(after, "test: the run worker is gone")
        assert run_step(*_step_args(instance, run.run_id, "characters"), worker="w2@test") == []
        assert "STEP_START" not in _kinds(instance, run.run_id, "characters")
        messages = [e.dagster_event.message or "" for e in instance.all_logs(run.run_id) if e.dagster_event]
        refusals = [m for m in messages if "not executed on celery worker w2@test" in m]
        assert refusals and "has already ended (failure)" in refusals[0], messages[-3:]
        assert instance.get_latest_materialization_event(dg.AssetKey("characters")) is None  # nothing made
    finally:
        owner.kill()
        owner.wait()


def test_the_broker_url_is_read_from_the_environment_and_stored_nowhere(vp_env, monkeypatch):
    from vidpipe_dagster.celery_executor import VidpipeCeleryExecutor, celery_app, vidpipe_celery_executor
    from vidpipe_dagster.cli.scrub import _scrub
    from vidpipe_dagster.definitions import EXECUTORS, defs, render_project_job

    secret = f"pw-{uuid.uuid4().hex}"
    url = f"amqp://vidpipe:{secret}@broker.example:5672//"
    monkeypatch.setenv("VIDPIPE_CELERY_BROKER", url)
    monkeypatch.setenv("VIDPIPE_CELERY_BACKEND", f"redis://:{secret}@redis.example:6379/0")
    monkeypatch.setenv("VIDPIPE_CELERY_QUEUE", "renders")
    monkeypatch.setenv("VIDPIPE_DAGSTER_EXECUTOR", "celery")
    assert defs().executor is vidpipe_celery_executor is EXECUTORS["celery"]
    assert set(vidpipe_celery_executor.config_schema.config_type.fields) == {"retries"}  # type: ignore[union-attr]

    app = celery_app()
    assert app.conf.broker_url == url and app.conf.task_default_queue == "renders"
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost and app.conf.worker_prefetch_multiplier == 1
    assert secret not in repr(VidpipeCeleryExecutor(RetryMode.DISABLED).app_args())

    instance = vp_env.instance()
    spec = register("a kite over a beach", scenes=1)
    job = render_project_job().with_executor_def(vidpipe_celery_executor)
    run = instance.create_run_for_job(
        job_def=job,
        run_config={"execution": {"config": {"retries": {"enabled": {}}}}},
        tags={PARTITION_TAG: spec.id, **run_worker_tags()},
    )
    stored = instance.get_run_by_id(run.run_id)
    assert secret not in serialize_value(stored) and "broker.example" not in serialize_value(stored)
    assert secret not in _scrub(f"cannot reach {url}; backend redis://:{secret}@redis.example:6379/0")


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.CANCELING])
def test_refusal_names_the_ended_status(status):
    from vidpipe_dagster.celery_executor import refusal

    run = dg.DagsterRun(job_name="render_project", run_id=str(uuid.uuid4()), status=status)
    why = refusal(run, run.run_id)
    assert why is not None and status.value.lower() in why
    assert (
        refusal(dg.DagsterRun(job_name="render_project", run_id=run.run_id, status=dg.DagsterRunStatus.STARTED), run.run_id)
        is None
    )
    assert "does not exist" in (refusal(None, "abc") or "")


def test_a_redelivered_step_reclaims_its_own_slots_and_no_others(vp_env):
    """Same run + scene = same claim: the slot a killed worker's clips step held is the one its
    redelivered step gets back at once, while the limit keeps every other run waiting."""
    from vidpipe_dagster.pools import DagsterPoolSlots

    instance = vp_env.instance()
    instance.event_log_storage.set_concurrency_slots("video-operations", 1)
    owner = _started_run(instance, run_worker_tags())
    other = _started_run(instance, run_worker_tags())
    killed = DagsterPoolSlots(instance, "video-operations", owner, "clips")
    assert killed._claim("clips[scene-1]")  # the first delivery claimed scene 1, then its worker died
    redelivered = DagsterPoolSlots(instance, "video-operations", owner, "clips")
    cancel = CancelToken()
    timer = threading.Timer(20, cancel.cancel, args=("the redelivered step waited for its own slot",))
    timer.start()
    try:
        hold = redelivered.hold(0, cancel)  # scene 1 (0-based index)
        hold.__enter__()  # at once: no wait, no second slot (a wait would end Interrupted after 20 s)
    finally:
        timer.cancel()
    try:
        info = instance.event_log_storage.get_concurrency_info("video-operations")
        assert [(s.run_id, s.step_key) for s in info.claimed_slots] == [(owner, "clips[scene-1]")]
        assert not DagsterPoolSlots(instance, "video-operations", other, "clips")._claim("clips[scene-1]")
    finally:
        hold.__exit__(None, None, None)
    info = instance.event_log_storage.get_concurrency_info("video-operations")
    assert [s.run_id for s in info.claimed_slots] == []


def test_the_worker_masks_the_broker_password_in_its_output(vp_env, tmp_path):
    """`vidpipe worker` against a broker that is not there: its banner and Celery's connection
    errors name the broker with the password masked."""
    import signal
    import socket
    import time

    from tests.helpers import VIDPIPE

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    secret = f"pw-{uuid.uuid4().hex}"
    env = {**os.environ, "VIDPIPE_CELERY_BROKER": f"amqp://vidpipe:{secret}@127.0.0.1:{port}//"}
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [VIDPIPE, "worker", "--concurrency", "1", "--name", "masked"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 90
            while "Cannot connect" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.3)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert "Cannot connect" in text, text[-3000:]
    assert f"broker amqp://vidpipe:***@127.0.0.1:{port}//" in text  # vidpipe's own line
    assert secret not in text


def test_an_unreachable_broker_is_one_line_naming_the_setting_without_its_password():
    """What a celery run says when it cannot ask the broker for workers (nothing listens on port 1)."""
    from vidpipe_core.config import get_settings
    from vidpipe_core.errors import ConfigurationError
    from vidpipe_dagster.celery_executor import celery_app, queue_consumers

    secret = f"pw-{uuid.uuid4().hex}"
    app = celery_app(get_settings(celery_broker=f"amqp://vidpipe:{secret}@127.0.0.1:1//"), "renders")
    with pytest.raises(ConfigurationError) as caught:
        queue_consumers(app, "renders")
    message = str(caught.value)
    assert message.startswith("VIDPIPE_CELERY_BROKER=amqp://vidpipe:***@127.0.0.1:1// cannot be reached: ")
    assert "check that the broker (RabbitMQ) is running" in message and "\n" not in message and secret not in message
