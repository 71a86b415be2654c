"""The `vidpipe` command: register projects, render them through Dagster, show where they stand."""
from __future__ import annotations

import sys
import threading
from typing import Optional

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from vidpipe_core.config import Settings, get_settings
from vidpipe_core.errors import InvalidInput, ProjectNotFound, VidpipeError
from vidpipe_core.steps.report import ProgressEvent

app = typer.Typer(add_completion=False, no_args_is_help=True, help="vidpipe: a text prompt in, a finished multi-scene video out.")
console = Console()
err = Console(stderr=True)

DEMO_PROMPT = (
    "A paper boat sets off down a rain-filled gutter at dawn. It rides a tiny waterfall into a city canal. "
    "A curious duck follows it past moored houseboats. The boat drifts out into a wide harbour as the sun rises."
)
STAGES = ("storyboard", "keyframes", "clips", "final_video")


def _fail(exc: Exception) -> "typer.Exit":
    code = 2 if isinstance(exc, (InvalidInput, ProjectNotFound)) else 1
    err.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code)


def _services(settings: Settings | None = None):  # type: ignore[no-untyped-def]
    from vidpipe_core.services import Services

    return Services.create(settings or get_settings())


def _startup_checks() -> None:
    from vidpipe_core.media import check_ffmpeg

    check_ffmpeg()


@app.command()
def new(
    prompt: str = typer.Argument(..., help="What the video is about."),
    id: Optional[str] = typer.Option(None, "--id", help="Project id (slug); generated from the prompt when omitted."),
    style: Optional[str] = typer.Option(None, help="Visual style."),
    aspect_ratio: Optional[str] = typer.Option(None, "--aspect-ratio", help="16:9 or 9:16."),
    clip_duration: Optional[int] = typer.Option(None, "--clip-duration", help="Seconds per scene."),
    scenes: Optional[int] = typer.Option(None, help="Number of scenes."),
    provider: Optional[str] = typer.Option(None, help="auto, animatic or google (all stages)."),
    storyboard_provider: Optional[str] = typer.Option(None, "--storyboard-provider"),
    keyframe_provider: Optional[str] = typer.Option(None, "--keyframe-provider"),
    clip_provider: Optional[str] = typer.Option(None, "--clip-provider"),
    audio: Optional[bool] = typer.Option(None, "--audio/--no-audio", help="Generate an audio track."),
    negative_prompt: str = typer.Option("", "--negative-prompt"),
    seed: Optional[int] = typer.Option(None),
    fast: bool = typer.Option(False, help="Use the fast (cheaper) video model."),
    max_cost: Optional[float] = typer.Option(None, "--max-cost", help="Budget in USD."),
    safety_policy: Optional[str] = typer.Option(None, "--safety-policy", help="fail, skip or retry."),
    crossfade: float = typer.Option(0.0, help="Crossfade between scenes in seconds (0 = hard cuts, stream copy)."),
) -> None:
    """Register a project (validated; nothing is written when anything is wrong) and print its id."""
    try:
        spec = register(prompt, id=id, style=style, aspect_ratio=aspect_ratio, clip_duration=clip_duration, scenes=scenes,
                        provider=provider, storyboard_provider=storyboard_provider, keyframe_provider=keyframe_provider,
                        clip_provider_name=clip_provider, generate_audio=audio, negative_prompt=negative_prompt, seed=seed,
                        fast=fast, max_cost_usd=max_cost, safety_policy=safety_policy, crossfade=crossfade)
    except VidpipeError as exc:
        raise _fail(exc) from None
    console.print(spec.id)


def register(prompt: str, source: str = "cli", **options):  # type: ignore[no-untyped-def]
    """Create the project row and its Dagster partition; undo the row if the partition fails."""
    from vidpipe_core.projects import create_project, delete_project
    from vidpipe_dagster.instance import get_instance, register_partition

    services = _services()
    spec = create_project(services, prompt, source=source, **options)
    try:
        register_partition(get_instance(services.settings), spec.id)
    except BaseException:
        delete_project(services, spec.id)
        raise
    return spec


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


