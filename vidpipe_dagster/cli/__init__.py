"""The `vidpipe` command: register projects, render them through Dagster, show where they stand.

The output contract (README "Using it", "JSON output", "Errors and exit codes"): a command's result
(a video's path, a project id, a report) is all that goes to stdout, on one unwrapped line or as
one JSON document with --json; progress, notes, warnings and errors go to stderr.

Each command group has its module (`projects`, `running`, `admin`), on the typer app of `base`;
what they print is in `output` (JSON, notes, the error report), `progress` (the live table) and
`logs` (log files); the exit codes in `exits`, secrets taken out of every message in `scrub`."""

from __future__ import annotations

import os
import sys

from vidpipe_core.errors import ConfigurationError
from vidpipe_dagster.cli import admin, projects, running
from vidpipe_dagster.cli.base import app
from vidpipe_dagster.cli.exits import exit_code
from vidpipe_dagster.cli.output import _report, _settings_error

__all__ = ["app", "main"]

# The commands, in the order `vidpipe --help` lists them.
app.command()(projects.new)
app.command()(running.render)
app.command()(running.approve)
app.command()(running.demo)
app.command()(running.resume)
app.command()(running.regenerate)
app.command()(running.retake)
app.command()(running.stitch)
app.command()(projects.edit)
app.command()(projects.status)
app.command("list")(projects.list_cmd)
app.command()(projects.delete)
app.command()(admin.worker)
app.command()(admin.migrate)


def _check_flag_variables() -> None:
    """VIDPIPE_DEBUG and VIDPIPE_VERBOSE (the --debug and --verbose flags) are settings like the
    others: a value that is not true or false is one line, exit 2 (typer would draw a usage box)."""
    from pydantic import TypeAdapter, ValidationError

    for name in ("VIDPIPE_DEBUG", "VIDPIPE_VERBOSE"):
        value = os.environ.get(name, "").strip()
        try:
            if value:
                TypeAdapter(bool).validate_python(value)  # what typer accepts: 1/0, true/false, yes/no, on/off
        except ValidationError:
            raise ConfigurationError(f"setting {name}: {value!r} is not true or false; set it to 1 or 0, or unset it") from None


def main() -> None:
    """The console script. Every command's errors end here as one line and an exit code: a
    configuration error exits 2, anything unexpected exits 1 with its traceback in a log file."""
    try:
        _check_flag_variables()
        app()
    except KeyboardInterrupt as exc:
        sys.exit(_report(exc, exit_code(exc)))
    except Exception as exc:
        exc = _settings_error(exc)
        sys.exit(_report(exc, exit_code(exc)))
