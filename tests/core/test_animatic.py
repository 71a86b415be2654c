"""The animatic provider: planner, palette, keyframes and clips, all offline and deterministic."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from tests.helpers import mean_abs_diff, png
from vidpipe_core import media
from vidpipe_core.config import ANIMATIC_DURATIONS, Settings
from vidpipe_core.errors import InvalidInput, MediaError
from vidpipe_core.providers import clip_provider, keyframe_provider, storyboard_provider
from vidpipe_core.providers.animatic import AnimaticProvider, figures, motion
from vidpipe_core.providers.animatic.figures import COLOUR_WORDS, SHEET_BACKGROUND
from vidpipe_core.providers.animatic.motion import caption_box
from vidpipe_core.providers.animatic.planner import PALETTES, palette_for
from vidpipe_core.providers.base import (
    CharacterSheet,
    ClipOutcomeKind,
    ClipProvider,
    ClipRequest,
    KeyframeProvider,
    KeyframeRequest,
    SheetRequest,
    StoryboardProvider,
    Usage,
)
from vidpipe_core.schemas import ProjectSpec, StageProviders, Storyboard, StyleGuide

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
    made, usage = provider.render(keyframe(aspect=aspect))
    assert usage == Usage()
    image = png(made.data)
    assert image.format == "PNG" and image.size == size == made.size
    assert provider.expected_size(aspect) == size
    with pytest.raises(InvalidInput):
        provider.expected_size("4:3")


def test_keyframe_is_deterministic_and_follows_the_prompt(provider: AnimaticProvider) -> None:
    a = provider.render(keyframe())[0].data
    assert a == provider.render(keyframe())[0].data
    b = provider.render(keyframe("Opening frame: a red kite over a sunny beach"))[0].data
    assert mean_abs_diff(png(a), png(b)) > 3


def test_no_ghosting_the_previous_frame_is_not_blended_in(provider: AnimaticProvider) -> None:
    """A keyframe is composed from its own prompt: a reference frame (the previous keyframe) does not
    show through, so see-through copies cannot pile up along a chain of frames."""
    previous = provider.render(keyframe("Opening frame: a small robot in a greenhouse, a sun above"))[0].data
    prompt = "Closing frame: the robot waters a flower under the sun"
    assert provider.render(keyframe(prompt, reference=previous))[0].data == provider.render(keyframe(prompt))[0].data


def _share(img: Image.Image, rgb: tuple[int, int, int], tol: int = 10) -> float:
    """Fraction of pixels within ``tol`` (every channel) of ``rgb``."""
    a = np.asarray(img.convert("RGB"), dtype=np.int16)
    return float(np.mean(np.all(np.abs(a - np.array(rgb, dtype=np.int16)) <= tol, axis=-1)))


def _mask_box(img: Image.Image, rgb: tuple[int, int, int]) -> tuple[int, int]:
    """Width and height of the bounding box of the pixels of colour ``rgb``."""
    a = np.asarray(img.convert("RGB"), dtype=np.int16)
    ys, xs = np.nonzero(np.all(np.abs(a - np.array(rgb, dtype=np.int16)) <= 10, axis=-1))
    return int(xs.max() - xs.min()), int(ys.max() - ys.min())


def sheet(provider: AnimaticProvider, name: str, appearance: str) -> CharacterSheet:
    req = SheetRequest(project_id="demo", name=name, appearance=appearance, prompt="", style=style(), aspect_ratio="16:9")
    return CharacterSheet(name=name, appearance=appearance, png=provider.render_sheet(req)[0].data)


CRIMSON, AMBER, LIME = COLOUR_WORDS["crimson"], COLOUR_WORDS["amber"], COLOUR_WORDS["lime"]
COBALT, VIOLET = COLOUR_WORDS["cobalt"], COLOUR_WORDS["violet"]


def test_sheet_draws_the_character_in_the_colours_its_appearance_names(provider: AnimaticProvider) -> None:
    robot = sheet(provider, "the small robot", "a crimson body with amber accents")
    assert robot.png == sheet(provider, "the small robot", "a crimson body with amber accents").png  # reproducible
    img = png(robot.png)
    assert img.size == (256, 144)
    assert img.getpixel((0, 0)) == SHEET_BACKGROUND  # a plain background
    assert _share(img, CRIMSON) > 0.03 and _share(img, AMBER) > 0.002
    label = np.asarray(img.convert("L").crop((0, 120, 256, 144)))
    assert label.min() < 80  # the name is written under the figure
    # No colour named: stable colours from the name, different for another name.
    plain_a = png(sheet(provider, "Mara", "tall and calm").png)
    assert np.array_equal(np.asarray(plain_a), np.asarray(png(sheet(provider, "Mara", "tall and calm").png)))
    assert mean_abs_diff(plain_a, png(sheet(provider, "Zed", "tall and calm").png)) > 0.5
    assert figures.look_for("Mara", "tall and calm").body != figures.look_for("Mara", "a lime coat").body


def test_keyframes_show_exactly_the_listed_characters_as_their_sheets_draw_them(provider: AnimaticProvider) -> None:
    robot = sheet(provider, "the small robot", "a crimson body with amber accents")
    mara = sheet(provider, "Mara", "a lime body with violet accents")
    only_robot = png(
        provider.render(dataclasses.replace(keyframe("Opening frame: a greenhouse at dawn"), characters=(robot,)))[0].data
    )
    both = png(
        provider.render(dataclasses.replace(keyframe("Closing frame: Mara returns to the city"), characters=(robot, mara)))[
            0
        ].data
    )
    nobody = png(provider.render(keyframe("Opening frame: a greenhouse at dawn"))[0].data)
    for img in (only_robot, both):
        assert _share(img, CRIMSON) > 0.004 and _share(img, AMBER) > 0.0005
    assert _share(both, LIME) > 0.004 and _share(both, VIOLET) > 0.0002
    assert _share(only_robot, LIME) == 0 and _share(only_robot, VIOLET) == 0
    assert _share(nobody, CRIMSON) == 0 and _share(nobody, AMBER) == 0
    # The same silhouette in both frames (its place may differ).
    wa, ha = _mask_box(only_robot, CRIMSON)
    wb, hb = _mask_box(both, CRIMSON)
    assert abs(wa - wb) <= 1 and abs(ha - hb) <= 1


def test_a_sheet_from_another_provider_gives_its_colours() -> None:
    """A sheet without the animatic's look chunk: its two most common colours apart from the background."""
    im = Image.new("RGB", (256, 144), (250, 250, 250))
    d = ImageDraw.Draw(im)
    d.rectangle((100, 20, 160, 130), fill=COBALT)
    d.rectangle((100, 70, 160, 85), fill=AMBER)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    look = figures.look_from_sheet("Zed", "", buf.getvalue())
    assert look.body == COBALT and look.accent == AMBER
    assert look.build == figures.look_for("Zed", "").build  # the silhouette comes from the name


