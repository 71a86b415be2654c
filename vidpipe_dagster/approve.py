"""Approving from the UI or another program: the `approve_project` job (what `vidpipe approve`
does: record the approval of a project under review in the ledger, `vidpipe_core.approvals`) and
the `render_approved_project` run-status sensor that then starts the rest as an ordinary
`render_project` run, as `new_project` does. The job's Launchpad opens with a filled example
config (its default run config): replace the project id and launch."""

import dagster as dg
from pydantic import Field

from vidpipe_core.approvals import record_approval
from vidpipe_core.errors import VidpipeError
from vidpipe_core.projects import load_spec
from vidpipe_dagster.create import PROJECT_TAG, _failure, render_request
from vidpipe_dagster.jobs import render_project
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.review import (
    APPROVE_OP,
    APPROVE_PROJECT_JOB,
    APPROVED,
    APPROVED_BY_TAG,
    REVIEW_TAG,
    run_source,
)

APPROVAL_TAG = "vidpipe/approval"  # on an approve_project run: "recorded" or "nothing new"
EXAMPLE_ID = "my-project"


class ApproveProjectConfig(dg.Config):
    project_id: str = Field(description="The project under review to approve (its id, as `vidpipe list` shows it).")
    max_cost_usd: float | None = Field(
        default=None, description="The project's budget in USD from now on; the approved clips must fit in it. Null: unchanged."
    )


@dg.op(
    name=APPROVE_OP,
    description="What `vidpipe approve ID` does: records the approval of the project's clips (what it covers and "
    "their cost); the render_approved_project sensor then starts its render_project run.",
    out=dg.Out(dg.Nothing),
)
def approve_op(context: dg.OpExecutionContext, config: ApproveProjectConfig, vidpipe: VidpipeResource) -> dg.Output[None]:
    try:
        svc = vidpipe.services()
        load_spec(svc, config.project_id)  # a bad or unknown id: one line naming it
        approval = record_approval(
            svc,
            config.project_id,
            kind="approve",
            source=run_source(context.run.tags),
            run_id=context.run_id,
            budget_usd=config.max_cost_usd,
        )
    except VidpipeError as exc:
        raise _failure(exc) from None
    context.instance.add_run_tags(
        context.run_id, {PROJECT_TAG: config.project_id, APPROVAL_TAG: "recorded" if approval.recorded else "nothing new"}
    )
    context.log.info(approval.message)
    return dg.Output(
        None,
        metadata={
            "project_id": config.project_id,
            "approval": approval.message,
            "scenes": dg.MetadataValue.json(approval.document()["scenes"]),
            "estimate_usd": round(approval.estimate_usd, 4),
        },
    )


@dg.job(
    name=APPROVE_PROJECT_JOB,
    description="Approve the clips of a project under review (what `vidpipe approve` does); its render_project run "
    "is started by the render_approved_project sensor. Config: project_id, optional max_cost_usd.",
    executor_def=dg.in_process_executor,
    config={"ops": {APPROVE_OP: {"config": {"project_id": EXAMPLE_ID, "max_cost_usd": None}}}},
)
def approve_project() -> None:
    approve_op()


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[approve_project],
    request_job=render_project,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the render_project run of each project the approve_project job approved.",
)
def render_approved_project(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    tags = {APPROVED_BY_TAG: context.dagster_run.run_id, REVIEW_TAG: APPROVED}
    return render_request(context, APPROVE_PROJECT_JOB, "approved no project", tags)
