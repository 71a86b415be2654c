"""The keyframes and the clips assets, made in one step (`clips`): a scene's clip is submitted as
soon as its two frames are recorded, from a thread of its own, while the later frames are rendered
(vidpipe_core.steps.frame_feed). Under review, or with one of the two selected, they are made one
after the other."""

import io
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

import dagster as dg

from vidpipe_core import media, previews
from vidpipe_core.approvals import AwaitingApproval, record_approval
from vidpipe_core.checks import check_clips, check_keyframes, keyframe_test
from vidpipe_core.errors import VidpipeError
from vidpipe_core.projects import load_spec
from vidpipe_core.scenes import frame_tag, scene_index
from vidpipe_core.services import Services
from vidpipe_core.steps import CHARACTERS, CLIPS, KEYFRAMES
from vidpipe_core.steps.clips import make_clips, new_takes
from vidpipe_core.steps.frame_feed import FrameFeed
from vidpipe_core.steps.keyframes import make_keyframes
from vidpipe_core.steps.locking import step_lock
from vidpipe_core.steps.report import Action, ProgressEvent, StepReport
from vidpipe_core.storage import Layout
from vidpipe_dagster import asset_metadata as meta
from vidpipe_dagster.asset_step import GROUP, asset_step, check_result, check_spec, materialized
from vidpipe_dagster.desk import desk_metadata
from vidpipe_dagster.failures import step_failure
from vidpipe_dagster.materializations import nonce_metadata
from vidpipe_dagster.partitions import projects_partitions
from vidpipe_dagster.pools import DagsterPoolSlots
from vidpipe_dagster.progress import for_context
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.review import (
    APPROVED,
    NOT_UNDER_REVIEW,
    RETAKE_APPROVES_TAG,
    RETAKE_SOURCE_TAG,
    REVIEW_TAG,
    awaiting,
    run_source,
)


class ClipsConfig(dg.Config):
    concurrency: int | None = None
    """Video operations in flight for this project (default: VIDPIPE_CLIP_CONCURRENCY)."""
    regenerate_scenes: list[int] = []
    """Scene numbers to render again as a new take, counted from 1 as in the captions and
    `vidpipe status` (e.g. [2] is the clip captioned "Scene 2"); a number outside 1..scenes fails
    the step before anything is paid. Re-executing this run reuses that take."""
    repair_damaged: bool = False
    """Pay to regenerate damaged keyframes that cannot be rendered again for free (and, through
    continuity, the frames and clips after them), and damaged clips whose operation no longer
    holds the video."""


def _keyframes_part(
    context: dg.AssetExecutionContext,
    services: Services,
    project_id: str,
    repair: bool,
    feed: FrameFeed | None,
    on_planned: Callable[[float], None] | None,
) -> tuple[dg.MaterializeResult, bool]:
    """The keyframes asset's materialization, and whether its blocking check passed."""
    with previews.SheetFrames() as shrunk:

        def on_frame(k: int, png: bytes) -> None:
            shrunk.add(k, png)  # each frame shrunk for the contact sheet while the next one is made
            if feed is not None:
                feed.add(k, png)  # ... and its clip submitted, once the frame before it is here too

        try:
            report = make_keyframes(
                services,
                project_id,
                run_id=context.run.run_id,
                repair=repair,
                progress=for_context(context),
                on_frame=on_frame,
                on_planned=on_planned,
                lock=False,
            )
        except VidpipeError as exc:  # the step is `clips`: the failure names the keyframes
            raise step_failure(exc, stage=KEYFRAMES) from exc
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
    check = check_keyframes(services, project_id, report)
    result = materialized(
        context,
        {
            "frames": len(report.items),
            **meta.made(report),
            "contact_sheet": dg.MetadataValue.path(services.store.uri(project_id, Layout.CONTACT_SHEET)),
            **images,
            **(desk_metadata(services, report.state) if report.state is not None else {}),
            **nonce_metadata(services, project_id),
        },
        [check_result(check, KEYFRAMES)],
        KEYFRAMES,
    )
    return result, check.passed


