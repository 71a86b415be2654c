"""Contracts of the Dagster private API vidpipe uses (vidpipe_dagster/internals.py), pinned to the
Dagster version in requirements.lock: for each name, the signature and the behaviour vidpipe
relies on. A Dagster upgrade that changes one fails here, by name. Tiny jobs on a real instance;
the real uses run in the render, celery (tests/servers) and pool tests."""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import typing
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.workspace.load import location_origins_from_yaml_paths
from dagster._utils.interrupts import capture_interrupts

from vidpipe_dagster import internals
from vidpipe_dagster.definitions import defs
from vidpipe_dagster.runner import CODE_LOCATION_ATTRIBUTE, CODE_LOCATION_MODULE

ROOT = Path(__file__).resolve().parents[2]


@dg.op
def _one() -> int:
    return 1


@dg.job(executor_def=dg.in_process_executor)
def tiny() -> None:
    _one()


def tiny_job() -> dg.JobDefinition:  # module level: what `dg.reconstructable` needs
    return tiny


def _params(fn: typing.Callable[..., object]) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_the_installed_dagster_is_the_pinned_one():
    """Every contract below was checked against this version: an upgrade runs them again."""
    pinned = re.search(r"^dagster==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M)
    assert pinned is not None and dg.__version__ == pinned[1] == "1.13.27"


def test_execute_run_executes_a_run_created_beforehand_and_keeps_its_origin(vp_env):
    instance = vp_env.instance()
    assert _params(internals.execute_run)[:4] == ["job", "dagster_run", "instance", "raise_on_error"]
    recon = dg.reconstructable(tiny_job)
    origin = internals.code_location_origin(CODE_LOCATION_MODULE, CODE_LOCATION_ATTRIBUTE, "tiny")
    run = instance.create_run_for_job(job_def=tiny, remote_job_origin=origin, job_code_origin=recon.get_python_origin())
    result = internals.execute_run(recon, run, instance, raise_on_error=False)
    assert isinstance(result, dg.JobExecutionResult) and result.success and result.run_id == run.run_id
    stored = instance.get_run_by_id(run.run_id)
    assert stored is not None and stored.status == dg.DagsterRunStatus.SUCCESS
    assert stored.remote_job_origin == origin  # what the UI's re-execution reads


def test_the_origin_is_the_one_the_webserver_gives_runs_of_workspace_yaml():
    origin = internals.code_location_origin(CODE_LOCATION_MODULE, CODE_LOCATION_ATTRIBUTE, "render_project")
    [location] = location_origins_from_yaml_paths([str(ROOT / "workspace.yaml")])
    assert origin.repository_origin.code_location_origin.location_name == location.location_name
    assert origin.repository_origin.repository_name == internals.SINGLETON_REPOSITORY_NAME
    assert defs().get_repository_def().name == internals.SINGLETON_REPOSITORY_NAME
    assert origin.job_name == "render_project"
    target = origin.repository_origin.code_location_origin.loadable_target_origin  # type: ignore[attr-defined]
    assert (target.module_name, target.attribute) == ("vidpipe_dagster.definitions", "defs")


def test_one_step_of_a_run_is_planned_and_executed_as_a_celery_task_does(vp_env):
    instance = vp_env.instance()
    assert {"job", "run_config", "step_keys_to_execute", "known_state"} <= set(_params(internals.create_execution_plan))
    assert {"execution_plan", "job", "dagster_run", "instance", "retry_mode", "run_config"} <= set(
        _params(internals.execute_plan_iterator)
    )
    recon = dg.reconstructable(tiny_job)
    run = instance.create_run_for_job(job_def=tiny, job_code_origin=recon.get_python_origin())
    # The task's payload, through the public serde (run worker -> broker -> worker).
    args = internals.ExecuteStepArgs(
        job_origin=recon.get_python_origin(),
        run_id=run.run_id,
        step_keys_to_execute=["_one"],
        instance_ref=instance.get_ref(),
        retry_mode=internals.RetryMode.DISABLED,
        known_state=None,
        print_serialized_events=True,
    )
    packed = json.loads(dg.serialize_value(args))
    unpacked = dg.deserialize_value(json.dumps(packed), internals.ExecuteStepArgs)
    assert (unpacked.run_id, unpacked.step_keys_to_execute, unpacked.retry_mode) == (run.run_id, ["_one"], args.retry_mode)
    job = internals.ReconstructableJob.from_dict(recon.to_dict())
    assert job == recon and type(recon) is internals.ReconstructableJob

    plan = internals.create_execution_plan(
        job, run.run_config, step_keys_to_execute=unpacked.step_keys_to_execute, known_state=unpacked.known_state
    )
    [step] = plan.get_steps_to_execute_in_topo_order()
    assert isinstance(plan, internals.ExecutionPlan) and isinstance(step, internals.ExecutionStep)
    assert plan.step_handle_for_single_step_plans() is not None
    events = list(
        internals.execute_plan_iterator(
            execution_plan=plan,
            job=job,
            dagster_run=run,
            instance=instance,
            retry_mode=unpacked.retry_mode,
            run_config=run.run_config,
        )
    )
    assert dg.DagsterEventType.STEP_SUCCESS in {e.event_type for e in events}
    assert all(json.loads(dg.serialize_value(e)) for e in events)  # what the task returns


def test_an_engine_event_carries_vidpipes_metadata_and_marker(vp_env):
    instance = vp_env.instance()
    run = instance.create_run_for_job(job_def=tiny)
    data = internals.EngineEventData({"Celery worker": "w1@test", "pid": "123"}, marker_end="celery_queue_wait")
    instance.report_engine_event("vidpipe: step taken", run, data)
    [entry] = [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.message == "vidpipe: step taken"]
    stored = entry.dagster_event.engine_event_data  # type: ignore[union-attr]
    assert stored.metadata["Celery worker"].value == "w1@test" and stored.marker_end == "celery_queue_wait"


def test_the_retries_config_and_the_mode_a_step_runs_with():
    field = internals.get_retries_config()
    assert field.default_value == {"enabled": {}}
    assert internals.RetryMode.from_config({"enabled": {}}) is internals.RetryMode.ENABLED
    assert internals.RetryMode.from_config({"disabled": {}}) is internals.RetryMode.DISABLED
    # What the run worker sends with each step: the worker defers retries to the run worker.
    assert internals.RetryMode.ENABLED.for_inner_plan() is internals.RetryMode.DEFERRED
    assert internals.RetryMode.DISABLED.for_inner_plan() is internals.RetryMode.DISABLED


def test_the_executor_interface_names_these_types():
    params = inspect.signature(dg.Executor.execute).parameters
    named = {name: str(params[name].annotation).strip("'\"").rpartition(".")[2] for name in ("plan_context", "execution_plan")}
    assert named == {
        "plan_context": internals.PlanOrchestrationContext.__name__,
        "execution_plan": internals.ExecutionPlan.__name__,
    }
    assert internals.PlanOrchestrationContext.__module__ == "dagster._core.execution.context.system"


def test_a_captured_interrupt_is_seen():
    assert internals.check_captured_interrupt() is False
    with capture_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        assert internals.check_captured_interrupt() is True
    assert internals.check_captured_interrupt() is False  # cleared when the capture ends


@pytest.mark.parametrize("home", [True, False])
def test_the_sqlite_event_log_is_recognised(vp_env, home):
    instance = vp_env.instance() if home else dg.DagsterInstance.ephemeral()
    assert internals.is_sqlite_event_log(instance.event_log_storage) is home


def test_the_pool_claims_own_storage_object_shares_the_slots_but_not_the_log_lock(vp_env):
    """`slot_event_log`: for the sharded SQLite storage, one more object per process on the same
    files (a slot claimed through it is the instance's slot), with its own thread lock, per instance; the
    instance's storage holds its lock while a connection is open, which made claims wait for log
    writes. Any other storage is used as it is."""
    instance = vp_env.instance()
    storage = instance.event_log_storage
    own = internals.slot_event_log(instance)
    assert own is not storage and internals.slot_event_log(instance) is own  # one per instance
    assert own._db_lock is not storage._db_lock  # the lock `_connect` takes for every connection
    assert os.path.dirname(own.path_for_shard("index")) == os.path.dirname(storage.path_for_shard("index"))
    pool = "contract-pool"
    storage.set_concurrency_slots(pool, 1)
    run = instance.create_run_for_job(tiny)
    assert own.claim_concurrency_slot(pool, run.run_id, "step-a").is_claimed
    info = storage.get_concurrency_info(pool)  # the instance sees the claim made through the other object
    assert info.slot_count == 1 and [s.step_key for s in info.claimed_slots] == ["step-a"]
    assert not storage.claim_concurrency_slot(pool, run.run_id, "step-b").is_claimed
    own.free_concurrency_slot_for_step(run.run_id, "step-a")
    assert storage.get_concurrency_info(pool).claimed_slots == []
    # What its `_connect` replaces: Dagster's, one engine per connection, behind the object's lock.
    assert list(inspect.signature(type(storage)._connect).parameters) == ["self", "shard"]
    assert isinstance(storage._initialized_dbs, set) and callable(storage._initdb)
    assert list(own._engines) == ["index"]  # every claim and free above reused one engine
    ephemeral = dg.DagsterInstance.ephemeral()
    assert internals.slot_event_log(ephemeral) is ephemeral.event_log_storage
