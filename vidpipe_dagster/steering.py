"""Steering a project from the Dagster UI, before its clips are paid: the `edit_scene` job (what
`vidpipe edit --scene N` does) and the `retake` job (what `vidpipe retake` does), with the
`render_retake` run-status sensor that starts the render of a retake as an ordinary
`render_project` run. Each job calls the core function the CLI calls, so the validation and the
messages are the same; each opens in the Launchpad with a filled, valid example config.

The `edit_scene` config has one key per editable scene field (`vidpipe_core.scene_fields`): a new
field there is a new key here."""

import uuid
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, create_model

from vidpipe_core.errors import VidpipeError
from vidpipe_core.scene_fields import SCENE_FIELDS, scene_changes
from vidpipe_core.scenes import scene_number
from vidpipe_core.steps.edit import edit_scene as edit_scene_step
from vidpipe_core.steps.retake import apply_retake, plan_retake
from vidpipe_dagster.create import PROJECT_TAG, _failure, render_request
from vidpipe_dagster.jobs import render_project
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.review import RETAKE_APPROVES_TAG, RETAKE_SOURCE_TAG, run_source

EDIT_SCENE_JOB = "edit_scene"
RETAKE_JOB = "retake"
RETAKE_TAG = "vidpipe/retake"  # on a retake run: what was taken again ("frame 2 (...)")
EXAMPLE_PROJECT = "my-project"  # the example configs' project id: the Launchpad shows where it goes

PROJECT_HELP = "The project's id (`vidpipe list` lists them)."
SCENE_HELP = "Scene number, from 1 as in the captions and `vidpipe status`."


def _edit_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {
        "project": (str, Field(description=PROJECT_HELP)),
        "scene": (int, Field(description=SCENE_HELP)),
    }
    for f in SCENE_FIELDS:
        fields[f.option] = (str | None, Field(default=None, description=f"{f.help} Null: unchanged."))
    return fields


if TYPE_CHECKING:

    class EditSceneConfig(dg.Config):  # what the type checker sees; the class is built below
        project: str
        scene: int

else:
    EditSceneConfig = create_model(
        "EditSceneConfig",
        __base__=dg.Config,
        __doc__="One scene's fields, as `vidpipe edit ID --scene N` takes them. Null means unchanged.",
        **_edit_fields(),
    )


@dg.op(
    name="change_scene",
    description="Changes one scene's fields (checked first: nothing is written when anything is wrong) and says "
    "which reference sheets, frames and clips the next render makes again. Spends nothing.",
    out=dg.Out(dg.Nothing),
)
def change_scene(context: dg.OpExecutionContext, config: EditSceneConfig, vidpipe: VidpipeResource) -> dg.Output[None]:
    values = config.model_dump()
    try:
        request = scene_changes(config.scene, {f.option: values[f.option] for f in SCENE_FIELDS}, settings_given=False)
        assert request is not None  # without settings, scene_changes refuses an empty edit
        index, given = request
        changed = edit_scene_step(vidpipe.services(), config.project, index, **given)
    except VidpipeError as exc:
        raise _failure(exc) from None
    context.instance.add_run_tags(context.run_id, {PROJECT_TAG: config.project})
    summary = f"scene {config.scene} updated; {changed.summary()}."
    context.log.info(summary)
    return dg.Output(
        None,
        metadata={
            "project_id": config.project,
            "scene": config.scene,
            "summary": summary,
            "edit": dg.MetadataValue.json(changed.document()),
        },
    )


EDIT_EXAMPLE = {
    "ops": {
        "change_scene": {
            "config": {
                "project": EXAMPLE_PROJECT,
                "scene": 1,
                "motion": "The camera pushes in slowly as the light rises",
            }
        }
    }
}


@dg.job(
    name=EDIT_SCENE_JOB,
    description="Edit one scene of a project (what `vidpipe edit ID --scene N` does): its description, prompts, "
    "motion or characters. Nothing is paid; the next render makes again only what the edit changed.",
    executor_def=dg.in_process_executor,
    config=EDIT_EXAMPLE,
)
def edit_scene() -> None:
    change_scene()


class RetakeConfig(dg.Config):
    project: str = Field(description=PROJECT_HELP)
    frame: int | None = Field(
        default=None,
        description="Keyframe number, from 1 as the contact sheet labels them: frame 1 starts scene 1, frame K+1 "
        "ends scene K. Give this or character.",
    )
    character: str | None = Field(
        default=None, description="A character (its style-guide name) whose reference sheet to take again."
    )
    dry_run: bool = Field(
        default=False,
        description="Only say what the retake costs and re-makes (in this run's metadata); spend and change nothing.",
    )


@dg.op(
    name="take_again",
    description="States what a new take of the frame or sheet costs and which frames and clips it re-makes "
    "(continuity), in this run's metadata; then, unless dry_run, records the take; the render_retake sensor "
    "starts the project's render_project run, which makes them.",
    out=dg.Out(dg.Nothing),
)
def take_again(context: dg.OpExecutionContext, config: RetakeConfig, vidpipe: VidpipeResource) -> dg.Output[None]:
    try:
        services = vidpipe.services()
        plan = plan_retake(services, config.project, frame=config.frame, character=config.character)
        context.log.info(f"{plan.summary()}.")
        if not config.dry_run:
            apply_retake(services, plan, f"run-{context.run.root_run_id or context.run_id}-{uuid.uuid4().hex[:6]}")
    except VidpipeError as exc:
        raise _failure(exc) from None
    if not config.dry_run:
        tags = {PROJECT_TAG: config.project, RETAKE_TAG: plan.what}
        if plan.clips:  # under review, the render's clips step records these as the retake's own approval
            tags[RETAKE_APPROVES_TAG] = ",".join(str(scene_number(i)) for i in plan.clips)
        context.instance.add_run_tags(context.run_id, tags)
    return dg.Output(
        None,
        metadata={
            "project_id": config.project,
            "summary": f"{plan.summary()}.",
            "cost_usd": plan.total_usd,
            "images_usd": round(plan.images_usd, 6),
            "clips_usd": round(plan.clips_usd, 6),
            "cascade": dg.MetadataValue.json(plan.document()),
            "dry_run": config.dry_run,
        },
    )


RETAKE_EXAMPLE = {"ops": {"take_again": {"config": {"project": EXAMPLE_PROJECT, "frame": 2, "dry_run": True}}}}


@dg.job(
    name=RETAKE_JOB,
    description="A new take of one keyframe or character sheet with the same prompt (what `vidpipe retake` does). "
    "The run's metadata says what it costs and re-makes; with dry_run: false the render_retake sensor then "
    "renders the project.",
    executor_def=dg.in_process_executor,
    config=RETAKE_EXAMPLE,
)
def retake() -> None:
    take_again()


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[retake],
    request_job=render_project,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the render_project run that makes a retake and its cascade.",
)
def render_retake(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    tags = {RETAKE_TAG: run.run_id}
    if run.tags.get(RETAKE_APPROVES_TAG):
        tags.update({RETAKE_APPROVES_TAG: run.tags[RETAKE_APPROVES_TAG], RETAKE_SOURCE_TAG: run_source(run.tags)})
    return render_request(context, RETAKE_JOB, "recorded no take (a dry run, or nothing to take again)", tags)
