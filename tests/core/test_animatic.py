"""The animatic provider: planner, palette, keyframes and clips, all offline and deterministic."""

from __future__ import annotations

import dataclasses
import io
import re

import av
import numpy as np
import pytest
from PIL import Image

from tests.helpers import mean_abs_diff, png
from vidpipe_core import media
from vidpipe_core.config import ANIMATIC_DURATIONS, Settings
from vidpipe_core.errors import InvalidInput
from vidpipe_core.providers import clip_provider, keyframe_provider, storyboard_provider
from vidpipe_core.providers.animatic import AnimaticProvider, motion
from vidpipe_core.providers.animatic.drawing import caption_box
from vidpipe_core.providers.animatic.planner import PALETTES, palette_for
from vidpipe_core.providers.base import (
    ClipOutcomeKind,
    ClipProvider,
    ClipRequest,
    KeyframeProvider,
    KeyframeRequest,
    StoryboardProvider,
    Usage,
)
from vidpipe_core.schemas import ProjectSpec, StageProviders, StyleGuide

PROMPT = (
    "A small robot wakes up in an abandoned greenhouse at dawn. It waters a single wilting flower, "
    "then Mara the gardener returns and smiles as the sun rises over the city."
)
SHORT_PROMPT = "Rain on a tin roof"
FIELDS = ("description", "start_frame_prompt", "end_frame_prompt", "motion_prompt", "transition_notes")


def spec(
    scenes: int = 4, prompt: str = PROMPT, style: str = "cinematic, soft natural light", aspect: str = "16:9"
) -> ProjectSpec:
    return ProjectSpec(
        id="demo",
        prompt=prompt,
        style=style,
        aspect_ratio=aspect,
        clip_duration=1,
        scenes=scenes,  # type: ignore[arg-type]
        providers=StageProviders(storyboard="animatic", keyframes="animatic", clips="animatic"),
    )


@pytest.fixture
def provider() -> AnimaticProvider:
    return AnimaticProvider(Settings(animatic_resolution=144, fps=12))


def style(palette: list[str] | None = None) -> StyleGuide:
    return StyleGuide(visual_style="neon noir", color_palette=palette or PALETTES["neon"], camera_style="steady")


def keyframe(
    prompt: str = "Opening frame: a lighthouse on a cliff at night",
    *,
    caption: str = "Scene 1 - a lighthouse",
    aspect: str = "16:9",
    reference: bytes | None = None,
    palette: list[str] | None = None,
) -> KeyframeRequest:
    return KeyframeRequest(
        project_id="demo",
        frame_index=0 if reference is None else 1,
        prompt=prompt,
        caption=caption,
        style=style(palette),
        aspect_ratio=aspect,
        reference_png=reference,
    )


# --- protocols ----------------------------------------------------------------------------


def test_implements_every_stage(provider: AnimaticProvider) -> None:
    assert isinstance(provider, StoryboardProvider)
    assert isinstance(provider, KeyframeProvider)
    assert isinstance(provider, ClipProvider)
    assert provider.name == "animatic" and provider.model_for(spec()) == "animatic"
    settings = Settings(animatic_resolution=144)
    for factory in (storyboard_provider, keyframe_provider, clip_provider):
        assert isinstance(factory("animatic", settings), AnimaticProvider)


# --- planner ------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", [PROMPT, SHORT_PROMPT])
@pytest.mark.parametrize("n", range(1, 13))
def test_plan_has_exactly_n_distinct_scenes(provider: AnimaticProvider, prompt: str, n: int) -> None:
    board, usage = provider.plan(spec(n, prompt))
    assert usage == Usage() and usage.cost_usd == 0
    assert len(board.scenes) == n
    for field in FIELDS:
        values = [getattr(s, field) for s in board.scenes]
        assert all(v.strip() for v in values), field
        assert len(set(values)) == n, f"{field} repeats: {values}"
    for s in board.scenes:
        assert s.start_frame_prompt != s.end_frame_prompt
    assert board.title.strip()
    assert board == provider.plan(spec(n, prompt))[0]  # deterministic


def test_plan_follows_the_prompt(provider: AnimaticProvider) -> None:
    board, _ = provider.plan(spec(3))
    descriptions = [s.description for s in board.scenes]
    assert "greenhouse" in descriptions[0]
    assert "flower" in descriptions[1]
    assert "Mara" in descriptions[2] and "smiles" in descriptions[2]
    # Too few beats: a progression of shots, establishing first.
    board, _ = provider.plan(spec(4, SHORT_PROMPT))
    assert board.scenes[0].description.startswith("Establishing")
    assert all("rain on a tin roof" in s.description.lower() for s in board.scenes)
    # Too many beats: merged, nothing lost.
    board, _ = provider.plan(spec(1))
    assert all(word in board.scenes[0].description for word in ("greenhouse", "flower", "Mara", "city"))


