"""Small images of a project for the Dagster UI: an animated preview and a poster of the final
video, the keyframes' contact sheet, and a strip of each scene's first and last frame.

Each image is embedded in markdown metadata as a ``data:`` URI, and so stored in Dagster's event
log with every materialization. Hence a **size budget per image** (bytes of the encoded image,
before base64, which adds a third): an image is encoded again smaller (fewer pixels, frames,
lower quality) until it fits, and when even the smallest attempt does not fit, a note replaces
the image. Nothing here imports Dagster; ``Preview.markdown`` is what the assets show.

The animated preview is rendered by ffmpeg (the imageio-ffmpeg binary, see ``media``): animated
WebP (``libwebp_anim``) when this ffmpeg has it, else a GIF with its own palette. Stills are JPEG
from Pillow. Work files live in a scratch folder under the data directory.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vidpipe_core import media
from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import MediaError
from vidpipe_core.scratch import scratch_dir
from vidpipe_core.storage import ArtifactStore

# The budget of each image in bytes (encoded, before base64). Measured on a 1080p 4-scene
# animatic (bench/eventlog.py): the first attempt of each ladder fits with room to spare.
PREVIEW_BUDGET = 300_000  # the animated preview of the final video
POSTER_BUDGET = 100_000  # one still of the final video
SHEET_BUDGET = 100_000  # the keyframes' contact sheet
STRIP_BUDGET = 100_000  # first and last frame of every scene
CHARACTER_BUDGET = 100_000  # one character's reference sheet
CHARACTER_LADDER: tuple[tuple[int, int], ...] = (
    (256, 80),
    (128, 60),
    (64, 40),
)  # sheets are small in the UI: a figure and its colours

# The animated preview: the video is sampled once at PREVIEW_FPS (fewer frames per second for a
# video longer than PREVIEW_MAX_FRAMES / PREVIEW_FPS), then encoded at each (longest side in
# pixels, at most frames, quality) until one fits. A long video plays sped up, never slower than
# MIN_PLAY_FPS.
PREVIEW_FPS = 8
PREVIEW_MAX_FRAMES = 96
MIN_PLAY_FPS = 4
PREVIEW_LADDER: tuple[tuple[int, int, int], ...] = (
    (320, 96, 60),
    (256, 72, 45),
    (224, 48, 35),
    (160, 32, 25),
    (128, 24, 20),
)
# Stills: (longest side in pixels, JPEG quality), tried in order.
STILL_LADDER: tuple[tuple[int, int], ...] = ((960, 80), (720, 72), (540, 65), (400, 55), (300, 45), (200, 35))
# The scene strip: width of one frame thumbnail and JPEG quality, tried in order.
STRIP_LADDER: tuple[tuple[int, int], ...] = ((160, 75), (128, 65), (96, 55), (72, 45), (48, 35))
STRIP_COLUMNS = 4  # scenes per row of the strip
STRIP_GAP = 6
STRIP_WORKERS = 2  # clips decoded at once for the strip
STRIP_THUMB_MAX = max(w for w, _ in STRIP_LADDER)
STRIP_BACKGROUND = (24, 24, 28)


@dataclass(frozen=True)
class Preview:
    """One image for the UI, or the note that replaced it."""

    alt: str
    budget: int
    mime: str = ""
    data: bytes | None = None  # None: no attempt fitted (see ``note``)
    width: int = 0
    height: int = 0
    frames: int = 1
    note: str = ""  # how it was made, or why there is no image
    cells: tuple[tuple[int, int, int, int], ...] = field(default=())  # the strip: (x, y, w, h) of each scene's cell

    @property
    def fits(self) -> bool:
        return self.data is not None and len(self.data) <= self.budget

    @property
    def data_uri(self) -> str:
        if self.data is None:
            return ""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def markdown(self) -> str:
        """``![alt](data:...)`` with a line saying what it is, or the note in italics."""
        if self.data is None:
            return f"_{self.alt}: {self.note}_"
        return f"![{self.alt}]({self.data_uri})\n\n{self.note}"


def _dropped(alt: str, budget: int, tried: str) -> Preview:
    return Preview(alt=alt, budget=budget, note=f"no image: {tried} does not fit the {budget // 1000} KB budget")


# --------------------------------------------------------------------------------------
# Stills
# --------------------------------------------------------------------------------------


def _jpeg(image: Image.Image, longest: int, quality: int) -> tuple[bytes, tuple[int, int]]:
    im = image.convert("RGB")
    scale = min(1.0, longest / max(im.size))
    if scale < 1.0:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, optimize=True, progressive=True)
    return buf.getvalue(), im.size


def still(image: Image.Image, *, alt: str, budget: int, what: str, ladder: Sequence[tuple[int, int]] = STILL_LADDER) -> Preview:
    """``image`` as a JPEG within ``budget`` bytes: the first (size, quality) of ``ladder`` that fits."""
    for longest, quality in ladder:
        data, (w, h) = _jpeg(image, longest, quality)
        if len(data) <= budget:
            return Preview(alt, budget, "image/jpeg", data, w, h, 1, f"{what}, {w}x{h} JPEG, {len(data) / 1000:.0f} KB")
    smallest = ladder[-1]
    return _dropped(alt, budget, f"{what} at {smallest[0]} px, quality {smallest[1]}")


def sheet_image(sheet: bytes | Image.Image, *, budget: int = SHEET_BUDGET) -> Preview:
    """The contact sheet (``media.contact_sheet_image``, or the PNG bytes of ``media.contact_sheet``)
    small enough for the UI."""
    if isinstance(sheet, Image.Image):
        return still(sheet, alt="contact sheet", budget=budget, what="keyframes")
    try:
        with Image.open(io.BytesIO(sheet)) as im:
            image = im.convert("RGB")
    except Exception as exc:  # Pillow raises several unrelated types for bad input
        return Preview("contact sheet", budget, note=f"no image: the contact sheet does not decode ({exc})")
    return still(image, alt="contact sheet", budget=budget, what="keyframes")


def character_sheet(png: bytes, name: str, *, budget: int = CHARACTER_BUDGET) -> Preview:
    """A character's reference sheet small enough for the UI (alt text: the character's name)."""
    alt = "".join(ch for ch in name if ch not in "[]()|*_`<>#\\")
    try:
        with Image.open(io.BytesIO(png)) as im:
            image = im.convert("RGB")
    except Exception as exc:  # Pillow raises several unrelated types for bad input
        return Preview(alt, budget, note=f"no image: the sheet does not decode ({exc})")
    return still(image, alt=alt, budget=budget, what=f"reference sheet of {alt}", ladder=CHARACTER_LADDER)


def poster(video: Path, duration_s: float, *, budget: int = POSTER_BUDGET) -> Preview:
    """One frame from the middle of the video."""
    at = max(0.0, duration_s / 2)
    return still(media.read_frame(video, at), alt="poster", budget=budget, what=f"frame at {at:.1f} s")


SHEET_THUMB_WIDTH = 320  # a keyframe's cell in the contact sheet (media.contact_sheet_image)


class SheetFrames:
    """Keyframes shrunk to their contact-sheet cell in the background, as the keyframes step hands
    each over (Pillow releases the GIL while it decodes and resamples), so that the sheet only has
    to be drawn after the last frame. Each cell has the size ``media.contact_sheet_image`` gives
    it: the first frame's aspect ratio at ``thumb_width``."""

    def __init__(self, thumb_width: int = SHEET_THUMB_WIDTH) -> None:
        self.thumb_width = thumb_width
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidpipe-sheet")
        self._shrunk: list[tuple[bytes, Future[Image.Image]]] = []
        self._cell: tuple[int, int] | None = None  # set by the first frame (the worker runs them in order)

    def _shrink(self, png: bytes) -> Image.Image:
        with Image.open(io.BytesIO(png)) as im:
            image = im.convert("RGB")
        if self._cell is None:
            self._cell = (self.thumb_width, max(1, round(self.thumb_width * image.height / image.width)))
        image.thumbnail(self._cell, Image.Resampling.LANCZOS)
        return image

    def add(self, index: int, png: bytes) -> None:
        """Frame ``index``'s bytes, in order from the first frame."""
        if index == len(self._shrunk):
            self._shrunk.append((png, self._pool.submit(self._shrink, png)))

    def images(self, pngs: Sequence[bytes]) -> list[bytes | Image.Image]:
        """``pngs`` for ``media.contact_sheet_image``: each frame shrunk already where these very
        bytes were handed over in that place and decoded, else the bytes (decoded by the sheet)."""
        out: list[bytes | Image.Image] = []
        for i, png in enumerate(pngs):
            image = None
            if i < len(self._shrunk) and self._shrunk[i][0] == png:
                try:
                    image = self._shrunk[i][1].result()
                except Exception:  # the sheet decodes these bytes itself and names the error
                    image = None
            out.append(image if image is not None else png)
        first = out[0] if out else None
        if isinstance(first, Image.Image) and self._cell != (
            self.thumb_width,
            max(1, round(self.thumb_width * first.height / first.width)),
        ):
            return list(pngs)  # the sheet would size its cells from the shrunk frame differently
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> SheetFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------
# The animated preview
# --------------------------------------------------------------------------------------

