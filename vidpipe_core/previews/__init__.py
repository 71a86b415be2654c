"""Small images of a project for the Dagster UI: an animated preview and a poster of the final
video, the keyframes' contact sheet, and a strip of each scene's first and last frame.

Each image is embedded in markdown metadata as a ``data:`` URI, and so stored in Dagster's event
log with every materialization. Hence a **size budget per image** (bytes of the encoded image,
before base64, which adds a third): an image is encoded again smaller (fewer pixels, frames,
lower quality) until it fits, and when even the smallest attempt does not fit, a note replaces
the image. Nothing here imports Dagster; ``Preview.markdown`` is what the assets show.

The package: ``images`` (the budgets, ``Preview``, the stills and the contact sheet), ``animated``
(the animated preview) and ``strip`` (the scene strip); its names are re-exported here.

The animated preview is rendered by ffmpeg (the imageio-ffmpeg binary, see ``media``): animated
WebP (``libwebp_anim``) when this ffmpeg has it, else a GIF with its own palette. Stills are JPEG
from Pillow. Work files live in a scratch folder under the data directory.
"""

from vidpipe_core.previews.animated import (
    PREVIEW_LADDER,
    ClipSamples,
    animated_format,
    animated_preview,
    final_preview,
    has_encoder,
    keep_samples,
    preview_rate,
    take_samples,
)
from vidpipe_core.previews.images import (
    CHARACTER_BUDGET,
    POSTER_BUDGET,
    PREVIEW_BUDGET,
    SHEET_BUDGET,
    SHEET_THUMB_WIDTH,
    STILL_LADDER,
    STRIP_BUDGET,
    Preview,
    SheetFrames,
    character_sheet,
    poster,
    safely,
    sheet_image,
    still,
)
from vidpipe_core.previews.strip import StoredClip, StripReader, StripScene, scene_strip, stored_clips, strip_layout

__all__ = [
    "CHARACTER_BUDGET",
    "POSTER_BUDGET",
    "PREVIEW_BUDGET",
    "SHEET_BUDGET",
    "STRIP_BUDGET",
    "SHEET_THUMB_WIDTH",
    "STILL_LADDER",
    "PREVIEW_LADDER",
    "Preview",
    "ClipSamples",
    "SheetFrames",
    "StoredClip",
    "StripReader",
    "StripScene",
    "animated_format",
    "character_sheet",
    "animated_preview",
    "final_preview",
    "has_encoder",
    "keep_samples",
    "preview_rate",
    "take_samples",
    "poster",
    "safely",
    "scene_strip",
    "sheet_image",
    "still",
    "stored_clips",
    "strip_layout",
]
