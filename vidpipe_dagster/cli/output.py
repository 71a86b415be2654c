"""What the `vidpipe` command prints: a result on stdout (one line, or one JSON document with
--json), notes and errors on stderr, and the error report that every command ends with."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any, ClassVar

import typer
from rich.console import Console
from rich.markup import escape

from vidpipe_core.config import settings_error
from vidpipe_core.errors import ConfigurationError, VidpipeError
from vidpipe_core.text import escape_invisible
from vidpipe_dagster.cli.exits import EXIT_INTERRUPTED, exit_code
from vidpipe_dagster.cli.logs import _write_log
from vidpipe_dagster.cli.scrub import _scrub

console = Console()
err = Console(stderr=True)


class _Options:
    debug = False  # the global --debug flag
    verbose = False  # the global --verbose flag
    # Set by a command run with --json: what its document holds before anything ran, so an
    # error still ends in one JSON document on stdout ("run": the render/resume shape).
    json = False
    json_kind = ""
    json_base: ClassVar[dict[str, Any]] = {}


def _json_mode(kind: str, **base: Any) -> None:
    """The command prints one JSON document on stdout, whatever happens."""
    _Options.json, _Options.json_kind, _Options.json_base = True, kind, base


def _emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _result(line: str) -> None:
    """The command's result: one line on stdout, never wrapped, styled or truncated."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _note(text: str) -> None:
    """Progress, notes and warnings: stderr, plain text."""
    err.print(text, markup=False, highlight=False, soft_wrap=True)


def _report(exc: BaseException, code: int) -> int:
    """One line on stderr (and, with --json, the command's document on stdout). The traceback
    is printed with --debug; otherwise, for configuration errors and unexpected exceptions, it
    goes to a log file that the line names."""
    if isinstance(exc, VidpipeError):
        line = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        line = "interrupted"
    else:
        first = str(exc).strip().splitlines()
        line = f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
    line = escape_invisible(_scrub(line))  # a message quoting text from elsewhere: never reordered on screen
    message = line
    trace = _scrub(f"$ vidpipe {' '.join(sys.argv[1:])}\n" + "".join(traceback.format_exception(exc)))
    path = None
    if _Options.debug:
        sys.stderr.write(trace)
        sys.stderr.flush()
    elif isinstance(exc, ConfigurationError) or not isinstance(exc, (VidpipeError, KeyboardInterrupt)):
        path = _write_log(trace)
        line += (
            f" (full traceback in {path}; run with --debug to print it)"
            if path
            else " (run with --debug to print the full traceback)"
        )
    err.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
    if _Options.json:
        _emit_json(_error_document(type(exc).__name__, message, code, path))
    return code


def _error_document(error: str, message: str, code: int, log: Path | None) -> dict[str, Any]:
    """The --json document of a command that failed before it had a result."""
    if _Options.json_kind == "run":
        status = "interrupted" if code == EXIT_INTERRUPTED else "failed"
        failure = {"stage": None, "scene": None, "message": message, "error": error}
        return {
            **_run_document(_Options.json_base.get("project_id"), None, status, None, code),
            "failures": [failure],
            "log": str(log) if log else None,
        }
    return {**_Options.json_base, "exit_code": code, "error": {"error": error, "message": message}}


def _run_document(project_id: str | None, run_id: str | None, status: str, video: str | None, code: int) -> dict[str, Any]:
    """The --json document of render, resume, stitch and regenerate (README "JSON output")."""
    return {
        "project_id": project_id,
        "run_id": run_id,
        "status": status,
        "video": video,
        "exit_code": code,
        "failures": [],
        "log": None,
        **{k: v for k, v in _Options.json_base.items() if k != "project_id"},
    }


def _settings_error(exc: Exception) -> Exception:
    """A setting that cannot be read, as the ConfigurationError it is (else ``exc`` itself)."""
    error = settings_error(exc)
    if error is None:
        return exc
    error.__cause__ = exc
    return error


def _fail(exc: Exception) -> typer.Exit:
    return typer.Exit(_report(exc, exit_code(exc)))
