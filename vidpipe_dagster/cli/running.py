"""The commands that run the asset graph: `render`, `demo`, `resume`, `regenerate`, `retake` and `stitch`,
and how a run's outcome is reported."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from vidpipe_core.errors import InvalidInput, VidpipeError
from vidpipe_core.request import ProjectRequest
from vidpipe_core.scenes import scene_number
from vidpipe_core.steps import CHARACTERS, CLIPS, FINAL_VIDEO, KEYFRAMES, STAGES
from vidpipe_core.text import escape_invisible
from vidpipe_dagster.cli.base import _services, _startup_checks
from vidpipe_dagster.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, class_exit_code, run_exit_code
from vidpipe_dagster.cli.logs import _run_log_file
from vidpipe_dagster.cli.output import _emit_json, _fail, _json_mode, _note, _Options, _result, _run_document, err
from vidpipe_dagster.cli.progress import _render
from vidpipe_dagster.cli.scrub import _scrub

if TYPE_CHECKING:
    import dagster as dg

    from vidpipe_dagster.runner import StepFailure

DEMO_PROMPT = (
    "A paper boat sets off down a rain-filled gutter at dawn. It rides a tiny waterfall into a city canal. "
    "A curious duck follows it past moored houseboats. The boat drifts out into a wide harbour as the sun rises."
)


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
    return f"{failure.step}, {'frame' if failure.step == KEYFRAMES else 'scene'} {scene_number(failure.scene)}"


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
            f'change the scene\'s prompt (`vidpipe edit {project_id} --scene {scene_number(failure.scene)} --motion "..."`) or '
            f"leave it out of the video (`vidpipe edit {project_id} --safety-policy skip`), then `vidpipe resume {project_id}`"
        )
    if class_exit_code(failure.error_class) == EXIT_USAGE:
        return f"then `vidpipe resume {project_id}`"
    return f"`vidpipe resume {project_id}` tries again without paying twice for finished work"


def _failure_document(failure: StepFailure) -> dict[str, Any]:
    scene = None if failure.scene is None or failure.step == KEYFRAMES else scene_number(failure.scene)
    frame = scene_number(failure.scene) if failure.scene is not None and failure.step == KEYFRAMES else None
    return {
        "stage": failure.step,
        "scene": scene,
        "frame": frame,
        "message": _cause(failure),
        "error": failure.error_class,
    }


def _finish(project_id: str, result: dg.JobExecutionResult, until: str | None = None) -> None:
    """Print the video's path (or the --json document); or say why there is none: on stderr the
    review gate's "awaiting approval" (a success), or one line per failed stage, keeping the run's
    Dagster log in a file, and exit non-zero. ``until``: the last stage the run was asked to make."""
    from vidpipe_dagster.runner import awaiting_approval, failures, was_interrupted

    if result.success:
        held = awaiting_approval(result)
        if held is not None:  # the review gate stopped the clips: no video (an earlier one is not this one's)
            _note(held)
            if _Options.json:
                document = _run_document(project_id, result.run_id, "awaiting_approval", None, EXIT_OK)
                _emit_json({**document, "review": held})
            return
        video = _final_video(project_id) if until in (None, FINAL_VIDEO) else None
        if until not in (None, FINAL_VIDEO):
            _note(f"made the stages up to {until}; `vidpipe render {project_id}` makes the rest")
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


def render(
    project_id: str = typer.Argument(..., metavar="ID"),
    until: str | None = typer.Option(
        None,
        "--until",
        metavar="STAGE",
        show_default="final_video",
        help=f"Make only the stages up to this one: {', '.join(STAGES)} (no approval is needed before clips).",
    ),
    as_json: bool = _run_option(),
) -> None:
    """Make the storyboard, character sheets, keyframes, clips and final video of a project (what is already made is
    reused) and print the video's path. A project under review stops before its clips until `vidpipe approve ID`."""
    from vidpipe_dagster.runner import until_stages

    if as_json:
        _json_mode("run", project_id=project_id)
    try:
        stages = until_stages(until) if until is not None else None
        _startup_checks()
        result = _render(project_id, stages)
    except VidpipeError as exc:
        raise _fail(exc) from None
    _finish(project_id, result, until)


