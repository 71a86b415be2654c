"""The scene strip: each scene's first and last frame, read from its clip (two clips decoded at
once, the last ones as soon as the strip is asked for), drawn in rows. A reader given the
animated preview's rate decodes each clip whole instead, and keeps its preview frames too."""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vidpipe_core import media
from vidpipe_core.previews.animated import PREVIEW_LONGEST, keep_samples
from vidpipe_core.previews.images import STRIP_BUDGET, Preview, _dropped
from vidpipe_core.scenes import scene_number
from vidpipe_core.storage import ArtifactStore

# The scene strip: width of one frame thumbnail and JPEG quality, tried in order.
STRIP_LADDER: tuple[tuple[int, int], ...] = ((160, 75), (128, 65), (96, 55), (72, 45), (48, 35))
STRIP_COLUMNS = 4  # scenes per row of the strip
STRIP_GAP = 6
STRIP_WORKERS = 2  # clips decoded at once for the strip
STRIP_THUMB_MAX = max(w for w, _ in STRIP_LADDER)
STRIP_BACKGROUND = (24, 24, 28)


@dataclass(frozen=True)
class StoredClip:
    """A clip in the artifact store, read where it is: only the bytes of the frames the strip
    shows are transferred from an object store (``ArtifactStore.open``), nothing is downloaded."""

    store: ArtifactStore
    project_id: str
    path: str


@dataclass(frozen=True)
class StripScene:
    """One scene of the strip: its 0-based index, and its clip or why there is none."""

    index: int
    clip: Path | StoredClip | None
    note: str = ""  # shown instead of the frames when there is no clip ("skipped: ...")