def test_long_caption_and_unknown_colour_names(provider: AnimaticProvider) -> None:
    made, _ = provider.render(keyframe(caption="word " * 300, palette=["deep teal", "burnt umber", "#ffcc00"]))
    assert png(made.data).size == made.size == (256, 144)
    band = motion.caption_band("word " * 300, (256, 144))
    assert band.size == (256, 144 - caption_box((256, 144))[1])


# --- clips --------------------------------------------------------------------------------


def clip_request(provider: AnimaticProvider, *, audio: bool = True, duration: int = 1) -> ClipRequest:
    start = provider.render(keyframe("Opening frame: a lighthouse at dusk"))[0].data
    end = provider.render(keyframe("Closing frame: the lighthouse beam at night", reference=start))[0].data
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


class Polls(list[str]):
    """An ``on_poll`` that keeps every line, and in ``opening`` the lines that open work whose end is reported."""

    def __init__(self) -> None:
        super().__init__()
        self.opening: list[str] = []

    def __call__(self, line: str, *, opening: bool = False) -> None:
        self.append(line)
        if opening:
            self.opening.append(line)


@pytest.mark.parametrize("audio", [True, False])
def test_submit_wait_round_trip(provider: AnimaticProvider, audio: bool) -> None:
    req = clip_request(provider, audio=audio)
    polls = Polls()
    outcome = provider.wait(provider.submit(req, "animatic"), req, "animatic", polls)
    assert outcome.kind == ClipOutcomeKind.DONE and outcome.video
    assert outcome.usage == Usage(video_seconds=1.0)
    # The render's start opens work whose end the clips step reports: a log may leave it out.
    assert polls == polls.opening == ["rendering 1s animatic clip at 256x144"]
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


