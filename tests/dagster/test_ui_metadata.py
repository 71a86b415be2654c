"""What the Dagster UI shows of a project: images embedded as data URIs within their budgets, a
per-scene table numbered from 1, a summary with the prompt and the ledger's total cost, described
checks, and a clips check that fails when a clip is shorter than planned or missing."""

from __future__ import annotations

import base64
import io
import os
import re
import secrets

import dagster as dg
import pytest
from PIL import Image, ImageSequence
from sqlalchemy import select

from tests.helpers import check_results, latest_metadata
from vidpipe_core import media, previews
from vidpipe_core.checks import check_clips
from vidpipe_core.models import CharacterSheetRow, Keyframe, VideoClip
from vidpipe_core.steps.state import resolve_state, stored_document
from vidpipe_core.storage import Layout, sha256_file
from vidpipe_dagster.assets import render_assets
from vidpipe_dagster.runner import failure_message, register, render

PROMPT = "A paper lantern drifts over a night market | it lands on a *quiet* river."
SECRET = f"sentinel-{secrets.token_hex(8)}"  # made per run, shaped like no real key
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\(data:(?P<mime>image/[a-z]+);base64,(?P<data>[A-Za-z0-9+/=]+)\)")


@pytest.fixture
def priced(vp_env, monkeypatch):
    """Animatic clips priced like a paid model (5 cents a second), so the ledger holds real costs."""
    monkeypatch.setenv("VIDPIPE_PRICES", '{"animatic": {"per_second": 0.05}}')
    monkeypatch.setenv("VIDPIPE_REVIEW", "none")  # priced clips would be under review; this test renders everything
    monkeypatch.setenv("VIDPIPE_UI_PREVIEWS", "true")  # vp_env leaves them out to keep the suite fast
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)  # present in the environment, must show nowhere
    return vp_env


def _image(md: str, alt: str, budget: int) -> Image.Image:
    match = IMAGE.fullmatch(md.split("\n", 1)[0])
    assert match, md[:200]
    assert match["alt"] == alt
    data = base64.b64decode(match["data"], validate=True)
    assert 0 < len(data) <= budget, (alt, len(data), budget)
    image = Image.open(io.BytesIO(data))
    assert image.format.lower() == match["mime"].split("/")[1]
    image.load()
    return image


def _rows(table: dg.TableMetadataValue) -> list[dict]:
    assert isinstance(table, dg.TableMetadataValue)
    assert [c.name for c in table.schema.columns] == ["scene", "status", "duration_s", "cost_usd", "detail"]
    return [dict(r.data) for r in table.records]


def _ledger_total(services, project_id: str) -> float:
    with services.db.session() as s:
        sheets = sum(r.cost_usd for r in s.scalars(select(CharacterSheetRow).where(CharacterSheetRow.project_id == project_id)))
        frames = sum(r.cost_usd for r in s.scalars(select(Keyframe).where(Keyframe.project_id == project_id)))
        clips = sum(r.cost_usd for r in s.scalars(select(VideoClip).where(VideoClip.project_id == project_id)))
    return (stored_document(services, project_id) or {}).get("cost_usd", 0.0) + sheets + frames + clips


def test_the_ui_shows_the_product(priced):
    spec = register(PROMPT, id="lantern", scenes=2, clip_duration=1, provider="animatic", max_cost_usd=3.0)
    result = render(spec.id)
    assert result.success, failure_message(result)
    services, instance = priced.services(), priced.instance()

    fv = latest_metadata(instance, "final_video", spec.id)
    preview = _image(fv["preview"], "preview", previews.PREVIEW_BUDGET)
    frames = list(ImageSequence.Iterator(preview))
    assert len(frames) > 1 and preview.format in ("WEBP", "GIF")
    poster = _image(fv["poster"], "poster", previews.POSTER_BUDGET)
    assert poster.width <= 256 and poster.height <= 144  # never larger than the video

    rows = _rows(fv["scenes"])
    assert [r["scene"] for r in rows] == [1, 2]
    assert all(r["status"] == "in video" and abs(r["duration_s"] - 1.0) <= 0.1 for r in rows)
    assert all(r["cost_usd"] == pytest.approx(0.05) and r["detail"] for r in rows)

    summary = fv["summary"]
    assert PROMPT in summary and "Total cost" in summary and "$3.00 budget" in summary
    assert len(summary) < 1000  # Dagster's UI shows shorter markdown inline, longer behind "[Show Markdown]"
    total = float(re.search(r"Total cost: \$([0-9.]+)", summary).group(1))
    ledger = _ledger_total(services, spec.id)
    assert ledger == pytest.approx(0.10)  # two 1 s clips at $0.05/s; storyboard and frames are free
    assert total == pytest.approx(ledger) and fv["total_cost_usd"] == pytest.approx(ledger)
    assert "| clips | animatic | animatic |" in summary and "no scene was rejected" in summary
    assert str(services.store.path(spec.id, "final.mp4")) in summary
    # narration is on for a new project: the animatic's narrator says each scene's line, subtitled
    assert "**Narration:** on" in fv["final_mix"] and fv["narration"] is True
    assert fv["subtitles"].startswith("2 cues") and abs(fv["loudness_lufs"] + 16) <= 1 and fv["true_peak_dbtp"] <= -1.0

    kf = latest_metadata(instance, "keyframes", spec.id)
    sheet = _image(kf["contact_sheet_image"], "contact sheet", previews.SHEET_BUDGET)
    assert sheet.width > sheet.height  # three frames side by side
    assert kf["contact_sheet"].endswith("contact_sheet.png")

    clips = latest_metadata(instance, "clips", spec.id)
    clip_rows = _rows(clips["scenes"])
    assert [(r["scene"], r["status"]) for r in clip_rows] == [(1, "generated"), (2, "generated")]
    assert all(r["detail"].startswith("generated by animatic") for r in clip_rows)
    strip = _image(clips["strip"], "scene strip", previews.STRIP_BUDGET)
    assert strip.width > 2 * strip.height  # two scenes, two frames each, in a row

    assert check_results(instance, result.run_id) == {
        "storyboard_complete": True,
        "characters_complete": True,
        "keyframes_decode": True,
        "clips_complete": True,
        "final_video_valid": True,
    }
    # Nothing secret in any metadata value or check of the run.
    everything = [str(e.dagster_event) for e in instance.all_logs(result.run_id) if e.dagster_event]
    assert everything and not any(SECRET in text for text in everything)
    # Each image is stored once in the event log: on the materialization, not again on the step's output.
    for md in (fv["preview"], fv["poster"], kf["contact_sheet_image"], clips["strip"]):
        payload = IMAGE.match(md)["data"]
        assert sum(text.count(payload) for text in everything) == 1
    outputs = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_OUTPUT)
    assert outputs and not any(e.dagster_event.event_specific_data.metadata for e in outputs)

    # A second render reuses every clip, and the table says so (not an empty detail).
    assert render(spec.id).success
    again = _rows(latest_metadata(instance, "clips", spec.id)["scenes"])
    assert [r["status"] for r in again] == ["reused", "reused"] and all("fingerprint" in r["detail"] for r in again)


