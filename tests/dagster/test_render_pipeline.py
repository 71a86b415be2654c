"""The four assets for one partition on a SQLite Dagster instance, offline (animatic)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image
from sqlalchemy import select

from tests.helpers import check_results, latest_metadata, mean_abs_diff, png
from vidpipe_core import media
from vidpipe_core.models import CharacterSheetRow, Keyframe, VideoClip
from vidpipe_core.providers.animatic.motion import caption_box
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.storage import Layout
from vidpipe_dagster.runner import register, render

FRAME_TOLERANCE = 14.0  # mean abs diff (0-255) between a decoded video frame and its keyframe


def _render(project_id: str):
    result = render(project_id)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def test_render_offline_project_end_to_end(vp_env):
    spec = register(
        "A lighthouse keeper climbs the stairs. The lamp turns on. Ships pass safely in the storm.",
        id="lighthouse",
        scenes=3,
        clip_duration=1,
        provider="animatic",
    )
    result = _render(spec.id)
    services = vp_env.services()
    final = services.store.path(spec.id, Layout.FINAL)

    info = media.probe(final)
    assert (info.width, info.height) == (256, 144)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert abs(info.duration_s - 3.0) <= 0.25

    # Continuity: every scene boundary shows the shared keyframe (its picture: each clip draws its
    # own scene's caption band over the bottom). The storyboard asks for a fade in and a fade out.
    state = resolve_state(services, spec.id)
    frames = [png(services.store.read_bytes(spec.id, f.row.path)) for f in state.frames]
    picture = (0, 0, 256, caption_box((256, 144))[1])

    def shown(at: float | str) -> Image.Image:
        return media.read_frame(final, at).crop(picture)  # type: ignore[arg-type]

    assert np.asarray(media.read_frame(final, "first")).mean() < 3 and np.asarray(media.read_frame(final, "last")).mean() < 3
    fps = info.fps
    assert mean_abs_diff(shown(0.5 + 1 / fps), frames[0].crop(picture)) < 3 * FRAME_TOLERANCE  # past the fade, still scene 1
    for boundary in (1, 2):
        before, after = shown(boundary - 1.0 / fps), shown(boundary + 0.01)
        assert mean_abs_diff(before, frames[boundary].crop(picture)) < FRAME_TOLERANCE, (
            f"scene {boundary} does not end on frame {boundary}"
        )
        assert mean_abs_diff(after, frames[boundary].crop(picture)) < FRAME_TOLERANCE, (
            f"scene {boundary + 1} does not start on frame {boundary}"
        )
    # Consecutive keyframes differ (the scenes are not one still image).
    assert mean_abs_diff(frames[0], frames[3]) > 5

    instance = vp_env.instance()
    assert latest_metadata(instance, "storyboard", spec.id)["scene_count"] == 3
    kf = latest_metadata(instance, "keyframes", spec.id)
    assert (kf["generated"], kf["reused"]) == (4, 0)
    assert os.path.exists(kf["contact_sheet"])
    rows = [r.data for r in latest_metadata(instance, "clips", spec.id)["scenes"].records]
    assert [(r["scene"], r["status"]) for r in rows] == [(1, "generated"), (2, "generated"), (3, "generated")]
    fv = latest_metadata(instance, "final_video", spec.id)
    assert fv["resolution"] == "256x144" and fv["video_codec"] == "h264"
    assert check_results(instance, result.run_id) == {
        "storyboard_complete": True,
        "characters_complete": True,
        "keyframes_decode": True,
        "clips_complete": True,
        "final_video_valid": True,
    }


def test_second_materialization_renders_nothing(vp_env):
    spec = register("Two friends build a kite and fly it over the dunes.", id="kite", scenes=2, clip_duration=1)
    _render(spec.id)
    services = vp_env.services()
    with services.db.session() as s:
        before = (
            {(r.id, r.updated_at) for r in s.scalars(select(Keyframe))}
            | {(r.id, r.updated_at) for r in s.scalars(select(VideoClip))}
            | {(r.id, r.updated_at) for r in s.scalars(select(CharacterSheetRow))}
        )
    mtimes = {p: os.stat(p).st_mtime_ns for p in (services.store.path(spec.id, r[1]) for r in _artifact_paths(services, spec.id))}

    _render(spec.id)
    instance = vp_env.instance()
    kf = latest_metadata(instance, "keyframes", spec.id)
    clips = latest_metadata(instance, "clips", spec.id)
    assert (kf["generated"], kf["reused"]) == (0, 3)
    sheets = latest_metadata(instance, "characters", spec.id)
    assert sheets["count"] >= 1 and (sheets["generated"], sheets["reused"]) == (0, sheets["count"])
    assert clips.get("generated", 0) == 0 and clips["reused"] == 2
    with services.db.session() as s:
        after = (
            {(r.id, r.updated_at) for r in s.scalars(select(Keyframe))}
            | {(r.id, r.updated_at) for r in s.scalars(select(VideoClip))}
            | {(r.id, r.updated_at) for r in s.scalars(select(CharacterSheetRow))}
        )
    assert after == before
    assert mtimes == {p: os.stat(p).st_mtime_ns for p in mtimes}


def _artifact_paths(services, project_id):
    with services.db.session() as s:
        rows = (
            list(s.scalars(select(Keyframe).where(Keyframe.project_id == project_id)))
            + list(s.scalars(select(VideoClip).where(VideoClip.project_id == project_id)))
            + list(s.scalars(select(CharacterSheetRow).where(CharacterSheetRow.project_id == project_id)))
        )
    return [(r.id, r.path) for r in rows]


def test_crossfade_restitch_keeps_audio_and_shortens(vp_env):
    spec = register("Waves roll in. A crab runs. Gulls circle.", id="beach", scenes=3, clip_duration=2)
    _render(spec.id)
    result = render(spec.id, assets=["final_video"], run_config={"ops": {"final_video": {"config": {"crossfade": 0.5}}}})
    assert result.success
    services = vp_env.services()
    info = media.probe(services.store.path(spec.id, Layout.FINAL))
    assert info.has_audio and info.audio_codec == "aac"
    assert abs(info.duration_s - (3 * 2 - 2 * 0.5)) <= 0.25
