"""What every asset body shares: the partition checked before anything happens, the run's owner
and heartbeat, vidpipe errors as one-line failures, metadata recorded once, and the checks' specs.
A leaf below the assets (assets.py, clips_asset.py)."""

import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import dagster as dg

from vidpipe_core.checks import DESCRIPTIONS, CheckOutcome
from vidpipe_core.errors import InvalidInput, VidpipeError
from vidpipe_core.ids import ID_RULE, is_valid_project_id
from vidpipe_core.services import Services
from vidpipe_dagster.celery_executor import running_on_worker
from vidpipe_dagster.failures import step_failure
from vidpipe_dagster.healing import names_this_owner, owner_tags, run_heartbeat
from vidpipe_dagster.instance import refuse_unknown_project
from vidpipe_dagster.partitions import projects_partitions
from vidpipe_dagster.progress import flush as flush_progress
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.review import link_origin

# Partitioned asset-check specs are a preview API in Dagster 1.13 (pinned); without them every
# project's check results would show against no partition in the UI.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)

GROUP = "vidpipe"


def project_key(context: dg.AssetExecutionContext, services: Services) -> str:
    """The partition key, refused (one line, before the step does anything) unless it is a valid
    id, a partition of the instance this run uses and a project in vidpipe's database."""
    if not context.has_partition_key:
        hint = """add --tags '{"dagster/partition": "ID"}' to `dagster job execute`, or pick a partition in the UI"""
        raise step_failure(InvalidInput("partition", f"this run names no project; {hint}"))
    key = context.partition_key
    if not is_valid_project_id(key):
        raise step_failure(InvalidInput("partition", f"{key!r} is not a valid project id", ID_RULE))
    try:
        refuse_unknown_project(context.instance, services, key)
    except VidpipeError as exc:
        raise step_failure(exc) from None  # the line says it all; no second traceback in Dagster's log
    return key


@contextmanager
def asset_step(context: dg.AssetExecutionContext, vidpipe: VidpipeResource) -> Iterator[tuple[Services, str]]:
    """Every asset body: tag the run with the process doing the work and beat its heartbeat while
    the step runs (so a dead run is recognised and its slots freed, see healing), and turn
    vidpipe errors into one-line Dagster failures. Nothing happens for a partition the run's
    instance or vidpipe's database does not know (see `project_key`)."""
    services = vidpipe.services()
    project_id = project_key(context, services)
    instance, run_id = context.instance, context.run.run_id
    # A celery run is owned by its run worker, which tags and beats it (celery_executor): a step
    # on a worker must not name itself the owner, or its worker's death would fail the run that
    # another worker is about to take over.
    link_origin(instance, context.run)
    beat: AbstractContextManager[object] = nullcontext()
    if not running_on_worker():
        # Named at the run's creation or by the step before in this process (13 ms a write, six steps):
        # the tags are written again only when they name another process or their heartbeat has aged.
        if not names_this_owner(context.run.tags, services.settings.heartbeat_interval_s):
            instance.add_run_tags(run_id, owner_tags())
        beat = run_heartbeat(instance, run_id, services.settings.heartbeat_interval_s, "vidpipe-run")
    try:
        with beat:
            yield services, project_id
    except VidpipeError as exc:
        raise step_failure(exc) from exc
    finally:
        flush_progress(context)  # every progress line is logged before the step's result or failure


def materialized(
    context: dg.AssetExecutionContext, metadata: dict[str, Any], checks: list[dg.AssetCheckResult], asset: str | None = None
) -> dg.MaterializeResult:
    """The step's result (of ``asset``, in the step that makes two), its metadata recorded once: on
    the ASSET_MATERIALIZATION event. A MaterializeResult's own metadata is also copied into the
    STEP_OUTPUT event, which doubled the event log (the preview images are most of it;
    bench/README.md, eventlog)."""
    context.add_asset_metadata(metadata, asset_key=asset)
    return dg.MaterializeResult(asset_key=asset, check_results=checks)


def check_result(outcome: CheckOutcome, asset: str | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=outcome.name,
        passed=outcome.passed,
        description=outcome.description,
        metadata=outcome.metadata,
    )


def check_spec(name: str, asset: str, *, blocking: bool) -> dg.AssetCheckSpec:
    """The check of ``asset``. A ``blocking`` check guards the next stage: when it fails, the step
    records its materialization and the check, then fails, and nothing downstream runs in that run
    (a failed `keyframes_decode` pays for no clip of a frame it refused: the clips step, which makes
    the frames, submits a scene's clip only from frames that passed it one by one; a failed
    `clips_complete` stitches no video)."""
    return dg.AssetCheckSpec(
        name, asset=asset, partitions_def=projects_partitions, description=DESCRIPTIONS[name], blocking=blocking
    )
