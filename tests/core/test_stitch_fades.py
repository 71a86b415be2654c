"""Fades from / to black in the stitch: the final video (and its audio) fades when asked, its
audio lasts as long as its video, and only the fades' own groups of pictures are re-encoded: the
rest is the clips' packets, untouched."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.helpers import sweep_clip
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


# --- only the fades' own seconds are encoded ------------------------------------------------


@pytest.fixture(scope="module")
def gop_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("gop-clips")
    return [sweep_clip(tmp / f"g{i}.mp4", 2.0, i + 1, size=SIZE, fps=FPS) for i in range(3)]


def packets_by_frame(path: Path) -> dict[int, tuple[bytes, bool]]:
    """Each video packet's bytes and keyframe flag by the frame it shows (0, 1, ...)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        ticks, base = 1 / (FPS * float(s.time_base)), s.start_time or 0
        return {round((p.pts - base) / ticks): (bytes(p), p.is_keyframe) for p in c.demux(s) if p.size}


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(video=0)]


def test_a_faded_stitch_copies_the_middle_and_encodes_only_the_fades(tmp_path: Path, gop_clips: list[Path]) -> None:
    out = tmp_path / "final.mp4"
    result = media.stitch(gop_clips, out, fade_in=0.5, fade_out=0.5)
    assert result.method == "copy" and "2.00 of 6.00 s re-encoded, the rest copied" in result.notes
    ours, theirs = packets_by_frame(out), [packets_by_frame(c) for c in gop_clips]
    assert sorted(ours) == list(range(3 * 2 * FPS))
    # Frames 12..59 are the clips' own packets, untouched: the first clip's second second, the middle
    # clip, the last clip's first second. Only the groups of pictures that hold a fade were encoded.
    for frame in range(FPS, 5 * FPS):
        clip, k = divmod(frame, 2 * FPS)
        assert ours[frame] == theirs[clip][k], frame
    assert ours[0][1] and ours[FPS][1] and ours[5 * FPS][1]  # each encoded segment starts on a keyframe
    assert ours[FPS // 2][0] != theirs[0][FPS // 2][0] and ours[6 * FPS - 3][0] != theirs[2][2 * FPS - 3][0]
    # ... and they decode to the very same pixels, while the faded frames really fade.
    got, want = frames_of(out), [f for c in gop_clips for f in frames_of(c)]
    assert all(np.array_equal(got[f], want[f]) for f in range(FPS, 5 * FPS))
    level = [float(g.mean()) / float(w.mean()) for g, w in zip(got, want, strict=True)]
    fade = FPS // 2  # 0.5 s
    assert level[0] < 0.02 and all(level[f] < level[f + 1] for f in range(fade)) and 0.9 < level[fade] < 1.1
    assert all(np.abs(got[f] - want[f]).mean() < 6 for f in range(fade, FPS))  # encoded again, not faded
    assert level[-1] < 0.02 and all(level[-f - 2] > level[-f - 1] for f in range(fade)) and 0.9 < level[-fade - 2] < 1.1
    # The audio between the fades is the clips' own packets too.
    with av.open(str(out)) as c:
        audio_out = [bytes(p) for p in c.demux(audio=0) if p.size]
    with av.open(str(gop_clips[1])) as c:
        middle = [bytes(p) for p in c.demux(audio=0) if p.size][:-2]
    assert any(audio_out[k : k + len(middle)] == middle for k in range(len(audio_out)))
