"""`VIDPIPE_DAGSTER_EXECUTOR=celery`: every step of a run is a Celery task that a `vidpipe worker`
on any host executes, sent through the broker (RabbitMQ; `VIDPIPE_CELERY_BROKER`).

Built on dagster-celery's execution loop and task, with four differences:

- **No secret in Dagster.** The executor's config takes only `retries`. The broker and result
  backend URLs (`VIDPIPE_CELERY_BROKER`, `VIDPIPE_CELERY_BACKEND`) and the queue
  (`VIDPIPE_CELERY_QUEUE`) are read from the environment by the run worker and by each worker,
  so no run config, tag or table ever holds the broker's password. (dagster-celery's own
  `worker start -y` writes the broker URL into a file under DAGSTER_HOME: vidpipe has its own
  worker command, `vidpipe worker`.)
- **Late acknowledgement.** A task is acknowledged when it ends (`task_acks_late`,
  `task_reject_on_worker_lost`, one task prefetched per worker process), so the step of a worker
  that dies (SIGKILL, a lost host) goes back to the queue and another worker runs it. The step
  picks up where the dead one stopped: it takes its own run's project lock back, re-claims the
  same `video-operations` slots (a claim is per run + scene) and re-attaches to the operations
  already paid for in the ledger.
- **A step of a run that has ended refuses to run.** A redelivered task may reach a worker after
  its run was marked failed (its run worker died and healing failed it) or was cancelled, or
  after its step already succeeded (the worker died between the result and the acknowledgement);
  it then returns at once and does nothing.
- **The run worker owns the run.** The process that runs this executor tags the run with its own
  pid and host and `vidpipe/owner: run-worker`, and beats the run's heartbeat for the whole run,
  also while a step waits in the queue; the steps do not re-tag it (see `asset_step.asset_step`). Healing
  (vidpipe_dagster.healing) thus judges a celery run by its run worker, on any host.
- **No worker, no wait forever.** Before sending a step, the run worker asks the broker whether
  any worker consumes the queue, and fails the run after `VIDPIPE_CELERY_WORKER_WAIT_S` if none
  does (a `dagster job execute` with the celery executor and no worker would otherwise hang).
- **Nothing left on the broker.** With the `rpc://` backend the results come back on a reply
  queue that Celery declares per process and never deletes (it has no consumer: results are
  fetched with basic.get, so `auto_delete` never fires); the run worker deletes it when its run
  ends, and `result_expires` bounds what a killed run worker leaves (RabbitMQ drops the queue an
  hour after its last use). Results in another backend (redis) are forgotten the same way.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import dagster as dg

from vidpipe_core.config import Settings, get_settings
from vidpipe_core.errors import ConfigurationError, one_line, redact_url
from vidpipe_dagster.healing import FINISHED, run_heartbeat, run_worker_tags
from vidpipe_dagster.internals import (
    EngineEventData,
    ExecuteStepArgs,
    ExecutionPlan,
    ExecutionStep,
    PlanOrchestrationContext,
    ReconstructableJob,
    RetryMode,
    check_captured_interrupt,
    create_execution_plan,
    execute_plan_iterator,
    get_retries_config,
)

# celery, kombu and dagster_celery are imported where they are used, not here: every render
# imports this module (through the assets), and importing them would add 0.11 s to it (0.70 s
# against 0.60 s for `import dagster` alone, medians of 7, x1.17), for the celery executor only.
if TYPE_CHECKING:
    from celery import Celery  # type: ignore[import-untyped]
    from celery.result import AsyncResult  # type: ignore[import-untyped]

log = logging.getLogger("vidpipe.celery")

TASK_NAME = "vidpipe.execute_step"
MAX_PRIORITY = 10
# dagster-celery's broker options: give up on an unreachable broker after ~1 s instead of forever.
BROKER_TRANSPORT_OPTIONS = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# How long a result outlives its last use: an rpc:// reply queue that a killed run worker could not
# delete is dropped by RabbitMQ this long after its last read (a live run worker reads it every
# second, so it never expires under a running run); a redis result key expires alike.
RESULT_EXPIRES_S = 3600


def celery_config(settings: Settings, queue: str | None = None) -> dict[str, Any]:
    """The Celery settings shared by the run worker (which sends steps) and `vidpipe worker`
    (which runs them): both must declare the queue alike, or RabbitMQ refuses the second one."""
    from kombu import Exchange, Queue

    name = queue or settings.celery_queue
    return {
        "broker_url": settings.celery_broker,
        "result_backend": settings.celery_backend,
        "broker_transport_options": BROKER_TRANSPORT_OPTIONS,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": name,
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name, queue_arguments={"x-max-priority": MAX_PRIORITY})
        ],
        "task_queue_max_priority": MAX_PRIORITY,
        "task_default_priority": 5,
        # A step is acknowledged when it ends: a killed worker's step goes back to the queue.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": RESULT_EXPIRES_S,
        "worker_hijack_root_logger": False,
        # A worker that loses the broker stops its steps: their tasks are redelivered to another worker.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }


_ON_WORKER: ContextVar[bool] = ContextVar("vidpipe_on_celery_worker", default=False)


def running_on_worker() -> bool:
    """Whether the calling step runs as a task on a `vidpipe worker` (not in its run worker): such a
    step leaves the run's owner tags and heartbeat to the run worker (see `asset_step.asset_step`)."""
    return _ON_WORKER.get()


