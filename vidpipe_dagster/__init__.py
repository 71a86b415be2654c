"""The Dagster adapter: partitions, resources, assets, sensors, jobs and the `vidpipe` CLI.
`dagster job execute -m vidpipe_dagster` and `-m vidpipe_dagster.definitions` both load `defs`.

`defs` is loaded on first use, not on import: the `vidpipe` command imports this package, and
loading the definitions reads the settings, so a bad setting would otherwise end in a traceback
before the command can say which setting is wrong."""

from typing import Any

__all__ = ["defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        from vidpipe_dagster.definitions import defs

        return defs
    raise AttributeError(f"module 'vidpipe_dagster' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
