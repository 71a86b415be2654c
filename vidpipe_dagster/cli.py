"""The `vidpipe` command: register projects, render them through Dagster, show where they stand.

The output contract (README "Using it", "JSON output", "Errors and exit codes"): a command's result
(a video's path, a project id, a report) is all that goes to stdout, on one unwrapped line or as
one JSON document with --json; progress, notes, warnings and errors go to stderr."""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from vidpipe_core.config import Settings, get_settings, settings_error
from vidpipe_core.errors import ConfigurationError, InvalidInput, ProjectBusy, ProjectNotFound, VidpipeError, invalid, scrub_url
from vidpipe_core.request import FIELDS, ProjectRequest, check_fields, description, offered
from vidpipe_core.steps import CHARACTERS, CLIPS, FINAL_VIDEO, KEYFRAMES, STAGES
from vidpipe_core.steps.report import ProgressEvent
from vidpipe_core.text import escape_invisible

if TYPE_CHECKING:
    import dagster as dg

    from vidpipe_core.services import Services
    from vidpipe_dagster.runner import StepFailure


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
console = Console()
err = Console(stderr=True)

DEMO_PROMPT = (
    "A paper boat sets off down a rain-filled gutter at dawn. It rides a tiny waterfall into a city canal. "
    "A curious duck follows it past moored houseboats. The boat drifts out into a wide harbour as the sun rises."
)


# Exit codes (README "Errors and exit codes"): 1 a failure, 2 a usage or configuration error
# (fix the input or the setting named), 3 the project is busy (another run holds it), 130 interrupted.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
USAGE_ERRORS = ("InvalidInput", "InvalidInputs", "ProjectNotFound", "ConfigurationError")
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_SECRET_URLS = ("VIDPIPE_DATABASE_URL", "VIDPIPE_ARTIFACTS_URL", "VIDPIPE_CELERY_BROKER", "VIDPIPE_CELERY_BACKEND")


class _Options:
    debug = False  # the global --debug flag
    verbose = False  # the global --verbose flag
    # Set by a command run with --json: what its document holds before anything ran, so an
    # error still ends in one JSON document on stdout ("run": the render/resume shape).
    json = False
    json_kind = ""
    json_base: ClassVar[dict[str, Any]] = {}


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


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, (InvalidInput, ProjectNotFound, ConfigurationError)):
        return EXIT_USAGE
    if isinstance(exc, ProjectBusy):
        return EXIT_BUSY
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_FAILURE


def run_exit_code(found: list[StepFailure]) -> int:
    """The exit code of a failed run, from the errors its steps raised: 3 when the project was
    busy, 2 when an input or setting must change, 1 otherwise."""
    classes = {f.error_class for f in found}
    if "ProjectBusy" in classes:
        return EXIT_BUSY
    if classes & set(USAGE_ERRORS):
        return EXIT_USAGE
    return EXIT_FAILURE


def _scrub(text: str) -> str:
    """``text`` without secrets: API keys (the Google provider's redaction), passwords in the
    URL settings, and the value of any variable whose name says it is a secret."""
    try:
        from vidpipe_core.providers.google import redact

        text = redact(text)
    except Exception:
        pass
    for name, value in os.environ.items():
        if name in _SECRET_URLS and value:
            text = scrub_url(text, value)
        elif _SECRET_NAME.search(name) and len(value) >= 8:
            text = text.replace(value, "***")
    return text


def _data_dir() -> Path:
    try:
        return get_settings().data_dir
    except Exception:
        return Path(os.environ.get("VIDPIPE_DATA_DIR") or ".vidpipe").expanduser().resolve()


def _write_log(text: str, name: str | None = None) -> Path | None:
    """Write ``text`` to a new log file under <data dir>/logs (the system temp dir when that is
    not writable); its path, or None when neither can be written."""
    name = name or f"vidpipe-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{os.getpid()}.log"
    for folder in (_data_dir() / "logs", Path(tempfile.gettempdir())):
        path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError:
            continue
        return path
    return None


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


def _services(settings: Settings | None = None, *, housekeeping: bool = True) -> Services:
    from vidpipe_core.services import Services  # not the runner's: `vidpipe edit` then imports no Dagster

    return Services.create(settings, housekeeping=housekeeping)


def _startup_checks() -> None:
    from vidpipe_core.media import check_ffmpeg

    check_ffmpeg()