_apps: dict[tuple[str, str, str], Celery] = {}
_apps_lock = threading.Lock()


def celery_app(settings: Settings | None = None, queue: str | None = None) -> Celery:
    """The Celery app for these settings, with vidpipe's step task registered (one per process
    and broker/backend/queue, so result polling shares one connection)."""
    from celery import Celery

    settings = settings or get_settings()
    name = queue or settings.celery_queue
    key = (settings.celery_broker, settings.celery_backend, name)
    with _apps_lock:
        app = _apps.get(key)
        if app is None:
            app = Celery("vidpipe", set_as_current=False)
            app.conf.update(celery_config(settings, name))
            _register_task(app)
            _apps[key] = app
        return app


def _register_task(app: Celery) -> None:
    @app.task(bind=True, name=TASK_NAME)
    def execute_step(self: Any, execute_step_args_packed: dict[str, Any], executable_dict: dict[str, Any]) -> list[str]:
        return run_step(
            execute_step_args_packed,
            executable_dict,
            worker=str(self.request.hostname or ""),
            redelivered=_redelivered(self),
            reply_to=str(self.request.reply_to or ""),
        )


def _redelivered(task: Any) -> bool:
    info = getattr(task.request, "delivery_info", None) or {}
    return bool(info.get("redelivered"))


def refusal(run: dg.DagsterRun | None, run_id: str) -> str | None:
    """Why a step of this run must not run now (None: it may): the run is gone or has ended."""
    if run is None:
        return f"run {run_id} does not exist in this Dagster instance"
    if run.status in FINISHED or run.status == dg.DagsterRunStatus.CANCELING:
        return f"run {run_id[:8]} has already ended ({run.status.value.lower()})"
    return None


