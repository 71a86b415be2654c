"""Every reused byte is checked: damaged keyframes and clips are obtained again without paying
where the provider allows it, and otherwise the asset fails naming the scene and the cost; a
project re-created under the same id after the database was lost gets its own video."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from tests.helpers import VIDPIPE, latest_metadata
from vidpipe_core import media
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.storage import Layout
from vidpipe_dagster.cli import app
from vidpipe_dagster.runner import failure_message, register, render

PAID = ("text", "image", "video_submit")


def _paid(emu) -> dict[str, int]:  # type: ignore[no-untyped-def]
    requests = emu.stats()["requests"]
    return {k: requests[k] for k in PAID}


def _store_path(vp_env, project: str, relpath: str) -> Path:  # type: ignore[no-untyped-def]
    return Path(vp_env.services().store.path(project, relpath))


def _ledger_matches_files(vp_env, project: str) -> None:  # type: ignore[no-untyped-def]
    state = resolve_state(vp_env.services(), project)
    for row in [f.row for f in state.frames] + [c.row for c in state.clips]:
        assert row is not None and row.sha256 == hashlib.sha256(_store_path(vp_env, project, row.path).read_bytes()).hexdigest()


def test_truncated_clip_and_keyframe_are_repaired_without_paying(gp):
    vp_env, g = gp
    emu = g.emulator
    # Gemini plans and Veo films; the animatic draws the keyframes (it renders the same bytes again).
    spec = register(
        "A hot-air balloon drifts over a patchwork of fields",
        id="repair-free",
        scenes=3,
        clip_duration=4,
        keyframe_provider="animatic",
    )
    assert render(spec.id).success
    state = resolve_state(vp_env.services(), spec.id)
    clip = _store_path(vp_env, spec.id, state.clips[1].row.path)
    frame = _store_path(vp_env, spec.id, state.frames[1].row.path)
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])  # truncated
    frame.write_bytes(frame.read_bytes()[:200])  # truncated
    paid, polls = _paid(emu), emu.request_count("video_poll")

    status = CliRunner().invoke(app, ["status", spec.id])
    assert status.exit_code == 0 and "damaged" in status.output
    result = CliRunner().invoke(app, ["resume", spec.id])
    assert result.exit_code == 0, result.output
    assert "damaged: the frame between scenes 1 and 2" in result.output and "at no cost" in result.output
    assert "damaged: the clip of scene 2" in result.output
    assert _paid(emu) == paid  # nothing bought again
    assert emu.request_count("video_poll") > polls  # the clip came back from its operation
    _ledger_matches_files(vp_env, spec.id)
    instance = vp_env.instance()
    assert latest_metadata(instance, "keyframes", spec.id)["repaired"] == 1
    assert latest_metadata(instance, "clips", spec.id)["repaired"] == 1
    info = media.probe(_store_path(vp_env, spec.id, Layout.FINAL))
    assert info.has_video and abs(info.duration_s - 12.0) <= 0.25
    assert CliRunner().invoke(app, ["resume", spec.id]).output.count("nothing to do") == 1


def test_damaged_clip_whose_operation_is_gone_fails_naming_the_scene_and_the_cost(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A lantern swings in a dark barn", id="repair-paid", scenes=2, clip_duration=4)
    assert render(spec.id).success
    clip = _store_path(vp_env, spec.id, resolve_state(vp_env.services(), spec.id).clips[1].row.path)
    clip.write_bytes(clip.read_bytes()[:1000])
    emu.expire_operations()  # Veo no longer holds the video
    paid = _paid(emu)

    result = render(spec.id)
    assert not result.success
    failure = failure_message(result)
    assert "the clip of scene 2" in failure and "$1.60" in failure and f"vidpipe resume {spec.id} --repair" in failure
    assert "404" in failure
    assert _paid(emu) == paid

    plan = CliRunner().invoke(app, ["resume", spec.id, "--dry-run"])
    assert "damaged: the clip of scene 2" in plan.output and "--repair" in plan.output
    repaired = CliRunner().invoke(app, ["resume", spec.id, "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert _paid(emu) == {**paid, "video_submit": paid["video_submit"] + 1}
    _ledger_matches_files(vp_env, spec.id)
    assert abs(media.probe(_store_path(vp_env, spec.id, Layout.FINAL)).duration_s - 8.0) <= 0.25


def test_a_damaged_gemini_keyframe_is_regenerated_only_with_consent(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A fox curls up under a pine tree", id="repair-frame", scenes=2, clip_duration=4)
    assert render(spec.id).success
    row = resolve_state(vp_env.services(), spec.id).frames[2].row
    frame = _store_path(vp_env, spec.id, row.path)
    frame.unlink()
    paid = _paid(emu)

    result = render(spec.id)
    assert not result.success
    failure = failure_message(result)
    # Regenerating the last frame buys that frame and, through continuity, the clip that ends on it.
    assert "the end frame of scene 2: the file is missing" in failure and "$1.64" in failure
    assert _paid(emu) == paid
    repaired = CliRunner().invoke(app, ["resume", spec.id, "--repair"])
    assert repaired.exit_code == 0, repaired.output
    # The emulator draws the same image for the same request; Gemini would not, and then the clip
    # that ends on the frame is made again too. Either way nothing else is bought.
    same = hashlib.sha256(frame.read_bytes()).hexdigest() == row.sha256
    assert _paid(emu) == {**paid, "image": paid["image"] + 1, "video_submit": paid["video_submit"] + (0 if same else 1)}
    _ledger_matches_files(vp_env, spec.id)


def test_a_regenerated_gemini_keyframe_with_new_bytes_remakes_what_follows(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A heron waits in the reeds", id="repair-cascade", scenes=2, clip_duration=4)
    assert render(spec.id).success
    frame = _store_path(vp_env, spec.id, resolve_state(vp_env.services(), spec.id).frames[1].row.path)
    frame.write_bytes(b"")
    emu.configure(image_height=160)  # the model now draws differently: new bytes for the same request
    paid = _paid(emu)
    repaired = CliRunner().invoke(app, ["resume", spec.id, "--repair"])
    assert repaired.exit_code == 0, repaired.output
    # Frame 1 again and, through continuity, frame 2 and both clips (each frame is in a clip).
    assert _paid(emu) == {**paid, "image": paid["image"] + 2, "video_submit": paid["video_submit"] + 2}
    _ledger_matches_files(vp_env, spec.id)
    assert abs(media.probe(_store_path(vp_env, spec.id, Layout.FINAL)).duration_s - 8.0) <= 0.25


def test_storyboard_json_is_rewritten_from_the_database(vp_env):
    spec = register("A cat naps in the sun", id="repair-plan", scenes=2, clip_duration=1)
    assert render(spec.id).success
    path = _store_path(vp_env, spec.id, Layout.STORYBOARD)
    original = path.read_bytes()
    path.write_bytes(original[:40])
    result = CliRunner().invoke(app, ["resume", spec.id])
    assert result.exit_code == 0, result.output
    assert "damaged: storyboard.json" in result.output
    assert path.read_bytes() == original
    assert latest_metadata(vp_env.instance(), "storyboard", spec.id)["repaired"] is True


def test_a_project_recreated_after_the_database_was_lost_gets_its_own_video(vp_env):
    env = dict(os.environ)

    def vidpipe(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([VIDPIPE, *args], env=env, capture_output=True, text=True, timeout=180)

    assert vidpipe("new", "A red kite over green hills", "--id", "lost", "--scenes", "2").returncode == 0
    assert vidpipe("render", "lost").returncode == 0
    final = vp_env.data_dir / "artifacts/projects/lost/final.mp4"
    old = hashlib.sha256(final.read_bytes()).hexdigest()
    for name in ("vidpipe.db", "vidpipe.db-wal", "vidpipe.db-shm"):
        (vp_env.data_dir / name).unlink(missing_ok=True)

    assert vidpipe("new", "A yellow submarine dives past coral towers", "--id", "lost", "--scenes", "3").returncode == 0
    resumed = vidpipe("resume", "lost")
    assert resumed.returncode == 0, resumed.stderr
    assert "nothing to do" not in resumed.stderr
    assert "belongs to an earlier project with this id" in resumed.stderr
    assert "submarine" in (vp_env.data_dir / "artifacts/projects/lost/storyboard.json").read_text()
    assert hashlib.sha256(final.read_bytes()).hexdigest() != old
    assert abs(media.probe(final).duration_s - 3.0) <= 0.25  # 3 scenes of 1 s, not the old 2
    status = vidpipe("status", "lost")
    assert "stale" not in status.stdout


def test_a_damaged_final_video_is_stitched_again(vp_env):
    spec = register("Rain on a tin roof", id="repair-final", scenes=2, clip_duration=1)
    assert render(spec.id).success
    path = _store_path(vp_env, spec.id, Layout.FINAL)
    path.write_bytes(path.read_bytes()[:500])
    result = CliRunner().invoke(app, ["resume", spec.id])
    assert result.exit_code == 0, result.output
    assert "final_video (final.mp4: its content does not match" in result.output
    assert abs(media.probe(path).duration_s - 2.0) <= 0.25