def _setting(name: str) -> str:
    """Help text for an option whose default is a setting: its built-in value and variable."""
    return f"{Settings.model_fields[name].default}, or VIDPIPE_{name.upper()}"


def _spelling(name: str) -> str:
    """How request field ``name`` is typed on the command line: ``--<name>`` or its own flag
    (``--max-cost``); a yes/no field has both forms (``--fast/--no-fast``)."""
    about = offered(name)
    flag = about.flag if about is not None and about.flag else f"--{name.replace('_', '-')}"
    if "/" not in flag and ProjectRequest.model_fields[name].annotation == bool | None:
        flag = f"{flag}/--no-{flag.removeprefix('--')}"
    return flag


def _flag(name: str) -> str:
    return _spelling(name).split("/")[0]


def _request_parameters() -> list[inspect.Parameter]:
    """One parameter per ProjectRequest field, as typer reads them: the prompt an argument, every
    other field an option whose name, type, help and shown default come from the model. An option
    not given is None (the request's default, resolved by `build_spec`), or the field's fixed
    default value (crossfade 0.0, fast false)."""
    params = []
    for name, info in ProjectRequest.model_fields.items():
        about = offered(name)
        if about is None:
            default: Any = typer.Argument(..., help=description(name))
        else:
            fixed = about.default.value  # shown as typer shows any default: `[default: 0.0]`, `no-fast`
            default = typer.Option(
                fixed,
                _spelling(name),
                show_default=True if fixed is not None else about.default.text(_flag),
                help=description(name),
                rich_help_panel=about.panel,
            )
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=info.annotation))
    return params