def _storyboard_project(
    provider: AnimaticProvider, scenes: int = 3, *, board: Storyboard | None = None, duration: int = 1
) -> tuple[list[bytes], list[ClipRequest], list[str]]:
    """A planned project rendered as the pipeline does: sheets, frames 0..N (frame k shows scene k's
    characters, the last the last scene's), one clip request per scene. Returns frames, requests, captions."""
    board = board if board is not None else provider.plan(spec(scenes))[0]
    guide = board.style_guide
    sheets = {c.name: sheet(provider, c.name, c.appearance) for c in guide.characters}
    frames: list[bytes] = []
    for k in range(scenes + 1):
        plan = board.scenes[min(k, scenes - 1)]
        text = board.scenes[0].start_frame_prompt if k == 0 else board.scenes[k - 1].end_frame_prompt
        req = KeyframeRequest(
            project_id="demo",
            frame_index=k,
            prompt=f"{text}\n\n{guide.prompt_suffix()}",
            caption="",
            style=guide,
            aspect_ratio="16:9",
            reference_png=frames[-1] if frames else None,
            characters=tuple(sheets[n] for n in plan.characters),
        )
        frames.append(provider.render(req)[0].data)
    requests = [
        ClipRequest(
            project_id="demo",
            scene_index=i,
            prompt=f"{s.motion_prompt}\n\nScene: {s.description}\n{guide.prompt_suffix()}",
            start_png=frames[i],
            end_png=frames[i + 1],
            duration_s=duration,
            aspect_ratio="16:9",
            generate_audio=False,
        )
        for i, s in enumerate(board.scenes)
    ]
    return frames, requests, [f"Scene {i + 1}: {s.description}" for i, s in enumerate(board.scenes)]


@pytest.fixture(scope="module")
def rendered() -> tuple[list[bytes], list[list[Image.Image]], list[str]]:
    provider = AnimaticProvider(Settings(animatic_resolution=144, fps=12))
    frames, requests, captions = _storyboard_project(provider)
    clips = []
    for req in requests:
        outcome = provider.wait(provider.submit(req, "animatic"), req, "animatic")
        assert outcome.kind == ClipOutcomeKind.DONE and outcome.video
        clips.append(_frames(outcome.video))
    return frames, clips, captions


def test_every_frame_of_scene_n_shows_scene_ns_caption_and_only_it(rendered) -> None:
    _frames_png, clips, captions = rendered
    assert captions[0].startswith("Scene 1: ")
    box = caption_box((256, 144))
    size = (256, box[3] - box[1])
    drawn = [motion.caption_band(c, (256, 144)) for c in captions]
    for n, frames in enumerate(clips):
        assert len(frames) == 12
        for i, frame in enumerate(frames):
            band = frame.crop(box)
            own = mean_abs_diff(band, drawn[n], size=size)
            assert own < 3, (n + 1, i, own)  # the caption as drawn, within codec tolerance: never a blend
            for m, other in enumerate(drawn):
                if m != n:
                    assert mean_abs_diff(band, other, size=size) > 3 * own + 3, (n + 1, i, m + 1)


def test_continuity_is_exact_at_every_boundary(rendered) -> None:
    """Clip i ends on keyframe i+1 and clip i+1 starts on it (the picture; each clip has its own caption)."""
    keyframes, clips, _captions = rendered
    picture = (0, 0, 256, caption_box((256, 144))[1])
    for i, frames in enumerate(clips):
        assert mean_abs_diff(frames[0].crop(picture), png(keyframes[i]).crop(picture)) < 4
        assert mean_abs_diff(frames[-1].crop(picture), png(keyframes[i + 1]).crop(picture)) < 4
        if i + 1 < len(clips):
            assert mean_abs_diff(frames[-1].crop(picture), clips[i + 1][0].crop(picture)) < 4


