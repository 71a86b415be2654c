"""The base of the `vidpipe` command: the typer app, its global options, and what every command shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand, TyperGroup

from vidpipe_core.config import Settings
from vidpipe_dagster.cli.output import _Options, _result

if TYPE_CHECKING:
    from vidpipe_core.services import Services


def _plain_flags(params: list[Any]) -> list[Any]:
    """``params`` with no value type shown for a flag: typer's help writes `<bool>` beside
    `--json` or `--help`, which take no value."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


class _App(typer.Typer):
    """Every command (and the group) lists its flags without a `<bool>` value type."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


# Markdown help: paragraphs reflow to the terminal's width, so docstrings wrap naturally.
app = _App(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="vidpipe: a text prompt in, a finished multi-scene video out.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("vidpipe")
        except PackageNotFoundError:  # run from a checkout that was never installed
            number = "unknown (not installed)"
        _result(f"vidpipe {number}")
        raise typer.Exit()


@app.callback()
def _global_options(
    show_version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_version, help="Print vidpipe's version and exit."
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        envvar="VIDPIPE_DEBUG",
        show_default=True,
        help="Print the full traceback of an error (otherwise it goes to a log file under `<data dir>/logs`).",
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        envvar="VIDPIPE_VERBOSE",
        show_default=True,
        help="Stream Dagster's log of a run to stderr as it happens, instead of the progress table.",
    ),
) -> None:
    _Options.debug = debug
    _Options.verbose = verbose
    # Each command starts outside --json mode (in one process, e.g. a test, an earlier one may have set it).
    _Options.json, _Options.json_kind, _Options.json_base = False, "", {}


def _services(settings: Settings | None = None, *, housekeeping: bool = True) -> Services:
    from vidpipe_core.services import Services  # not the runner's: `vidpipe edit` then imports no Dagster

    return Services.create(settings, housekeeping=housekeeping)


def _startup_checks() -> None:
    from vidpipe_core.media import check_ffmpeg

    check_ffmpeg()