def request_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` (whose first parameter is ``request: ProjectRequest``) the command-line
    form of every request field: the prompt argument and one option per field, derived from the
    model, before the command's own options. The command gets the typed request."""
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in list(inspect.signature(command).parameters.values())[1:]]

    @functools.wraps(command)
    def with_request(**values: Any) -> None:
        given = {name: values.pop(name) for name in FIELDS}
        request, problems = check_fields({k: v for k, v in given.items() if v is not None})
        if problems:  # the command line's types are the model's: only a value typer let through
            raise _fail(invalid(problems))
        assert request is not None
        command(request, **values)

    with_request.__signature__ = inspect.Signature([*_request_parameters(), *own])  # type: ignore[attr-defined]  # what typer reads
    return with_request


@app.command()
@request_options
def new(
    request: ProjectRequest,
    force: bool = typer.Option(
        False, "--force", show_default=True, help="Register a new project even when one has this prompt and these settings."
    ),
    as_json: bool = typer.Option(False, "--json", show_default=True, help="Print the project as one JSON document."),
) -> None:
    """Register a project (validated; nothing is written when anything is wrong) and print its id.
    A project with the same prompt and settings is not registered twice: its id is printed."""
    from vidpipe_core.projects import AlreadyRegistered
    from vidpipe_dagster.runner import register

    if as_json:
        _json_mode("new")
    try:
        spec = register(request, force=force)
        existing = False
    except AlreadyRegistered as exc:
        spec, existing = exc.spec, True
        _note(f"{exc}; printing its id (use --force for a new project)")
    except VidpipeError as exc:
        raise _fail(exc) from None
    moved = None if existing else _earlier_files(spec.id)
    if moved:
        _note(f"an earlier project with id {spec.id} had left files; they were moved to {moved} (nothing was deleted)")
    if as_json:
        _emit_json(
            {
                "project_id": spec.id,
                "exit_code": EXIT_OK,
                "existing": existing,
                "spec": spec.model_dump(mode="json", exclude={"takes"}),
                "earlier_files": moved,
            }
        )
    else:
        _result(spec.id)


def _earlier_files(project_id: str) -> str | None:
    from vidpipe_core.projects import earlier_files

    return earlier_files(_services(housekeeping=False), project_id)


class _Display:
    """A live table: one row per stage with its latest message and scene progress."""

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.rows: dict[str, tuple[str, str]] = {s: ("waiting", "") for s in STAGES}
        self.lock = threading.Lock()

    def __call__(self, partition: str, event: ProgressEvent) -> None:
        if partition != self.project_id:
            return
        with self.lock:
            count = f"{event.done}/{event.total}" if event.total else ""
            self.rows[event.stage] = (event.message, count)

    def render(self) -> Table:
        table = Table(title=f"vidpipe render {self.project_id}", expand=False)
        table.add_column("stage")
        table.add_column("progress", justify="right")
        table.add_column("latest")
        with self.lock:
            for stage, (message, count) in self.rows.items():
                table.add_row(stage, count, message)
        return table


def _render(project_id: str, assets: list[str] | None = None, run_config: dict[str, Any] | None = None) -> dg.JobExecutionResult:
    """Run `runner.render`, showing progress on stderr: a live table on a terminal, one line per
    event otherwise, Dagster's own log with --verbose. Dagster's console logger is otherwise
    silent: the run's log goes to a file when it fails (see `_finish`)."""
    from vidpipe_dagster import runner

    if _Options.verbose:
        return runner.render(project_id, assets=assets, run_config=run_config, log_level="DEBUG")
    if not err.is_terminal:

        def line(_partition: str, e: ProgressEvent) -> None:
            _note(f"[{e.stage}] {e.message}")

        return runner.render(project_id, assets=assets, run_config=run_config, listener=line, log_level="CRITICAL")
    display = _Display(project_id)
    with Live(display.render(), console=err, refresh_per_second=4) as live:
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(0.25):
                live.update(display.render())

        threading.Thread(target=refresh, daemon=True).start()
        try:
            return runner.render(project_id, assets=assets, run_config=run_config, listener=display, log_level="CRITICAL")
        finally:
            stop.set()
            live.update(display.render())


def _final_video(project_id: str) -> str | None:
    """The project's final video, only when it is this project's own (`status.final_video`)."""
    from vidpipe_core.steps.state import project_nonce
    from vidpipe_dagster.instance import get_instance
    from vidpipe_dagster.status import final_video

    services = _services(housekeeping=False)
    return final_video(get_instance(services.settings), services, project_id, project_nonce(services, project_id))


def _cause(failure: StepFailure) -> str:
    """The failure's message without the stage (and scene) it starts with, on one line."""
    text = escape_invisible(" ".join(_scrub(failure.message).split()))
    head, sep, rest = text.partition(": ")
    if sep and (head == failure.step or head.startswith(f"{failure.step}, ")):
        return rest
    return text


def _where(failure: StepFailure) -> str:
    if failure.scene is None:
        return failure.step
    return f"{failure.step}, {'frame' if failure.step == KEYFRAMES else 'scene'} {failure.scene + 1}"


def _fix(failure: StepFailure, project_id: str) -> str:
    """The command that deals with a failed stage (empty when its message already names one)."""
    if "`vidpipe " in failure.message:
        return ""
    if failure.error_class == "ProjectBusy":
        return f"`vidpipe status {project_id}` shows the run that holds it"
    if failure.error_class == "BudgetExceeded":
        return f"`vidpipe status {project_id}` shows what was spent"
    if failure.error_class == "SafetyRejected" and failure.scene is not None:  # raised under `fail`, or `retry` used up
        return (
            f'change the scene\'s prompt (`vidpipe edit {project_id} --scene {failure.scene + 1} --motion "..."`) or '
            f"leave it out of the video (`vidpipe edit {project_id} --safety-policy skip`), then `vidpipe resume {project_id}`"
        )
    if failure.error_class in USAGE_ERRORS:
        return f"then `vidpipe resume {project_id}`"
    return f"`vidpipe resume {project_id}` tries again without paying twice for finished work"


def _failure_document(failure: StepFailure) -> dict[str, Any]:
    scene = None if failure.scene is None or failure.step == KEYFRAMES else failure.scene + 1
    frame = failure.scene + 1 if failure.scene is not None and failure.step == KEYFRAMES else None
    return {
        "stage": failure.step,
        "scene": scene,
        "frame": frame,
        "message": _cause(failure),
        "error": failure.error_class,
    }


def _run_log_file(run_id: str) -> Path | None:
    """The run's whole Dagster event log in a file under <data dir>/logs (None if it cannot be written)."""
    from vidpipe_dagster.runner import run_log

    try:
        text = run_log(run_id)
    except Exception as exc:  # the log is a convenience: its absence must not hide the failure
        text = f"the event log of run {run_id} could not be read: {exc!r}\n"
    return _write_log(_scrub(text), name=f"run-{run_id}.log")