def test_the_planned_characters_appear_only_where_listed(provider: AnimaticProvider) -> None:
    board, _ = provider.plan(spec(4))
    names = [c.name for c in board.style_guide.characters]
    assert 1 <= len(names) <= 2
    assert all(set(s.characters) <= set(names) for s in board.scenes)
    for name in names:
        listed = [name in s.characters for s in board.scenes]
        assert any(listed) and not all(listed), (name, listed)  # each appears, and each is absent somewhere
    frames, _requests, _ = _storyboard_project(provider, 4)
    guide = board.style_guide
    for c in guide.characters:
        look = figures.look_for(c.name, c.appearance)
        for k, data in enumerate(frames):
            shown = c.name in board.scenes[min(k, 3)].characters
            assert (_share(png(data), look.body) > 0.002) is shown, (c.name, k)


def test_a_clip_holds_its_start_frame_until_a_short_dissolve(provider: AnimaticProvider) -> None:
    """No frame before the dissolve shows anything of the end frame (no doubled shapes), the dissolve
    lasts at most 0.4 s, and the clip ends on the end frame."""
    blue, orange = (30, 60, 140), (200, 110, 40)

    def frame(colour: tuple[int, int, int], accent: tuple[int, int, int]) -> bytes:
        im = Image.new("RGB", (256, 144), colour)
        ImageDraw.Draw(im).ellipse((40, 30, 110, 100), fill=accent)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()

    for move in ("slow push-in", "gentle pull-out", "slow pan left", "slow pan right"):
        req = ClipRequest(
            project_id="demo",
            scene_index=0,
            prompt=f"Camera: {move}\n\nScene: a test",
            start_png=frame(blue, (250, 220, 40)),
            end_png=frame(orange, (40, 200, 90)),
            duration_s=2,
            aspect_ratio="16:9",
            generate_audio=False,
        )
        frames = _frames(provider.wait(provider.submit(req, "animatic"), req, "animatic").video)  # type: ignore[arg-type]
        picture = (0, 0, 256, caption_box((256, 144))[1])
        start_share = [_share(f.crop(picture), blue, tol=12) for f in frames]
        end_share = [_share(f.crop(picture), orange, tol=12) for f in frames]
        assert len(frames) == 24
        held = [i for i, s in enumerate(start_share) if s > 0.3]
        assert held == list(range(len(held))) and len(held) >= 24 - 1 - round(0.4 * 12), (move, start_share)
        assert all(end_share[i] == 0 for i in held), move  # nothing of the end frame while the start is held
        assert end_share[-1] > 0.5, move
        mixed = [i for i in range(24) if start_share[i] <= 0.3 and end_share[i] <= 0.3]
        assert len(mixed) <= round(0.4 * 12), (move, mixed)
        assert mean_abs_diff(frames[0].crop(picture), frames[len(held) - 1].crop(picture)) > 0.5, move  # the camera moves


