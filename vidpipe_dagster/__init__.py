"""The Dagster adapter: partitions, resources, assets, sensors, jobs and the `vidpipe` CLI.
`dagster job execute -m vidpipe_dagster` and `-m vidpipe_dagster.definitions` both load `defs`."""
from vidpipe_dagster.definitions import defs

__all__ = ["defs"]
