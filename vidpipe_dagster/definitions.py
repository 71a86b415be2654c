import dagster as dg

from vidpipe_core.config import get_settings
from vidpipe_dagster.assets import render_assets
from vidpipe_dagster.celery_executor import vidpipe_celery_executor
from vidpipe_dagster.create import delete_project, new_project, render_new_project
from vidpipe_dagster.jobs import render_project
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.sensors import heal_dead_runs, inbox_sensor

EXECUTORS = {
    "in_process": dg.in_process_executor,
    "multiprocess": dg.multiprocess_executor,
    "celery": vidpipe_celery_executor,  # steps on `vidpipe worker` processes, any host (celery_executor)
}


def _executor() -> dg.ExecutorDefinition:
    """VIDPIPE_DAGSTER_EXECUTOR (default in_process). The five steps form a chain, so a process per
    step never runs two at once; it only adds ~1.5 s of start-up per step (bench/README section 3:
    6.65 s vs 0.87 s per run). Clips run in parallel as threads inside their step either way."""
    return EXECUTORS[get_settings().dagster_executor]


defs = dg.Definitions(
    assets=render_assets,
    jobs=[render_project, new_project, delete_project],
    sensors=[inbox_sensor, heal_dead_runs, render_new_project],
    resources={"vidpipe": VidpipeResource()},
    executor=_executor(),
)


def render_project_job() -> dg.JobDefinition:
    """The resolved `render_project` job (with this deployment's executor and resources), and a
    module-level function for `dg.reconstructable`."""
    return defs.resolve_job_def("render_project")
