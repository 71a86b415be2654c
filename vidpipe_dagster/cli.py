"""The `vidpipe` command: register projects, render them through Dagster, show where they stand."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from vidpipe_core.config import Settings, get_settings
from vidpipe_core.errors import ConfigurationError, InvalidInput, ProjectBusy, ProjectNotFound, VidpipeError, scrub_url
from vidpipe_core.steps import STAGES
from vidpipe_core.steps.report import ProgressEvent

if TYPE_CHECKING:
    import dagster as dg

    from vidpipe_core.schemas import ProjectSpec
    from vidpipe_core.services import Services

app = typer.Typer(add_completion=False, no_args_is_help=True, help="vidpipe: a text prompt in, a finished multi-scene video out.")
console = Console()
err = Console(stderr=True)

DEMO_PROMPT = (
    "A paper boat sets off down a rain-filled gutter at dawn. It rides a tiny waterfall into a city canal. "
    "A curious duck follows it past moored houseboats. The boat drifts out into a wide harbour as the sun rises."
)


# Exit codes (README "Errors and exit codes"): 1 a failure, 2 a usage or configuration error
# (fix the input or the setting named), 3 the project is busy (another run holds it), 130 interrupted.
EXIT_FAILURE, EXIT_USAGE, EXIT_BUSY, EXIT_INTERRUPTED = 1, 2, 3, 130
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_SECRET_URLS = ("VIDPIPE_DATABASE_URL", "VIDPIPE_ARTIFACTS_URL")


class _Options:
    debug = False  # set by the global --debug flag


@app.callback()
def _global_options(
    debug: bool = typer.Option(
        False,
        "--debug",
        envvar="VIDPIPE_DEBUG",
        help="Print the full traceback of an error (otherwise it goes to a log file under <data dir>/logs).",
    ),
) -> None:
    _Options.debug = debug


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, (InvalidInput, ProjectNotFound, ConfigurationError)):
        return EXIT_USAGE
    if isinstance(exc, ProjectBusy):
        return EXIT_BUSY
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


def _write_log(text: str) -> Path | None:
    """Write ``text`` to a new log file under <data dir>/logs (the system temp dir when that is
    not writable); its path, or None when neither can be written."""
    name = f"vidpipe-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{os.getpid()}.log"
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
    """One line on stderr. The traceback is printed with --debug; otherwise, for configuration
    errors and unexpected exceptions, it goes to a log file that the line names."""
    if isinstance(exc, VidpipeError):
        line = str(exc)
    else:
        first = str(exc).strip().splitlines()
        line = f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
    line = _scrub(line)
    trace = _scrub(f"$ vidpipe {' '.join(sys.argv[1:])}\n" + "".join(traceback.format_exception(exc)))
    if _Options.debug:
        sys.stderr.write(trace)
        sys.stderr.flush()
    elif isinstance(exc, ConfigurationError) or not isinstance(exc, VidpipeError):
        path = _write_log(trace)
        line += (
            f" (full traceback in {path}; run with --debug to print it)"
            if path
            else " (run with --debug to print the full traceback)"
        )
    err.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
    return code


def _settings_error(exc: Exception) -> Exception:
    """A settings value pydantic refused, as the ConfigurationError it is (else ``exc`` itself)."""
    if not (isinstance(exc, ValidationError) and exc.title == "Settings"):
        return exc
    first = exc.errors()[0]
    name = "VIDPIPE_" + "_".join(str(part) for part in first["loc"]).upper()
    error = ConfigurationError(
        f"setting {name}: {first['msg']}; fix the environment variable or the config file (VIDPIPE_CONFIG / ./vidpipe.toml)"
    )
    error.__cause__ = exc
    return error


def _fail(exc: Exception) -> typer.Exit:
    return typer.Exit(_report(exc, exit_code(exc)))


def _services(settings: Settings | None = None, *, housekeeping: bool = True) -> Services:
    from vidpipe_dagster.runner import services

    return services(settings, housekeeping=housekeeping)


def _startup_checks() -> None:
    from vidpipe_core.media import check_ffmpeg

    check_ffmpeg()


@app.command()
def new(
    prompt: str = typer.Argument(..., help="What the video is about."),
    id: str | None = typer.Option(None, "--id", help="Project id (slug); generated from the prompt when omitted."),
    style: str | None = typer.Option(None, help="Visual style."),
    aspect_ratio: str | None = typer.Option(None, "--aspect-ratio", help="16:9 or 9:16."),
    clip_duration: int | None = typer.Option(None, "--clip-duration", help="Seconds per scene."),
    scenes: int | None = typer.Option(None, help="Number of scenes."),
    provider: str | None = typer.Option(None, help="auto, animatic or google (all stages)."),
    storyboard_provider: str | None = typer.Option(None, "--storyboard-provider"),
    keyframe_provider: str | None = typer.Option(None, "--keyframe-provider"),
    clip_provider: str | None = typer.Option(None, "--clip-provider"),
    audio: bool | None = typer.Option(None, "--audio/--no-audio", help="Generate an audio track."),
    negative_prompt: str = typer.Option("", "--negative-prompt"),
    seed: int | None = typer.Option(None),
    fast: bool = typer.Option(False, help="Use the fast (cheaper) video model."),
    max_cost: float | None = typer.Option(None, "--max-cost", help="Budget in USD."),
    safety_policy: str | None = typer.Option(None, "--safety-policy", help="fail, skip or retry."),
    crossfade: float = typer.Option(0.0, help="Crossfade between scenes in seconds (0 = hard cuts, stream copy)."),
) -> None:
    """Register a project (validated; nothing is written when anything is wrong) and print its id."""
    try:
        spec = register(
            prompt,
            id=id,
            style=style,
            aspect_ratio=aspect_ratio,
            clip_duration=clip_duration,
            scenes=scenes,
            provider=provider,
            storyboard_provider=storyboard_provider,
            keyframe_provider=keyframe_provider,
            clip_provider_name=clip_provider,
            generate_audio=audio,
            negative_prompt=negative_prompt,
            seed=seed,
            fast=fast,
            max_cost_usd=max_cost,
            safety_policy=safety_policy,
            crossfade=crossfade,
        )
    except VidpipeError as exc:
        raise _fail(exc) from None
    console.print(spec.id)


def register(prompt: str, **options: Any) -> ProjectSpec:
    from vidpipe_dagster import runner

    return runner.register(prompt, **options)


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
    """Run `runner.render` with a live progress table on a terminal, one line per event otherwise."""
    from vidpipe_dagster import runner

    if not console.is_terminal:

        def line(_partition: str, e: ProgressEvent) -> None:
            console.print(f"[{e.stage}] {e.message}", markup=False, highlight=False, soft_wrap=True)

        return runner.render(project_id, assets=assets, run_config=run_config, listener=line)
    display = _Display(project_id)
    with Live(display.render(), console=console, refresh_per_second=4) as live:
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(0.25):
                live.update(display.render())

        threading.Thread(target=refresh, daemon=True).start()
        try:
            return runner.render(project_id, assets=assets, run_config=run_config, listener=display)
        finally:
            stop.set()
            live.update(display.render())


def _finish(project_id: str, result: dg.JobExecutionResult) -> None:
    """Print the video's path, or say why there is none and exit non-zero."""
    from vidpipe_core.storage import Layout
    from vidpipe_dagster.runner import failure_message, was_interrupted

    if result.success:
        console.print(_services().store.uri(project_id, Layout.FINAL), soft_wrap=True, markup=False, highlight=False)
        return
    if was_interrupted(result):
        err.print(
            f"render stopped by a signal (run {result.run_id}, marked failed): slots and the project lock are "
            f"released, paid operations are kept. `vidpipe resume {project_id}` continues without paying again.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    err.print(f"render failed (run {result.run_id}):\n{failure_message(result)}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_FAILURE)


