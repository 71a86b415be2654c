"""The four assets with provider `google`: the real google-genai SDK against the wire emulator,
configured only through the SDK's standard environment variables."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import check_results, latest_metadata, mean_abs_diff, png
from vidpipe_core import media
from vidpipe_core.models import ClipStatus
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.storage import Layout
from vidpipe_dagster.cli import app
from vidpipe_dagster.runner import failure_message, register, render

FRAME_TOLERANCE = 14.0


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_google_render_end_to_end(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A red kite over green hills at noon", id="kite-google", scenes=3, clip_duration=4)
    assert spec.providers.clips == "google"
    result = render(spec.id)
    assert result.success, [e.message for e in result.all_events if e.is_failure]

    stats = emu.stats()
    assert stats["requests"]["text"] == 1
    # One reference sheet per character (the emulator's storyboard shows 3), then N + 1 frames.
    assert stats["requests"]["image"] == 3 + 4
    assert stats["requests"]["video_submit"] == 3
    assert all(n == 1 for n in emu.submissions_by_prompt.values())

    services = vp_env.services()
    final = services.store.path(spec.id, Layout.FINAL)
    info = media.probe(final)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert abs(info.duration_s - 12.0) <= 0.25

    # The scenes come from the emulator's frames: the video opens on frame 0 and every scene
    # boundary shows the keyframe that the emulator rendered for it.
    state = resolve_state(services, spec.id)
    frame_bytes = [services.store.read_bytes(spec.id, f.row.path) for f in state.frames]
    assert mean_abs_diff(media.read_frame(final, "first"), png(frame_bytes[0])) < FRAME_TOLERANCE
    for boundary in (1, 2):
        assert mean_abs_diff(media.read_frame(final, boundary * 4 + 0.05), png(frame_bytes[boundary])) < FRAME_TOLERANCE

    # Continuity on the wire: the last image sent for each end frame is that scene's start frame
    # (the characters' sheets come first; tests/dagster/test_characters.py checks them).
    sheet_requests, image_requests = emu.records("image")[:3], emu.records("image")[3:]
    assert all(r.image_sha256 == [] for r in sheet_requests)
    assert not set(image_requests[0].image_sha256) & {_sha(f) for f in frame_bytes}
    for k in range(1, 4):
        assert image_requests[k].image_sha256[-1] == _sha(frame_bytes[k - 1])
    # And each clip was submitted with its start frame and its end frame (= next scene's start).
    for rec in emu.records("video_submit"):
        assert rec.image_sha256 in ([_sha(frame_bytes[i]), _sha(frame_bytes[i + 1])] for i in range(3))

    instance = vp_env.instance()
    clips_meta = latest_metadata(instance, "clips", spec.id)
    assert clips_meta["model"] == "veo-3.1-generate-001"
    assert clips_meta["cost_usd"] == pytest.approx(3 * 4 * 0.40)
    assert latest_metadata(instance, "storyboard", spec.id)["projected_cost_usd"] > 4.0
    assert all(check_results(instance, result.run_id).values())


def test_no_secret_reaches_logs_metadata_or_storage(gp, capfd, caplog):
    vp_env, g = gp
    spec = register("A quiet harbour at dusk", id="secret-check", scenes=2, clip_duration=4)
    assert render(spec.id).success
    g.emulator.configure(fail_first={"video_submit": [503]})
    # also exercise an error path (retry log lines) with the key in the environment
    spec2 = register("A quiet harbour at dawn", id="secret-check-2", scenes=1, clip_duration=4)
    assert render(spec2.id).success
    needle = g.api_key.encode()
    for root in (vp_env.dagster_home, vp_env.data_dir):
        for path in Path(root).rglob("*"):
            if path.is_file():
                assert needle not in path.read_bytes(), f"the API key leaked into {path}"
    out, errout = capfd.readouterr()
    assert g.api_key not in out + errout + caplog.text


def test_plain_gemini_key_fails_before_any_request(vp_env, emulator, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", "sk-sentinel-gemini-only")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.base_url)
    result = CliRunner().invoke(app, ["new", "a cat", "--provider", "google", "--clip-duration", "4"])
    assert result.exit_code != 0
    assert "GOOGLE_GENAI_USE_VERTEXAI" in result.output and "Vertex" in result.output
    assert "sk-sentinel-gemini-only" not in result.output
    assert sum(emulator.stats()["requests"].values()) == 0


def _edit_motion(vp_env, project_id: str, scene: int, text: str) -> None:
    from vidpipe_core.steps.edit import edit_scene

    edit_scene(vp_env.services(), project_id, scene, motion_prompt=text)


@pytest.mark.parametrize("policy", ["fail", "skip", "retry"])
def test_safety_policies(gp, policy):
    vp_env, g = gp
    g.emulator.configure(safety_word="forbiddenword")
    spec = register("A fox crosses a snowy field", id=f"safety-{policy}", scenes=3, clip_duration=4, safety_policy=policy)
    assert render(spec.id, assets=["storyboard"]).success
    _edit_motion(vp_env, spec.id, 1, "The camera follows the forbiddenword fox")
    result = render(spec.id)
    services = vp_env.services()
    clip = resolve_state(services, spec.id).clips[1].row
    if policy == "fail":
        assert not result.success
        failure = failure_message(result)
        assert "scene 2" in failure and "forbiddenword" in failure  # scene index 1, numbered from 1
        assert clip.status == ClipStatus.REJECTED and "forbiddenword" in clip.safety_reasons[0]
        assert sum(g.emulator.submissions_by_prompt.values()) == 3
        # Re-running never pays for the rejected scene again.
        render(spec.id)
        assert sum(g.emulator.submissions_by_prompt.values()) == 3
    elif policy == "skip":
        assert result.success
        info = media.probe(services.store.path(spec.id, Layout.FINAL))
        assert abs(info.duration_s - 8.0) <= 0.25
        meta = latest_metadata(vp_env.instance(), "final_video", spec.id)
        assert "scene 2" in meta["skipped_scenes"] and "forbiddenword" in meta["skipped_scenes"]
        # The UI's table and summary say which scene was left out and why; the clips check accepts a skip by policy.
        rows = {r.data["scene"]: r.data for r in meta["scenes"].records}
        assert rows[2]["status"] == "skipped" and "forbiddenword" in rows[2]["detail"] and rows[2]["duration_s"] is None
        assert rows[1]["status"] == rows[3]["status"] == "in video"
        assert "Scene 2 skipped" in meta["summary"] and "forbiddenword" in meta["summary"]
        clip_rows = {r.data["scene"]: r.data for r in latest_metadata(vp_env.instance(), "clips", spec.id)["scenes"].records}
        assert clip_rows[2]["status"] == "rejected" and "left out of the video" in clip_rows[2]["detail"]
        assert "forbiddenword" in clip_rows[2]["detail"]
        assert check_results(vp_env.instance(), result.run_id)["clips_complete"] is True
        status = CliRunner().invoke(app, ["status", spec.id]).output
        assert "skipped in final video" in status
    else:
        assert result.success
        assert clip.status == ClipStatus.DONE and clip.attempts == 2
        assert "forbiddenword" not in clip.prompt_used and "attempt 1" in clip.safety_reasons[0]
        info = media.probe(services.store.path(spec.id, Layout.FINAL))
        assert abs(info.duration_s - 12.0) <= 0.25


@pytest.mark.parametrize(
    "fault, expect",
    [
        ({"error_word": "glitch"}, "scene 1"),
        ({"corrupt_word": "glitch"}, "not a decodable video"),
    ],
)
def test_failed_operations_name_the_scene(gp, fault, expect):
    vp_env, g = gp
    g.emulator.configure(**fault)
    spec = register("A glitch in the matrix", id="broken", scenes=1, clip_duration=4)
    result = render(spec.id)
    assert not result.success
    failure = failure_message(result)
    assert "clips" in failure and expect in failure


def test_budget_stops_before_any_paid_request(gp):
    vp_env, g = gp
    spec = register("A long epic journey", id="too-dear", scenes=4, clip_duration=8, max_cost_usd=1.0)
    result = render(spec.id)
    assert not result.success
    failure = failure_message(result)
    assert "exceeds the project budget $1.00" in failure
    assert sum(g.emulator.stats()["requests"].values()) == 0
