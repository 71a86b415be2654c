"""The clips step makes the keyframes too, and submits each scene's clip as soon as its two frames
are recorded: the first clips run while the later frames are rendered. A frame that fails (the
provider, or the keyframes check) stops every clip not yet submitted; the ones submitted were made
from good frames, are saved, and are never paid for again."""

from __future__ import annotations

import io
import time
from typing import Any

import dagster as dg
from PIL import Image
from sqlalchemy import select

from tests.helpers import check_results, latest_metadata
from vidpipe_core.errors import ProviderError
from vidpipe_core.models import ClipStatus, Keyframe, VideoClip
from vidpipe_core.providers.animatic.provider import AnimaticProvider
from vidpipe_core.providers.base import decoded
from vidpipe_core.steps import KEYFRAMES
from vidpipe_dagster.runner import failure_message, failures, register, render

SCENES = 3  # frames 1-4 (0-3 counted from 0)
REAL_RENDER = AnimaticProvider.render
SLOW_S = 0.6  # each of frames 3 and 4 takes this long: clip 1 (frames 1, 2) is submitted meanwhile


def _frames(monkeypatch: Any, *, fail_at: int | None = None, wrong_size_at: int | None = None) -> None:
    """The animatic's frames, frames 3 and 4 slowed down; frame ``fail_at`` (0-based) fails as a
    provider error would, frame ``wrong_size_at`` comes back at a size the check refuses."""
    real = REAL_RENDER

    def render_frame(self: AnimaticProvider, request: Any) -> Any:
        if request.frame_index >= 2:
            time.sleep(SLOW_S)
        if request.frame_index == fail_at:
            raise ProviderError(KEYFRAMES, "the image model is unavailable", scene=request.frame_index)
        image, usage = real(self, request)
        if request.frame_index == wrong_size_at:
            small = io.BytesIO()
            Image.open(io.BytesIO(image.data)).resize((64, 64)).save(small, format="PNG")
            image = decoded(small.getvalue())
        return image, usage

    monkeypatch.setattr(AnimaticProvider, "render", render_frame)


def _project(prompt: str, project_id: str) -> str:
    spec = register(prompt, id=project_id, scenes=SCENES, clip_duration=1, provider="animatic", review="none")
    assert render(spec.id, assets=["storyboard", "characters"]).success
    return spec.id


def _clips(services: Any, project_id: str) -> dict[int, VideoClip]:
    with services.db.session() as s:
        return {r.scene_index: r for r in s.scalars(select(VideoClip).where(VideoClip.project_id == project_id))}


def _frame_rows(services: Any, project_id: str) -> dict[int, Keyframe]:
    with services.db.session() as s:
        return {r.frame_index: r for r in s.scalars(select(Keyframe).where(Keyframe.project_id == project_id))}


def _materializations(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str | None]]:
    """(asset, step) of each materialization of the run, in order."""
    return [
        (e.dagster_event.asset_key.to_user_string(), e.step_key)
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    ]


def test_the_first_clip_is_submitted_while_later_frames_are_rendered(vp_env, monkeypatch):
    project_id = _project("A kite rises over a hill. It loops. It lands in a tree.", "kite")
    services, instance = vp_env.services(), vp_env.instance()
    _frames(monkeypatch)

    result = render(project_id, assets=["keyframes", "clips"])

    assert result.success, failure_message(result)
    clips, frames = _clips(services, project_id), _frame_rows(services, project_id)
    assert sorted(clips) == [0, 1, 2] and all(c.status == ClipStatus.DONE for c in clips.values())
    # Scene 1 needs frames 1 and 2 only: its operation was submitted before frame 4 was recorded
    # (frames 3 and 4 take SLOW_S each), and scene 3's after it.
    assert clips[0].submitted_at < frames[3].created_at <= clips[2].submitted_at
    # One step, "clips", materializes both; the keyframes first, with their check.
    assert _materializations(instance, result.run_id) == [("keyframes", "clips"), ("clips", "clips")]
    assert check_results(instance, result.run_id) == {"keyframes_decode": True, "clips_complete": True}
    assert latest_metadata(instance, "clips", project_id)["generated"] == SCENES