_encoders: dict[str, bool] = {}


def has_encoder(name: str) -> bool:
    """Whether this ffmpeg build has the encoder ``name`` (asked once per binary)."""
    exe = media.ffmpeg_exe()
    key = f"{exe}\0{name}"
    if key not in _encoders:
        try:
            out = media.supervise([exe, "-hide_banner", "-encoders"], what="ffmpeg -encoders", timeout=30).stdout
        except (OSError, MediaError):  # it cannot start, or it hangs: no such encoder then
            out = b""
        _encoders[key] = any(line.split()[1:2] == [name] for line in out.decode("utf-8", "replace").splitlines())
    return _encoders[key]


def animated_format() -> str:
    """``webp`` when ffmpeg can write animated WebP, else ``gif``."""
    return "webp" if has_encoder("libwebp_anim") else "gif"


def _scale(longest: int, portrait: bool) -> str:
    """ffmpeg's scale filter: the longest side to ``longest`` pixels, the other even."""
    return f"scale=-2:{longest}:flags=lanczos" if portrait else f"scale={longest}:-2:flags=lanczos"


def _sample_args(video: Path, frames_dir: Path, *, rate: float, longest: int, portrait: bool) -> list[str]:
    """Decode once: frames at ``rate`` per second (at most PREVIEW_MAX_FRAMES), the longest side ``longest``."""
    vf = f"fps={media.ffmpeg_number(rate)},{_scale(longest, portrait)}"
    frames = ["-frames:v", str(PREVIEW_MAX_FRAMES)]
    return ["-threads", str(media.THREADS), "-i", str(video), "-an", "-sn", "-vf", vf, *frames, str(frames_dir / "f%04d.png")]


