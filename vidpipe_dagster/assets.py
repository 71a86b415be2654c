"""The assets. Each is a few lines around a vidpipe_core step, turning its report into
MaterializeResult metadata and asset-check results."""

import io
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any

import dagster as dg

from vidpipe_core import media, previews
from vidpipe_core.approvals import AwaitingApproval, record_approval
from vidpipe_core.checks import (
    DESCRIPTIONS,
    CheckOutcome,
    check_characters,
    check_clips,
    check_final_video,
    check_keyframes,
    check_storyboard,
)
from vidpipe_core.errors import InvalidInput, VidpipeError
from vidpipe_core.ids import ID_RULE, is_valid_project_id
from vidpipe_core.projects import load_spec
from vidpipe_core.scenes import frame_tag, scene_index, scene_label
from vidpipe_core.scratch import scratch_dir
from vidpipe_core.services import Services
from vidpipe_core.steps import CHARACTERS, CLIPS, FINAL_VIDEO, KEYFRAMES, STORYBOARD
from vidpipe_core.steps.characters import make_characters
from vidpipe_core.steps.clips import make_clips, new_takes
from vidpipe_core.steps.final_mix import mix_markdown, mix_metadata
from vidpipe_core.steps.keyframes import make_keyframes
from vidpipe_core.steps.narration import make_narration, spoken_lines, voice_of
from vidpipe_core.steps.report import Action, ProgressEvent
from vidpipe_core.steps.stitch import make_final
from vidpipe_core.steps.storyboard import make_storyboard
from vidpipe_core.storage import Layout
from vidpipe_core.summary import project_summary
from vidpipe_core.userfiles import music_file
from vidpipe_dagster import asset_metadata as meta
from vidpipe_dagster.celery_executor import running_on_worker
from vidpipe_dagster.desk import desk_metadata
from vidpipe_dagster.failures import step_failure
from vidpipe_dagster.healing import names_this_owner, owner_tags, run_heartbeat
from vidpipe_dagster.instance import refuse_unknown_project
from vidpipe_dagster.materializations import nonce_metadata
from vidpipe_dagster.partitions import projects_partitions
from vidpipe_dagster.pools import DagsterPoolSlots
from vidpipe_dagster.progress import flush as flush_progress
from vidpipe_dagster.progress import for_context
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.review import (
    APPROVED,
    NOT_UNDER_REVIEW,
    RETAKE_APPROVES_TAG,
    RETAKE_SOURCE_TAG,
    REVIEW_TAG,
    awaiting,
    link_origin,
    run_source,
)

# Partitioned asset-check specs are a preview API in Dagster 1.13 (pinned); without them every
# project's check results would show against no partition in the UI.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)

GROUP = "vidpipe"


class StoryboardConfig(dg.Config):
    replan: bool = False
    """Ask the planner again even when the project is unchanged (pays for a new plan)."""


class KeyframesConfig(dg.Config):
    repair_damaged: bool = False
    """Pay to regenerate damaged keyframes that cannot be rendered again for free (and, through
    continuity, the frames and clips after them)."""


class ClipsConfig(dg.Config):
    concurrency: int | None = None
    """Video operations in flight for this project (default: VIDPIPE_CLIP_CONCURRENCY)."""
    regenerate_scenes: list[int] = []
    """Scene numbers to render again as a new take, counted from 1 as in the captions and
    `vidpipe status` (e.g. [2] is the clip captioned "Scene 2"); a number outside 1..scenes fails
    the step before anything is paid. Re-executing this run reuses that take."""
    repair_damaged: bool = False
    """Pay to regenerate damaged clips whose operation no longer holds the video."""


class NarrationConfig(dg.Config):
    repair_damaged: bool = False
    """Pay to say again damaged narration lines that the narrator cannot say again the same for free."""


class FinalVideoConfig(dg.Config):
    crossfade: float | None = None
    """Seconds of crossfade between scenes (default: the project's setting)."""


