"""Contact sheets: a labelled grid of images (keyframes, frames of a clip) as one picture."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from vidpipe_core.errors import InvalidInput, MediaError

SHEET_GAP = 8
SHEET_BACKGROUND = (24, 24, 28)


def _label_height(thumb_width: int) -> int:
    return max(12, thumb_width // 12) + 6


def contact_sheet_size(n: int, *, columns: int, thumb_size: tuple[int, int], labels: bool) -> tuple[int, int]:
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    tw, th = thumb_size
    cell_h = th + (_label_height(tw) if labels else 0)
    return cols * tw + (cols + 1) * SHEET_GAP, rows * cell_h + (rows + 1) * SHEET_GAP


def contact_sheet(pngs: list[bytes], *, columns: int = 4, thumb_width: int = 320, labels: list[str] | None = None) -> bytes:
    """A PNG grid of the images (thumbnails keep the first image's aspect ratio; others are letterboxed)."""
    buf = io.BytesIO()
    contact_sheet_image(pngs, columns=columns, thumb_width=thumb_width, labels=labels).save(buf, format="PNG")
    return buf.getvalue()


def contact_sheet_image(
    pngs: Sequence[bytes | Image.Image], *, columns: int = 4, thumb_width: int = 320, labels: list[str] | None = None
) -> Image.Image:
    """The grid of ``contact_sheet`` as an image (for callers that also want it in another format).
    An image given decoded already (as ``previews.SheetFrames`` shrinks each keyframe while the
    next is being made) is used as it is, shrunk to its cell if larger."""
    if not pngs:
        raise InvalidInput("pngs", "no images for a contact sheet")
    if columns < 1 or thumb_width < 8:
        raise InvalidInput("columns", f"need columns >= 1 and thumb_width >= 8, got {columns} and {thumb_width}")
    if labels is not None and len(labels) != len(pngs):
        raise InvalidInput("labels", f"{len(labels)} labels for {len(pngs)} images")
    # Each image is shrunk as soon as it is decoded: 17 keyframes of 1080p held at full size were
    # ~100 MB, which the process kept (freed memory is not handed back) for the rest of the run.
    images: list[Image.Image] = []
    thumb = (thumb_width, thumb_width)
    for i, data in enumerate(pngs):
        if isinstance(data, Image.Image):
            image = data.convert("RGB")
        else:
            try:
                with Image.open(io.BytesIO(data)) as im:
                    image = im.convert("RGB")
            except Exception as exc:  # Pillow raises several unrelated types for bad input
                raise MediaError(f"contact sheet: image {i} does not decode ({exc})") from exc
        if not images:
            thumb = (thumb_width, max(1, round(thumb_width * image.height / image.width)))
        image.thumbnail(thumb, Image.Resampling.LANCZOS)
        images.append(image)
    sheet = Image.new(
        "RGB", contact_sheet_size(len(images), columns=columns, thumb_size=thumb, labels=labels is not None), SHEET_BACKGROUND
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(10, thumb_width // 12))
    cols = max(1, min(columns, len(images)))
    cell_h = thumb[1] + (_label_height(thumb_width) if labels is not None else 0)
    for i, img in enumerate(images):
        x = SHEET_GAP + (i % cols) * (thumb[0] + SHEET_GAP)
        y = SHEET_GAP + (i // cols) * (cell_h + SHEET_GAP)
        sheet.paste(img, (x + (thumb[0] - img.width) // 2, y + (thumb[1] - img.height) // 2))
        if labels is not None:
            draw.text((x + 2, y + thumb[1] + 3), ellipsize(draw, labels[i], font, thumb[0] - 4), fill=(230, 230, 230), font=font)
    return sheet


def ellipsize(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """``text`` cut with an ellipsis so that it fits in ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if draw.textlength(text[:mid].rstrip() + "…", font=font) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"
