"""The review gate on Dagster's side: the run tags that tie runs together and show a project's
review state, where a run came from (the ledger of approvals records it), and what a clips step
held back by the gate leaves on the run. A leaf: the assets, the create and approve jobs and their
sensors import it, and it imports nothing of vidpipe_dagster.

- on a `render_project` run: who asked for it (`CREATED_BY_TAG`: a `new_project` run;
  `APPROVED_BY_TAG`: an `approve_project` run) and the review state its clips step found (`REVIEW_TAG`);
- on the `new_project` / `approve_project` run: the `render_project` run it started (`RENDER_RUN_TAG`),
  written by that run's first step (the run id is not known when the sensor asks for the run)."""

from collections.abc import Iterator, Mapping

import dagster as dg

from vidpipe_core.approvals import Gate
from vidpipe_core.scenes import scene_number
from vidpipe_core.steps import CLIPS

CREATED_BY_TAG = "vidpipe/created_by_run"  # on the render run: the new_project run that asked for it
APPROVED_BY_TAG = "vidpipe/approved_by_run"  # on the render run: the approve_project run that asked for it
RENDER_RUN_TAG = "vidpipe/render_run"  # on a new_project / approve_project run: the render_project run it started
REVIEW_TAG = "vidpipe/review"  # on a render run: "awaiting approval", "approved" or "none"
ORIGIN_TAG = "vidpipe/origin"
# On a render run a `retake` job started: the scenes (from 1) whose clips the retake re-makes, and where
# the retake came from. Under review the clips step records them as the retake's own approval.
RETAKE_APPROVES_TAG = "vidpipe/retake_approves"
RETAKE_SOURCE_TAG = "vidpipe/retake_source"
APPROVE_PROJECT_JOB = "approve_project"  # the job that approves from the UI or another program
APPROVE_OP = "approve"  # its one op: the key of its config, `ops: {approve: {config: ...}}`

# Dagster's UI adds this tag to every run launched from it (a Launchpad, "Materialize").
FROM_UI_TAG = "dagster/from_ui"

AWAITING, APPROVED, NOT_UNDER_REVIEW = "awaiting approval", "approved", "none"


def run_source(tags: Mapping[str, str]) -> str:
    """Where a Dagster run came from, for the ledger: `ui` (Dagster's UI tagged it), else `api`
    (GraphQL, the Python client, `dagster job execute`)."""
    return "ui" if tags.get(FROM_UI_TAG) == "true" else "api"


def link_origin(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Tag the `new_project` or `approve_project` run that asked for this run with its id (once),
    so its run page leads to the render it started."""
    for tag in (CREATED_BY_TAG, APPROVED_BY_TAG):
        origin_id = run.tags.get(tag)
        origin = instance.get_run_by_id(origin_id) if origin_id else None
        if origin is not None and RENDER_RUN_TAG not in origin.tags:
            instance.add_run_tags(origin.run_id, {RENDER_RUN_TAG: run.run_id})


def awaiting(context: dg.AssetExecutionContext, held: Gate) -> Iterator[dg.AssetCheckResult]:
    """A project under review whose clips no approval covers: the step succeeds without a
    materialization (so nothing downstream runs), says why on the run (a tag), in its log and in an
    observation of the clips partition, and its check reports "not evaluated" as a warning."""
    context.instance.add_run_tags(context.run.run_id, {REVIEW_TAG: AWAITING})
    context.log.warning(held.message)
    context.log_event(
        dg.AssetObservation(
            CLIPS,
            partition=context.partition_key,
            description=held.message,
            metadata={
                "review": held.message,
                "awaiting_scenes": dg.MetadataValue.json([scene_number(i) for i in held.waiting]),
                "projected_cost_usd": round(held.estimate_usd, 4),
                "approve": dg.MetadataValue.md(
                    f"`vidpipe approve {held.project_id}`, or the `approve_project` job with config "
                    f"`{{ops: {{approve: {{config: {{project_id: {held.project_id}}}}}}}}}`"
                ),
            },
        )
    )
    yield dg.AssetCheckResult(
        asset_key=CLIPS,
        check_name="clips_complete",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=held.message,
        metadata={"awaiting_approval": True},
    )