def test_local_renders_are_bounded_process_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most Settings.local_renders animatic clips render at once in a process, across providers."""
    import threading
    import time

    from vidpipe_core.providers.animatic import provider as provider_module

    live, peak, lock = [0], [0], threading.Lock()

    def fake_render(*args: object, **kwargs: object) -> bytes:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1
        raise MediaError("not rendered")

    monkeypatch.setattr(motion, "render_animatic_clip", fake_render)
    providers = [AnimaticProvider(Settings(animatic_resolution=144, fps=12, local_renders=2)) for _ in range(3)]
    req = clip_request(providers[0], audio=False)
    polls = Polls()
    threads = [
        threading.Thread(target=lambda p=p: p.wait("animatic:demo:0:x", req, "animatic", polls))
        for p in providers
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2
    assert any(p.startswith("waiting for one of 2 local render slots") for p in polls)  # a waiting render says why
    assert sum(p.startswith("rendering ") for p in polls.opening) == 9
    assert not any(p.startswith("waiting") for p in polls.opening)  # a wait is no opening: the log keeps it
    assert provider_module.Settings is Settings  # the setting lives in config.Settings
    assert Settings().local_renders == 1  # the default keeps a 1080p render below 600 MiB (bench/README)


# --- the animatic shows what its caption says -------------------------------------------------

FOX_PROMPT = (
    "A fox cub and an old owl watch the moon rise over a snowy forest. A curious duck follows it across the "
    "frozen pond. At dawn they part ways."
)


def _silhouette(img: Image.Image, colours: list[tuple[int, int, int]], tol: int = 12) -> np.ndarray:
    """The pixels of ``colours`` (a character's body and accents), cropped to their bounding box."""
    a = np.asarray(img.convert("RGB"), dtype=np.int16)
    mask = np.zeros(a.shape[:2], dtype=bool)
    for c in colours:
        mask |= np.all(np.abs(a - np.array(c, dtype=np.int16)) <= tol, axis=-1)
    ys, xs = np.nonzero(mask)
    assert len(ys) > 30, "the character is not in the picture"
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _runs(row: np.ndarray) -> int:
    return int(np.sum(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])) == 1))


def classify_silhouette(mask: np.ndarray) -> str:
    """What a silhouette looks like, from its pixels alone (no label the drawing code gives it):
    "animal": three or more separate legs along its bottom; "bird": seen in profile (it does not
    match its mirror image: a head and a beak on one side, a tail on the other); "boat": wider than
    tall, widest across its lower half (the deck), narrowing below it (the hull) and coming to a
    point above (a sail or a fold); "person": upright, symmetric, narrow; else "other"."""
    h, w = mask.shape
    extent = np.array([np.ptp(np.nonzero(r)[0]) + 1 if r.any() else 0 for r in mask])
    mirror = (mask & mask[:, ::-1]).sum() / (mask | mask[:, ::-1]).sum()
    feet = max(_runs(r) for r in mask[int(h * 0.92) :])
    if feet >= 3:
        return "animal"
    if mirror < 0.75:
        return "bird"
    widest = int(np.argmax(extent))
    top = extent[: max(1, int(h * 0.15))].max()
    if w >= 0.9 * h and feet == 1 and widest > h / 2 and extent[-1] < 0.85 * extent.max() and top < 0.4 * w:
        return "boat"
    if w < 0.8 * h:
        return "person"
    return "other"


def _demo_board(provider: AnimaticProvider, scenes: int = 4, duration: int = 1):
    from vidpipe_dagster.cli.running import DEMO_PROMPT

    demo = spec(scenes, DEMO_PROMPT, style="watercolour, warm dawn light")
    return provider.plan(demo.model_copy(update={"clip_duration": duration}))[0]


@pytest.mark.parametrize(
    "name, kind",
    [("the paper boat", "boat"), ("the curious duck", "bird"), ("the fox cub", "animal"), ("Mara", "person")],
)
def test_a_sheet_draws_the_kind_its_name_says(provider: AnimaticProvider, name: str, kind: str) -> None:
    """The silhouette on a character's sheet is its kind, told apart by its pixels alone."""
    character = sheet(provider, name, "")
    look = figures.look_from_sheet(name, "", character.png)  # the sheet says its kind back
    assert look.kind == kind
    picture = png(character.png).crop((0, 0, 256, 120))  # above the name
    assert classify_silhouette(_silhouette(picture, [look.body, look.accent])) == kind
    parts = figures.draw_figure(ImageDraw.Draw(Image.new("RGB", (256, 144))), look, 128, 130, 100)
    assert {"boat": {"hull", "sail"}, "bird": {"beak", "wing", "tail"}, "animal": {"leg", "tail", "snout"}}.get(
        kind, {"head", "body"}
    ) <= set(parts), parts