def test_style_guide(provider: AnimaticProvider) -> None:
    board, _ = provider.plan(spec(2, style="neon noir, rain-soaked streets"))
    guide = board.style_guide
    assert guide.visual_style == "neon noir, rain-soaked streets"
    assert guide.color_palette == PALETTES["neon"]  # first style word with a palette wins
    assert guide.camera_style
    names = [c.name for c in guide.characters]
    assert "the small robot" in names and "Mara" in names
    assert all(c.appearance for c in guide.characters)
    assert "Palette:" in guide.prompt_suffix()


@pytest.mark.parametrize("style_text", ["noir", "golden sunset", "claymation with felt textures", "xyzzy"])
def test_palette(style_text: str) -> None:
    palette = palette_for(style_text)
    assert 3 <= len(palette) <= 6
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in palette)
    assert palette == palette_for(style_text)
    if style_text == "golden sunset":
        assert palette == PALETTES["golden"]
    assert palette_for("claymation with felt textures") != palette_for("xyzzy")


# --- keyframes ----------------------------------------------------------------------------


@pytest.mark.parametrize("aspect, size", [("16:9", (256, 144)), ("9:16", (144, 256))])
def test_keyframe_size(provider: AnimaticProvider, aspect: str, size: tuple[int, int]) -> None:
    data, usage = provider.render(keyframe(aspect=aspect))
    assert usage == Usage()
    image = png(data)
    assert image.format == "PNG" and image.size == size
    assert provider.expected_size(aspect) == size
    with pytest.raises(InvalidInput):
        provider.expected_size("4:3")


def test_keyframe_is_deterministic_and_follows_the_prompt(provider: AnimaticProvider) -> None:
    a, _ = provider.render(keyframe())
    assert a == provider.render(keyframe())[0]
    b, _ = provider.render(keyframe("Opening frame: a red kite over a sunny beach"))
    assert mean_abs_diff(png(a), png(b)) > 3


def test_reference_influences_the_frame(provider: AnimaticProvider) -> None:
    previous, _ = provider.render(keyframe("Opening frame: a small robot in a greenhouse"))
    other, _ = provider.render(keyframe("Opening frame: a whale under a frozen sea", palette=PALETTES["ocean"]))
    prompt = "Closing frame: the robot waters a flower"
    fresh, _ = provider.render(keyframe(prompt))
    evolved, _ = provider.render(keyframe(prompt, reference=previous))
    from_other, _ = provider.render(keyframe(prompt, reference=other))
    assert evolved != fresh and evolved != from_other
    assert mean_abs_diff(png(evolved), png(previous)) < mean_abs_diff(png(fresh), png(previous))
    assert mean_abs_diff(png(from_other), png(other)) < mean_abs_diff(png(fresh), png(other))


def test_caption_band_is_readable(provider: AnimaticProvider) -> None:
    with_text = png(provider.render(keyframe(caption="Scene 3 - the lighthouse beam sweeps the bay"))[0])
    other_text = png(provider.render(keyframe(caption="Scene 4 - dawn"))[0])
    box = caption_box(with_text.size)
    assert box[3] == with_text.height and 0 < box[1] < with_text.height
    band = np.asarray(with_text.crop(box).convert("L"), dtype=np.float32)
    assert band.std() > 10  # text on the band, not an empty strip
    assert band.max() > 200 and np.median(band) < 100
    assert mean_abs_diff(with_text.crop(box), other_text.crop(box), size=(128, 12)) > 1


def test_long_caption_and_unknown_colour_names(provider: AnimaticProvider) -> None:
    data, _ = provider.render(keyframe(caption="word " * 300, palette=["deep teal", "burnt umber", "#ffcc00"]))
    assert png(data).size == (256, 144)


# --- clips --------------------------------------------------------------------------------


def clip_request(provider: AnimaticProvider, *, audio: bool = True, duration: int = 1) -> ClipRequest:
    start, _ = provider.render(keyframe("Opening frame: a lighthouse at dusk"))
    end, _ = provider.render(keyframe("Closing frame: the lighthouse beam at night", reference=start))
    return ClipRequest(
        project_id="demo",
        scene_index=0,
        prompt="Camera: slow push-in on the lighthouse",
        start_png=start,
        end_png=end,
        duration_s=duration,
        aspect_ratio="16:9",
        generate_audio=audio,
    )


def test_allowed_durations(provider: AnimaticProvider) -> None:
    assert provider.allowed_durations(spec()) == tuple(ANIMATIC_DURATIONS)