def _encoder(fmt: str, quality: int, base: str) -> list[str]:
    """The filter graph (``base``, then for GIF its own palette) and the encoder's options."""
    if fmt == "webp":
        # Effort 2 of 6: ~5 % more bytes than 4 (far inside the budget) for about half the encoder's CPU.
        opts = ["-c:v", "libwebp_anim", "-lossless", "0", "-quality", str(quality), "-compression_level", "2"]
        return ["-vf", base, *opts, "-loop", "0", "-f", "webp"]
    colors = max(16, min(256, quality * 3))
    palette = f"split[a][b];[a]palettegen=max_colors={colors}:stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=3"
    return ["-filter_complex", f"{base},{palette}", "-loop", "0", "-f", "gif"]


def _direct_args(video: Path, out: Path, *, fmt: str, rate: float, longest: int, portrait: bool, quality: int) -> list[str]:
    """The first attempt in one pass: decode, sample at ``rate``, scale and encode (no frames on disk)."""
    base = f"fps={media.ffmpeg_number(rate)},{_scale(longest, portrait)}"
    head = ["-threads", str(media.THREADS), "-i", str(video), "-an", "-sn", "-frames:v", str(PREVIEW_MAX_FRAMES)]
    return [*head, *_encoder(fmt, quality, base), "-y", str(out)]


def _encode_args(
    frames_dir: Path, out: Path, *, fmt: str, longest: int, portrait: bool, fps: float, quality: int, keep_every: int
) -> list[str]:
    """Frames sampled by ``_sample_args`` -> an animated image of every ``keep_every``-th frame at ``fps``."""
    select = f"select='not(mod(n\\,{keep_every}))'," if keep_every > 1 else ""
    base = f"{select}setpts=N/({media.ffmpeg_number(fps)}*TB),{_scale(longest, portrait)}"
    args = ["-framerate", media.ffmpeg_number(fps * keep_every), "-i", str(frames_dir / "f%04d.png")]
    return [*args, *_encoder(fmt, quality, base), "-y", str(out)]