def _project_id(context: dg.AssetExecutionContext, services: Services) -> str:
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
def _step(context: dg.AssetExecutionContext, vidpipe: VidpipeResource) -> Iterator[tuple[Services, str]]:
    """Every asset body: tag the run with the process doing the work and beat its heartbeat while
    the step runs (so a dead run is recognised and its slots freed, see healing), and turn
    vidpipe errors into one-line Dagster failures. Nothing happens for a partition the run's
    instance or vidpipe's database does not know (see `_project_id`)."""
    services = vidpipe.services()
    project_id = _project_id(context, services)
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


def _materialized(
    context: dg.AssetExecutionContext, metadata: dict[str, Any], checks: list[dg.AssetCheckResult]
) -> dg.MaterializeResult:
    """The step's result, its metadata recorded once: on the ASSET_MATERIALIZATION event. A
    MaterializeResult's own metadata is also copied into the STEP_OUTPUT event, which doubled
    the event log (the preview images are most of it; bench/README.md, eventlog)."""
    context.add_asset_metadata(metadata)
    return dg.MaterializeResult(check_results=checks)


def _check(outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=outcome.name, passed=outcome.passed, description=outcome.description, metadata=outcome.metadata
    )


def _check_spec(name: str, asset: str, *, blocking: bool) -> dg.AssetCheckSpec:
    """The check of ``asset``. A ``blocking`` check guards the next stage: when it fails, the step
    records its materialization and the check, then fails, and nothing downstream runs in that run
    (a failed `keyframes_decode` pays for no clip; a failed `clips_complete` stitches no video)."""
    return dg.AssetCheckSpec(
        name, asset=asset, partitions_def=projects_partitions, description=DESCRIPTIONS[name], blocking=blocking
    )


@dg.asset(
    partitions_def=projects_partitions,
    group_name=GROUP,
    kinds={"python", "json"},
    description="Scene plan and style guide, from the storyboard provider (structured output).",
    check_specs=[_check_spec("storyboard_complete", STORYBOARD, blocking=True)],
)
def storyboard(context: dg.AssetExecutionContext, config: StoryboardConfig, vidpipe: VidpipeResource) -> dg.MaterializeResult:
    with _step(context, vidpipe) as (services, project_id):
        result = make_storyboard(
            services, project_id, replan=config.replan, run_id=context.run.run_id, progress=for_context(context)
        )
        spec = load_spec(services, project_id)
    context.log.info(f"{len(result.storyboard.scenes)} scenes ({'reused' if result.reused else 'planned'}) by {result.provider}")
    return _materialized(
        context,
        {
            "title": result.storyboard.title,
            "scene_count": len(result.storyboard.scenes),
            "style_guide": dg.MetadataValue.json(result.storyboard.style_guide.model_dump(mode="json")),
            "provider": result.provider,
            "model": result.model,
            "reused": result.reused,
            "repaired": result.repaired,
            "cost_usd": round(result.cost_usd, 6),
            "projected_cost_usd": round(result.projected_usd, 4),
            "budget_usd": spec.max_cost_usd,
            "path": dg.MetadataValue.path(services.store.uri(project_id, Layout.STORYBOARD)),
            **nonce_metadata(services, project_id),
        },
        [_check(check_storyboard(spec, result.storyboard))],
    )


class CharactersConfig(dg.Config):
    repair_damaged: bool = False
    """Pay to regenerate damaged character sheets that cannot be rendered again for free (and,
    through them, every frame and clip from the first frame that shows the character)."""