@dataclass(frozen=True)
class _Frames:
    index: int
    first: Image.Image | None
    last: Image.Image | None
    note: str


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def strip_layout(
    n: int, thumb: tuple[int, int], columns: int = STRIP_COLUMNS
) -> tuple[tuple[int, int], list[tuple[int, int, int, int]]]:
    """The strip's size and each scene's cell (x, y, w, h): two thumbnails side by side and a label below."""
    tw, th = thumb
    label_h = max(12, tw // 8) + 6
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    cell_w, cell_h = 2 * tw + STRIP_GAP // 2, th + label_h
    cells = [
        (STRIP_GAP + (i % cols) * (cell_w + STRIP_GAP), STRIP_GAP + (i // cols) * (cell_h + STRIP_GAP), cell_w, cell_h)
        for i in range(n)
    ]
    size = (cols * cell_w + (cols + 1) * STRIP_GAP, rows * cell_h + (rows + 1) * STRIP_GAP)
    return size, cells


def _draw_strip(frames: list[_Frames], thumb_width: int, aspect: float) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    thumb = (thumb_width, max(2, round(thumb_width / aspect)))
    size, cells = strip_layout(len(frames), thumb)
    sheet = Image.new("RGB", size, STRIP_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(max(9, thumb_width // 8))
    for f, (x, y, w, _h) in zip(frames, cells, strict=True):
        label = f"Scene {scene_number(f.index)}"
        if f.first is not None and f.last is not None:
            for k, image in enumerate((f.first, f.last)):
                fitted = image.copy()
                fitted.thumbnail(thumb, Image.Resampling.LANCZOS)
                ox = x + k * (thumb[0] + STRIP_GAP // 2) + (thumb[0] - fitted.width) // 2
                sheet.paste(fitted, (ox, y + (thumb[1] - fitted.height) // 2))
        else:
            draw.rectangle((x, y, x + w - 1, y + thumb[1] - 1), fill=(60, 40, 40))
            label = f"{label}: {f.note}" if f.note else label
        draw.text((x + 2, y + thumb[1] + 3), media.ellipsize(draw, label, font, w - 4), fill=(230, 230, 230), font=font)
    return sheet, cells


def _ends(s: StripScene) -> _Frames:
    """A clip's first frame, and its last found by seeking to the clip's last keyframe, each scaled
    at once to twice the strip's widest thumbnail (16 scenes of 1080p frames held at full size
    were ~200 MB)."""
    if s.clip is None:
        return _Frames(s.index, None, None, s.note or "no clip")
    width = 2 * STRIP_THUMB_MAX
    if isinstance(s.clip, Path):
        first, last = (media.read_frame(s.clip, at, width=width) for at in ("first", "last"))
    else:
        with s.clip.store.open(s.clip.project_id, s.clip.path) as f:
            first = media.read_frame(f, "first", name=s.clip.path, width=width)
            f.seek(0)
            last = media.read_frame(f, "last", name=s.clip.path, width=width)
    return _Frames(s.index, first, last, s.note)


def _ends_and_samples(s: StripScene, rate: float) -> _Frames:
    """``_ends`` in one decode of the whole clip, which also keeps the animated preview's frames
    of it (``keep_samples``, by the sha256 of the bytes decoded)."""
    if s.clip is None:
        return _ends(s)
    if isinstance(s.clip, Path):
        data, name = s.clip.read_bytes(), str(s.clip)
    else:
        data, name = s.clip.store.read_bytes(s.clip.project_id, s.clip.path), s.clip.path
    sampled = media.sample_frames(io.BytesIO(data), rate, name=name, longest=PREVIEW_LONGEST, end_width=2 * STRIP_THUMB_MAX)
    keep_samples(hashlib.sha256(data).hexdigest(), rate, sampled.samples)
    frames = _Frames(s.index, sampled.first, sampled.last, s.note)
    del data, sampled
    media.release_freed_memory()  # the decoded frames were freed into this thread's malloc arena
    return frames


class StripReader:
    """Reads scenes' first and last frames in the background (PyAV releases the GIL while it
    decodes), as soon as each clip is ``add``-ed: the clips step adds each clip when it is saved,
    so the frames are read while the other clips are still being made, and only the drawing is
    left when the last one is done. ``workers`` clips at a time while clips are being made (one: a
    second 1080p decoder beside the animatic's encoder cost ~40 MiB of peak), STRIP_WORKERS once
    ``frames`` is asked for (every clip exists then: the last wave's reads are not queued behind
    one another). ``preview_rate``: also keep each clip's frames for the final video's animated
    preview, sampled at that rate (``_ends_and_samples``)."""

    def __init__(self, workers: int = 1, *, preview_rate: float | None = None) -> None:
        self._workers = workers
        self._rate = preview_rate
        self._pool = ThreadPoolExecutor(max_workers=max(workers, STRIP_WORKERS), thread_name_prefix="vidpipe-strip")
        self._gate = threading.Semaphore(workers)
        self._read: dict[StripScene, Future[_Frames]] = {}

    def _ends(self, scene: StripScene) -> _Frames:
        with self._gate:
            return _ends(scene) if self._rate is None else _ends_and_samples(scene, self._rate)

    def add(self, scene: StripScene) -> None:
        if scene not in self._read:
            self._read[scene] = self._pool.submit(self._ends, scene)

    def frames(self, scenes: Sequence[StripScene]) -> list[_Frames]:
        for _ in range(STRIP_WORKERS - self._workers):
            self._gate.release()  # every clip is made: read the rest STRIP_WORKERS at a time
        self._workers = max(self._workers, STRIP_WORKERS)
        for scene in scenes:
            self.add(scene)
        return [self._read[scene].result() for scene in scenes]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> StripReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scene_strip(
    scenes: Sequence[StripScene],
    *,
    budget: int = STRIP_BUDGET,
    ladder: Sequence[tuple[int, int]] = STRIP_LADDER,
    reader: StripReader | None = None,
) -> Preview:
    """One cell per scene, in scene order: its first and last frame, labelled "Scene 1", "Scene 2"…;
    a scene without a clip gets a dark cell with its note. A JPEG within ``budget``, or a note.
    ``reader``: where the frames were (are being) read already."""
    if not scenes:
        return Preview("scene strip", budget, note="no image: no scenes")
    if reader is not None:
        frames = reader.frames(scenes)
    else:
        with StripReader(STRIP_WORKERS) as own:
            frames = own.frames(scenes)
    sizes = [f.first.size for f in frames if f.first is not None]
    aspect = sizes[0][0] / sizes[0][1] if sizes else 16 / 9
    for thumb_width, quality in ladder:
        image, cells = _draw_strip(frames, thumb_width, aspect)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=quality, optimize=True)
        data = buf.getvalue()
        if len(data) <= budget:
            what = f"first and last frame of {len(scenes)} scene{'s' if len(scenes) != 1 else ''}"
            note = f"{what}, {image.width}x{image.height} JPEG, {len(data) / 1000:.0f} KB"
            return Preview("scene strip", budget, "image/jpeg", data, image.width, image.height, 1, note, tuple(cells))
    thumb_width, quality = ladder[-1]
    return _dropped("scene strip", budget, f"the strip at {thumb_width} px per frame, quality {quality}")


# --------------------------------------------------------------------------------------
# From the artifact store
# --------------------------------------------------------------------------------------


def stored_clips(store: ArtifactStore, project_id: str, scenes: Sequence[tuple[int, str | None, str]]) -> list[StripScene]:
    """StripScenes for (index, relative clip path or None, note), read from the store in place."""
    return [StripScene(i, StoredClip(store, project_id, path) if path else None, note) for i, path, note in scenes]