def render_project(project_id: str, *, run_config: dict | None = None, show: bool = True, asset_names: list[str] | None = None):  # type: ignore[no-untyped-def]
    """Materialize the assets of one partition in this process, recorded in the Dagster instance."""
    import dagster as dg

    from vidpipe_core.ids import validate_project_id
    from vidpipe_core.projects import load_spec
    from vidpipe_dagster import progress
    from vidpipe_dagster.definitions import defs
    from vidpipe_dagster.instance import get_instance, require_partition

    validate_project_id(project_id)
    services = _services()
    load_spec(services, project_id)
    instance = get_instance(services.settings)
    require_partition(instance, project_id)
    job = defs.resolve_job_def("render_project")
    if asset_names:
        job = dg.define_asset_job("render_subset", selection=dg.AssetSelection.assets(*asset_names))
        job = dg.Definitions(assets=defs.assets, jobs=[job], resources=defs.resources).resolve_job_def("render_subset")
    # Dagster's console logger repeats every event; the CLI shows its own progress instead.
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}, **(run_config or {})}
    display = _Display(project_id)
    progress.add_listener(display)
    try:
        if show and console.is_terminal:
            with Live(display.render(), console=console, refresh_per_second=4) as live:
                stop = threading.Event()

                def refresh() -> None:
                    while not stop.wait(0.25):
                        live.update(display.render())

                t = threading.Thread(target=refresh, daemon=True)
                t.start()
                try:
                    result = job.execute_in_process(partition_key=project_id, instance=instance, run_config=run_config,
                                                    raise_on_error=False)
                finally:
                    stop.set()
                    live.update(display.render())
        else:
            progress.remove_listener(display)
            if show:
                progress.add_listener(lambda p, e: p == project_id and console.print(f"[{e.stage}] {e.message}", markup=False, highlight=False))
            result = job.execute_in_process(partition_key=project_id, instance=instance, run_config=run_config,
                                            raise_on_error=False)
    finally:
        progress.remove_listener(display)
    return result