@dg.asset(
    partitions_def=projects_partitions,
    group_name=GROUP,
    kinds={"python", "image"},
    deps=[storyboard],
    description="One reference sheet per character a scene shows, paid once; every keyframe that shows "
    "the character is conditioned on it, so the character looks the same in every scene.",
    check_specs=[_check_spec("characters_complete", CHARACTERS, blocking=True)],
)
def characters(context: dg.AssetExecutionContext, config: CharactersConfig, vidpipe: VidpipeResource) -> dg.MaterializeResult:
    with _step(context, vidpipe) as (services, project_id):
        report = make_characters(
            services, project_id, run_id=context.run.run_id, repair=config.repair_damaged, progress=for_context(context)
        )
    made: dict[str, Any] = {}
    if report.sheets:  # none: nothing made, paid or stored; `sheets` says so (every such render's event log carries it)
        context.log.info(f"characters: {report.counts['generated']} generated, {report.counts['reused']} reused")
        made = {
            **meta.made(report),
            "paths": dg.MetadataValue.json(
                {s.name: services.store.uri(project_id, s.row.path) for s in report.sheets if s.row is not None and s.row.path}
            ),
        }
    return _materialized(
        context,
        {
            "count": len(report.sheets),
            **made,
            "sheets": dg.MetadataValue.md(meta.sheet_gallery(report)),
            **nonce_metadata(services, project_id),
        },
        [_check(check_characters(report))],
    )


@dg.asset(
    partitions_def=projects_partitions,
    group_name=GROUP,
    kinds={"python", "image"},
    deps=[characters],
    description="N+1 keyframes with continuity: scene i+1 starts on scene i's end frame.",
    check_specs=[_check_spec("keyframes_decode", KEYFRAMES, blocking=True)],
)
def keyframes(context: dg.AssetExecutionContext, config: KeyframesConfig, vidpipe: VidpipeResource) -> dg.MaterializeResult:
    with _step(context, vidpipe) as (services, project_id), previews.SheetFrames() as shrunk:
        # Each frame is shrunk for the contact sheet while the next one is being made.
        report = make_keyframes(
            services,
            project_id,
            run_id=context.run.run_id,
            repair=config.repair_damaged,
            progress=for_context(context),
            on_frame=shrunk.add,
        )
        frames = shrunk.images(report.pngs)
    labels = [frame_tag(f.index, len(report.frames) - 1) for f in report.frames]
    sheet = media.contact_sheet_image(frames, labels=labels, thumb_width=shrunk.thumb_width)
    png = io.BytesIO()
    sheet.save(png, format="PNG")
    services.store.write_bytes(project_id, Layout.CONTACT_SHEET, png.getvalue())
    images = {}
    if services.settings.ui_previews:
        images["contact_sheet_image"] = meta.image(previews.sheet_image(sheet))
    context.log.info(f"keyframes: {report.counts['generated']} generated, {report.counts['reused']} reused")
    return _materialized(
        context,
        {
            "frames": len(report.items),
            **meta.made(report),
            "contact_sheet": dg.MetadataValue.path(services.store.uri(project_id, Layout.CONTACT_SHEET)),
            **images,
            **(desk_metadata(services, report.state) if report.state is not None else {}),
            **nonce_metadata(services, project_id),
        },
        [_check(check_keyframes(services, project_id, report))],
    )