def test_every_check_has_a_description():
    specs = [s for a in render_assets for s in a.check_specs]
    assert {s.name for s in specs} == {
        "storyboard_complete",
        "characters_complete",
        "keyframes_decode",
        "clips_complete",
        "final_video_valid",
    }
    assert all(s.description and len(s.description) > 40 for s in specs)


def test_the_checks_that_guard_the_next_stage_block_it():
    blocking = {s.name: s.blocking for a in render_assets for s in a.check_specs}
    assert blocking == {
        "storyboard_complete": True,
        "characters_complete": True,
        "keyframes_decode": True,
        "clips_complete": True,
        "final_video_valid": False,  # the last stage: nothing after it to guard
    }


def test_a_failed_clips_check_stops_the_final_video(vp_env):
    """A clip shorter than planned fails `clips_complete`, which is blocking: the clips step fails
    after recording the check, and the run stitches no video from it (no final_video step)."""
    spec = register("A snail races a leaf. The leaf wins.", id="snail", scenes=2, clip_duration=1, provider="animatic")
    first = render(spec.id)
    assert first.success
    services, instance = vp_env.services(), vp_env.instance()
    _shorten(services, spec.id, 1, 0.5)

    result = render(spec.id)
    assert not result.success
    assert failure_message(result).startswith("clips: check clips_complete failed: scene 2: the clip lasts 0.50 s")
    started = {e.step_key for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_START)}
    assert started == {"storyboard", "characters", "clips", "narration"}  # the narration needs only the storyboard
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("final_video"), asset_partitions=[spec.id]), limit=1
    ).records[0]
    assert latest.run_id == first.run_id  # the video of the first run; nothing stitched from the short clip
    assert abs(media.probe(services.store.path(spec.id, Layout.FINAL)).duration_s - 2.0) <= 0.25


def _shorten(services, project_id: str, scene_index: int, seconds: float) -> None:
    """Replace a scene's clip by a real, shorter one and record it in the ledger (as a provider
    that returned a short video would have)."""
    state = resolve_state(services, project_id)
    row = state.clips[scene_index].row
    path = services.store.path(project_id, row.path)
    info = media.probe(path)
    tmp = f"{path}.short.mp4"
    media.run_ffmpeg(
        ["-f", "lavfi", "-i", f"testsrc2=size={info.width}x{info.height}:rate=12:duration={seconds}", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-y", tmp],
        what="short clip",
    )  # fmt: skip
    os.replace(tmp, path)
    with services.db.session() as s:
        db_row = s.get(VideoClip, row.id)
        db_row.sha256, db_row.duration_s = sha256_file(path), seconds


def test_clips_check_fails_for_a_short_or_missing_clip(vp_env, monkeypatch):
    monkeypatch.setenv("VIDPIPE_UI_PREVIEWS", "false")  # the switch: no images, the rest stays
    spec = register("A snail races a leaf. The leaf wins.", id="snail", scenes=2, clip_duration=1, provider="animatic")
    assert render(spec.id).success
    services, instance = vp_env.services(), vp_env.instance()
    fv = latest_metadata(instance, "final_video", spec.id)
    assert "preview" not in fv and "poster" not in fv and "Total cost" in fv["summary"]
    assert "strip" not in latest_metadata(instance, "clips", spec.id)
    assert "contact_sheet_image" not in latest_metadata(instance, "keyframes", spec.id)
    assert check_clips(services, spec.id).passed

    _shorten(services, spec.id, 1, 0.5)
    result = render(spec.id, assets=["clips"])
    # The check guards the final video (blocking): the step records it, then fails, saying what it found.
    assert not result.success
    assert failure_message(result).startswith("clips: check clips_complete failed: scene 2: the clip lasts 0.50 s")
    assert check_results(instance, result.run_id) == {"clips_complete": False}
    evaluation = next(
        e.dagster_event.event_specific_data
        for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    )
    assert "scene 2: the clip lasts 0.50 s, planned 1 s" in evaluation.description
    assert "scene 1" not in evaluation.description

    with services.db.session() as s:
        s.delete(s.get(VideoClip, resolve_state(services, spec.id).clips[0].row.id))
    outcome = check_clips(services, spec.id)
    assert not outcome.passed and "scene 1: no finished clip (missing)" in outcome.description
