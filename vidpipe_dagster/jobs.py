import dagster as dg

from vidpipe_dagster.assets import render_assets
from vidpipe_dagster.resources import VidpipeResource

render_project = dg.define_asset_job(
    "render_project",
    selection=dg.AssetSelection.assets(*render_assets),
    description="Storyboard -> character sheets -> keyframes -> clips -> final video for one project partition.",
    # No executor here: the job takes the Definitions' one (setting `dagster_executor`), so a
    # deployment chooses it by configuration.
)

_in_process: list[dg.JobDefinition] = []


def render_project_in_process() -> dg.JobDefinition:
    """`render_project` with the code location's assets and default resource (definitions.py) and the
    in-process executor, whatever the deployment's executor: what `runner.render` runs (the CLI,
    tests, bench), so every step's progress reaches the calling process. A module-level function,
    so `dg.reconstructable` can point at it."""
    if not _in_process:  # resolved once per process
        defs = dg.Definitions(
            assets=render_assets,
            jobs=[render_project],
            resources={"vidpipe": VidpipeResource()},
            executor=dg.in_process_executor,
        )
        _in_process.append(defs.resolve_job_def(render_project.name))
    return _in_process[0]