def _finish(project_id: str, result: dg.JobExecutionResult) -> None:
    """Print the video's path (or the --json document); or say on stderr why there is none, one
    line per failed stage, keep the run's Dagster log in a file, and exit non-zero."""
    from vidpipe_dagster.runner import failures, was_interrupted

    if result.success:
        video = _final_video(project_id)
        if _Options.json:
            _emit_json(_run_document(project_id, result.run_id, "success", video, EXIT_OK))
        elif video is not None:
            _result(video)
        return
    log = _run_log_file(result.run_id)
    where = f"run {result.run_id[:8]}; Dagster log: {log}" if log else f"run {result.run_id[:8]}"
    interrupted = was_interrupted(result)
    found = [] if interrupted else failures(result)  # an interrupt is no stage's failure
    if interrupted:
        code, status = EXIT_INTERRUPTED, "interrupted"
        _note(
            f"interrupted: the run was stopped by a signal and marked failed; slots and the project lock are "
            f"released, paid operations are kept. `vidpipe resume {project_id}` continues without paying again ({where})"
        )
    else:
        code, status = run_exit_code(found), "failed"
        for failure in found:
            fix, cause = _fix(failure, project_id), _cause(failure)
            line = f"{_where(failure)}: {cause.rstrip('.')}; {fix}" if fix else f"{_where(failure)}: {cause}"
            err.print(f"[bold red]error:[/] {escape(line)} ({escape(where)})", soft_wrap=True)
        if not found:
            err.print(f"[bold red]error:[/] the run failed without a failed stage ({escape(where)})", soft_wrap=True)
    if _Options.json:
        document = _run_document(project_id, result.run_id, status, None, code)
        document["failures"] = [_failure_document(f) for f in found]
        document["log"] = str(log) if log else None
        _emit_json(document)
    raise typer.Exit(code)


def _run_option() -> Any:
    return typer.Option(False, "--json", show_default=True, help="Print the outcome as one JSON document.")