@dg.asset(
    partitions_def=projects_partitions,
    group_name=GROUP,
    kinds={"python", "video"},
    deps=[keyframes],
    description="One clip per scene from its first and last keyframe; paid operations are never resubmitted. "
    "A project under review makes (and pays for) only the clips an approval covers, and is not materialized "
    "while any waits: the run succeeds and final_video is skipped.",
    check_specs=[_check_spec("clips_complete", CLIPS, blocking=True)],
    output_required=False,
)
def clips(
    context: dg.AssetExecutionContext, config: ClipsConfig, vidpipe: VidpipeResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    with _step(context, vidpipe) as (services, project_id), ExitStack() as stack:
        if config.regenerate_scenes:
            # The take is named after the root run, so "re-execute from failure" keeps it (no second payment).
            new_takes(
                services,
                project_id,
                [scene_index(n) for n in config.regenerate_scenes],
                f"run-{context.run.root_run_id or context.run.run_id}",
            )
            # A person asked for these takes: under review that is their approval (its cost in the log).
            if load_spec(services, project_id).review != "none":
                approval = record_approval(
                    services,
                    project_id,
                    kind="regenerate",
                    source=run_source(context.run.tags),
                    run_id=context.run.run_id,
                    scenes=[scene_index(n) for n in config.regenerate_scenes],
                )
                context.log.info(approval.message)
        retaken = context.run.tags.get(RETAKE_APPROVES_TAG)
        if retaken and load_spec(services, project_id).review != "none":
            # A person's retake from the UI or another program (the `retake` job, which stated its cost):
            # its clips are its own approval, once its new frames exist (this step runs after them).
            approval = record_approval(
                services,
                project_id,
                kind="retake",
                source=context.run.tags.get(RETAKE_SOURCE_TAG, "api"),
                run_id=context.run.run_id,
                scenes=[scene_index(int(n)) for n in retaken.split(",")],
            )
            context.log.info(approval.message)
        progress = for_context(context)
        spec = load_spec(services, project_id)  # each clip decoded for the strip gives the final preview's frames too
        rate = previews.preview_rate(spec.scenes * spec.clip_duration) if spec.crossfade == 0 else None
        strip = stack.enter_context(previews.StripReader(preview_rate=rate)) if services.settings.ui_previews else None

        def waiting(message: str) -> None:
            progress(ProgressEvent(CLIPS, message))

        def finished(event: ProgressEvent) -> None:
            """Progress, and each clip's strip frames read as soon as it is saved (while others are made)."""
            progress(event)
            item = event.item
            if strip is not None and item is not None and item.path and item.action != Action.REJECTED:
                strip.add(previews.StripScene(item.index, previews.StoredClip(services.store, project_id, item.path)))

        slots = DagsterPoolSlots(
            context.instance,
            services.settings.video_pool,
            context.run.run_id,
            CLIPS,
            stale_after_s=services.settings.heartbeat_stale_s,
            on_wait=waiting,
        )
        try:
            report = make_clips(
                services,
                project_id,
                run_id=context.run.run_id,
                concurrency=config.concurrency,
                slots=slots,
                repair=config.repair_damaged,
                progress=finished,
            )
        except AwaitingApproval as exc:
            yield from awaiting(context, exc.gate)
            return
        spec = load_spec(services, project_id)
        context.instance.add_run_tags(context.run.run_id, {REVIEW_TAG: APPROVED if spec.review != "none" else NOT_UNDER_REVIEW})
        images = {}
        # The check probes every clip's file while the strip is drawn (both mostly outside the GIL).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidpipe-check") as pool:
            checked = pool.submit(check_clips, services, project_id)
            if strip is not None:
                images["strip"] = meta.image(meta.clip_strip(services, project_id, report, strip))
            check = checked.result()
    counts = report.counts
    context.log.info("clips: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    yield _materialized(
        context,
        {
            "scenes": meta.scene_table(meta.clip_rows(report, spec.safety_policy)),
            **images,
            **{k: v for k, v in counts.items() if v},
            "clip_count": len(report.items),
            "provider": report.provider,
            "model": report.model,
            "cost_usd": report.cost_usd,
            "projected_cost_usd": round(report.projected_usd, 4),
            "total_duration_s": round(sum(i.duration_s or 0 for i in report.items), 3),
            **nonce_metadata(services, project_id),
        },
        [_check(check)],
    )


@dg.asset(
    partitions_def=projects_partitions,
    group_name=GROUP,
    kinds={"python", "audio"},
    deps=[storyboard],
    description="The narrator's voice-over: each narrated scene's line said once (text to speech), one voice for the whole piece.",
)
def narration(context: dg.AssetExecutionContext, config: NarrationConfig, vidpipe: VidpipeResource) -> dg.MaterializeResult:
    with _step(context, vidpipe) as (services, project_id):
        report = make_narration(
            services, project_id, run_id=context.run.run_id, repair=config.repair_damaged, progress=for_context(context)
        )
        spec = load_spec(services, project_id)
    for note in report.notes:
        context.log.warning(note)
    voice, language = voice_of(spec, services)
    metadata: dict[str, Any] = {"narration": report.enabled, **nonce_metadata(services, project_id)}
    if report.enabled:  # off: nothing said, nothing paid, nothing more to show or log (every render's event log carries it)
        context.log.info(f"narration: {report.counts['generated']} said, {report.counts['reused']} reused")
        metadata.update(
            **meta.made(report),
            lines=meta.narration_table(report),
            line_count=len(report.items),
            total_duration_s=round(sum(i.duration_s or 0.0 for i in report.items), 3),
            voice=voice,
            language=language,
        )
    if report.notes:
        metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in report.notes))
    return _materialized(context, metadata, [])