def test_a_sheet_from_before_kinds_reads_back_as_the_person_it_drew() -> None:
    """A sheet an earlier version wrote has no kind in its look: it drew a person, so it reads back as one."""
    look = figures.look_for("the paper boat", "")
    old = json.loads(look.to_json())
    del old["kind"]
    info = PngInfo()
    info.add_text(figures.SHEET_KEY, json.dumps(old))
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), SHEET_BACKGROUND).save(buf, format="PNG", pnginfo=info)
    back = figures.look_from_sheet("the paper boat", "", buf.getvalue())
    assert back.kind == "person" and (back.body, back.accent) == (look.body, look.accent)


def test_the_demo_draws_its_boat_as_a_boat_and_its_duck_as_a_bird(provider: AnimaticProvider) -> None:
    board = _demo_board(provider)
    names = {c.name for c in board.style_guide.characters}
    assert names == {"the paper boat", "the curious duck"}
    frames, _requests, _captions = _storyboard_project(provider, 4, board=board)
    # Frame 2 opens scene 3, "A curious duck follows it past moored houseboats": both are in it.
    assert board.scenes[2].characters == ["the paper boat", "the curious duck"]
    scene3 = png(frames[2])
    for c in board.style_guide.characters:
        look = figures.look_for(c.name, c.appearance)
        kind = classify_silhouette(_silhouette(scene3, [look.body, look.accent]))
        assert kind == {"the paper boat": "boat", "the curious duck": "bird"}[c.name], (c.name, kind)


def test_a_two_subject_sentence_is_one_scene_listing_both(provider: AnimaticProvider) -> None:
    for n in (3, 4, 5):
        board, _ = provider.plan(spec(n, FOX_PROMPT))
        names = [c.name for c in board.style_guide.characters]
        assert names[:2] == ["the fox cub", "the old owl"], names
        descriptions = [s.description for s in board.scenes]
        assert not any(d.startswith(("A fox cub.", "An old owl")) for d in descriptions), descriptions
        for s in board.scenes:
            if "fox cub" in s.description:
                assert "a fox cub and an old owl watch" in s.description.lower()
                assert {"the fox cub", "the old owl"} <= set(s.characters), (n, s.description, s.characters)
        # "A curious duck follows it": the duck and what it follows.
        follows = next(s for s in board.scenes if "duck follows it" in s.description)
        assert set(follows.characters) == {"the fox cub", "the old owl", "the curious duck"}, follows.characters


def test_titles_and_captions_end_at_a_phrase_boundary(provider: AnimaticProvider) -> None:
    assert _demo_board(provider).title == "A paper boat sets off down a rain-filled gutter at dawn"
    assert provider.plan(spec(4, FOX_PROMPT))[0].title == "A fox cub and an old owl watch the moon rise"
    long = "A lighthouse keeper climbs the winding stairs of the old tower every single evening to light the great lamp"
    assert provider.plan(spec(2, long))[0].title == "A lighthouse keeper climbs the winding stairs"
    # A caption too long for two lines is shortened where a phrase ends, marked with an ellipsis.
    caption = "Scene 3: " + FOX_PROMPT.replace(".", ",")
    lines = motion.caption_lines(caption, (256, 144))
    assert len(lines) == 2 and lines[-1].endswith(" …")
    shown = " ".join(lines).removesuffix(" …").split()
    assert caption.split()[: len(shown)] == shown  # whole words of the caption, in order
    following = caption.split()[len(shown)]
    assert shown[-1].endswith(",") or following in ("and", "over", "across", "at", "of"), (shown[-1], following)


def _warm(a: np.ndarray) -> np.ndarray:
    """Bright warm pixels: a sun at dawn (not a pale moon, not a blue or grey sky)."""
    r, g, b = (a[..., i].astype(int) for i in range(3))
    return (r > 220) & (g > 140) & (b < 160) & (r - b > 90)