@app.command()
def render(project_id: str = typer.Argument(..., metavar="ID"), as_json: bool = _run_option()) -> None:
    """Make the storyboard, character sheets, keyframes, clips and final video of a project (what is already made is
    reused) and print the video's path."""
    if as_json:
        _json_mode("run", project_id=project_id)
    try:
        _startup_checks()
        result = _render(project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    _finish(project_id, result)


@app.command()
def demo(
    scenes: int = typer.Option(4, show_default=True, help="Number of scenes."),
    clip_duration: int = typer.Option(4, "--clip-duration", show_default=True, help="Seconds per scene."),
) -> None:
    """Register and render a built-in sample prompt with the offline animatic provider; print the video's path."""
    from vidpipe_dagster.runner import register

    try:
        _startup_checks()
        request = ProjectRequest(
            prompt=DEMO_PROMPT,
            provider="animatic",
            scenes=scenes,
            clip_duration=clip_duration,
            style="watercolour, warm dawn light",
        )
        spec = register(request, force=True)  # a demo is a new project each time, as before
        _note(f"registered project {spec.id}")
        result = _render(spec.id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    _finish(spec.id, result)


def _run_and_report(project_id: str, assets: list[str] | None, run_config: dict[str, Any] | None = None) -> None:
    _finish(project_id, _render(project_id, assets, run_config))


@app.command()
def resume(
    project_id: str = typer.Argument(..., metavar="ID"),
    yes: bool = typer.Option(
        True, "--yes/--dry-run", show_default=True, help="Run the plan, or only print it (changes nothing)."
    ),
    repair: bool = typer.Option(
        False,
        "--repair",
        show_default=True,
        help="Pay to regenerate damaged files that cannot be re-obtained for free (the plan says what it costs).",
    ),
    as_json: bool = _run_option(),
) -> None:
    """Finish an interrupted project: mark runs whose process died as failed, re-attach to paid
    operations, repair damaged files, and make only what is missing, failed or damaged; print the
    video's path."""
    from vidpipe_dagster.runner import prepare_resume, repair_config

    dry_run = not yes
    if as_json:
        _json_mode("run", project_id=project_id, dry_run=dry_run, plan=None)
    try:
        if not dry_run:
            _startup_checks()
        start = prepare_resume(project_id, dry_run=dry_run)
    except VidpipeError as exc:
        raise _fail(exc) from None
    plan = start.plan
    if as_json:
        _Options.json_base["plan"] = {
            "stages": plan.assets,
            "reasons": plan.reasons,
            "dead_runs": list(start.dead_runs),
            "damaged": [{"stage": f.stage, "what": f.what, "problem": f.problem, "repair": f.repair} for f in plan.damaged],
            "repair_cost_usd": plan.repair_cost_usd,
        }
    if start.partition_missing and dry_run:
        _note(f"would add the missing Dagster partition {project_id}")
    verb = "would mark it failed and free its slots" if dry_run else "marked it failed and freed its slots"
    for described in start.dead_runs.values():
        _note(f"{described}: its process is dead; {verb}")
    for finding in plan.damaged:
        _note(f"damaged: {finding.what}: {finding.problem}; {finding.repair}")
    if not plan.assets:
        _note("nothing to do: every asset is materialized and up to date")
        video = _final_video(project_id)
        if as_json:
            _emit_json(_run_document(project_id, None, "success", video, EXIT_OK))
        elif video is not None:
            _result(video)
        return
    _note(
        ("would materialize: " if dry_run else "will materialize: ") + ", ".join(f"{a} ({plan.reasons[a]})" for a in plan.assets)
    )
    if plan.repair_cost_usd and not repair:
        _note(
            f"damaged files without a free copy fail their stage; `vidpipe resume {project_id} --repair` pays "
            f"up to ${plan.repair_cost_usd:.2f} to regenerate them"
        )
    if dry_run:
        if as_json:
            _emit_json(_run_document(project_id, None, "planned", _final_video(project_id), EXIT_OK))
        return
    _run_and_report(project_id, plan.assets, repair_config(plan.assets) if repair else None)


@app.command()
def regenerate(
    project_id: str = typer.Argument(..., metavar="ID"),
    scene: list[int] = typer.Option(
        ..., "--scene", help="Scene number, from 1 as in the captions and `vidpipe status`; repeatable."
    ),
) -> None:
    """Make new clips for some scenes (a new take from the same keyframes) and re-stitch;
    every other scene is reused."""
    import uuid

    from vidpipe_core.scenes import scene_index, scene_list
    from vidpipe_core.steps.clips import new_takes

    indices = [scene_index(n) for n in scene]
    try:
        _startup_checks()
        new_takes(_services(), project_id, indices, uuid.uuid4().hex[:12])
        err.print(f"new takes for {scene_list(indices)}")
        _run_and_report(project_id, [CHARACTERS, KEYFRAMES, CLIPS, FINAL_VIDEO])
    except VidpipeError as exc:
        raise _fail(exc) from None


@app.command()
def stitch(
    project_id: str = typer.Argument(..., metavar="ID"),
    crossfade: float = typer.Option(0.0, help="Seconds of crossfade between scenes (0 = hard cuts, stream copy)."),
) -> None:
    """Re-stitch the final video from the existing clips, without touching them."""
    from vidpipe_core.projects import load_spec, update_spec

    try:
        _startup_checks()
        services = _services()
        spec = load_spec(services, project_id)
        if not 0 <= crossfade < spec.clip_duration:  # also refuses nan
            raise InvalidInput(
                "crossfade", f"{crossfade} is out of range", f"0 <= crossfade < {spec.clip_duration} (the clip duration)"
            )
        update_spec(services, spec.model_copy(update={"crossfade": crossfade}))
        _run_and_report(project_id, ["final_video"])
    except VidpipeError as exc:
        raise _fail(exc) from None


@app.command()
def edit(
    project_id: str = typer.Argument(..., metavar="ID"),
    scene: int | None = typer.Option(
        None, "--scene", help="Scene number, from 1 as in the captions and `vidpipe status` (for a scene's prompts)."
    ),
    description: str | None = typer.Option(
        None, show_default="unchanged", help="What happens in the scene, one or two sentences (part of its clip's prompt)."
    ),
    start_frame: str | None = typer.Option(
        None,
        "--start-frame",
        show_default="unchanged",
        help="Image prompt of the first frame; scene 1 only (a later scene starts where the one before ends).",
    ),
    end_frame: str | None = typer.Option(
        None,
        "--end-frame",
        show_default="unchanged",
        help="Image prompt of the scene's last frame, which is also the next scene's first.",
    ),
    motion: str | None = typer.Option(
        None,
        show_default="unchanged",
        help="How the camera and subjects move from the first frame to the last (the clip's prompt).",
    ),
    max_cost: float | None = typer.Option(
        None, "--max-cost", metavar="USD", help="The project's budget in USD: a run that would exceed it stops."
    ),
    safety_policy: str | None = typer.Option(
        None,
        "--safety-policy",
        metavar="POLICY",
        help="A clip refused by the safety filter: fail, skip (leave the scene out of the video) or retry.",
    ),
) -> None:
    """Edit a scene's prompts, or the project's budget and safety policy. The next `vidpipe resume`
    makes again only what depends on a changed prompt: a motion prompt, one clip; an end-frame
    prompt, that frame and every later frame and clip."""
    from vidpipe_core.steps.edit import edit_scene, edit_settings, settings_update

    prompts = {"description": description, "start_frame_prompt": start_frame, "end_frame_prompt": end_frame}
    prompts["motion_prompt"] = motion
    try:
        update = settings_update(max_cost_usd=max_cost, safety_policy=safety_policy)  # checked before anything is written
        has_prompts = any(v is not None for v in prompts.values())
        if has_prompts and scene is None:
            raise InvalidInput(
                "scene", "is needed with --description, --start-frame, --end-frame or --motion: give its number, from 1"
            )
        services = _services()
        changed = None
        if has_prompts or not update:  # nothing at all: edit_scene names what can be passed
            if scene is None:
                raise InvalidInput(
                    "edit",
                    "nothing to change; pass --scene N with --motion (or --description, --start-frame, "
                    "--end-frame), or --max-cost, --safety-policy",
                )
            changed = edit_scene(services, project_id, scene - 1, **prompts)  # the database counts scenes from 0
        if update:
            spec = edit_settings(services, project_id, update)
    except VidpipeError as exc:
        raise _fail(exc) from None
    if changed is not None:
        err.print(f"scene {scene} updated; {changed.summary()}.", soft_wrap=True)
    if update:
        shown = {"max_cost_usd": f"budget ${spec.max_cost_usd:.2f}", "safety_policy": f"safety policy {spec.safety_policy}"}
        _note(f"project {project_id}: {', '.join(shown[k] for k in update)}; nothing already made is paid for again.")
    _note(f"Run `vidpipe resume {project_id}`.")


def _scene_number(row: dict[str, Any]) -> int:
    """A status row's scene, numbered from 1 as people (and the captions) count."""
    return int(row["scene"]) if "scene" in row else int(row["index"]) + 1


@app.command()
def status(
    project_id: str = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", show_default=True, help="Print the report as one JSON document."),
) -> None:
    """Where a project stands: each stage (from Dagster), each scene and the cost (from the database)."""
    from vidpipe_dagster.status import project_status

    if as_json:
        _json_mode("status", project_id=project_id)
    try:
        report = project_status(_services(housekeeping=False), project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    if as_json:
        scenes = [
            {"scene": _scene_number(s), **{k: v for k, v in s.items() if k not in ("scene", "index")}} for s in report["scenes"]
        ]
        _emit_json({"project_id": project_id, "exit_code": EXIT_OK, **report, "scenes": scenes})
        return
    assets = Table(title=f"project {project_id}")
    for col in ("asset", "state", "last run", "when"):
        assets.add_column(col)
    for row in report["assets"]:
        assets.add_row(row["asset"], row["state"], (row["run_id"] or "")[:8], row["when"] or "")  # --json: the whole id
    console.print(assets)
    if "next" not in report:  # the next steps repeat these hints
        for row in report["assets"]:
            if row.get("hint"):
                console.print(row["hint"], soft_wrap=True, markup=False, highlight=False)
    scenes_table = Table(title="scenes")
    for col in ("scene", "start frame", "end frame", "clip", "duration", "cost"):
        scenes_table.add_column(col)
    for s in report["scenes"]:
        scenes_table.add_row(
            str(_scene_number(s)),
            s["start_frame"],
            s["end_frame"],
            s["clip"],
            f"{s['duration_s']:.2f}" if s["duration_s"] else "",
            f"${s['cost_usd']:.2f}",
        )
    console.print(scenes_table)
    for s in report["scenes"]:
        if s["detail"]:
            console.print(f"scene {_scene_number(s)}: {s['detail']}", soft_wrap=True, markup=False, highlight=False)
    c = report["cost"]
    console.print(f"spent ${c['spent_usd']:.2f} · projected remaining ${c['projected_usd']:.2f} · budget ${c['budget_usd']:.2f}")
    _print_extra(report.get("paths"), "")
    if report.get("earlier_files"):
        _print_extra(f"an earlier project with this id (moved aside when this one was registered): {report['earlier_files']}", "")
    _print_extra(report.get("next"), "next: ")


def _print_extra(value: Any, prefix: str) -> None:
    """A report entry, one line each: a text, a list of texts, or a mapping of name -> path (a list
    of ``{"scene", "path"}`` for per-scene files, ``{"name", "path"}`` for per-character ones)."""
    if not value:
        return
    lines: list[str] = []
    if isinstance(value, dict):
        for name, entry in value.items():
            label = name.replace("_", " ")
            if isinstance(entry, list):
                for item in entry:
                    if isinstance(item, dict) and "path" in item:
                        where = f" of scene {item['scene']}" if "scene" in item else f" {item.get('name', '')}".rstrip()
                        lines.append(f"{label.removesuffix('s')}{where}: {item['path']}")
            elif entry:
                lines.append(f"{label}: {entry}")
    elif isinstance(value, (list, tuple)):
        lines = [str(v) for v in value if v]
    else:
        lines = [str(value)]
    for line in lines:
        console.print(prefix + line, soft_wrap=True, markup=False, highlight=False)


@app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json", show_default=True, help="Print the projects as one JSON array."),
) -> None:
    """All registered projects with their full ids: a table on a terminal; when piped, one
    tab-separated line per project (id, created, scenes, providers, final video)."""
    from vidpipe_core.models import utc
    from vidpipe_core.projects import list_projects
    from vidpipe_dagster.instance import get_instance
    from vidpipe_dagster.status import final_video

    if as_json:
        _json_mode("list")
    services = _services()
    instance = get_instance(services.settings)
    rows = []
    for p in list_projects(services):
        spec = p.spec
        final = final_video(instance, services, p.id, p.nonce)  # only this project's own, else "-"
        rows.append(
            {
                "id": p.id,
                "created": utc(p.created_at).isoformat(),  # SQLite gives it back without its time zone
                "prompt": p.prompt,
                "scenes": spec.get("scenes"),
                "providers": spec.get("providers", {}),
                "final_video": final,
            }
        )
    if as_json:
        _emit_json(rows)
        return
    if not console.is_terminal:
        for r in rows:
            fields = [r["id"], r["created"][:16].replace("T", " "), str(r["scenes"]), _providers(r), r["final_video"] or "-"]
            _result("\t".join(" ".join(f.split()) for f in fields))
        return
    # The id is never cut: its column is as wide as the longest id (folding, never ellipsizing, on
    # a terminal narrower than that); the other columns come while they fit, then shorten or wrap.
    id_width = max((len(r["id"]) for r in rows), default=2)
    columns: list[tuple[str, int, Callable[[dict[str, Any]], str]]] = [
        ("created", 16, lambda r: r["created"][:16].replace("T", " ")),
        ("scenes", 6, lambda r: str(r["scenes"])),
        ("providers", 9, _providers),
        ("final video", 12, lambda r: r["final_video"] or ""),
    ]
    room = console.width - (id_width + 4)
    shown = []
    for column in columns:
        if room < column[1] + 3:
            break
        shown.append(column)
        room -= column[1] + 3
    table = Table(title="projects")
    table.add_column("id", min_width=min(id_width, console.width - 4), overflow="fold")
    for name, width, _value in shown:
        table.add_column(name, min_width=width if name != "final video" else None, overflow="fold")
    for r in rows:
        table.add_row(r["id"], *(value(r) for _name, _width, value in shown))
    console.print(table)


def _providers(row: dict[str, Any]) -> str:
    providers = row["providers"]
    return "/".join(sorted(set(providers.values()))) if isinstance(providers, dict) else ""


DELETED = ("project", "folder", "partition")  # the --json document's "deleted" keys


@app.command()
def delete(
    project_id: str = typer.Argument(..., metavar="ID"),
    yes: bool = typer.Option(False, "--yes", "-y", show_default=True, help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", show_default=True, help="Print what was removed as one JSON document."),
) -> None:
    """Remove a project or a stray partition: its folder, database rows and Dagster partition;
    refused while a run holds it, asks unless `--yes`."""
    from vidpipe_dagster import runner

    if as_json:
        _json_mode("delete", project_id=project_id)
    try:
        row, folder, partition = runner.find(project_id)
        if not (row or folder or partition):
            raise ProjectNotFound(project_id)
        if not yes:
            what = [w for w, there in (("project", row), ("folder of artifacts", folder), ("partition", partition)) if there]
            if not sys.stdin.isatty():
                raise InvalidInput("--yes", f"deleting {project_id} needs confirmation and stdin is not a terminal; pass --yes")
            if not typer.confirm(f"delete {project_id} ({', '.join(what)})?", default=False, err=True):
                _note("nothing deleted")
                if as_json:
                    _emit_json({"project_id": project_id, "exit_code": EXIT_OK, "deleted": dict.fromkeys(DELETED, False)})
                return
        deleted = runner.delete(project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    removed = {name: getattr(deleted, name) for name in DELETED}
    _note(f"deleted {project_id}: " + ", ".join(k for k, v in removed.items() if v))
    if as_json:
        _emit_json({"project_id": project_id, "exit_code": EXIT_OK, "deleted": removed})
    else:
        _result(project_id)


def _check_celery_urls(settings: Settings, shown: Callable[[str], str]) -> None:
    """A broker or result backend Celery cannot use: one line, exit 2, before the worker starts
    (Celery itself prints a traceback, and for a backend exits 0)."""
    from celery.app.backends import by_url  # type: ignore[import-untyped]
    from kombu import Connection

    from vidpipe_core.errors import one_line

    checks = (
        ("VIDPIPE_CELERY_BROKER", settings.celery_broker, lambda url: Connection(url).transport, "amqp://user@host:5672//"),
        ("VIDPIPE_CELERY_BACKEND", settings.celery_backend, by_url, "rpc:// or redis://host:6379/0"),
    )
    for name, url, load, example in checks:
        try:
            load(url)
        except Exception as exc:
            cause = _scrub(one_line(exc)).replace(url, shown(url))
            raise ConfigurationError(f"setting {name}={shown(url)} cannot be used: {cause}; use a URL such as {example}") from exc


@app.command()
def worker(
    queue: str | None = typer.Option(None, "--queue", show_default=_setting("celery_queue"), help="Queue to take steps from."),
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, show_default="the number of CPUs", help="Steps run at once (worker processes)."
    ),
    name: str | None = typer.Option(None, "--name", show_default="vidpipe-<random>@<host>", help="Celery node name."),
    loglevel: str = typer.Option("INFO", "--loglevel", show_default=True, help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run a Celery worker that executes render steps of runs using VIDPIPE_DAGSTER_EXECUTOR=celery, on this host."""
    import uuid

    from vidpipe_core.errors import redact_url

    settings = get_settings()
    queue = queue or settings.celery_queue
    level = loglevel.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise _fail(InvalidInput("--loglevel", f"{loglevel!r} is not one of DEBUG, INFO, WARNING, ERROR"))
    node = name or f"vidpipe-{uuid.uuid4().hex[:6]}"
    node = node if "@" in node else f"{node}@%h"
    # Loaded once here, before the pool forks: a bad setting fails now, and each worker process
    # starts its first step without importing Dagster and the definitions again.
    import vidpipe_dagster.definitions  # noqa: F401
    from vidpipe_dagster.celery_executor import celery_app

    def shown(url: str) -> str:  # the password masked; rpc:// as it is
        return redact_url(url) if "@" in url or "?" in url else url

    _check_celery_urls(settings, shown)
    _note(
        f"vidpipe worker {node}: queue {queue}, broker {shown(settings.celery_broker)}, "
        f"backend {shown(settings.celery_backend)}, concurrency {concurrency or os.cpu_count()}"
    )
    argv = ["worker", f"--queues={queue}", f"--hostname={node}", f"--loglevel={level}", "--without-gossip", "--without-mingle"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    import celery.app.trace  # type: ignore[import-untyped]

    # Celery would log each step's whole result (its serialized Dagster events) on success.
    celery.app.trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"
    celery_app(settings, queue).worker_main(argv)


@app.command()
def migrate() -> None:
    """Apply the database migrations (also done automatically on first use)."""
    from vidpipe_core.db import migrate as run

    settings = get_settings()
    run(settings.resolved_database_url)
    _note("database is at the newest revision")


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
        sys.exit(_report(exc, EXIT_INTERRUPTED))
    except Exception as exc:
        exc = _settings_error(exc)
        sys.exit(_report(exc, exit_code(exc)))


if __name__ == "__main__":
    main()
