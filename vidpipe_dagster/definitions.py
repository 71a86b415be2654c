"""The code location: `defs`, what workspace.yaml, `dagster dev` and `dagster job execute -m
vidpipe_dagster` load. It is loaded when Dagster asks for it (`@dg.definitions`), not when this
module is imported, so importing it reads no setting; loading it reads the settings through the
vidpipe resource, which also chooses the executor."""

import dagster as dg

from vidpipe_dagster.approve import approve_project, render_approved_project
from vidpipe_dagster.assets import render_assets
from vidpipe_dagster.celery_executor import vidpipe_celery_executor
from vidpipe_dagster.create import delete_project, new_project, render_new_project
from vidpipe_dagster.jobs import render_project
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.sensors import heal_dead_runs, inbox_sensor
from vidpipe_dagster.steering import edit_scene, render_retake, retake

EXECUTORS = {
    "in_process": dg.in_process_executor,
    "multiprocess": dg.multiprocess_executor,
    "celery": vidpipe_celery_executor,  # steps on `vidpipe worker` processes, any host (celery_executor)
}


def build_defs(vidpipe: VidpipeResource) -> dg.Definitions:
    """The assets, jobs and sensors with ``vidpipe`` as their one source of settings, and the executor
    it names (`dagster_executor`, default in_process). The five steps form a chain, so a process
    per step never runs two at once; it only adds ~1.5 s of start-up per step (bench/README section
    3: 6.65 s vs 0.87 s per run). Clips run in parallel as threads inside their step either way."""
    return dg.Definitions(
        assets=render_assets,
        jobs=[render_project, new_project, approve_project, delete_project, edit_scene, retake],
        sensors=[inbox_sensor, heal_dead_runs, render_new_project, render_approved_project, render_retake],
        resources={"vidpipe": vidpipe},
        executor=EXECUTORS[vidpipe.vidpipe_settings().dagster_executor],
    )


@dg.definitions
def defs() -> dg.Definitions:
    """This deployment's definitions: the vidpipe resource with the environment's settings."""
    return build_defs(VidpipeResource())


def render_project_job() -> dg.JobDefinition:
    """The resolved `render_project` job (with this deployment's executor and resources), and a
    module-level function for `dg.reconstructable`."""
    return defs().resolve_job_def("render_project")
