import dagster as dg

from vidpipe_dagster.assets import render_assets
from vidpipe_dagster.jobs import render_project
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.sensors import inbox_sensor

defs = dg.Definitions(
    assets=render_assets,
    jobs=[render_project],
    sensors=[inbox_sensor],
    resources={"vidpipe": VidpipeResource()},
)
