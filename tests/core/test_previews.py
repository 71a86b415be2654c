"""Preview images for the Dagster UI, made by the real ffmpeg and Pillow from real videos: they
decode, animate, stay within their budgets, and give way to a note when they cannot."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from tests.helpers import sweep_clip
from vidpipe_core import media, previews
from vidpipe_core.errors import MediaError
from vidpipe_core.scratch import scratch_root
from vidpipe_core.storage import ArtifactStore

COLOURS = {"red": (255, 0, 0), "lime": (0, 255, 0), "blue": (0, 0, 255)}


def _testsrc(path: Path, *, size: str = "320x180", seconds: float = 2.0, fps: int = 12) -> Path:
    """A moving test pattern (every frame differs) with a silent audio track, as vidpipe encodes clips."""
    media.run_ffmpeg(
        [
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}",
            "-f", "lavfi", "-i", f"anullsrc=r=48000:cl=stereo:d={seconds}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-y", str(path),
        ],
        what="test video",
    )  # fmt: skip
    return path


def _solid(path: Path, colour: str, *, seconds: float = 1.0) -> Path:
    media.run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"color=c={colour}:s=160x90:r=12:d={seconds}",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-y",
            str(path),
        ],
        what="solid clip",
    )
    return path


def _decoded(preview: previews.Preview) -> Image.Image:
    """The image back from its markdown: ![alt](data:<mime>;base64,<data>)."""
    md = preview.markdown()
    assert md.startswith(f"![{preview.alt}](data:{preview.mime};base64,")
    payload = md.split(";base64,", 1)[1].split(")", 1)[0]
    data = base64.b64decode(payload, validate=True)
    assert data == preview.data
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("fmt", ["webp", "gif"])
def test_animated_preview_decodes_animates_and_fits(tmp_path: Path, fmt: str) -> None:
    if fmt == "webp" and not previews.has_encoder("libwebp_anim"):
        pytest.skip("this ffmpeg has no libwebp_anim encoder")
    video = _testsrc(tmp_path / "final.mp4")
    data_dir = tmp_path / "data"
    preview = previews.animated_preview(video, data_dir, fmt=fmt)

    assert preview.fits and preview.data is not None and len(preview.data) <= previews.PREVIEW_BUDGET
    image = _decoded(preview)
    assert image.format == fmt.upper()
    frames = [np.asarray(f.convert("RGB"), dtype=np.int16) for f in ImageSequence.Iterator(image)]
    assert len(frames) > 1 and len(frames) == preview.frames
    assert (image.width, image.height) == (preview.width, preview.height) and image.width <= 320
    assert np.abs(frames[0] - frames[-1]).mean() > 5  # it moves: first and last frames differ
    # The scratch folder is gone afterwards; nothing is left beside the data directory.
    assert list(scratch_root(data_dir).iterdir()) == []


def test_a_portrait_preview_is_bounded_by_its_longest_side(tmp_path: Path) -> None:
    video = _testsrc(tmp_path / "final.mp4", size="360x640", seconds=1.0)
    preview = previews.animated_preview(video, tmp_path / "data")
    image = _decoded(preview)
    assert image.height == max(w for w, _, _ in previews.PREVIEW_LADDER) and image.width < image.height
    assert preview.data is not None and len(preview.data) <= previews.PREVIEW_BUDGET


def test_animated_preview_over_budget_falls_back_to_a_note(tmp_path: Path) -> None:
    video = _testsrc(tmp_path / "final.mp4", seconds=1.0)
    preview = previews.animated_preview(video, tmp_path / "data", budget=2_000)
    assert preview.data is None and not preview.fits
    md = preview.markdown()
    assert "data:" not in md and "does not fit the 2 KB budget" in md


def test_a_smaller_budget_gives_a_smaller_image_not_a_note(tmp_path: Path) -> None:
    video = _testsrc(tmp_path / "final.mp4", size="640x360", seconds=3.0)
    big = previews.animated_preview(video, tmp_path / "data")
    assert big.data is not None
    budget = len(big.data) // 2
    small = previews.animated_preview(video, tmp_path / "data", budget=budget)
    assert small.data is not None and len(small.data) <= budget
    assert small.width * small.height * small.frames < big.width * big.height * big.frames


def test_scene_strip_has_one_labelled_cell_per_scene(tmp_path: Path) -> None:
    clips = [_solid(tmp_path / f"{name}.mp4", name) for name in COLOURS]
    scenes = [previews.StripScene(i, clip) for i, clip in enumerate(clips)]
    scenes.append(previews.StripScene(3, None, "skipped: rejected by the safety filter"))
    strip = previews.scene_strip(scenes)

    assert strip.data is not None and len(strip.data) <= previews.STRIP_BUDGET
    image = _decoded(strip).convert("RGB")
    assert len(strip.cells) == len(scenes)
    # Each cell shows its own scene's frames, in scene order (scene 1 red, 2 lime, 3 blue).
    for (x, y, w, _h), rgb in zip(strip.cells, COLOURS.values(), strict=False):
        thumb_h = round((w // 2) * 9 / 16)
        for half in (0, 1):
            box = (x + half * w // 2 + 4, y + 4, x + (half + 1) * w // 2 - 4, y + thumb_h - 4)
            mean = np.asarray(image.crop(box), dtype=np.float32).reshape(-1, 3).mean(axis=0)
            assert np.abs(mean - np.array(rgb)).max() < 40, (rgb, mean)
    # The skipped scene's cell is dark, not a frame.
    x, y, w, _h = strip.cells[3]
    assert np.asarray(image.crop((x + 4, y + 4, x + w - 4, y + 20)), dtype=np.float32).mean() < 80


class CountingFile(io.FileIO):
    """A file that counts the bytes read from it (what an object store would transfer)."""

    bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        n = super().readinto(buffer) or 0
        self.bytes_read += n
        return n


def test_a_clips_last_frame_and_its_facts_need_only_part_of_it(tmp_path: Path) -> None:
    """The strip reaches a clip's last frame from its last keyframe, and a probe reads the header:
    from an object store (read in place, ArtifactStore.open) neither transfers the whole clip."""
    clip = sweep_clip(tmp_path / "c.mp4", 8.0, 1)
    size = clip.stat().st_size
    with CountingFile(clip) as f:
        last = media.read_frame(f, "last", name="c.mp4")
        assert f.bytes_read < size / 2
    with av.open(str(clip)) as c:
        *_, final = c.decode(video=0)
    assert np.array_equal(np.asarray(last), np.asarray(final.to_image()))
    with CountingFile(clip) as f:
        assert media.probe_file(f, name="c.mp4") == media.probe(clip)
        assert f.bytes_read < size / 4

    store = ArtifactStore(tmp_path / "store")
    store.put_file("p", "clips/scene_001.mp4", clip)
    strip = previews.scene_strip(previews.stored_clips(store, "p", [(0, "clips/scene_001.mp4", ""), (1, None, "rejected")]))
    assert strip.data is not None and len(strip.cells) == 2


def test_the_strip_reader_reads_each_clip_as_soon_as_it_is_added(tmp_path: Path) -> None:
    """The clips step hands each clip to the reader when it is saved: its frames are read then, in
    the background, so drawing the strip at the end needs the clips no more."""
    clips = [_solid(tmp_path / f"{name}.mp4", name) for name in COLOURS]
    scenes = [previews.StripScene(i, clip) for i, clip in enumerate(clips)]
    with previews.StripReader() as reader:
        for scene in scenes:
            reader.add(scene)
        reader.frames(scenes)  # waits for the background reads
        for clip in clips:
            clip.unlink()
        strip = previews.scene_strip(scenes, reader=reader)
    assert strip.data is not None and len(strip.cells) == 3
    with pytest.raises(MediaError, match="red.mp4"):  # without the reader the clips are needed
        previews.scene_strip(scenes)


def test_the_strip_reader_reads_one_clip_at_a_time_until_the_strip_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """While clips are being made one clip is decoded at a time (memory beside the clip encoder);
    once the strip is asked for, every clip exists and the rest are read two at a time."""
    lock, two_inside = threading.Lock(), threading.Event()
    inside = peak = 0

    def ends(scene: previews.StripScene) -> Any:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
            if inside == 2:
                two_inside.set()
        two_inside.wait(10)
        with lock:
            inside -= 1
        return previews.strip._Frames(scene.index, None, None, "read")

    monkeypatch.setattr(previews.strip, "_ends", ends)
    scenes = [previews.StripScene(i, None) for i in range(3)]
    with previews.StripReader() as reader:
        for scene in scenes:
            reader.add(scene)
        assert not two_inside.wait(0.3) and peak == 1
        assert [f.note for f in reader.frames(scenes)] == ["read"] * 3
    assert peak == 2


def test_scene_strip_over_budget_falls_back(tmp_path: Path) -> None:
    clip = _testsrc(tmp_path / "a.mp4", seconds=1.0)
    strip = previews.scene_strip([previews.StripScene(0, clip)], budget=300)
    assert strip.data is None and "budget" in strip.markdown() and "data:" not in strip.markdown()


@pytest.mark.parametrize("size", [(1366, 768), (768, 1366), (1024, 1024), (1365, 767), (641, 479), (1000, 333)])
def test_contact_sheet_from_frames_shrunk_as_they_come_is_the_same(size: tuple[int, int]) -> None:
    """The keyframes asset shrinks each frame while the next is being made: the sheet is the same,
    pixel for pixel, as the one drawn from the PNGs at the end; bytes it was not handed (or that
    changed) are decoded by the sheet itself."""
    rng = np.random.default_rng(3)
    pngs = []
    for _ in range(5):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    labels = [f"frame {i}" for i in range(5)]
    expected = media.contact_sheet_image(pngs, labels=labels).tobytes()
    with previews.SheetFrames() as frames:
        for i, png in enumerate(pngs[:4]):
            frames.add(i, png)
        handed = frames.images([*pngs[:2], pngs[3], pngs[3], pngs[4]])
        assert [isinstance(x, Image.Image) for x in handed] == [True, True, False, True, False]
        images = frames.images(pngs)
    assert media.contact_sheet_image(images, labels=labels).tobytes() == expected


def test_stills_shrink_until_they_fit(tmp_path: Path) -> None:
    # A noisy 1920x1080 frame is far over budget at full size; the ladder brings it down.
    rng = np.random.default_rng(7)
    noise = Image.fromarray(rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    sheet = media.contact_sheet([buf.getvalue()] * 5, labels=[f"scene {i + 1}" for i in range(5)])
    assert len(sheet) > previews.SHEET_BUDGET
    image = previews.sheet_image(sheet)
    assert image.data is not None and len(image.data) <= previews.SHEET_BUDGET
    decoded = _decoded(image)
    assert decoded.format == "JPEG" and max(decoded.size) <= previews.STILL_LADDER[0][0]
    assert previews.sheet_image(sheet, budget=1_000).data is None

    video = _testsrc(tmp_path / "final.mp4", size="1280x720", seconds=2.0)
    poster = previews.poster(video, 2.0)
    assert poster.data is not None and len(poster.data) <= previews.POSTER_BUDGET
    frame = media.read_frame(video, 1.0).resize(_decoded(poster).size)
    diff = np.abs(np.asarray(_decoded(poster).convert("RGB"), np.float32) - np.asarray(frame, np.float32)).mean()
    assert diff < 12  # the poster is the frame in the middle of the video


def test_a_broken_video_gives_a_note_not_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "final.mp4"
    broken.write_bytes(b"not a video")
    preview = previews.safely(lambda: previews.animated_preview(broken, tmp_path / "data"), "preview", 1000)
    assert preview.data is None and "not a readable media file" in preview.markdown()


def _colours(preview: previews.Preview) -> list[str]:
    """The colours an animated preview shows, in order (the encoder merges equal frames into one)."""
    out: list[str] = []
    for frame in ImageSequence.Iterator(_decoded(preview)):
        mean = np.asarray(frame.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)
        name = min(COLOURS, key=lambda n: float(np.abs(mean - COLOURS[n]).sum()))
        if not out or out[-1] != name:
            out.append(name)
    return out


def _levels(preview: previews.Preview) -> list[float]:
    return [
        float(np.asarray(f.convert("RGB"), dtype=float).max(axis=2).mean()) for f in ImageSequence.Iterator(_decoded(preview))
    ]


def test_the_preview_is_made_of_the_frames_sampled_from_each_clip_as_it_was_read(tmp_path: Path) -> None:
    """The clips step's strip reader decodes each clip whole and keeps its preview frames; the final
    video's preview is then encoded from them, without decoding the stitched file: the same frames
    (36 at 8 fps: encoded in two halves at once, joined)."""
    clips = [_solid(tmp_path / f"{name}.mp4", name, seconds=1.5) for name in COLOURS]
    final = media.stitch(clips, tmp_path / "final.mp4")
    rate = previews.preview_rate(final.duration_s)
    shas = [hashlib.sha256(c.read_bytes()).hexdigest() for c in clips]
    scenes = [previews.StripScene(i, clip) for i, clip in enumerate(clips)]

    def sampled() -> list[previews.ClipSamples]:
        with previews.StripReader(preview_rate=rate) as reader:
            for scene in scenes:
                reader.add(scene)
            strip = previews.scene_strip(scenes, reader=reader)
        assert strip.data is not None and len(strip.cells) == 3  # the strip's frames come from the same decode
        samples = previews.take_samples(shas, rate)
        assert samples is not None and previews.take_samples(shas, rate) is None  # taken once
        return samples

    from_file = previews.animated_preview(tmp_path / "final.mp4", tmp_path / "data")
    from_clips = previews.animated_preview(tmp_path / "final.mp4", tmp_path / "data", samples=sampled())
    assert _colours(from_clips) == _colours(from_file) == ["red", "lime", "blue"]
    assert (from_clips.width, from_clips.height) == (from_file.width, from_file.height)
    assert "at 8 fps" in from_clips.note and "at 8 fps" in from_file.note

    # The frames are the samples' (the file is not decoded): given the clips backwards, so is the preview.
    backwards = previews.animated_preview(tmp_path / "final.mp4", tmp_path / "data", samples=sampled()[::-1])
    assert _colours(backwards) == ["blue", "lime", "red"]
    # A video that fades in and out (0.5 s: 4 frames at 8 fps): so do the sampled frames.
    levels = _levels(previews.animated_preview(tmp_path / "final.mp4", tmp_path / "data", samples=sampled(), fades=(0.5, 0.5)))
    assert levels[0] < 5 and levels[0] < levels[1] < levels[2] < levels[3] < levels[4] - 20 and levels[-1] < levels[-5] - 20
    assert list(scratch_root(tmp_path / "data").iterdir()) == []


def test_samples_are_used_only_when_every_clip_was_sampled_at_the_preview_rate(tmp_path: Path) -> None:
    frame = Image.new("RGB", (32, 18), (255, 0, 0))
    previews.keep_samples("a" * 64, 8.0, [frame] * 8)
    previews.keep_samples("b" * 64, 8.0, [frame] * 8)
    assert previews.take_samples(["a" * 64, "c" * 64], 8.0) is None  # one clip was not sampled here
    assert previews.take_samples(["b" * 64], 4.0) is None  # sampled at another rate (a video of another length)
    previews.keep_samples("d" * 64, 8.0, [frame] * 8)
    (kept,) = previews.take_samples(["d" * 64], 8.0) or []
    assert kept.rate == 8.0 and len(kept.frames) == 8


def test_animated_webps_joined_play_one_after_the_other(tmp_path: Path) -> None:
    if not previews.has_encoder("libwebp_anim"):
        pytest.skip("this ffmpeg has no libwebp_anim encoder")
    parts = []
    for name in ("red", "blue"):  # each fades in: every frame differs (the encoder merges equal ones)
        out = tmp_path / f"{name}.webp"
        source = f"color=c={name}:s=160x90:r=8:d=1,fade=in:0:8"
        media.run_ffmpeg(
            ["-f", "lavfi", "-i", source, "-c:v", "libwebp_anim", "-loop", "0", "-f", "webp", "-y", str(out)], what="webp"
        )
        parts.append(out.read_bytes())
    joined = previews.animated.join_webp(parts)
    with Image.open(io.BytesIO(joined)) as im:
        assert im.format == "WEBP" and im.n_frames == 16
        channels = [int(np.asarray(f.convert("RGB")).reshape(-1, 3).mean(axis=0).argmax()) for f in ImageSequence.Iterator(im)]
    assert channels[1:8] == [0] * 7 and channels[9:] == [2] * 7  # red, then blue (the first of each is black)
    with pytest.raises(MediaError, match="not an animated WebP"):  # a still WebP has no frames to join
        still = io.BytesIO()
        Image.new("RGB", (16, 9)).save(still, format="WEBP")
        previews.animated.join_webp([parts[0], still.getvalue()])
