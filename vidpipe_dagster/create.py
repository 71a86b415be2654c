"""Projects made and removed from the Dagster UI: the `new_project` job (what `vidpipe new` does),
the `render_new_project` run-status sensor that starts its render as an ordinary `render_project`
run, and the `delete_project` job (what `vidpipe delete` does).

The run config of `new_project` is the request of `vidpipe new` and of an inbox file: one field per
field of ``vidpipe_core.request.ProjectRequest`` (built from it, with its descriptions and defaults)
plus ``force``. It is a permissive config, so a field Dagster does not know is not refused by the
Launchpad alone: the run names it along with every other problem (`request.check_fields` then
`projects.validate_request`, the messages of the inbox and of `vidpipe new`), and registers nothing."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

import dagster as dg
from pydantic import Field, create_model

from vidpipe_core.config import Settings
from vidpipe_core.errors import InvalidInput, VidpipeError
from vidpipe_core.projects import AlreadyRegistered, request_and_spec
from vidpipe_core.request import CharacterRequest, ProjectRequest, described
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.steps import FINAL_VIDEO
from vidpipe_dagster.failures import ERROR_CLASS_KEY
from vidpipe_dagster.healing import PARTITION_TAG
from vidpipe_dagster.instance import NEW_PROJECT_JOB
from vidpipe_dagster.jobs import render_project
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.review import CREATED_BY_TAG, ORIGIN_TAG
from vidpipe_dagster.runner import delete, register_spec

PROJECT_TAG = "vidpipe/project"  # on a new_project run: the project it registered (or found)
EXISTING_TAG = "vidpipe/existing"  # "true" when an identical project was found and nothing was registered
WAITING = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
FORCE_HELP = "Register a new project even when one has this prompt and these settings."


class CharacterConfig(dg.PermissiveConfig):
    """A character of the `new_project` config: `CharacterRequest`'s fields, as Dagster config; permissive,
    so a mistyped field is named by `request.check_fields` with the rest of the problems."""

    name: str = Field(description=CharacterRequest.model_fields["name"].description)
    appearance: Optional[str] = Field(default=None, description=CharacterRequest.model_fields["appearance"].description)  # noqa: UP045  # Dagster's config reads Optional
    image: Optional[str] = Field(default=None, description=CharacterRequest.model_fields["image"].description)  # noqa: UP045


def _config_fields() -> dict[str, Any]:
    """The config's fields: each request field with its type, default (null: the request's
    default) and description, then ``force``. The characters, a list of models, are a list of
    `CharacterConfig`."""
    fields: dict[str, Any] = {}
    for name, info in ProjectRequest.model_fields.items():
        default = ... if info.is_required() else None
        annotation = Optional[list[CharacterConfig]] if name == "characters" else info.annotation  # noqa: UP045
        fields[name] = (annotation, Field(default=default, description=described(name)))
    fields["force"] = (bool, Field(default=False, description=FORCE_HELP))
    return fields


if TYPE_CHECKING:

    class NewProjectConfig(dg.PermissiveConfig):  # what the type checker sees; the class is built below
        force: bool

else:
    NewProjectConfig = create_model(
        "NewProjectConfig",
        __base__=dg.PermissiveConfig,
        __doc__="A project, as `vidpipe new` takes it. Null means the default.",
        **_config_fields(),
    )


def _failure(exc: VidpipeError) -> dg.Failure:
    """The run's one failure: the error's message, and its class (read by runner.failures)."""
    return dg.Failure(description=str(exc), metadata={ERROR_CLASS_KEY: type(exc).__name__}, allow_retries=False)


def spec_request(config: NewProjectConfig, settings: Settings) -> tuple[ProjectRequest, ProjectSpec]:
    """The request of ``config`` and its spec, validated once, or InvalidInput naming every
    problem: unknown fields (the inbox's messages, with a "did you mean"), then the spec's rules."""
    # Files named in the config are read from the inbox folder (or VIDPIPE_INPUT_ROOTS): a person at the
    # UI names files of the deployment, and only those it set aside for people to give.
    raw = {k: v for k, v in config.model_dump().items() if k != "force" and v is not None}
    return request_and_spec(settings, raw, base=settings.resolved_inbox_dir)


@dg.op(
    name="register_project",
    description="Validates the project (every problem named at once; nothing written when anything is wrong), "
    "registers it and its partition; the render_new_project sensor then starts its render_project run.",
    out=dg.Out(dg.Nothing),
)
def register_project(context: dg.OpExecutionContext, config: NewProjectConfig, vidpipe: VidpipeResource) -> dg.Output[None]:
    try:
        svc = vidpipe.services()
        request, spec = spec_request(config, svc.settings)
        try:
            spec = register_spec(
                svc,
                spec,
                generated=request.id is None,
                source=f"dagster:{NEW_PROJECT_JOB}:{context.run_id}",
                force=config.force,
            )
            existing = False
        except AlreadyRegistered as exc:
            spec, existing = exc.spec, True
            context.log.info(f"{exc}; its render is requested instead (set force: true for a new project)")
    except VidpipeError as exc:
        raise _failure(exc) from None
    context.instance.add_run_tags(context.run_id, {PROJECT_TAG: spec.id, EXISTING_TAG: str(existing).lower()})
    context.log.info(f"project {spec.id} {'found' if existing else 'registered'}; its render_project run comes next")
    return dg.Output(
        None,
        metadata={
            "project_id": spec.id,
            "existing": existing,
            "spec": dg.MetadataValue.json(spec.model_dump(mode="json", exclude={"takes"})),
            "final_video": dg.MetadataValue.url(f"/assets/{FINAL_VIDEO}?view=partitions&partition={spec.id}"),
        },
    )


# What the Launchpad opens with: a valid request (the free animatic, so launching it as it is
# spends nothing); every other field takes its default.
NEW_PROJECT_EXAMPLE = {
    "ops": {
        "register_project": {
            "config": {
                "prompt": "A paper boat drifts down a rain-filled gutter at dawn and out into a wide harbour.",
                "scenes": 3,
                "clip_duration": 4,
                "provider": "animatic",
            }
        }
    }
}


@dg.job(
    name=NEW_PROJECT_JOB,
    description="Create a project (the options of `vidpipe new`) and render it: its render_project run "
    "is started by the render_new_project sensor.",
    executor_def=dg.in_process_executor,
    config=NEW_PROJECT_EXAMPLE,
)
def new_project() -> None:
    register_project()


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[new_project],
    request_job=render_project,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the render_project run of each project the new_project job registered.",
)
def render_new_project(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    return render_request(context, NEW_PROJECT_JOB, "registered no project", {CREATED_BY_TAG: run.run_id})


def render_request(
    context: dg.RunStatusSensorContext, job: str, nothing: str, tags: Mapping[str, str]
) -> dg.RunRequest | dg.SkipReason:
    """What the run-status sensors after `new_project`, `approve_project` and `retake` ask for: the
    render_project run of the project the finished ``job`` run tagged (PROJECT_TAG), tagged with
    where it came from and ``tags``; skipped, saying why, when the run tagged none (``nothing``) or
    the project already has a run queued or going."""
    run = context.dagster_run
    project_id = run.tags.get(PROJECT_TAG)
    if not project_id:
        return dg.SkipReason(f"run {run.run_id} {nothing}")
    busy = context.instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: project_id}, statuses=WAITING), limit=1)
    if busy:
        return dg.SkipReason(f"project {project_id} already has run {busy[0].run_id} ({busy[0].status.value})")
    return dg.RunRequest(run_key=f"{job}:{run.run_id}", partition_key=project_id, tags={ORIGIN_TAG: job, **tags})


class DeleteProjectConfig(dg.Config):
    project_id: str = Field(description="The project (or partition with no project behind it) to remove.")
    confirm: bool = Field(default=False, description="Set to true to delete; with false the run deletes nothing.")


@dg.op(
    name="remove_project",
    description="What `vidpipe delete ID --yes` does: removes the project's folder, rows and partition; "
    "refused while a run holds it.",
    out=dg.Out(dg.Nothing),
)
def delete_project_op(context: dg.OpExecutionContext, config: DeleteProjectConfig, vidpipe: VidpipeResource) -> dg.Output[None]:
    try:
        if not config.confirm:
            raise InvalidInput("confirm", f"is false; set it to true to delete {config.project_id!r} (nothing was deleted)")
        deleted = delete(config.project_id, svc=vidpipe.services())
    except VidpipeError as exc:
        raise _failure(exc) from None
    removed = {"project": deleted.project, "folder": deleted.folder, "partition": deleted.partition}
    context.log.info(f"deleted {config.project_id}: " + ", ".join(k for k, v in removed.items() if v))
    return dg.Output(None, metadata={"project_id": config.project_id, **removed})


@dg.job(
    name="delete_project",
    description="Remove a project or a stray partition (what `vidpipe delete` does). Config: project_id, confirm: true.",
    executor_def=dg.in_process_executor,
)
def delete_project() -> None:
    delete_project_op()