def failure_message(result) -> str:  # type: ignore[no-untyped-def]
    """Each failed step with the message of its vidpipe error (not Dagster's wrapper)."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            text = error.message.strip()
            if text.startswith("dagster._core.definitions.events.Failure"):
                text = text.split(":", 1)[-1].strip()
            causes = []
            cause = error.cause
            while cause is not None:
                causes.append(cause.message.strip())
                cause = cause.cause
            if causes and "Failure" not in error.message:
                text += " <- " + " <- ".join(causes)
            messages.append(f"{event.step_key}: {text}")
    return "\n".join(messages) or "the run failed; see the Dagster UI for details"


@app.command()
def render(project_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Materialize storyboard, keyframes, clips and final_video for a project; print the video's path."""
    try:
        _startup_checks()
        result = render_project(project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    if not result.success:
        err.print(f"[bold red]render failed[/] (run {result.run_id}):\n{failure_message(result)}")
        raise typer.Exit(1)
    from vidpipe_core.storage import Layout

    services = _services()
    console.print(services.store.uri(project_id, Layout.FINAL))


@app.command()
def demo(scenes: int = typer.Option(4), clip_duration: int = typer.Option(4, "--clip-duration")) -> None:
    """Register and render a built-in sample prompt with the offline animatic provider."""
    try:
        _startup_checks()
        spec = register(DEMO_PROMPT, provider="animatic", scenes=scenes, clip_duration=clip_duration,
                        style="watercolour, warm dawn light")
        err.print(f"registered project [bold]{spec.id}[/]")
        result = render_project(spec.id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    if not result.success:
        err.print(f"[bold red]render failed[/]:\n{failure_message(result)}")
        raise typer.Exit(1)
    from vidpipe_core.storage import Layout

    console.print(_services().store.uri(spec.id, Layout.FINAL))


def _run_and_report(project_id: str, assets: list[str] | None, run_config: dict | None = None) -> None:
    from vidpipe_core.storage import Layout

    result = render_project(project_id, asset_names=assets, run_config=run_config)
    if not result.success:
        err.print(f"[bold red]render failed[/] (run {result.run_id}):\n{failure_message(result)}")
        raise typer.Exit(1)
    console.print(_services().store.uri(project_id, Layout.FINAL))


@app.command()
def resume(project_id: str = typer.Argument(..., metavar="ID"),
           yes: bool = typer.Option(True, "--yes/--dry-run", help="Run the plan, or only print it.")) -> None:
    """Finish an interrupted project: mark runs whose process died as failed, re-attach to paid
    operations, and materialize only what is missing or failed."""
    from vidpipe_core.ids import validate_project_id
    from vidpipe_core.projects import load_spec
    from vidpipe_dagster.instance import get_instance, require_partition
    from vidpipe_dagster.resume import plan_resume, recover_dead_runs

    try:
        _startup_checks()
        validate_project_id(project_id)
        services = _services()
        load_spec(services, project_id)
        instance = get_instance(services.settings)
        require_partition(instance, project_id)
        for run_id in recover_dead_runs(instance, services, project_id):
            err.print(f"run {run_id} had lost its process; marked it failed")
        plan = plan_resume(instance, services, project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    if not plan.assets:
        err.print("nothing to do: every asset is materialized and up to date")
        from vidpipe_core.storage import Layout

        console.print(services.store.uri(project_id, Layout.FINAL))
        return
    err.print("will materialize: " + ", ".join(f"{a} ({plan.reasons[a]})" for a in plan.assets))
    if yes:
        _run_and_report(project_id, plan.assets)


@app.command()
def regenerate(project_id: str = typer.Argument(..., metavar="ID"),
               scene: list[int] = typer.Option(..., "--scene", help="Scene index (0-based, as in `vidpipe status`); repeatable.")) -> None:
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
def stitch(project_id: str = typer.Argument(..., metavar="ID"),
           crossfade: float = typer.Option(0.0, help="Seconds of crossfade between scenes (0 = hard cuts, stream copy).")) -> None:
    """Re-stitch the final video from the existing clips, without touching them."""
    from vidpipe_core.projects import load_spec, update_spec

    try:
        _startup_checks()
        services = _services()
        spec = load_spec(services, project_id)
        if crossfade < 0 or crossfade >= spec.clip_duration:
            raise InvalidInput("crossfade", f"{crossfade} is out of range", f"0 <= crossfade < {spec.clip_duration} (the clip duration)")
        update_spec(services, spec.model_copy(update={"crossfade": crossfade}))
        _run_and_report(project_id, ["final_video"])
    except VidpipeError as exc:
        raise _fail(exc) from None


@app.command()
def edit(project_id: str = typer.Argument(..., metavar="ID"),
         scene: int = typer.Option(..., "--scene", help="Scene index (0-based)."),
         description: Optional[str] = typer.Option(None), start_frame: Optional[str] = typer.Option(None, "--start-frame"),
         end_frame: Optional[str] = typer.Option(None, "--end-frame"), motion: Optional[str] = typer.Option(None)) -> None:
    """Edit one scene's prompts. Only what depends on them is regenerated by the next
    `vidpipe resume`: a motion prompt changes one clip; an end-frame prompt changes that frame
    and, through continuity, every later frame and clip."""
    from vidpipe_core.steps.edit import edit_scene

    try:
        changed = edit_scene(_services(), project_id, scene, description=description, start_frame_prompt=start_frame,
                             end_frame_prompt=end_frame, motion_prompt=motion)
    except VidpipeError as exc:
        raise _fail(exc) from None
    err.print(f"scene {scene} updated; frames to regenerate: {changed['frames'] or 'none'}; "
              f"clips to regenerate: {changed['clips'] or 'none'}. Run `vidpipe resume {project_id}`.")


@app.command()
def status(project_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Per-asset materialization state (from Dagster) and per-scene state (from the database)."""
    from vidpipe_dagster.status import project_status

    try:
        report = project_status(_services(), project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    assets = Table(title=f"project {project_id}")
    for col in ("asset", "state", "last run", "when"):
        assets.add_column(col)
    for row in report["assets"]:
        assets.add_row(row["asset"], row["state"], row["run_id"] or "", row["when"] or "")
    console.print(assets)
    scenes = Table(title="scenes")
    for col in ("scene", "start frame", "end frame", "clip", "duration", "cost"):
        scenes.add_column(col)
    for s in report["scenes"]:
        scenes.add_row(str(s["index"]), s["start_frame"], s["end_frame"], s["clip"],
                       f"{s['duration_s']:.2f}" if s["duration_s"] else "", f"${s['cost_usd']:.2f}")
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
        table.add_row(p.id, p.created_at.strftime("%Y-%m-%d %H:%M"), str(spec.get("scenes")),
                      "/".join(sorted(set(prov.values()))), final)
    console.print(table)


@app.command()
def migrate() -> None:
    """Apply the database migrations (also done automatically on first use)."""
    from vidpipe_core.db import migrate as run

    settings = get_settings()
    run(settings.resolved_database_url)
    console.print("database is at the newest revision")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