def approve(
    project_id: str = typer.Argument(..., metavar="ID"),
    max_cost: float | None = typer.Option(
        None,
        "--max-cost",
        metavar="USD",
        show_default="unchanged",
        help="The project's budget in USD from now on; the approved clips must fit in it.",
    ),
    as_json: bool = _run_option(),
) -> None:
    """Approve the clips of a project under review (recorded with their cost), make them and the final video,
    and print its path; approving again pays nothing."""
    from vidpipe_core.approvals import record_approval
    from vidpipe_dagster.runner import prepare_resume

    if as_json:
        _json_mode("run", project_id=project_id, approval=None)
    try:
        _startup_checks()
        services = _services()
        approval = record_approval(services, project_id, kind="approve", source="cli", budget_usd=max_cost)
        _note(approval.message)
        if as_json:
            _Options.json_base["approval"] = approval.document()
        if not approval.recorded and not prepare_resume(project_id, dry_run=True).plan.assets:
            video = _final_video(project_id)
            if as_json:
                _emit_json(_run_document(project_id, None, "success", video, EXIT_OK))
            elif video is not None:
                _result(video)
            return
        result = _render(project_id)
    except VidpipeError as exc:
        raise _fail(exc) from None
    _finish(project_id, result)


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
        services = _services()
        spec = new_takes(services, project_id, indices, uuid.uuid4().hex[:12])
        err.print(f"new takes for {scene_list(indices)}")
        if spec.review != "none":  # a person asked for these takes: under review, that is their approval
            _approve_takes(services, project_id, indices)
        _run_and_report(project_id, [CHARACTERS, KEYFRAMES, CLIPS, FINAL_VIDEO])
    except VidpipeError as exc:
        raise _fail(exc) from None


def retake(
    project_id: str = typer.Argument(..., metavar="ID"),
    frame: int | None = typer.Option(
        None,
        "--frame",
        metavar="K",
        help="Keyframe number, from 1 as the contact sheet labels them: frame 1 starts scene 1, frame K+1 ends scene K.",
    ),
    character: str | None = typer.Option(
        None, "--character", metavar="NAME", help="A character (its name in the style guide) whose reference sheet to take again."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", show_default=True, help="Do not ask for confirmation (the cost is still printed)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", show_default=True, help="Print what the retake costs and re-makes; spend and change nothing."
    ),
    frames_only: bool = typer.Option(
        False,
        "--frames-only",
        show_default=True,
        help="Make the new take and the frames after it now; leave the clips for `vidpipe resume` (or an approval).",
    ),
) -> None:
    """A new take of a keyframe or character sheet from the same prompt: says its cost and the frames
    and clips it re-makes first, then asks."""
    import uuid

    from vidpipe_core.steps.retake import apply_retake, plan_retake

    try:
        services = _services()
        plan = plan_retake(services, project_id, frame=frame, character=character)
        err.print(f"{plan.summary()}.", soft_wrap=True, markup=False)
        if dry_run:
            _note("dry run: nothing was spent or changed")
            return
        if not yes:
            if not sys.stdin.isatty():
                raise InvalidInput("--yes", f"a retake of {project_id} spends money and stdin is not a terminal; pass --yes")
            if not typer.confirm(f"spend up to ${plan.total_usd:.2f} on this retake?", default=False, err=True):
                _note("nothing spent or changed")
                return
        _startup_checks()
        spec = apply_retake(services, plan, uuid.uuid4().hex[:12])
        if spec.review != "none" and plan.clips and not frames_only:
            # Under review a person's retake is its own approval: the clips it re-makes are approved
            # once their new frames exist (an approval covers the frames' bytes), then paid for.
            result = _render(project_id, [CHARACTERS, KEYFRAMES])
            if not result.success:
                _finish(project_id, result)
            _approve_takes(services, project_id, plan.clips, kind="retake")
            _run_and_report(project_id, [CLIPS, FINAL_VIDEO])
            return
        if frames_only:
            result = _render(project_id, [CHARACTERS, KEYFRAMES])
            if result.success:
                _note(f"the new take and the frames after it are made; `vidpipe resume {project_id}` makes the clips")
                _result(project_id)
                return
            _finish(project_id, result)
        else:
            _run_and_report(project_id, [CHARACTERS, KEYFRAMES, CLIPS, FINAL_VIDEO])
    except VidpipeError as exc:
        raise _fail(exc) from None


def _approve_takes(services: Any, project_id: str, indices: list[int], kind: str = "regenerate") -> None:
    """Record the new takes of `regenerate` or `retake` as their own approval, saying what they
    cost; before the keyframes exist there is nothing to cover yet, and the takes wait for
    `vidpipe approve`."""
    from vidpipe_core.approvals import record_approval

    try:
        approval = record_approval(services, project_id, kind=kind, source="cli", scenes=indices)
    except InvalidInput as exc:
        _note(f"{exc}; the new takes wait for `vidpipe approve {project_id}`")
        return
    _note(approval.message)


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
        _run_and_report(project_id, [FINAL_VIDEO])
    except VidpipeError as exc:
        raise _fail(exc) from None