def test_a_failed_frame_stops_the_clips_after_it_and_resume_pays_only_for_those(vp_env, monkeypatch):
    project_id = _project("A paper boat leaves the gutter. It rides a waterfall. It reaches the canal.", "boat")
    services, instance = vp_env.services(), vp_env.instance()
    _frames(monkeypatch, fail_at=3)

    failed = render(project_id, assets=["keyframes", "clips"])

    assert not failed.success
    [failure] = failures(failed)
    assert (failure.step, failure.scene) == ("keyframes", 3), failure
    assert "keyframes, frame 4: the image model is unavailable" in failure_message(failed)
    clips = _clips(services, project_id)
    # Scenes 1 and 2 had their frames: made and saved. Scene 3 waited for frame 4: never claimed.
    assert sorted(clips) == [0, 1] and all(c.status == ClipStatus.DONE and c.path for c in clips.values())
    assert _materializations(instance, failed.run_id) == []
    paid = {i: (c.fingerprint, c.operation_name) for i, c in clips.items()}

    monkeypatch.setattr(AnimaticProvider, "render", REAL_RENDER)  # the image model is back
    again = render(project_id, assets=["keyframes", "clips"])

    assert again.success, failure_message(again)
    clips = _clips(services, project_id)
    assert {i: (c.fingerprint, c.operation_name) for i, c in clips.items() if i in paid} == paid
    metadata = latest_metadata(instance, "clips", project_id)
    assert (metadata["generated"], metadata["reused"]) == (1, 2)
    assert latest_metadata(instance, "keyframes", project_id)["generated"] == 1


def test_a_frame_the_keyframes_check_refuses_starts_no_clip_from_it(vp_env, monkeypatch):
    project_id = _project("A snail climbs a wall. It reaches the top. It looks at the moon.", "snail")
    services, instance = vp_env.services(), vp_env.instance()
    _frames(monkeypatch, wrong_size_at=2)

    result = render(project_id, assets=["keyframes", "clips"])

    assert not result.success
    assert "check keyframes_decode failed: the frame between scenes 2 and 3 is 64x64" in failure_message(result)
    # Scene 1 (frames 1, 2) may have been submitted before frame 3 came; no clip was made from frame 3.
    assert set(_clips(services, project_id)) <= {0}
    assert _materializations(instance, result.run_id) == [("keyframes", "clips")]
    assert check_results(instance, result.run_id) == {"keyframes_decode": False}


def test_under_review_the_frames_are_made_before_any_clip_is_looked_at(vp_env, monkeypatch):
    spec = register(
        "A heron waits. It strikes. It flies off.",
        id="heron",
        scenes=SCENES,
        clip_duration=1,
        provider="animatic",
        review="keyframes",
    )
    services, instance = vp_env.services(), vp_env.instance()

    result = render(spec.id)

    assert result.success, failure_message(result)
    assert _clips(services, spec.id) == {}  # nothing approved: no clip claimed, nothing paid
    made = [m for m in _materializations(instance, result.run_id) if m[0] in ("keyframes", "clips")]
    assert made == [("keyframes", "clips")]  # the clips wait for an approval: not materialized


def test_when_a_clip_fails_the_keyframes_are_still_materialized(vp_env, monkeypatch):
    project_id = _project("A fox cub wakes. It yawns. It runs into the woods.", "fox")
    services, instance = vp_env.services(), vp_env.instance()
    real_submit = AnimaticProvider.submit

    def submit(self: AnimaticProvider, request: Any, model: str, cancel: Any = None) -> str:
        if request.scene_index == 1:
            raise ProviderError("clips", "the video model is unavailable", scene=1)
        return real_submit(self, request, model) if cancel is None else real_submit(self, request, model, cancel)

    monkeypatch.setattr(AnimaticProvider, "submit", submit)

    result = render(project_id, assets=["keyframes", "clips"])

    assert not result.success
    [failure] = failures(result)
    assert (failure.step, failure.scene) == ("clips", 1) and "the video model is unavailable" in failure.message
    assert _materializations(instance, result.run_id) == [("keyframes", "clips")]  # the frames are all made
    assert check_results(instance, result.run_id) == {"keyframes_decode": True}
    assert sorted(_clips(services, project_id)) == [0, 1, 2]