def _already_done(instance: dg.DagsterInstance, run_id: str, step_keys: Sequence[str]) -> str | None:
    """A task redelivered after its step succeeded (its worker died between the result and the
    acknowledgement) must not run the step a second time in the same run."""
    done = {e.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
    finished = [key for key in step_keys if key in done]
    return f"step {', '.join(finished)} already succeeded in run {run_id[:8]}" if finished else None


def run_step(
    packed_args: dict[str, Any],
    executable_dict: dict[str, Any],
    *,
    worker: str,
    redelivered: bool = False,
    reply_to: str = "",
) -> list[str]:
    """What a worker does with one task: dagster-celery's `execute_plan` task, refused when the
    step's run has ended. Returns the step's events, serialized, for the run worker (through the
    queue `reply_to` with the rpc:// backend, named in the step's first event)."""
    from dagster_celery.core_execution_loop import DELEGATE_MARKER

    args = dg.deserialize_value(json.dumps(packed_args), ExecuteStepArgs)
    instance = dg.DagsterInstance.from_ref(args.instance_ref)  # type: ignore[arg-type]
    steps = ", ".join(args.step_keys_to_execute or [])
    run = instance.get_run_by_id(args.run_id)
    why = refusal(run, args.run_id) or _already_done(instance, args.run_id, args.step_keys_to_execute or [])
    if why is not None or run is None:
        log.warning("refused step %s: %s (a task delivered again does nothing)", steps, why)
        if run is not None:
            instance.report_engine_event(
                f"vidpipe: step {steps} not executed on celery worker {worker}: {why}",
                run,
                EngineEventData({"Celery worker": worker, "pid": str(os.getpid())}),
            )
        return []
    recon_job = ReconstructableJob.from_dict(executable_dict)
    plan = create_execution_plan(
        recon_job, run.run_config, step_keys_to_execute=args.step_keys_to_execute, known_state=args.known_state
    )
    note = " (redelivered: the worker that had it died)" if redelivered else ""
    engine_event = instance.report_engine_event(
        f"Executing steps {steps} in celery worker{note}",
        run,
        EngineEventData(
            {
                "step_keys": steps,
                "Celery worker": worker,
                "pid": str(os.getpid()),
                "redelivered": str(redelivered),
                "reply queue": reply_to,
            },
            marker_end=DELEGATE_MARKER,
        ),
        step_key=plan.step_handle_for_single_step_plans().to_key(),  # type: ignore[union-attr]
    )
    events = [engine_event]
    token = _ON_WORKER.set(True)
    try:
        events.extend(
            execute_plan_iterator(
                execution_plan=plan,
                job=recon_job,
                dagster_run=run,
                instance=instance,
                retry_mode=args.retry_mode or RetryMode.DISABLED,
                run_config=run.run_config,
            )
        )
    finally:
        _ON_WORKER.reset(token)
    return [dg.serialize_value(event) for event in events]


def _submit(
    _dagster_app: Any,
    plan_context: PlanOrchestrationContext,
    step: ExecutionStep,
    queue: str,
    priority: int,
    known_state: Any,
) -> AsyncResult:
    """Send one step to the queue (dagster-celery's `_submit_task`, on vidpipe's app)."""
    args = ExecuteStepArgs(
        job_origin=plan_context.reconstructable_job.get_python_origin(),
        run_id=plan_context.dagster_run.run_id,
        step_keys_to_execute=[step.key],
        instance_ref=plan_context.instance.get_ref(),
        retry_mode=plan_context.executor.retries.for_inner_plan(),
        known_state=known_state,
        print_serialized_events=True,
    )
    task = celery_app(queue=queue).tasks[TASK_NAME]
    packed = json.loads(dg.serialize_value(args))
    signature = task.si(execute_step_args_packed=packed, executable_dict=plan_context.reconstructable_job.to_dict())
    return signature.apply_async(priority=priority, queue=queue, routing_key=queue)


class VidpipeCeleryExecutor(dg.Executor):
    def __init__(self, retries: RetryMode) -> None:
        self._retries = retries

    @property
    def retries(self) -> RetryMode:
        return self._retries

    # Read by dagster-celery's loop (make_app): only the queue and defaults, never the broker URL.
    def app_args(self) -> dict[str, Any]:
        from dagster_celery.config import dict_wrapper

        settings = get_settings()
        source = {"task_default_queue": settings.celery_queue, "task_default_priority": 5, "worker_prefetch_multiplier": 1}
        return {"broker": "memory://", "backend": "cache+memory://", "include": [], "config_source": dict_wrapper(source)}

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[dg.DagsterEvent]:
        from dagster_celery.core_execution_loop import core_celery_execution_loop

        settings = get_settings()
        instance, run_id = plan_context.instance, plan_context.dagster_run.run_id
        instance.add_run_tags(run_id, run_worker_tags())
        sent: list[AsyncResult] = []

        def submit(*args: Any) -> AsyncResult:
            result = _submit(*args)
            sent.append(result)
            return result

        with run_heartbeat(instance, run_id, settings.heartbeat_interval_s, "vidpipe-run-worker"):
            try:
                if execution_plan.step_keys_to_execute:
                    yield from _await_worker(plan_context, settings)
                yield from core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit)
            finally:
                clean_up(sent)