@app.command()
def render(project_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Materialize storyboard, keyframes, clips and final_video for a project; print the video's path."""
    try:
        _startup_checks()
        result = _render(project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    _finish(project_id, result)


@app.command()
def demo(scenes: int = typer.Option(4), clip_duration: int = typer.Option(4, "--clip-duration")) -> None:
    """Register and render a built-in sample prompt with the offline animatic provider."""
    try:
        _startup_checks()
        spec = register(
            DEMO_PROMPT, provider="animatic", scenes=scenes, clip_duration=clip_duration, style="watercolour, warm dawn light"
        )
        err.print(f"registered project [bold]{spec.id}[/]")
        result = _render(spec.id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    _finish(spec.id, result)


def _run_and_report(project_id: str, assets: list[str] | None, run_config: dict[str, Any] | None = None) -> None:
    _finish(project_id, _render(project_id, assets, run_config))


@app.command()
def resume(
    project_id: str = typer.Argument(..., metavar="ID"),
    yes: bool = typer.Option(True, "--yes/--dry-run", help="Run the plan, or only print it (changes nothing)."),
    repair: bool = typer.Option(
        False,
        "--repair",
        help="Pay to regenerate damaged files that cannot be re-obtained for free (the plan says what it costs).",
    ),
) -> None:
    """Finish an interrupted project: mark runs whose process died as failed, re-attach to paid
    operations, repair damaged files, and materialize only what is missing, failed or damaged."""
    from vidpipe_dagster.runner import prepare_resume, repair_config

    dry_run = not yes
    try:
        if not dry_run:
            _startup_checks()
        start = prepare_resume(project_id, dry_run=dry_run)
    except VidpipeError as exc:
        raise _fail(exc) from None
    plan = start.plan
    if start.partition_missing and dry_run:
        err.print(f"would add the missing Dagster partition {project_id}")
    verb = "would mark it failed and free its slots" if dry_run else "marked it failed and freed its slots"
    for described in start.dead_runs.values():
        err.print(f"{described}: its process is dead; {verb}", markup=False, highlight=False, soft_wrap=True)
    for finding in plan.damaged:
        err.print(f"damaged: {finding.what}: {finding.problem}; {finding.repair}", markup=False, highlight=False, soft_wrap=True)
    if not plan.assets:
        err.print("nothing to do: every asset is materialized and up to date")
        from vidpipe_core.storage import Layout

        console.print(
            _services(housekeeping=False).store.uri(project_id, Layout.FINAL), soft_wrap=True, markup=False, highlight=False
        )
        return
    err.print(
        ("would materialize: " if dry_run else "will materialize: ") + ", ".join(f"{a} ({plan.reasons[a]})" for a in plan.assets),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if plan.repair_cost_usd and not repair:
        err.print(
            f"damaged files without a free copy fail their stage; `vidpipe resume {project_id} --repair` pays "
            f"up to ${plan.repair_cost_usd:.2f} to regenerate them",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if not dry_run:
        _run_and_report(project_id, plan.assets, repair_config(plan.assets) if repair else None)


@app.command()
def regenerate(
    project_id: str = typer.Argument(..., metavar="ID"),
    scene: list[int] = typer.Option(..., "--scene", help="Scene index (0-based, as in `vidpipe status`); repeatable."),
) -> None:
    """Make new clips for some scenes (a new take from the same keyframes) and re-stitch;
    every other scene is reused."""
    import uuid

    from vidpipe_core.steps.clips import new_takes

    try:
        _startup_checks()
        new_takes(_services(), project_id, scene, uuid.uuid4().hex[:12])
        err.print(f"new takes for scenes {sorted(set(scene))}")
        _run_and_report(project_id, ["keyframes", "clips", "final_video"])
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
    scene: int = typer.Option(..., "--scene", help="Scene index (0-based)."),
    description: str | None = typer.Option(None),
    start_frame: str | None = typer.Option(None, "--start-frame"),
    end_frame: str | None = typer.Option(None, "--end-frame"),
    motion: str | None = typer.Option(None),
) -> None:
    """Edit one scene's prompts. Only what depends on them is regenerated by the next
    `vidpipe resume`: a motion prompt changes one clip; an end-frame prompt changes that frame
    and, through continuity, every later frame and clip."""
    from vidpipe_core.steps.edit import edit_scene

    try:
        changed = edit_scene(
            _services(),
            project_id,
            scene,
            description=description,
            start_frame_prompt=start_frame,
            end_frame_prompt=end_frame,
            motion_prompt=motion,
        )
    except VidpipeError as exc:
        raise _fail(exc) from None
    err.print(
        f"scene {scene} updated; frames to regenerate: {changed['frames'] or 'none'}; "
        f"clips to regenerate: {changed['clips'] or 'none'}. Run `vidpipe resume {project_id}`."
    )


@app.command()
def status(project_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Per-asset materialization state (from Dagster) and per-scene state (from the database)."""
    from vidpipe_dagster.status import project_status

    try:
        report = project_status(_services(housekeeping=False), project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    assets = Table(title=f"project {project_id}")
    for col in ("asset", "state", "last run", "when"):
        assets.add_column(col)
    for row in report["assets"]:
        assets.add_row(row["asset"], row["state"], row["run_id"] or "", row["when"] or "")
    console.print(assets)
    for row in report["assets"]:
        if row.get("hint"):
            console.print(row["hint"], soft_wrap=True, markup=False, highlight=False)
    scenes = Table(title="scenes")
    for col in ("scene", "start frame", "end frame", "clip", "duration", "cost"):
        scenes.add_column(col)
    for s in report["scenes"]:
        scenes.add_row(
            str(s["index"]),
            s["start_frame"],
            s["end_frame"],
            s["clip"],
            f"{s['duration_s']:.2f}" if s["duration_s"] else "",
            f"${s['cost_usd']:.2f}",
        )
    console.print(scenes)
    for s in report["scenes"]:
        if s["detail"]:
            console.print(f"scene {s['index']}: {s['detail']}", soft_wrap=True)
    c = report["cost"]
    console.print(f"spent ${c['spent_usd']:.2f} · projected remaining ${c['projected_usd']:.2f} · budget ${c['budget_usd']:.2f}")


@app.command("list")
def list_cmd() -> None:
    """All registered projects."""
    from vidpipe_core.projects import list_projects
    from vidpipe_core.storage import Layout

    services = _services()
    table = Table(title="projects")
    for col in ("id", "created", "scenes", "providers", "final video"):
        table.add_column(col)
    for p in list_projects(services):
        spec = p.spec
        prov = spec.get("providers", {})
        final = services.store.uri(p.id, Layout.FINAL) if services.store.exists(p.id, Layout.FINAL) else ""
        table.add_row(
            p.id, p.created_at.strftime("%Y-%m-%d %H:%M"), str(spec.get("scenes")), "/".join(sorted(set(prov.values()))), final
        )
    console.print(table)


@app.command()
def migrate() -> None:
    """Apply the database migrations (also done automatically on first use)."""
    from vidpipe_core.db import migrate as run

    settings = get_settings()
    run(settings.resolved_database_url)
    console.print("database is at the newest revision")


def main() -> None:
    """The console script. Every command's errors end here as one line and an exit code: a
    configuration error exits 2, anything unexpected exits 1 with its traceback in a log file."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        exc = _settings_error(exc)
        sys.exit(_report(exc, exit_code(exc)))


if __name__ == "__main__":
    main()