def animated_preview(
    video: Path,
    data_dir: Path,
    *,
    budget: int = PREVIEW_BUDGET,
    ladder: Sequence[tuple[int, int, int]] = PREVIEW_LADDER,
    fmt: str | None = None,
    cancel: CancelToken = NEVER,
) -> Preview:
    """An animated WebP (or GIF) of ``video`` within ``budget`` bytes, or a note. ``fmt`` ("webp"
    or "gif") overrides what this ffmpeg can write best. The first attempt is made in one ffmpeg
    pass; only when it does not fit are the frames sampled once to disk for the smaller ones."""
    info = media.probe(video)
    fmt = fmt or animated_format()
    if fmt not in ("webp", "gif"):
        raise MediaError(f"preview format {fmt!r}: expected webp or gif")
    mime = "image/webp" if fmt == "webp" else "image/gif"
    portrait = info.height > info.width
    top_width = min(max(w for w, _, _ in ladder), max(info.width, info.height) or 320)
    duration = max(info.duration_s, 1e-3)
    rate = min(float(PREVIEW_FPS), PREVIEW_MAX_FRAMES / duration)

    def fitted(out: Path, fps: float) -> Preview | None:
        data = out.read_bytes()
        if len(data) > budget:
            return None
        with Image.open(io.BytesIO(data)) as im:
            w, h, n = im.width, im.height, getattr(im, "n_frames", 1)
        speed = duration / (n / fps) if n else 1.0
        how = f"animated {fmt.upper()}, {w}x{h}, {n} frames at {fps:.3g} fps"
        if speed > 1.05:
            how += f" ({speed:.1f}x speed)"
        return Preview("preview", budget, mime, data, w, h, n, f"{how}, {len(data) / 1000:.0f} KB")

    with scratch_dir(data_dir, "vidpipe-preview") as work:
        width, max_frames, quality = ladder[0]
        rungs = list(ladder)
        if max_frames >= PREVIEW_MAX_FRAMES:  # every sampled frame kept: one pass, nothing on disk
            out = work / f"preview.{fmt}"
            args = _direct_args(video, out, fmt=fmt, rate=rate, longest=min(width, top_width), portrait=portrait, quality=quality)
            media.run_ffmpeg(args, what=f"preview of {video.name}: encoding {fmt}", cancel=cancel)
            if out.stat().st_size == 0:
                raise MediaError(f"preview of {video.name}: no frame decoded")
            made = fitted(out, rate)
            if made is not None:
                return made
            rungs = rungs[1:]
        frames_dir = work / "frames"
        frames_dir.mkdir()
        args = _sample_args(video, frames_dir, rate=rate, longest=top_width, portrait=portrait)
        media.run_ffmpeg(args, what=f"preview of {video.name}: sampling frames", cancel=cancel)
        sampled = len(list(frames_dir.glob("f*.png")))
        if sampled == 0:
            raise MediaError(f"preview of {video.name}: no frame decoded")
        for width, max_frames, quality in rungs:
            keep_every = max(1, math.ceil(sampled / max_frames))
            fps = max(rate / keep_every, min(MIN_PLAY_FPS, rate))
            out = work / f"preview-{width}-{max_frames}-{quality}.{fmt}"
            args = _encode_args(
                frames_dir,
                out,
                fmt=fmt,
                longest=min(width, top_width),
                portrait=portrait,
                fps=fps,
                quality=quality,
                keep_every=keep_every,
            )
            media.run_ffmpeg(args, what=f"preview of {video.name}: encoding {fmt}", cancel=cancel)
            made = fitted(out, fps)
            if made is not None:
                return made
    width, max_frames, quality = ladder[-1]
    return _dropped("preview", budget, f"the animation at {width} px, {max_frames} frames, quality {quality}")


# --------------------------------------------------------------------------------------
# The scene strip
# --------------------------------------------------------------------------------------


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
        label = f"Scene {f.index + 1}"
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


class StripReader:
    """Reads scenes' first and last frames in the background (PyAV releases the GIL while it
    decodes), as soon as each clip is ``add``-ed: the clips step adds each clip when it is saved,
    so the frames are read while the other clips are still being made, and only the drawing is
    left when the last one is done. ``workers`` clips at a time while clips are being made (one: a
    second 1080p decoder beside the animatic's encoder cost ~40 MiB of peak), STRIP_WORKERS once
    ``frames`` is asked for (every clip exists then: the last wave's reads are not queued behind
    one another)."""

    def __init__(self, workers: int = 1) -> None:
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=max(workers, STRIP_WORKERS), thread_name_prefix="vidpipe-strip")
        self._gate = threading.Semaphore(workers)
        self._read: dict[StripScene, Future[_Frames]] = {}

    def _ends(self, scene: StripScene) -> _Frames:
        with self._gate:
            return _ends(scene)

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


def safely(make: Callable[[], Preview], alt: str, budget: int) -> Preview:
    """``make()``, or a note naming the error: a preview never fails a materialization."""
    try:
        return make()
    except (MediaError, OSError, ValueError) as exc:
        return Preview(alt, budget, note=f"no image: {exc}")


__all__ = [
    "CHARACTER_BUDGET",
    "POSTER_BUDGET",
    "PREVIEW_BUDGET",
    "SHEET_BUDGET",
    "STRIP_BUDGET",
    "SHEET_THUMB_WIDTH",
    "Preview",
    "SheetFrames",
    "StoredClip",
    "StripReader",
    "StripScene",
    "animated_format",
    "animated_preview",
    "has_encoder",
    "poster",
    "safely",
    "scene_strip",
    "sheet_image",
    "still",
    "stored_clips",
    "strip_layout",
]