def queue_consumers(app: Celery, queue: str) -> int | None:
    """How many consumers (`vidpipe worker` processes) the broker has on `queue`, 0 when the queue
    does not exist; None when the broker cannot say (only AMQP reports consumers; a redis broker
    does not). ConfigurationError naming VIDPIPE_CELERY_BROKER when the broker cannot be reached."""
    from kombu.exceptions import OperationalError

    with app.connection_for_write() as conn:
        try:
            conn.ensure_connection(**BROKER_TRANSPORT_OPTIONS)
        except (OperationalError, OSError, *conn.connection_errors) as exc:
            raise ConfigurationError(
                f"VIDPIPE_CELERY_BROKER={redact_url(str(app.conf.broker_url))} cannot be reached: "
                f"{one_line(exc)}; check that the broker (RabbitMQ) is running and the URL is right"
            ) from exc
        if conn.transport.driver_type != "amqp":
            return None
        channel = conn.channel()
        try:
            return int(channel.queue_declare(queue=queue, passive=True).consumer_count)
        except conn.channel_errors as exc:
            if getattr(exc, "code", None) == 404:  # no such queue: no worker ever declared it
                return 0
            raise
        finally:
            try:
                channel.close()
            except Exception:  # closed by the broker after a 404
                pass


def _await_worker(plan_context: PlanOrchestrationContext, settings: Settings) -> Iterator[dg.DagsterEvent]:
    """Return once a worker consumes the run's queue; fail the run (nothing sent) when none does
    within VIDPIPE_CELERY_WORKER_WAIT_S. A SIGINT/SIGTERM ends the wait: the loop then stops the run."""
    app, queue, wait_s = celery_app(settings), settings.celery_queue, settings.celery_worker_wait_s
    deadline = time.monotonic() + wait_s
    said = False
    while (consumers := queue_consumers(app, queue)) == 0 and not check_captured_interrupt():
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"no `vidpipe worker` takes steps from queue {queue!r} on the broker "
                f"{redact_url(settings.celery_broker)} (waited {wait_s:g} s, VIDPIPE_CELERY_WORKER_WAIT_S); "
                f"start one on any host (`vidpipe worker --queue {queue}`, README: Deploying on several machines), "
                "or unset VIDPIPE_DAGSTER_EXECUTOR to run the steps in this process; no step was sent"
            )
        if not said:
            said = True
            yield dg.DagsterEvent.engine_event(
                plan_context,
                f"no `vidpipe worker` takes steps from queue {queue!r} yet: waiting up to {wait_s:g} s for one",
                EngineEventData(),
            )
        time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
    if said and consumers:
        yield dg.DagsterEvent.engine_event(
            plan_context, f"{consumers} worker(s) take steps from queue {queue!r}", EngineEventData()
        )


def clean_up(sent: Sequence[AsyncResult]) -> None:
    """After a run: forget its results (a redis backend deletes their keys) and delete its
    rpc:// reply queue, which Celery itself never deletes (module docstring). Every result has
    been read by then, or never will be; a task delivered after this has its result dropped."""
    from celery.backends.rpc import RPCBackend  # type: ignore[import-untyped]  # celery has no type hints

    reply_queues = sorted({result.backend.oid for result in sent if isinstance(result.backend, RPCBackend)})
    try:
        for result in sent:
            result.forget()
        if reply_queues:
            with sent[0].app.connection_for_write() as conn:
                for name in reply_queues:
                    conn.default_channel.queue_delete(name)
    except Exception as exc:  # never hide the run's own outcome; the queue expires anyway
        log.warning(
            "could not clean up the run's results on the broker (%s): %s; they expire %d s after their last use",
            ", ".join(reply_queues) or "no reply queue",
            one_line(exc),
            RESULT_EXPIRES_S,
        )


@dg.executor(
    name="celery",
    config_schema={"retries": get_retries_config()},
    requirements=dg.multiple_process_executor_requirements(),
)
def vidpipe_celery_executor(init_context: dg.InitExecutorContext) -> VidpipeCeleryExecutor:
    """Steps as Celery tasks on `vidpipe worker` processes. The broker, backend and queue come
    from VIDPIPE_CELERY_BROKER / VIDPIPE_CELERY_BACKEND / VIDPIPE_CELERY_QUEUE in the environment
    of the run worker and of each worker; the config takes only `retries`."""
    return VidpipeCeleryExecutor(retries=RetryMode.from_config(init_context.executor_config["retries"]))  # type: ignore[arg-type]
