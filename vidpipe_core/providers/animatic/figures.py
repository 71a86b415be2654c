"""Characters drawn the same way everywhere: one silhouette and two colours per character, fixed by
its name and appearance, drawn on its reference sheet and in every keyframe that lists it.

The sheet is the source: a keyframe reads the character's look back from the sheet's PNG (a text
chunk the animatic writes; for a sheet from another provider, its two dominant colours)."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

from PIL import Image, ImageColor, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from vidpipe_core.providers.animatic.planner import _unit

RGB = tuple[int, int, int]

SHEET_KEY = "vidpipe:character"  # PNG text chunk of an animatic sheet: the look as JSON
SHEET_BACKGROUND: RGB = (236, 234, 228)

# Colour words a character's appearance may name, with the RGB they are drawn in. Saturated and
# far apart, so a character's colours are recognisable (and testable) in any scene.
COLOUR_WORDS: dict[str, RGB] = {
    "crimson": (200, 24, 48),
    "red": (220, 40, 40),
    "scarlet": (236, 56, 24),
    "orange": (244, 128, 24),
    "amber": (240, 176, 16),
    "yellow": (246, 220, 40),
    "gold": (212, 170, 40),
    "lime": (150, 220, 40),
    "green": (40, 170, 70),
    "emerald": (16, 150, 110),
    "teal": (0, 140, 140),
    "turquoise": (40, 210, 200),
    "cyan": (30, 200, 235),
    "blue": (40, 90, 220),
    "cobalt": (20, 60, 170),
    "indigo": (80, 40, 170),
    "violet": (150, 70, 220),
    "purple": (130, 40, 160),
    "magenta": (220, 30, 170),
    "pink": (245, 120, 170),
    "brown": (130, 80, 40),
    "white": (248, 248, 248),
    "black": (20, 20, 24),
    "grey": (130, 130, 134),
    "gray": (130, 130, 134),
    "silver": (190, 194, 200),
}
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}\b|\b(" + "|".join(COLOUR_WORDS) + r")\b", re.I)


def colours_named(text: str) -> list[RGB]:
    """The colours a text names (#hex or a colour word), in order, without repeats."""
    out: list[RGB] = []
    for m in _COLOUR.finditer(text):
        c = COLOUR_WORDS[m.group(1).lower()] if m.group(1) else ImageColor.getrgb(m.group(0))[:3]
        rgb = (c[0], c[1], c[2])
        if rgb not in out:
            out.append(rgb)
    return out


def _distance(a: RGB, b: RGB) -> float:
    return float(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5)


def _hash_colour(*key: object) -> RGB:
    names = sorted(set(COLOUR_WORDS) - {"gray"})
    return COLOUR_WORDS[names[int(_unit(*key) * len(names))]]


@dataclass(frozen=True)
class Look:
    """How a character is drawn: body and accent colours and a silhouette."""

    body: RGB
    accent: RGB
    build: int  # 0 capsule, 1 cloak (triangle), 2 round
    head: int  # 0 round, 1 square
    extra: int  # 0 none, 1 ears, 2 hat, 3 antenna
    height: float  # fraction of the frame height
    width: float  # body width as a fraction of its height

    def to_json(self) -> str:
        return json.dumps(
            {
                "body": "#{:02x}{:02x}{:02x}".format(*self.body),
                "accent": "#{:02x}{:02x}{:02x}".format(*self.accent),
                "build": self.build,
                "head": self.head,
                "extra": self.extra,
                "height": self.height,
                "width": self.width,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Look:
        d = json.loads(text)
        body, accent = ImageColor.getrgb(d["body"]), ImageColor.getrgb(d["accent"])
        return cls(
            body=(body[0], body[1], body[2]),
            accent=(accent[0], accent[1], accent[2]),
            build=int(d["build"]),
            head=int(d["head"]),
            extra=int(d["extra"]),
            height=float(d["height"]),
            width=float(d["width"]),
        )


def look_for(name: str, appearance: str) -> Look:
    """A character's look: the colours its appearance names (else stable colours from its name),
    a silhouette from its name."""
    key = name.strip().lower()
    named = colours_named(appearance)
    body = named[0] if named else _hash_colour("body", key)
    accent = named[1] if len(named) > 1 else None
    if accent is None:
        for salt in range(8):
            c = _hash_colour("accent", key, salt)
            if _distance(c, body) > 120:
                accent = c
                break
        else:
            accent = (20, 20, 24) if sum(body) > 380 else (248, 248, 248)
    return Look(
        body=body,
        accent=accent,
        build=int(_unit("build", key) * 3),
        head=int(_unit("head", key) * 2),
        extra=int(_unit("extra", key) * 4),
        height=round(0.26 + 0.08 * _unit("height", key), 4),
        width=round(0.30 + 0.12 * _unit("width", key), 4),
    )


def draw_figure(d: ImageDraw.ImageDraw, look: Look, cx: float, feet: float, height: float) -> None:
    """The silhouette, standing on ``feet`` and centred on ``cx``: body, accent belt, head, extra."""
    bw = height * look.width
    head_r = height * 0.14
    neck = feet - height * 0.70
    if look.build == 0:
        d.rounded_rectangle((cx - bw / 2, neck, cx + bw / 2, feet), radius=max(1, round(bw * 0.3)), fill=look.body)
    elif look.build == 1:
        d.polygon([(cx - bw * 0.2, neck), (cx + bw * 0.2, neck), (cx + bw * 0.62, feet), (cx - bw * 0.62, feet)], fill=look.body)
    else:
        d.ellipse((cx - bw * 0.6, neck, cx + bw * 0.6, feet), fill=look.body)
    belt = neck + (feet - neck) * 0.45
    belt_w = bw * (0.5 if look.build == 1 else 0.5)
    d.rectangle((cx - belt_w, belt, cx + belt_w, belt + height * 0.09), fill=look.accent)
    hy = neck - head_r * 0.9
    if look.head == 0:
        d.ellipse((cx - head_r, hy - head_r, cx + head_r, hy + head_r), fill=look.body)
    else:
        d.rounded_rectangle(
            (cx - head_r, hy - head_r, cx + head_r, hy + head_r), radius=max(1, round(head_r * 0.3)), fill=look.body
        )
    top = hy - head_r
    if look.extra == 1:  # ears
        for s in (-1, 1):
            d.polygon(
                [
                    (cx + s * head_r * 0.9, top + head_r * 0.6),
                    (cx + s * head_r * 0.2, top),
                    (cx + s * head_r, top - head_r * 0.7),
                ],
                fill=look.body,
            )
    elif look.extra == 2:  # hat
        d.rectangle((cx - head_r * 1.4, top - head_r * 0.1, cx + head_r * 1.4, top + head_r * 0.2), fill=look.accent)
        d.rectangle((cx - head_r * 0.8, top - head_r * 0.9, cx + head_r * 0.8, top), fill=look.accent)
    elif look.extra == 3:  # antenna
        d.line((cx, top, cx, top - head_r * 0.9), fill=look.accent, width=max(1, round(head_r * 0.2)))
        d.ellipse((cx - head_r * 0.3, top - head_r * 1.3, cx + head_r * 0.3, top - head_r * 0.7), fill=look.accent)
    # eyes: the accent colour, so a face reads at any size
    er = max(1.0, head_r * 0.16)
    for s in (-1, 1):
        ex = cx + s * head_r * 0.4
        d.ellipse((ex - er, hy - er, ex + er, hy + er), fill=look.accent)


def render_sheet(name: str, appearance: str, size: tuple[int, int]) -> bytes:
    """A reference sheet: the silhouette in its colours on a plain background, with the name."""
    look = look_for(name, appearance)
    w, h = size
    img = Image.new("RGB", size, SHEET_BACKGROUND)
    d = ImageDraw.Draw(img)
    font_px = max(10, round(min(size) * 0.07))
    font = ImageFont.load_default(size=font_px)
    label_h = round(font_px * 1.8)
    height = (h - label_h) * 0.78
    draw_figure(d, look, w / 2, h - label_h - (h - label_h) * 0.06, height)
    text = " ".join(name.split()) or "(unnamed)"
    tw = d.textlength(text, font=font)
    d.text(((w - tw) / 2, h - label_h + (label_h - font_px) / 2), text, font=font, fill=(30, 30, 34))
    info = PngInfo()
    info.add_text(SHEET_KEY, look.to_json())
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def look_from_sheet(name: str, appearance: str, png: bytes) -> Look:
    """The look a sheet shows: an animatic sheet says it in its text chunk; another provider's sheet
    gives its two most common colours apart from the background (the silhouette comes from the name)."""
    base = look_for(name, appearance)
    try:
        with Image.open(io.BytesIO(png)) as im:
            text = getattr(im, "text", {}).get(SHEET_KEY)
            if text:
                return Look.from_json(text)
            small = im.convert("RGB").resize((64, 64), Image.Resampling.NEAREST)
    except (OSError, ValueError, KeyError):
        return base
    corner = small.getpixel((0, 0))
    background: RGB = (corner[0], corner[1], corner[2]) if isinstance(corner, tuple) else (0, 0, 0)
    counts = sorted(small.quantize(8, dither=Image.Dither.NONE).convert("RGB").getcolors(64 * 64) or [], reverse=True)
    picked: list[RGB] = []
    for _n, c in counts:
        if isinstance(c, tuple):
            rgb = (int(c[0]), int(c[1]), int(c[2]))
            if _distance(rgb, background) > 60:
                picked.append(rgb)
    if not picked:
        return base
    body = picked[0]
    accent = picked[1] if len(picked) > 1 else base.accent
    return Look(
        body=(body[0], body[1], body[2]),
        accent=(accent[0], accent[1], accent[2]),
        build=base.build,
        head=base.head,
        extra=base.extra,
        height=base.height,
        width=base.width,
    )
