import dagster as dg

from vidpipe_dagster.assets import render_assets

render_project = dg.define_asset_job(
    "render_project",
    selection=dg.AssetSelection.assets(*render_assets),
    description="Storyboard -> character sheets -> keyframes -> clips -> final video for one project partition.",
    # No executor here: the job takes the Definitions' one (setting `dagster_executor`), so a
    # deployment chooses it by configuration.
)
