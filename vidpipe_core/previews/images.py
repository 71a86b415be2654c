"""The budgets and ladders of every preview image, the Preview an asset shows, and the stills:
the poster, the contact sheet (made frame by frame as keyframes arrive) and a character's sheet."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from vidpipe_core import media
from vidpipe_core.errors import MediaError

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

# Stills: (longest side in pixels, JPEG quality), tried in order.
STILL_LADDER: tuple[tuple[int, int], ...] = ((960, 80), (720, 72), (540, 65), (400, 55), (300, 45), (200, 35))


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


def safely(make: Callable[[], Preview], alt: str, budget: int) -> Preview:
    """``make()``, or a note naming the error: a preview never fails a materialization."""
    try:
        return make()
    except (MediaError, OSError, ValueError) as exc:
        return Preview(alt, budget, note=f"no image: {exc}")
