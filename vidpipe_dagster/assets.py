"""The assets. Each is a few lines around a vidpipe_core step, turning its report into
MaterializeResult metadata and asset-check results. The keyframes and the clips are one step of
their own (clips_asset.py)."""

from contextlib import ExitStack
from typing import Any

import dagster as dg

from vidpipe_core.checks import check_characters, check_final_video, check_storyboard
from vidpipe_core.projects import load_spec
from vidpipe_core.scenes import scene_label
from vidpipe_core.scratch import scratch_dir
from vidpipe_core.steps import CHARACTERS, CLIPS, FINAL_VIDEO, STORYBOARD
from vidpipe_core.steps.characters import make_characters
from vidpipe_core.steps.final_mix import mix_markdown, mix_metadata
from vidpipe_core.steps.narration import make_narration, spoken_lines, voice_of
from vidpipe_core.steps.stitch import make_final
from vidpipe_core.steps.storyboard import make_storyboard
from vidpipe_core.storage import Layout
from vidpipe_core.summary import project_summary
from vidpipe_core.userfiles import music_file
from vidpipe_dagster import asset_metadata as meta
from vidpipe_dagster.asset_step import GROUP, asset_step, check_result, check_spec, materialized
from vidpipe_dagster.clips_asset import clips
from vidpipe_dagster.materializations import nonce_metadata
from vidpipe_dagster.partitions import projects_partitions
from vidpipe_dagster.progress import for_context
from vidpipe_dagster.resources import VidpipeResource


class StoryboardConfig(dg.Config):
    replan: bool = False
    """Ask the planner again even when the project is unchanged (pays for a new plan)."""


class NarrationConfig(dg.Config):
    repair_damaged: bool = False
    """Pay to say again damaged narration lines that the narrator cannot say again the same for free."""


class FinalVideoConfig(dg.Config):
    crossfade: float | None = None
    """Seconds of crossfade between scenes (default: the project's setting)."""


@dg.asset(
    partitions_def=projects_partitions,
    group_name=GROUP,
    kinds={"python", "json"},
    description="Scene plan and style guide, from the storyboard provider (structured output).",
    check_specs=[check_spec("storyboard_complete", STORYBOARD, blocking=True)],
)
def storyboard(context: dg.AssetExecutionContext, config: StoryboardConfig, vidpipe: VidpipeResource) -> dg.MaterializeResult:
    with asset_step(context, vidpipe) as (services, project_id):
        result = make_storyboard(
            services, project_id, replan=config.replan, run_id=context.run.run_id, progress=for_context(context)
        )
        spec = load_spec(services, project_id)
    context.log.info(f"{len(result.storyboard.scenes)} scenes ({'reused' if result.reused else 'planned'}) by {result.provider}")
    return materialized(
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
        [check_result(check_storyboard(spec, result.storyboard))],
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
    check_specs=[check_spec("characters_complete", CHARACTERS, blocking=True)],
)
def characters(context: dg.AssetExecutionContext, config: CharactersConfig, vidpipe: VidpipeResource) -> dg.MaterializeResult:
    with asset_step(context, vidpipe) as (services, project_id):
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
    return materialized(
        context,
        {
            "count": len(report.sheets),
            **made,
            "sheets": dg.MetadataValue.md(meta.sheet_gallery(report)),
            **nonce_metadata(services, project_id),
        },
        [check_result(check_characters(report))],
    )


@dg.asset(
    partitions_def=projects_partitions,
    group_name=GROUP,
    kinds={"python", "audio"},
    deps=[storyboard],
    description="The narrator's voice-over: each narrated scene's line said once (text to speech), one voice for the whole piece.",
)
def narration(context: dg.AssetExecutionContext, config: NarrationConfig, vidpipe: VidpipeResource) -> dg.MaterializeResult:
    with asset_step(context, vidpipe) as (services, project_id):
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
    return materialized(context, metadata, [])


@dg.asset(
    partitions_def=projects_partitions,
    group_name=GROUP,
    kinds={"python", "ffmpeg"},
    deps=[CLIPS, narration],
    description="The stitched MP4: stream-copy concat, or crossfade re-encode with audio kept.",
    check_specs=[check_spec("final_video_valid", FINAL_VIDEO, blocking=False)],  # the last stage: nothing to guard
)
def final_video(context: dg.AssetExecutionContext, config: FinalVideoConfig, vidpipe: VidpipeResource) -> dg.MaterializeResult:
    images: dict[str, dg.MarkdownMetadataValue] = {}
    missing: list[str] = []  # narration lines not made: the video is made without them, and says so
    with ExitStack() as stack:
        services, project_id = stack.enter_context(asset_step(context, vidpipe))
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
    return materialized(
        context, metadata, [check_result(check_final_video(info, result.expected_duration_s, result.audio_expected))]
    )


render_assets = [storyboard, characters, clips, narration, final_video]
