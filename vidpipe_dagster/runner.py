"""Register, render and resume projects from Python: the one API the CLI, the tests and bench/
call. Nothing here prints; the CLI turns what these return into output.

Every run is a run of the code location's `render_project` job; a partial run (resume, stitch,
regenerate) is the same job with an asset selection, so the UI can re-execute any of them."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from vidpipe_core import locks, projects
from vidpipe_core.config import Settings, get_settings
from vidpipe_core.errors import ConfigurationError, InvalidInput, ProjectBusy, ProjectNotFound
from vidpipe_core.ids import validate_project_id
from vidpipe_core.projects import delete_project, earlier_files, load_spec, project_exists
from vidpipe_core.request import ProjectRequest, parse_fields
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.services import Services
from vidpipe_core.steps import CHARACTERS, CLIPS, FINAL_VIDEO, NARRATION, STAGES, STEP_OF
from vidpipe_core.steps.report import ProgressEvent
from vidpipe_core.steps.state import project_nonce
from vidpipe_dagster import progress
from vidpipe_dagster.failures import ERROR_CLASS_KEY, ERROR_SCENE_KEY, ERROR_STAGE_KEY
from vidpipe_dagster.healing import PARTITION_TAG, describe_run, owner_tags
from vidpipe_dagster.instance import (
    ensure_partition,
    get_instance,
    has_partition,
    register_partition,
    remove_partition,
)
from vidpipe_dagster.internals import RemoteJobOrigin, code_location_origin, execute_run
from vidpipe_dagster.materializations import SUPERSEDED_KEY, belongs_to_project, latest_materialization, metadata_value
from vidpipe_dagster.resume import ResumePlan, plan_resume, recover_dead_runs

Listener = Callable[[str, ProgressEvent], None]
# What workspace.yaml loads; runs started here are recorded as runs of that code location.
CODE_LOCATION_MODULE, CODE_LOCATION_ATTRIBUTE = "vidpipe_dagster.definitions", "defs"


def services(settings: Settings | None = None, *, housekeeping: bool = True) -> Services:
    """Database and artifact store; ``housekeeping=False`` for read-only commands (it removes the
    scratch folders of killed processes)."""
    return Services.create(settings or get_settings(), housekeeping=housekeeping)


def register(
    request: ProjectRequest | str, source: str = "cli", *, force: bool = False, svc: Services | None = None, **fields: Any
) -> ProjectSpec:
    """Register the project ``request`` asks for: validated here, once (`build_spec`), then
    `register_spec`. ``source`` says where the request came from (the project row keeps it).

    From Python, ``register("A fox", scenes=2)`` is ``register(ProjectRequest(prompt="A fox",
    scenes=2))``: the keywords are the request's fields (an unknown or mistyped one is refused by
    name, like an inbox file's), and they go no further than this line as keywords. ``svc``: the
    database and store to register in (the `new_project` job's resource); default: the environment's."""

    if isinstance(request, str):
        request = parse_fields({"prompt": request, **fields})
    elif fields:
        raise TypeError(f"register() takes a ProjectRequest or a prompt with fields, not both ({', '.join(fields)})")
    svc = svc if svc is not None else services()
    return register_spec(
        svc, projects.build_spec(svc.settings, request), generated=request.id is None, source=source, force=force
    )


def register_spec(svc: Services, spec: ProjectSpec, *, generated: bool, source: str, force: bool = False) -> ProjectSpec:
    """Register a validated ``spec`` all-or-nothing (``generated``: its id was made from the prompt,
    so it may change when taken; an id the request gave is refused when taken). The Dagster
    partition comes first and the row last: the row is what makes an id taken, so a registration
    killed in between leaves only a partition, and the id is still free. A failure removes the
    partition this call added.

    Asking twice does not pay twice: unless ``force``, a prompt and settings identical to a
    registered project's raise ``AlreadyRegistered`` carrying that project's spec, and nothing
    is written (`projects.refuse_duplicate` says which projects count). The project functions are
    looked up on the module when called: tests replace `projects.create_project` to stop a
    registration midway."""
    if not force:
        projects.refuse_duplicate(svc, spec, generated=generated)
    spec = projects.claim_id(svc, spec, generated=generated)
    instance = get_instance(svc.settings)
    added = register_partition(instance, spec.id)
    try:
        spec = projects.create_project(svc, spec, source)
    except BaseException:
        if added and not projects.project_exists(svc, spec.id):  # not if a concurrent `new` took the id
            remove_partition(instance, spec.id)
        raise
    supersede_earlier(instance, svc, spec.id)
    return spec


def supersede_earlier(instance: dg.DagsterInstance, svc: Services, project_id: str) -> list[str]:
    """Call right after registering ``project_id``: over each asset whose latest materialization of
    the partition is an earlier project's (the id was registered again after its database was lost
    or its project deleted), record a runless materialization that says so and names where that
    project's files went. Dagster's records cannot be wiped one partition at a time (see `delete`),
    and without this the UI would show the earlier project's video, paths and summary as this
    partition's latest. It carries no nonce, so nothing trusts it (`status.belongs_to_project`).
    Returns the assets marked."""
    nonce = project_nonce(svc, project_id)
    moved = earlier_files(svc, project_id)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    why = (
        f"Project {project_id} was registered again at {when}. The materialization before this one was made for an "
        "earlier project with this id and is not this project's; nothing has been made for this project yet."
    )
    files = f" That project's files were moved to {moved}." if moved else ""
    marked = []
    for name in STAGES:
        record = latest_materialization(instance, name, project_id)
        if record is None or metadata_value(record, SUPERSEDED_KEY) is not None or belongs_to_project(record, nonce):
            continue
        metadata: dict[str, Any] = {SUPERSEDED_KEY: why + files}
        if moved:
            metadata["earlier_files"] = dg.MetadataValue.path(moved)
        if name == FINAL_VIDEO:
            metadata["summary"] = dg.MetadataValue.md(
                f"### {project_id}\n\n**No final video yet.** {why}{files} `vidpipe render {project_id}` "
                "(or Materialize) makes this project's."
            )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(name, partition=project_id, description="not this project's", metadata=metadata)
        )
        marked.append(name)
    return marked


@dataclass(frozen=True)
class Deleted:
    """What `delete` removed: the project (its database rows), its folder of artifacts, its
    Dagster partition."""

    project_id: str
    project: bool
    folder: bool
    partition: bool


# The run id under which `delete` holds the project lock while it removes the project.
DELETE_RUN_ID = "vidpipe-delete"


def find(project_id: str) -> tuple[bool, bool, bool]:
    """Whether ``project_id`` has a project row, a folder of artifacts, a Dagster partition."""
    validate_project_id(project_id)
    svc = services(housekeeping=False)
    folder = svc.store.has_project(project_id)
    return project_exists(svc, project_id), folder, has_partition(get_instance(svc.settings), project_id)


def delete(project_id: str, *, svc: Services | None = None) -> Deleted:
    """Remove a project, or what is left of one (a partition added with no project behind it, a
    folder whose row is gone): its folder under the artifact store, its database rows and its
    Dagster partition. Dagster's records are kept: runs are the run log, and the partition's
    materializations cannot be wiped one partition at a time on Dagster's SQL storages
    (`wipe_asset_partitions` raises NotImplementedError); a project created again under this id has
    a new nonce, so vidpipe ignores them (see `materializations.NONCE_KEY`), and its registration marks them
    as not its own for the UI (`supersede_earlier`).

    Refused, with nothing removed, while a run holds the project: ProjectBusy for a queued or live
    run of the partition or a held project lock (a run whose process died is marked failed first,
    as `resume` does). InvalidInput for an id that is not one (nothing outside the artifact
    store's `projects/` folder is ever named); ProjectNotFound when there is nothing to remove.
    ``svc``: the database and store (the `delete_project` job's resource); default: the environment's."""
    validate_project_id(project_id)
    svc = svc if svc is not None else services()
    instance = get_instance(svc.settings)
    store = svc.store
    root = store.project_root(project_id)
    if store.is_local and os.path.islink(root):
        raise ConfigurationError(
            f"project {project_id!r}: its folder {root} is a symbolic link; vidpipe deletes only what is inside "
            "its artifact store: remove the link yourself"
        )
    had_row, had_partition = project_exists(svc, project_id), has_partition(instance, project_id)
    had_folder = store.has_project(project_id)
    if not (had_row or had_partition or had_folder):
        raise ProjectNotFound(project_id)
    waiting = instance.get_runs(
        filters=dg.RunsFilter(
            tags={PARTITION_TAG: project_id},
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        )
    )
    if waiting:
        raise ProjectBusy(project_id, f"{describe_run(waiting[0])}, waiting to start")
    recover_dead_runs(instance, svc, project_id)  # ProjectBusy while a run of it is alive
    holder = locks.acquire(svc, project_id, DELETE_RUN_ID) if had_row else None  # ProjectBusy when held
    try:
        delete_project(svc, project_id)  # rows (the lock goes with the project's row), then the folder
    except BaseException:
        if holder is not None and project_exists(svc, project_id):
            locks.release(svc, project_id, holder.encode())
        raise
    remove_partition(instance, project_id)
    return Deleted(project_id, had_row, had_folder, had_partition)


def render(
    project_id: str,
    *,
    assets: Sequence[str] | None = None,
    run_config: dict[str, Any] | None = None,
    listener: Listener | None = None,
    log_level: str = "WARNING",
) -> dg.JobExecutionResult:
    """Materialize a project's assets (all of them, or ``assets``) in this process as a run of
    `render_project`, recorded in the Dagster instance. ``listener`` gets every progress event
    of this partition while the run lasts. Failures are in the result (see `failures`).
    ``log_level`` is the level of Dagster's console logger (stderr); the event log keeps every
    event whatever it is (see `run_log`).

    The run is recorded as a run of the code location that workspace.yaml loads, like a run
    launched from the UI, so the UI can re-execute it (all steps or from failure)."""
    # The job (the assets, their steps, media and previews) is imported here, not at the top: `vidpipe
    # delete`, `resume --dry-run` and `new` import this module and run no job. Measured (medians of
    # 15, load ~2.5): delete 1.69 s against 1.90 s with the import at the top (x0.93), resume
    # --dry-run 1.98 s against 2.06 s (x0.96).
    from vidpipe_dagster.jobs import render_project_in_process

    validate_project_id(project_id)
    svc = services()
    load_spec(svc, project_id)
    instance = get_instance(svc.settings)
    ensure_partition(instance, svc, project_id)
    # Dagster's console logger repeats every event; callers show progress through `listener`.
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    job = dg.reconstructable(render_project_in_process)
    job_def = render_project_in_process()
    selection = {dg.AssetKey(name) for name in assets} if assets else None
    run = instance.create_run_for_job(
        job_def=job_def.get_subset(asset_selection=selection) if selection else job_def,
        run_config=run_config,
        # This process runs the run: it is named as the owner from the start, so a run killed
        # before its first step tags itself is recognised as dead (see healing), not as "starting".
        tags={**job_def.run_tags, PARTITION_TAG: project_id, **owner_tags(os.getpid())},
        asset_selection=selection,
        remote_job_origin=_remote_origin(job_def.name),
        job_code_origin=job.get_python_origin(),
    )

    def forward(partition: str, event: ProgressEvent) -> None:
        if listener is not None and partition == project_id:
            listener(partition, event)

    progress.add_listener(forward)
    try:
        return execute_run(job, run, instance, raise_on_error=False)
    finally:
        progress.remove_listener(forward)


def _remote_origin(job_name: str) -> RemoteJobOrigin:
    """The origin the webserver gives runs of this job: workspace.yaml's code location (module
    `vidpipe_dagster.definitions`, attribute `defs`) and the Definitions' repository."""
    return code_location_origin(CODE_LOCATION_MODULE, CODE_LOCATION_ATTRIBUTE, job_name)


def repair_config(assets: Sequence[str]) -> dict[str, Any]:
    """Run config that lets the characters, clips (which makes the keyframes too) and narration
    steps pay to regenerate damaged files."""
    steps = {STEP_OF.get(name, name) for name in assets}  # the keyframes: the clips step's config
    return {"ops": {name: {"config": {"repair_damaged": True}} for name in (CHARACTERS, CLIPS, NARRATION) if name in steps}}


@dataclass
class ResumeStart:
    """What `resume` found before running anything: runs whose process died (run id ->
    description), whether the partition had to be added, and the plan."""

    plan: ResumePlan
    dead_runs: dict[str, str] = field(default_factory=dict)
    partition_missing: bool = False


def prepare_resume(project_id: str, *, dry_run: bool) -> ResumeStart:
    """Mark runs whose process died as failed (or, with ``dry_run``, only say so) and plan what
    to materialize. Raises ProjectBusy while a live run holds the project."""
    validate_project_id(project_id)
    svc = services(housekeeping=not dry_run)
    load_spec(svc, project_id)
    instance = get_instance(svc.settings)
    missing = not has_partition(instance, project_id)
    if not dry_run:
        ensure_partition(instance, svc, project_id)
    dead = recover_dead_runs(instance, svc, project_id, dry_run=dry_run)
    return ResumeStart(plan=plan_resume(instance, svc, project_id), dead_runs=dead, partition_missing=missing)


@dataclass(frozen=True)
class StepFailure:
    step: str
    message: str
    error_class: str | None  # the vidpipe error a step raised; None for anything else
    scene: int | None = None  # 0-based scene (frame, for keyframes) the error names, if any


def failures(result: dg.JobExecutionResult) -> list[StepFailure]:
    """Each failed step with its vidpipe error, read from the structured failure data (a step
    turns a VidpipeError into a dg.Failure whose description is the error's message); a step that
    a failed blocking check stopped, with what the check found."""
    found = []
    refused = _failed_checks(result)
    for event in result.all_events:
        data = event.step_failure_data if event.is_step_failure else None
        if data is None:
            continue
        user = data.user_failure_data
        if user is not None and user.description:
            metadata = user.metadata or {}
            text = getattr(metadata.get(ERROR_CLASS_KEY), "value", None)
            scene = getattr(metadata.get(ERROR_SCENE_KEY), "value", None)
            stage = getattr(metadata.get(ERROR_STAGE_KEY), "value", None)
            found.append(
                StepFailure(
                    stage if isinstance(stage, str) else event.step_key or "?",
                    user.description,
                    text if isinstance(text, str) else None,
                    scene if isinstance(scene, int) else None,
                )
            )
        elif data.error is not None and data.error.cls_name == BLOCKING_CHECK_FAILED and event.step_key in refused:
            found.append(StepFailure(event.step_key, refused[event.step_key], None))
        elif data.error is not None:
            chain: list[str] = []
            error = data.error
            while True:
                chain.append(error.message.strip())
                if error.cause is None:
                    break
                error = error.cause
            found.append(StepFailure(event.step_key or "?", " <- ".join(chain), None))
    return found


# The error a step fails with when one of its blocking checks failed (it names only the checks).
BLOCKING_CHECK_FAILED = "DagsterAssetCheckFailedError"


def _failed_checks(result: dg.JobExecutionResult) -> dict[str, str]:
    """Step -> what its failed blocking checks found: "check clips_complete failed: scene 2: ...",
    the line a step that stops at a check fails with instead of Dagster's list of check names."""
    found: dict[str, list[str]] = {}
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION or event.step_key is None:
            continue
        evaluation = event.asset_check_evaluation_data
        if not evaluation.passed and evaluation.blocking and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            found.setdefault(event.step_key, []).append(f"check {evaluation.check_name} failed: {evaluation.description}")
    return {step: "; ".join(lines) for step, lines in found.items()}


def awaiting_approval(result: dg.JobExecutionResult) -> str | None:
    """What the review gate held back in this run ("awaiting approval: ..."), from the observation
    the clips step records when it stops before paying (None when it did not stop)."""
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.ASSET_OBSERVATION:
            continue
        observation = event.asset_observation_data.asset_observation
        if observation.asset_key == dg.AssetKey(CLIPS) and "review" in observation.metadata:
            return str(observation.metadata["review"].value)
    return None


def until_stages(until: str) -> list[str]:
    """The stages up to ``until`` (included), for `render --until`: InvalidInput naming the stages
    for anything else."""
    if until not in STAGES:
        raise InvalidInput("--until", f"{until!r} is not a stage", ", ".join(STAGES))
    return list(STAGES[: STAGES.index(until) + 1])


def failure_message(result: dg.JobExecutionResult) -> str:
    """One line per failed step: `step: message`."""
    return "\n".join(f"{f.step}: {f.message}" for f in failures(result)) or "the run failed; see the Dagster UI for details"


def was_interrupted(result: dg.JobExecutionResult) -> bool:
    """The run stopped because of SIGINT/SIGTERM (Dagster turns both into an interrupt)."""
    for event in result.all_events:
        data = event.step_failure_data if event.is_step_failure else None
        if data is not None and data.error_source is not None and data.error_source.value == "INTERRUPT":
            return True
    return False


def run_log(run_id: str) -> str:
    """A run's whole Dagster event log as text: every event and log message with its level and
    step, and the stack trace of each failure (what `--verbose` streams while the run lasts)."""
    instance = get_instance(services(housekeeping=False).settings)
    lines = []
    for entry in instance.all_logs(run_id):
        when = datetime.fromtimestamp(entry.timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        event = entry.dagster_event
        kind = event.event_type_value if event is not None else "LOG"
        level = logging.getLevelName(entry.level) if isinstance(entry.level, int) else str(entry.level)
        lines.append(f"{when} {level} {entry.step_key or '-'} {kind} {entry.user_message}")
        error = None
        if event is not None and event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
        elif event is not None and event.is_run_failure and event.job_failure_data is not None:
            error = event.job_failure_data.error
        if error is not None:
            lines.append(error.to_string().rstrip())
    return "\n".join(lines) + "\n"
