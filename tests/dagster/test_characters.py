"""The same characters in every scene: one reference sheet per character a scene shows, paid once,
and every keyframe request carries the sheets of its characters plus the previous frame. The real
google-genai SDK against the wire emulator, the real Dagster assets."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import re
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from tests.helpers import check_results, latest_metadata
from vidpipe_core.config import get_settings
from vidpipe_core.cost import estimate, image_cost
from vidpipe_core.fingerprint import keyframe_fingerprint
from vidpipe_core.models import CharacterSheetRow, Project, Scene
from vidpipe_core.providers import keyframe_provider
from vidpipe_core.providers.base import CharacterSheet, KeyframeRequest
from vidpipe_core.providers.google import max_input_images
from vidpipe_core.schemas import Storyboard, StyleGuide
from vidpipe_core.steps.state import frame_characters, frame_fingerprint, resolve_state, spent_usd, write_storyboard_file
from vidpipe_core.steps.storyboard import stage_models
from vidpipe_dagster.cli import app
from vidpipe_dagster.resume import plan_resume
from vidpipe_dagster.runner import failure_message, register, render, repair_config
from vidpipe_dagster.status import project_status

IMAGE = "gemini-2.5-flash-image"
PER_IMAGE = 0.039  # list price of IMAGE (config.py)
UP_TO_KEYFRAMES = ["storyboard", "characters", "keyframes"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (256, 144), color).save(out, format="PNG")
    return out.getvalue()


def test_every_keyframe_is_drawn_from_its_characters_sheets_and_the_previous_frame(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("Two friends fly a red kite over green hills", id="kite-friends", scenes=3, clip_duration=4)
    assert render(spec.id, assets=["storyboard"]).success
    services = vp_env.services()
    state = resolve_state(services, spec.id)

    # The emulator's style guide describes 3 characters; scene 1 shows the 1st and 3rd, scene 2 the
    # 2nd, scene 3 the 1st and 3rd. The scene rows keep them.
    names = [c.name for c in state.style.characters]
    assert len(names) == 3
    assert [s.characters for s in state.scenes] == [[names[0], names[2]], [names[1]], [names[0], names[2]]]
    with services.db.session() as s:
        rows = s.scalars(select(Scene).where(Scene.project_id == spec.id).order_by(Scene.index)).all()
        assert [r.characters for r in rows] == [s.characters for s in state.scenes]
    assert [c.name for c in state.sheets] == names and not any(c.done for c in state.sheets)

    # The estimate counts one image per sheet, and so does what status projects.
    models = stage_models(services, spec)
    projected = estimate(services.settings, spec, models, frames=4, clips=3, sheets=3)
    assert projected.characters_usd == pytest.approx(3 * PER_IMAGE)
    assert project_status(services, spec.id)["cost"]["projected_usd"] == pytest.approx(projected.after_storyboard_usd)
    assert latest_metadata(vp_env.instance(), "storyboard", spec.id)["projected_cost_usd"] == pytest.approx(
        round(projected.after_storyboard_usd, 4)
    )

    result = render(spec.id, assets=UP_TO_KEYFRAMES[1:])
    assert result.success, failure_message(result)
    assert all(check_results(vp_env.instance(), result.run_id).values())
    state = resolve_state(services, spec.id)
    sheets = {c.name: services.store.read_bytes(spec.id, c.row.path) for c in state.sheets}
    frames = [services.store.read_bytes(spec.id, f.row.path) for f in state.frames]
    assert all(c.row.sha256 == _sha(sheets[c.name]) for c in state.sheets)
    assert all(c.row.path.startswith("characters/") and c.row.path.endswith(".png") for c in state.sheets)

    # The wire: 3 sheet requests (text only, one naming each character; made at once, in any order),
    # then 4 frame requests, each with exactly the sheets of its characters (storyboard order) and
    # then the previous frame.
    records = emu.records("image")
    assert len(records) == 3 + 4
    for name in names:
        (record,) = [r for r in records[:3] if f"reference sheet of {name}" in r.prompt]
        assert record.image_parts == 0 and record.image_sha256 == [] and "front view" in record.prompt
    for k, record in enumerate(records[3:]):
        shown = frame_characters(state.scenes, k)
        expected = [_sha(sheets[n]) for n in shown] + ([_sha(frames[k - 1])] if k else [])
        assert record.image_sha256 == expected, f"frame {k + 1}"
        assert record.image_parts == len(expected) <= max_input_images(IMAGE)
        for i, name in enumerate(shown, start=1):
            assert f"Image {i} is the reference sheet of {name}" in record.prompt
        assert ("The last image is the previous keyframe" in record.prompt) == (k > 0)
    assert records[3].image_parts == 2  # frame 0: two sheets, no previous frame

    # Each frame's fingerprint covers its sheets.
    kp = keyframe_provider("google", services.settings)
    previous = None
    for f in state.frames:
        shas = tuple(_sha(sheets[n]) for n in f.characters)
        assert f.fingerprint == frame_fingerprint(kp, spec, f.prompt, previous, shas)
        assert f.fingerprint != frame_fingerprint(kp, spec, f.prompt, previous)
        previous = f.row.sha256

    # The ledger: one image per sheet, at the price the estimate used; spent includes them.
    with services.db.session() as s:
        ledger = s.scalars(select(CharacterSheetRow).where(CharacterSheetRow.project_id == spec.id)).all()
        assert sorted(r.name for r in ledger) == sorted(names)
        assert all(r.provider == "google" and r.model == IMAGE and r.width and r.height for r in ledger)
        sheets_usd = sum(r.cost_usd for r in ledger)
    assert sheets_usd == pytest.approx(projected.characters_usd)
    assert spent_usd(services, spec.id) == pytest.approx(sheets_usd + 4 * PER_IMAGE)

    meta = latest_metadata(vp_env.instance(), "characters", spec.id)
    assert (meta["count"], meta["generated"], meta["reused"]) == (3, 3, 0)
    assert meta["cost_usd"] == pytest.approx(3 * PER_IMAGE)
    assert set(meta["paths"]) == set(names)
    previews = re.findall(r"\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)", meta["sheets"])
    assert len(previews) == 3
    for preview in previews:
        assert len(preview) <= 100_000
        Image.open(io.BytesIO(base64.b64decode(preview))).load()

    # A second render pays nothing: no sheet and no frame is requested again.
    before = emu.stats()["requests"]
    assert render(spec.id, assets=UP_TO_KEYFRAMES).success
    assert emu.stats()["requests"]["image"] == before["image"] and emu.stats()["requests"]["text"] == before["text"]
    meta = latest_metadata(vp_env.instance(), "characters", spec.id)
    assert (meta["generated"], meta["reused"], meta["cost_usd"]) == (0, 3, 0)
    assert latest_metadata(vp_env.instance(), "keyframes", spec.id)["cost_usd"] == 0
    paths = project_status(services, spec.id)["paths"]["characters"]
    assert [p["name"] for p in paths] == names and all(Path(p["path"]).is_file() for p in paths)
    out = CliRunner().invoke(app, ["status", spec.id]).output
    assert f"character {names[0]}: {paths[0]['path']}" in out


def test_a_damaged_sheet_is_not_paid_for_again_without_repair(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A sailor and a parrot at sea", id="damaged-sheet", scenes=2, clip_duration=4)
    assert render(spec.id, assets=UP_TO_KEYFRAMES).success
    services = vp_env.services()
    sheet = resolve_state(services, spec.id).sheets[1]
    path = Path(services.store.path(spec.id, sheet.row.path))
    path.write_bytes(path.read_bytes()[:100])
    images = emu.request_count("image")

    # Google cannot render the same sheet again: the step fails, names the sheet and the cost.
    result = render(spec.id, assets=UP_TO_KEYFRAMES[1:])
    assert not result.success
    failure = failure_message(result)
    assert f"the reference sheet of {sheet.name!r}" in failure and "--repair" in failure and "$" in failure
    assert emu.request_count("image") == images

    # With repair: the sheet is made again (paid), and when its bytes are new, so is every frame from
    # the first that shows it (the emulator draws the same prompt the same way: no new frames).
    state = resolve_state(services, spec.id)
    first = min(f.index for f in state.frames if sheet.name in f.characters)
    result = render(spec.id, assets=UP_TO_KEYFRAMES[1:], run_config=repair_config(UP_TO_KEYFRAMES[1:]))
    assert result.success, failure_message(result)
    state = resolve_state(services, spec.id)
    same = state.sheet(sheet.name).row.sha256 == sheet.row.sha256
    assert emu.request_count("image") == images + 1 + (0 if same else len(state.frames) - first)
    meta = latest_metadata(vp_env.instance(), "characters", spec.id)
    assert (meta["generated"] + meta["repaired"], meta["reused"]) == (1, len(state.sheets) - 1)
    assert meta["cost_usd"] == pytest.approx(PER_IMAGE)
    assert all(c.done for c in state.sheets) and all(f.done for f in state.frames)
    assert state.sheet(sheet.name).row.sha256 == _sha(
        Path(services.store.path(spec.id, state.sheet(sheet.name).row.path)).read_bytes()
    )


def test_a_storyboard_naming_an_unknown_character_is_refused(gp):
    vp_env, g = gp
    emu = g.emulator
    # Every attempt names a stranger: three temperatures, then a clear failure; nothing else is paid.
    emu.configure(stray_character_first_n=3)
    spec = register("A knight meets a dragon", id="stray", scenes=2, clip_duration=4)
    result = render(spec.id)
    assert not result.success
    failure = failure_message(result)
    assert "scene 2 lists 'Stranger (not in the style guide)'" in failure and "style guide's characters" in failure
    assert emu.request_count("text") == 3 and emu.request_count("image") == 0
    assert not resolve_state(vp_env.services(), spec.id).has_storyboard

    # Once: the next, lower-temperature attempt is valid.
    emu.configure(stray_character_first_n=1)
    assert render(spec.id, assets=["storyboard"]).success
    assert emu.request_count("text") == 3 + 2


def test_the_storyboard_schema_refuses_unknown_and_repeated_names():
    guide = {"visual_style": "ink", "color_palette": ["black"], "camera_style": "static"}
    scene = {"description": "d", "start_frame_prompt": "s", "end_frame_prompt": "e", "motion_prompt": "m"}
    ana = {"name": "Ana", "appearance": "red coat"}
    ok = Storyboard.model_validate(
        {"title": "t", "style_guide": {**guide, "characters": [ana]}, "scenes": [scene, {**scene, "characters": ["Ana"]}]}
    )
    assert ok.scenes[1].characters == ["Ana"] and ok.scenes[0].characters == []
    with pytest.raises(ValidationError, match=r"scene 2 lists 'Bob', not among the style guide's characters \('Ana'\)"):
        Storyboard.model_validate(
            {"title": "t", "style_guide": {**guide, "characters": [ana]}, "scenes": [scene, {**scene, "characters": ["Bob"]}]}
        )
    with pytest.raises(ValidationError, match="more than once"):
        Storyboard.model_validate({"title": "t", "style_guide": {**guide, "characters": [ana, ana]}, "scenes": [scene]})
    with pytest.raises(ValidationError, match="scene 1 lists 'Ana' more than once"):
        Storyboard.model_validate(
            {"title": "t", "style_guide": {**guide, "characters": [ana]}, "scenes": [{**scene, "characters": ["Ana", "Ana"]}]}
        )
    # The schema sent to Gemini asks for the per-scene list.
    assert "characters" in Storyboard.model_json_schema()["$defs"]["ScenePlan"]["properties"]


def test_frames_without_characters_keep_their_fingerprints():
    # Digests computed by keyframe_fingerprint before characters existed, for fixed inputs: a frame
    # without characters must keep them, or every existing ledger would render again.
    fixed = {
        "provider": "google",
        "model": IMAGE,
        "prompt": "A fox at the lake shore",
        "aspect_ratio": "16:9",
        "reference_sha256": "ab" * 32,
        "render_size": None,
    }
    before = "2140d9a75ad1b0b7f700b590b147136fb0c0d6bc5823c04f15d96b40cf54e964"
    assert keyframe_fingerprint(**fixed) == before
    assert keyframe_fingerprint(**fixed, character_sha256=()) == before
    animatic = {**fixed, "provider": "animatic", "model": "animatic", "reference_sha256": None, "render_size": (256, 144)}
    assert keyframe_fingerprint(**animatic) == "9f1a4c999a24fb6055bf2d2a00596bd0afdb8996b7de345baa88c896b5bf6ae9"
    # With a sheet, the fingerprint changes, and with another sheet again.
    with_sheet = keyframe_fingerprint(**fixed, character_sha256=("cd" * 32,))
    assert with_sheet != before and with_sheet != keyframe_fingerprint(**fixed, character_sha256=("ef" * 32,))


def test_too_many_sheets_keep_the_previous_frame_and_the_first_sheets(gp):
    _, g = gp
    provider = keyframe_provider("google", get_settings())
    sheets = tuple(CharacterSheet(f"C{i}", f"look {i}", _png((40 * i, 90, 200))) for i in range(1, 4))
    previous = _png((10, 20, 30))
    style = StyleGuide(visual_style="ink", color_palette=["black"], camera_style="static")
    request = KeyframeRequest("fox", 2, "three friends", "Scene 2 end", style, "16:9", previous, characters=sheets)
    _, usage = provider.render(request)
    assert usage.images == 1 and usage.cost_usd == pytest.approx(image_cost(get_settings(), IMAGE))
    (record,) = g.emulator.records("image")
    # gemini-2.5-flash-image takes 3 input images: the first two sheets, then the previous frame.
    assert max_input_images(IMAGE) == 3
    assert record.image_parts == 3
    assert record.image_sha256 == [_sha(sheets[0].png), _sha(sheets[1].png), _sha(previous)]
    assert "Image 1 is the reference sheet of C1" in record.prompt and "Image 2 is the reference sheet of C2" in record.prompt
    assert "C3" not in record.prompt.split("\n\n")[0] and "The last image is the previous keyframe" in record.prompt


def test_a_project_planned_without_characters_renders_and_resumes_as_before(vp_env):
    # A project whose plan names no characters (as every project planned before characters
    # existed): no sheet, the keyframes keep the fingerprints they always had, and once rendered
    # nothing is out of date, though the characters asset was never materialized.
    # Without narration, as every project registered before it (this render leaves that asset out).
    spec = register("A lighthouse at dusk. The lamp turns. Ships pass.", id="no-cast", scenes=2, clip_duration=1, narration=False)
    assert render(spec.id, assets=["storyboard"]).success
    services = vp_env.services()
    with services.db.session() as s:
        for row in s.scalars(select(Scene).where(Scene.project_id == spec.id)):
            row.characters = None  # a row written before the column existed
        project = s.get(Project, spec.id)
        document = copy.deepcopy(project.storyboard)
        document["storyboard"]["style_guide"]["characters"] = []
        for scene in document["storyboard"]["scenes"]:
            scene.pop("characters", None)
        project.storyboard = document
    write_storyboard_file(services, spec.id, document)

    result = render(spec.id, assets=["keyframes", "clips", "final_video"])
    assert result.success, failure_message(result)
    state = resolve_state(services, spec.id)
    assert state.sheets == [] and all(f.characters == [] for f in state.frames)
    kp = keyframe_provider("animatic", services.settings)
    previous = None
    for f in state.frames:
        assert f.done and f.fingerprint == keyframe_fingerprint(
            provider="animatic",
            model="animatic",
            prompt=f.prompt,
            aspect_ratio=spec.aspect_ratio,
            reference_sha256=previous,
            render_size=kp.expected_size(spec.aspect_ratio),
        )
        previous = f.row.sha256
    plan = plan_resume(vp_env.instance(), services, spec.id)
    assert plan.assets == [], plan.reasons
    assert project_status(services, spec.id)["next"] == []