def test_submit_names_the_operation_without_rendering(provider: AnimaticProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    req = clip_request(provider)
    monkeypatch.setattr(motion, "render_animatic_clip", lambda *a, **k: pytest.fail("submit must not render"))
    op = provider.submit(req, "animatic")
    assert re.fullmatch(r"animatic:demo:0:[0-9a-f]{12}", op)
    assert provider.submit(req, "animatic") == op
    assert provider.submit(clip_request(provider, audio=False), "animatic") != op
    assert provider.submit(dataclasses.replace(req, variant="take-2"), "animatic") != op  # a new take is a new operation
    with pytest.raises(InvalidInput) as exc:
        provider.submit(clip_request(provider, duration=99), "animatic")
    assert exc.value.field == "clip_duration"


@pytest.mark.parametrize("audio", [True, False])
def test_submit_wait_round_trip(provider: AnimaticProvider, audio: bool) -> None:
    req = clip_request(provider, audio=audio)
    polls: list[str] = []
    outcome = provider.wait(provider.submit(req, "animatic"), req, "animatic", polls.append)
    assert outcome.kind == ClipOutcomeKind.DONE and outcome.video
    assert outcome.usage == Usage(video_seconds=1.0)
    assert polls
    info = media.probe_bytes(outcome.video)
    assert (info.width, info.height) == (256, 144)
    assert info.fps == pytest.approx(12) and info.frames == 12
    assert info.duration_s == pytest.approx(1.0, abs=1 / 12)
    assert info.has_audio is audio
    first = _first_frame(outcome.video)
    assert mean_abs_diff(first, png(req.start_png)) < 12


def test_a_new_take_is_a_new_rendition(provider: AnimaticProvider) -> None:
    req = dataclasses.replace(clip_request(provider, audio=False), prompt="the lighthouse at dusk")
    takes = {
        provider.wait("animatic:demo:0:x", dataclasses.replace(req, variant=f"take-{i}"), "animatic").video for i in range(4)
    }
    assert len(takes) > 1


def _first_frame(video: bytes) -> Image.Image:
    with av.open(io.BytesIO(video)) as c:
        return next(c.decode(video=0)).to_image()


def _frames(video: bytes) -> list[Image.Image]:
    with av.open(io.BytesIO(video)) as c:
        return [f.to_image() for f in c.decode(video=0)]


def test_captions_stay_still_while_the_picture_moves(provider: AnimaticProvider) -> None:
    """The caption band of an animatic keyframe is declared in the PNG; the clip keeps it still
    (no sliding, no doubled text mid-dissolve) and switches from the start caption to the end
    caption once, in the middle; the clip still opens and closes on exactly its keyframes."""
    start, _ = provider.render(keyframe("Opening frame: a lighthouse at dusk", caption="Scene 1 - the lighthouse at dusk"))
    end, _ = provider.render(
        keyframe("Closing frame: the beam at night", caption="Scene 1 end - the beam sweeps", reference=start)
    )
    top, aspect = motion.static_band(start)  # type: ignore[misc]
    assert top == pytest.approx(caption_box((256, 144))[1] / 144, abs=1e-3) and aspect == pytest.approx(16 / 9, abs=0.01)
    req = ClipRequest(
        project_id="demo",
        scene_index=0,
        prompt="Camera: slow push-in on the lighthouse",
        start_png=start,
        end_png=end,
        duration_s=4,
        aspect_ratio="16:9",
        generate_audio=False,
    )
    frames = _frames(provider.wait(provider.submit(req, "animatic"), req, "animatic").video)  # type: ignore[arg-type]
    assert len(frames) == 48
    box = caption_box((256, 144))
    picture = (0, 0, 256, box[1])
    band = [f.crop(box) for f in frames]
    start_band, end_band = png(start).crop(box), png(end).crop(box)
    assert mean_abs_diff(start_band, end_band, size=(128, 12)) > 3  # two different captions
    assert all(mean_abs_diff(b, start_band, size=(128, 12)) < 1.5 for b in band[:20]), "caption moved in the first half"
    assert all(mean_abs_diff(b, end_band, size=(128, 12)) < 1.5 for b in band[-20:]), "caption moved in the second half"
    # ... while the picture above it does move (push-in plus dissolve)
    assert mean_abs_diff(frames[0].crop(picture), frames[20].crop(picture)) > 3
    assert mean_abs_diff(frames[0], png(start)) < 4 and mean_abs_diff(frames[-1], png(end)) < 4


def test_keyframes_without_a_declared_band_move_as_a_whole() -> None:
    """Keyframes of another provider (no band declared) get no static strip."""
    plain = io.BytesIO()
    Image.new("RGB", (256, 144), (40, 90, 160)).save(plain, format="PNG")
    assert motion.static_band(plain.getvalue()) is None
    assert motion.static_band(b"not a png") is None
