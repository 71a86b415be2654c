"""The Dagster adapter: partitions, resources, assets, sensors, jobs and the `vidpipe` CLI.
`dagster job execute -m vidpipe_dagster` and `-m vidpipe_dagster.definitions` both load `defs`.

`defs` is imported from `vidpipe_dagster.definitions` on first use, not when this package is
imported: the `vidpipe` command imports this package, and importing the definitions imports
Dagster and every asset, which `vidpipe --help` must not pay for (tests/test_cli_startup.py)."""

from typing import Any

__all__ = ["defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        # Lazy: with the import at the top `vidpipe --help` takes 1.82 s instead of 0.34 s (medians
        # of 15, load ~2.6, x0.19): it would import Dagster and every asset.
        from vidpipe_dagster.definitions import defs

        return defs
    raise AttributeError(f"module 'vidpipe_dagster' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