def _take_approvals(context: dg.AssetExecutionContext, config: ClipsConfig, services: Services, project_id: str) -> None:
    """New takes asked for in the run config, and, under review, the approvals they and a retake
    run stand for (recorded once this run's frames exist: an approval covers their fingerprints)."""
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
        # its clips are its own approval, once its new frames exist (this step made them first).
        approval = record_approval(
            services,
            project_id,
            kind="retake",
            source=context.run.tags.get(RETAKE_SOURCE_TAG, "api"),
            run_id=context.run.run_id,
            scenes=[scene_index(int(n)) for n in retaken.split(",")],
        )
        context.log.info(approval.message)


class _ClipsPart:
    """The clips asset's work in the step: its strip of previews, the pool's slots, the ledger's
    clips; ``make`` may run on a thread of its own while the keyframes are still being rendered."""

    def __init__(
        self, context: dg.AssetExecutionContext, config: ClipsConfig, services: Services, project_id: str, stack: ExitStack
    ) -> None:
        self.context, self.config, self.services, self.project_id = context, config, services, project_id
        self.progress = for_context(context)
        # Each clip decoded for the strip gives the final preview's frames too.
        spec = load_spec(services, project_id)
        rate = previews.preview_rate(spec.scenes * spec.clip_duration) if spec.crossfade == 0 else None
        self.strip = stack.enter_context(previews.StripReader(preview_rate=rate)) if services.settings.ui_previews else None
        self.slots = DagsterPoolSlots(
            context.instance,
            services.settings.video_pool,
            context.run.run_id,
            CLIPS,
            stale_after_s=services.settings.heartbeat_stale_s,
            on_wait=lambda message: self.progress(ProgressEvent(CLIPS, message)),
        )

    def finished(self, event: ProgressEvent) -> None:
        """Progress, and each clip's strip frames read as soon as it is saved (while others are made)."""
        self.progress(event)
        item = event.item
        if self.strip is not None and item is not None and item.path and item.action != Action.REJECTED:
            self.strip.add(previews.StripScene(item.index, previews.StoredClip(self.services.store, self.project_id, item.path)))

    def make(self, feed: FrameFeed | None = None, committed_usd: float | None = None) -> StepReport:
        return make_clips(
            self.services,
            self.project_id,
            run_id=self.context.run.run_id,
            concurrency=self.config.concurrency,
            slots=self.slots,
            repair=self.config.repair_damaged,
            progress=self.finished,
            frames=feed,
            committed_usd=committed_usd,
            lock=False,
        )

    def outcome(self, make: Callable[[], StepReport]) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """The clips' materialization, or (under review) what waits for an approval."""
        try:
            report = make()
        except AwaitingApproval as exc:
            yield from awaiting(self.context, exc.gate)
            return
        yield self.results(report)

    def results(self, report: StepReport) -> dg.MaterializeResult:
        context, services, project_id = self.context, self.services, self.project_id
        spec = load_spec(services, project_id)
        context.instance.add_run_tags(context.run.run_id, {REVIEW_TAG: APPROVED if spec.review != "none" else NOT_UNDER_REVIEW})
        images = {}
        # The check probes every clip's file while the strip is drawn (both mostly outside the GIL).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidpipe-check") as pool:
            checked = pool.submit(check_clips, services, project_id)
            if self.strip is not None:
                images["strip"] = meta.image(meta.clip_strip(services, project_id, report, self.strip))
            check = checked.result()
        counts = report.counts
        context.log.info("clips: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
        return materialized(
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
            [check_result(check, CLIPS)],
            CLIPS,
        )


@dg.multi_asset(
    name=CLIPS,
    specs=[
        dg.AssetSpec(
            KEYFRAMES,
            deps=[CHARACTERS],
            group_name=GROUP,
            kinds={"python", "image"},
            description="N+1 keyframes with continuity: scene i+1 starts on scene i's end frame. Made in the clips "
            "step, which submits each scene's clip as soon as its two frames exist (unless the project is under review).",
            skippable=True,
        ),
        dg.AssetSpec(
            CLIPS,
            deps=[KEYFRAMES],
            group_name=GROUP,
            kinds={"python", "video"},
            description="One clip per scene from its first and last keyframe; paid operations are never resubmitted. "
            "A project under review makes (and pays for) only the clips an approval covers, and is not materialized "
            "while any waits: the run succeeds and final_video is skipped.",
            skippable=True,
        ),
    ],
    check_specs=[
        check_spec("keyframes_decode", KEYFRAMES, blocking=True),
        check_spec("clips_complete", CLIPS, blocking=True),
    ],
    partitions_def=projects_partitions,
    can_subset=True,
)
def clips(
    context: dg.AssetExecutionContext, config: ClipsConfig, vidpipe: VidpipeResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The keyframes and the clips, in one step so that a scene's clip is submitted as soon as its
    two frames are recorded (frame_feed): the first clips' operations run while the later frames
    are rendered. Under review, or with one of the two assets selected, they are made one after
    the other, as two steps would."""
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    with asset_step(context, vidpipe) as (services, project_id), ExitStack() as stack:
        stack.enter_context(step_lock(services, project_id, context.run.run_id))  # one hold for both assets
        part = _ClipsPart(context, config, services, project_id, stack) if CLIPS in selected else None
        spec = load_spec(services, project_id)
        if part is None or KEYFRAMES not in selected or spec.review != "none":
            # One after the other: a project under review approves clips of the frames it has seen.
            if KEYFRAMES in selected:
                frames, passed = _keyframes_part(context, services, project_id, config.repair_damaged, None, None)
                yield frames
                if not passed:  # a failed blocking check: no clip is paid for
                    return
            if part is not None:
                _take_approvals(context, config, services, project_id)
                yield from part.outcome(part.make)
            return
        _take_approvals(context, config, services, project_id)  # new takes only: no approval under `review: none`
        feed = FrameFeed(keyframe_test(services, spec))
        # Nothing is yielded while the clips thread runs: a signal that comes while Dagster handles a
        # yielded result is raised outside this generator, which would be left suspended with the
        # clips still polling (and the process unable to exit). In here it stops them (_Beside). So
        # both assets are materialized when the step ends; the keyframes also when the clips failed.
        failed: VidpipeError | None = None
        with _Beside(part, feed) as beside:
            frames, passed = _keyframes_part(context, services, project_id, config.repair_damaged, feed, beside.start)
            if passed:
                try:
                    made = list(part.outcome(beside.result))
                except VidpipeError as exc:
                    failed = exc
            else:  # no clip of a frame the check refused is submitted; the clips submitted finish
                feed.fail("the keyframes check failed")
                beside.settle()
        yield frames
        if failed is not None:
            raise failed
        if passed:
            yield from made


class _Beside:
    """The clips part on a thread of its own, started once the keyframes part knows what it may
    spend (``start``). When the step stops with an error, no clip still waiting for a frame is
    submitted, and the clips already submitted finish and are saved (they are paid for); when it
    is interrupted (a signal, a terminated run), their waits end at once and the ledger keeps
    their operations for the next run to re-attach. Either way the step ends after the thread."""

    def __init__(self, part: _ClipsPart, feed: FrameFeed) -> None:
        self.part, self.feed = part, feed
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidpipe-clips")
        self.made: Future[StepReport] | None = None

    def start(self, committed_usd: float) -> None:
        self.made = self.pool.submit(self.part.make, self.feed, committed_usd)

    def result(self) -> StepReport:
        assert self.made is not None, "the keyframes part starts the clips before its first frame"
        return self.made.result()

    def settle(self) -> None:
        """Wait for the clips part; its error, if any, is not the step's (the step's own is)."""
        if self.made is not None:
            try:
                self.made.result()
            except (VidpipeError, AwaitingApproval):
                pass  # what the clips made is in the ledger

    def __enter__(self) -> "_Beside":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            self.feed.fail(str(exc) or type(exc).__name__)
            if not isinstance(exc, (VidpipeError, dg.Failure)):
                self.feed.interrupt.cancel(f"{type(exc).__name__} in the clips step")
            self.settle()
        self.pool.shutdown(wait=True)