@pytest.mark.parametrize(
    "time, prompt",
    [
        ("dawn", "Opening frame: a meadow at dawn"),
        ("dawn", "Closing frame: the boat drifts out into a wide harbour as the sun rises"),
        ("night", "Opening frame: a meadow at night"),
        ("day", "Opening frame: a red kite over a sunny meadow"),
    ],
)
def test_the_light_follows_the_time_of_day(provider: AnimaticProvider, time: str, prompt: str) -> None:
    """Dawn: a warm sky at the horizon, a warm sun low over it, a cooler sky above. Night: a dark
    sky, a pale moon, no sun. Day: a blue sky, a white sun high in it. In a cool style's palette, which must tint the light, not replace it."""
    a = np.asarray(png(provider.render(keyframe(prompt, palette=PALETTES["winter"]))[0].data).convert("RGB"), dtype=int)
    h = a.shape[0]
    top = a[: h // 8].reshape(-1, 3).mean(axis=0)
    sun = np.nonzero(_warm(a))
    if time == "dawn":
        assert len(sun[0]) > 40, "no sun"
        assert sun[0].mean() > 0.3 * h, f"the sun is high: its centre at {sun[0].mean() / h:.2f} of the height"
        rows = np.median(a[int(0.3 * h) : int(0.55 * h)], axis=1)  # each row's typical colour: sky, or hills
        assert (rows[:, 0] - rows[:, 2]).max() > 40, "no warm sky by the horizon"
        assert top[2] > top[0], f"the sky above is not the cool of dawn: {top}"
    elif time == "day":
        white = np.nonzero((a[..., 0] > 240) & (a[..., 1] > 230) & (a[..., 0] - a[..., 2] > 20))
        assert len(white[0]) > 40 and white[0].mean() < 0.3 * h, "no sun high in the sky"
        assert top[2] - top[0] > 60, f"the day sky is not blue: {top}"
    else:
        assert len(sun[0]) == 0, "a sun at night"
        assert top.mean() < 50, f"the night sky is not dark: {top}"
        pale = (a.min(axis=-1) > 190) & (np.ptp(a, axis=-1) < 40)
        assert pale[: int(0.5 * h)].sum() > 40, "no moon"


def test_no_freeze_after_a_cut(provider: AnimaticProvider, tmp_path) -> None:
    """The demo at its own fps and clip length (small frames), stitched as the pipeline stitches it:
    after every cut the picture moves on at once. A cut lands on the picture the previous clip
    ended on (continuity), so two frames in a row may show the same picture; never three."""
    fps, duration = 24, 4
    provider = AnimaticProvider(Settings(animatic_resolution=144, fps=fps))
    board = _demo_board(provider, duration=duration)
    _frames_png, requests, _captions = _storyboard_project(provider, 4, board=board, duration=duration)
    paths = []
    for req in requests:
        outcome = provider.wait(provider.submit(req, "animatic"), req, "animatic")
        assert outcome.kind == ClipOutcomeKind.DONE and outcome.video
        paths.append(tmp_path / f"clip_{req.scene_index}.mp4")
        paths[-1].write_bytes(outcome.video)
    final = tmp_path / "final.mp4"
    media.stitch(paths, final, fade_in=0.5, fade_out=0.5)
    with av.open(str(final)) as container:
        pictures = [f.to_ndarray(format="gray").astype(np.int16) for f in container.decode(video=0)]
    assert len(pictures) == 4 * duration * fps
    band = caption_box((256, 144))[1]
    moved = [float(np.abs(pictures[i][:band] - pictures[i - 1][:band]).mean()) for i in range(1, len(pictures))]
    captions = [float(np.abs(pictures[i][band:] - pictures[i - 1][band:]).mean()) for i in range(1, len(pictures))]
    cuts = [i for i, d in enumerate(captions, start=1) if d > 5]  # frame i is the first of a new scene
    assert cuts == [duration * fps * k for k in (1, 2, 3)]
    for cut in cuts:
        run, longest = 1, 1  # frames showing the same picture in a row, from the frame before the cut
        for i in range(cut, cut + fps):
            run = run + 1 if moved[i - 1] < 0.02 else 1
            longest = max(longest, run)
        assert longest <= 2, (cut, [round(m, 3) for m in moved[cut - 1 : cut + fps]])
