"""Fades from / to black in the stitch: the final video (and its audio) fades when asked, its
audio lasts as long as its video, and only the ends are re-encoded."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vidpipe_core import media
from vidpipe_core.errors import InvalidInput
from vidpipe_core.providers.animatic import motion
from vidpipe_core.providers.animatic.planner import plan_storyboard
from vidpipe_core.schemas import ProjectSpec, ScenePlan, StageProviders
from vidpipe_core.steps.stitch import storyboard_fades

SIZE, FPS = (256, 144), 12


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", SIZE, colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("fade-clips")
    frames = [_png(c) for c in ((200, 180, 160), (160, 200, 180), (180, 160, 200))]
    out = []
    for i in range(2):
        path = tmp / f"c{i}.mp4"
        path.write_bytes(
            motion.render_animatic_clip(
                frames[i],
                frames[i + 1],
                duration_s=1,
                fps=FPS,
                size=SIZE,
                audio=True,
                seed_text=f"s{i}",
                caption=f"Scene {i + 1}",
            )
        )
        out.append(path)
    return out


def _luma(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(np.asarray(f.to_image().convert("L"), dtype=np.float32).mean()) for f in c.decode(video=0)]


def _audio(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        chunks = [f.to_ndarray().reshape(-1) if f.format.is_planar else f.to_ndarray()[0] for f in c.decode(audio=0)]
    return np.concatenate(chunks).astype(np.float32), rate


def _video_s(path: Path) -> float:
    info = media.probe(path)
    return info.frames / info.fps


@pytest.mark.parametrize("crossfade", [0.0, 0.25])
def test_fade_in_and_out_to_black_with_audio_of_the_video_length(tmp_path: Path, clips: list[Path], crossfade: float) -> None:
    out = tmp_path / "final.mp4"
    result = media.stitch(clips, out, crossfade=crossfade, fade_in=0.5, fade_out=0.5)
    if crossfade == 0:
        assert result.method == "copy"  # only the two ends were re-encoded, the join is a stream copy
    luma = _luma(out)
    assert len(luma) == 2 * FPS - round(crossfade * FPS)
    assert luma[0] < 3 and luma[-1] < 3  # starts on black, ends on black
    assert luma[0] < luma[1] < luma[2] < luma[3] and min(luma[FPS // 2 : -FPS // 2]) > 100  # fading up, then the picture
    assert luma[-4] > luma[-3] > luma[-2] > luma[-1] and luma[-2] < luma[FPS] / 3  # fading down
    samples, rate = _audio(out)
    audio_s = len(samples) / (2 * rate) if samples.size and media.probe(out).audio_channels == 2 else len(samples) / rate
    assert audio_s == pytest.approx(_video_s(out), abs=1024 / 48000)  # within one AAC frame
    tail = np.abs(samples[-int(0.02 * rate) :]).mean()
    body = np.abs(samples[len(samples) // 3 : len(samples) // 2]).mean()
    assert body > 0.01 and tail < body / 20  # the audio fades out with the picture


def test_no_fade_unless_asked(tmp_path: Path, clips: list[Path]) -> None:
    out = tmp_path / "final.mp4"
    media.stitch(clips, out)
    luma = _luma(out)
    assert luma[0] > 100 and luma[-1] > 100
    with pytest.raises(InvalidInput):
        media.stitch(clips, tmp_path / "x.mp4", fade_out=-1)


def test_a_single_clip_fades_both_ways(tmp_path: Path, clips: list[Path]) -> None:
    out = tmp_path / "one.mp4"
    media.stitch(clips[:1], out, fade_in=0.5, fade_out=0.5)
    luma = _luma(out)
    assert len(luma) == FPS and luma[0] < 3 and luma[-1] < 3 and max(luma) > 60


def _scene(notes: str) -> ScenePlan:
    return ScenePlan(description="d", start_frame_prompt="s", end_frame_prompt="e", motion_prompt="m", transition_notes=notes)


def test_the_storyboard_asks_for_fades_in_its_transition_notes() -> None:
    spec = ProjectSpec(
        id="demo",
        prompt="A robot wakes. It walks to the sea. It waves goodbye.",
        style="cinematic",
        aspect_ratio="16:9",
        clip_duration=1,
        scenes=3,
        providers=StageProviders(storyboard="animatic", keyframes="animatic", clips="animatic"),
    )
    assert storyboard_fades(plan_storyboard(spec).scenes) == (True, True)
    assert storyboard_fades([_scene("Hard cut."), _scene("Cross-fade into the next shot."), _scene("Cut.")]) == (False, False)
    assert storyboard_fades([_scene("Fade up from black."), _scene("Fade to black")]) == (True, True)
    assert storyboard_fades([_scene("Fade into scene 2"), _scene("hold")]) == (False, False)
    assert storyboard_fades([]) == (False, False)