@dg.asset(
    partitions_def=projects_partitions,
    group_name=GROUP,
    kinds={"python", "ffmpeg"},
    deps=[clips, narration],
    description="The stitched MP4: stream-copy concat, or crossfade re-encode with audio kept.",
    check_specs=[_check_spec("final_video_valid", FINAL_VIDEO, blocking=False)],  # the last stage: nothing to guard
)
def final_video(context: dg.AssetExecutionContext, config: FinalVideoConfig, vidpipe: VidpipeResource) -> dg.MaterializeResult:
    images: dict[str, dg.MarkdownMetadataValue] = {}
    missing: list[str] = []  # narration lines not made: the video is made without them, and says so
    with ExitStack() as stack:
        services, project_id = stack.enter_context(_step(context, vidpipe))
        # The person's --music, as a local file checked against the sha256 recorded at `new`.
        music = stack.enter_context(music_file(services.store, load_spec(services, project_id)))
        words = stack.enter_context(scratch_dir(services.settings.data_dir, "words"))
        lines = spoken_lines(services, project_id, words, on_missing=missing.append)
        result = make_final(
            services,
            project_id,
            crossfade=config.crossfade,
            run_id=context.run.run_id,
            progress=for_context(context),
            on_stitched=(lambda video, stitched: images.update(meta.final_images(services, video, stitched)))
            if services.settings.ui_previews
            else None,
            lines=lines,
            music=music,
        )
        summary = project_summary(services, project_id, result)
    info = result.info
    metadata: dict[str, Any] = {
        **images,
        "summary": dg.MetadataValue.md(summary.markdown),
        # its own entry: with the summary it would pass Dagster's 1000 characters shown inline
        "final_mix": dg.MetadataValue.md(mix_markdown(result.mix)),
        "scenes": meta.scene_table(summary.scenes),
        "total_cost_usd": summary.costs.total,
        "budget_usd": summary.budget_usd,
        "path": dg.MetadataValue.path(result.uri),
        "duration_s": round(info.duration_s, 3),
        "size_bytes": info.size_bytes,
        "resolution": f"{info.width}x{info.height}",
        "fps": round(info.fps, 3),
        "video_codec": info.video_codec or "none",
        "audio_codec": info.audio_codec or "none",
        "scenes_in_video": len(result.scenes),
        "crossfade_s": result.crossfade,
        "sha256": result.sha256,
        **mix_metadata(result.mix),
        **({"spoken_lines": len(lines)} if lines else {}),
        **({"narration_missing": dg.MetadataValue.md("\n".join(f"- {m}" for m in missing))} if missing else {}),
        **nonce_metadata(services, project_id),
    }
    if result.skipped:
        metadata["skipped_scenes"] = dg.MetadataValue.md(
            "\n".join(f"- {scene_label(i)}: {reason}" for i, reason in sorted(result.skipped.items()))
        )
    for problem in missing:
        context.log.warning(problem)
    context.log.info(f"final video {info.duration_s:.2f}s {info.width}x{info.height} at {result.uri}")
    return _materialized(context, metadata, [_check(check_final_video(info, result.expected_duration_s, result.audio_expected))])


render_assets = [storyboard, characters, keyframes, clips, narration, final_video]
