"""Characters drawn the same way everywhere: one silhouette and two colours per character, fixed by
its name and appearance, drawn on its reference sheet and in every keyframe that lists it. The
silhouette is the character's kind (``lexicon.kind_of``): a person, an animal on four legs, a bird in
profile with a beak, a boat with a hull and a sail, a vehicle on wheels, a building, an object.

The sheet is the source: a keyframe reads the character's look back from the sheet's PNG (a text
chunk the animatic writes; for a sheet from another provider, its two dominant colours)."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

from PIL import Image, ImageColor, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from vidpipe_core.providers.animatic.lexicon import COLOUR_WORDS, KINDS, Kind, kind_of
from vidpipe_core.providers.animatic.planner import _unit

__all__ = ["COLOUR_WORDS", "Look", "colours_named", "draw_figure", "figure_box", "look_for", "look_from_sheet", "render_sheet"]

RGB = tuple[int, int, int]

SHEET_KEY = "vidpipe:character"  # PNG text chunk of an animatic sheet: the look as JSON
SHEET_BACKGROUND: RGB = (236, 234, 228)

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
    """How a character is drawn: its kind, body and accent colours, and a silhouette variant."""

    body: RGB
    accent: RGB
    # The kind's variant: a person's 0 capsule / 1 cloak / 2 round; a boat's 0 paper / 1 sail / 2 cabin;
    # a bird's 0 swimming / 1 upright / 2 round / 3 owl; a building's 0 house / 1 tower; an object's 0 balloon / 1 kite.
    build: int
    head: int  # a person's 0 round / 1 square head; the way an animal, a bird or a vehicle faces: 0 right, 1 left
    extra: int  # a person's 0 none / 1 ears / 2 hat / 3 antenna; an animal's ears: even pointed, odd round
    height: float  # fraction of the frame height
    width: float  # body width as a fraction of its height
    kind: Kind = "person"  # a sheet written before kinds existed drew a person

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
                "kind": self.kind,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Look:
        d = json.loads(text)
        body, accent = ImageColor.getrgb(d["body"]), ImageColor.getrgb(d["accent"])
        kind = str(d.get("kind", "person"))
        return cls(
            body=(body[0], body[1], body[2]),
            accent=(accent[0], accent[1], accent[2]),
            build=int(d["build"]),
            head=int(d["head"]),
            extra=int(d["extra"]),
            height=float(d["height"]),
            width=float(d["width"]),
            kind=next((k for k in KINDS if k == kind), "person"),
        )


# Variants a word decides (the rest come from the name's hash).
_OWLS = frozenset("owl owlet".split())
_UPRIGHT_BIRDS = frozenset("penguin eagle hawk parrot crow raven pigeon dove".split())
_SWIMMING_BIRDS = frozenset("duck duckling swan goose gull seagull pelican".split())
_SAILING_BOATS = frozenset("sailboat yacht ship".split())
_TOWERS = frozenset("lighthouse tower windmill castle".split())


def _variant(kind: Kind, key: str) -> int:
    words = set(key.replace("-", " ").split())
    if kind == "boat":
        return 0 if "paper" in words else 1 if words & _SAILING_BOATS else 1 + int(_unit("boat", key) * 2)
    if kind == "bird":
        if words & _OWLS:
            return 3
        return 1 if words & _UPRIGHT_BIRDS else 0 if words & _SWIMMING_BIRDS else 1 + int(_unit("bird", key) * 2)
    if kind == "building":
        return 1 if words & _TOWERS else 0
    if kind == "object":
        return 1 if "kite" in words else 0
    return int(_unit("build", key) * 3)


def look_for(name: str, appearance: str, take: str = "") -> Look:
    """A character's look: its kind from its words, the colours its appearance names (else stable
    colours from its name), a silhouette variant from its name; a retake's token varies what the
    hashes choose (not the kind or the named colours)."""
    key = name.strip().lower() + (f"\x1ftake {take}" if take else "")
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
    kind = kind_of(name, appearance)
    return Look(
        body=body,
        accent=accent,
        build=_variant(kind, key),
        head=int(_unit("head", key) * 2),
        extra=int(_unit("extra", key) * 4),
        height=round(0.26 + 0.08 * _unit("height", key), 4),
        width=round(0.30 + 0.12 * _unit("width", key), 4),
        kind=kind,
    )


# Each kind's drawn size in units of the look's height: (width, height).
_BOX: dict[Kind, tuple[float, float]] = {
    "person": (0.0, 1.0),  # its width is the look's own
    "animal": (0.95, 0.68),
    "bird": (0.72, 0.6),
    "boat": (1.05, 0.85),
    "vehicle": (1.15, 0.55),
    "building": (0.8, 1.25),
    "object": (0.5, 0.7),
}


def figure_box(look: Look, height: float) -> tuple[float, float]:
    """Width and height in pixels of the figure ``draw_figure`` draws at ``height``."""
    if look.kind == "person":
        return height * look.width * 1.3, height  # a hat or an antenna rises a little above
    w, h = _BOX[look.kind]
    return height * w, height * h


class _Pen:
    """Coordinates in the figure's own box: u from its back (0) to its front (1), mirrored when it
    faces left; v from its bottom (0) to its top (1). Records the parts it draws."""

    def __init__(self, d: ImageDraw.ImageDraw, cx: float, feet: float, w: float, h: float, facing: int) -> None:
        self.d, self.cx, self.feet, self.w, self.h, self.facing = d, cx, feet, w, h, facing
        self.parts: list[str] = []

    def x(self, u: float) -> float:
        return self.cx + self.facing * (u - 0.5) * self.w

    def y(self, v: float) -> float:
        return self.feet - v * self.h

    def box(self, u0: float, v0: float, u1: float, v1: float) -> tuple[float, float, float, float]:
        xa, xb = sorted((self.x(u0), self.x(u1)))
        return xa, self.y(v1), xb, self.y(v0)

    def polygon(self, part: str, points: list[tuple[float, float]], fill: RGB) -> None:
        self.d.polygon([(self.x(u), self.y(v)) for u, v in points], fill=fill)
        self.parts.append(part)

    def ellipse(self, part: str, u0: float, v0: float, u1: float, v1: float, fill: RGB) -> None:
        self.d.ellipse(self.box(u0, v0, u1, v1), fill=fill)
        self.parts.append(part)

    def rect(self, part: str, u0: float, v0: float, u1: float, v1: float, fill: RGB, radius: float = 0.0) -> None:
        box = self.box(u0, v0, u1, v1)
        if radius > 0:
            self.d.rounded_rectangle(box, radius=max(1, round(radius * min(box[2] - box[0], box[3] - box[1]))), fill=fill)
        else:
            self.d.rectangle(box, fill=fill)
        self.parts.append(part)

    def line(self, part: str, u0: float, v0: float, u1: float, v1: float, fill: RGB, width: float) -> None:
        self.d.line((self.x(u0), self.y(v0), self.x(u1), self.y(v1)), fill=fill, width=max(1, round(width * self.h)))
        self.parts.append(part)


def _boat(p: _Pen, look: Look) -> None:
    """A hull wider at the deck than at the keel; a paper boat's folded peak, a sail, or a cabin above."""
    p.polygon("hull", [(0.0, 0.42), (1.0, 0.42), (0.84, 0.0), (0.16, 0.0)], look.body)
    p.rect("deck stripe", 0.06, 0.3, 0.94, 0.38, look.accent)
    if look.build == 0:  # a paper boat: one folded triangle on the hull
        p.polygon("sail", [(0.24, 0.42), (0.76, 0.42), (0.5, 1.0)], look.body)
        p.line("fold", 0.5, 0.42, 0.5, 0.98, look.accent, 0.025)
    elif look.build == 1:  # a sailboat: mast, mainsail and jib
        p.line("mast", 0.5, 0.42, 0.5, 1.0, look.accent, 0.03)
        p.polygon("sail", [(0.53, 0.98), (0.53, 0.48), (0.88, 0.48)], look.body)
        p.polygon("jib", [(0.47, 0.86), (0.47, 0.48), (0.2, 0.48)], look.body)
    else:  # a cabin boat: a cabin and a funnel
        p.rect("cabin", 0.28, 0.42, 0.7, 0.68, look.body)
        p.rect("window", 0.36, 0.5, 0.46, 0.6, look.accent)
        p.rect("funnel", 0.46, 0.68, 0.6, 0.98, look.accent)


def _bird(p: _Pen, look: Look) -> None:
    """A bird in profile: a body, a wing, a tail, a head with a beak pointing the way it faces."""
    if look.build in (1, 3):  # upright (a crow; 3: an owl, with ear tufts): a tall body, the head on top, two legs
        p.line("leg", 0.42, 0.0, 0.42, 0.14, look.accent, 0.04)
        p.line("leg", 0.58, 0.0, 0.58, 0.14, look.accent, 0.04)
        p.polygon("tail", [(0.3, 0.38), (0.06, 0.16), (0.3, 0.2)], look.body)
        p.ellipse("body", 0.2, 0.1, 0.8, 0.72, look.body)
        p.ellipse("wing", 0.28, 0.24, 0.56, 0.58, look.accent)
        head = (0.58, 0.8, 0.2)
        if look.build == 3:  # ear tufts
            p.polygon("tuft", [(0.44, 0.9), (0.46, 1.02), (0.54, 0.94)], look.body)
            p.polygon("tuft", [(0.62, 0.94), (0.7, 1.02), (0.72, 0.9)], look.body)
    elif look.build == 0:  # swimming (a duck, a swan): a long low body, the head up on a neck
        p.polygon("tail", [(0.14, 0.32), (0.0, 0.58), (0.3, 0.44)], look.body)
        p.ellipse("body", 0.04, 0.0, 0.8, 0.5, look.body)
        p.ellipse("wing", 0.22, 0.16, 0.58, 0.4, look.accent)
        p.rect("neck", 0.6, 0.35, 0.76, 0.75, look.body)
        head = (0.7, 0.8, 0.19)
    else:  # small and round (a sparrow): a round body, two legs
        p.line("leg", 0.4, 0.0, 0.4, 0.16, look.accent, 0.04)
        p.line("leg", 0.55, 0.0, 0.55, 0.16, look.accent, 0.04)
        p.polygon("tail", [(0.18, 0.4), (0.0, 0.62), (0.3, 0.55)], look.body)
        p.ellipse("body", 0.1, 0.12, 0.82, 0.7, look.body)
        p.ellipse("wing", 0.22, 0.3, 0.56, 0.56, look.accent)
        head = (0.7, 0.76, 0.18)
    hu, hv, r = head
    ru = r * p.h / p.w  # the head's radius in u units: round in pixels
    p.ellipse("head", hu - ru, hv - r, hu + ru, hv + r, look.body)
    p.polygon(
        "beak", [(hu + ru * 0.7, hv + r * 0.3), (hu + ru * 0.7, hv - r * 0.35), (hu + ru * 2.3, hv - r * 0.05)], look.accent
    )
    p.ellipse("eye", hu + ru * 0.05, hv + r * 0.05, hu + ru * 0.45, hv + r * 0.45, look.accent)


def _animal(p: _Pen, look: Look) -> None:
    """An animal on four legs in profile: a body, a tail, a head with ears and a snout."""
    stocky = look.build == 1
    for u in (0.2, 0.32, 0.62, 0.74):
        p.rect("leg", u - 0.045, 0.0, u + 0.045, 0.36, look.body)
    p.rect("body", 0.14, 0.3, 0.8, 0.66 if stocky else 0.62, look.body, radius=0.45)
    p.ellipse("tail", 0.0, 0.42, 0.2, 0.78, look.body)
    p.ellipse("tail tip", 0.0, 0.64, 0.09, 0.78, look.accent)
    p.rect("collar", 0.66, 0.5, 0.74, 0.7, look.accent)
    r = 0.17
    ru = r * p.h / p.w
    hu, hv = 0.82, 0.74
    if look.extra % 2 == 0:  # pointed ears
        p.polygon(
            "ear", [(hu - ru * 0.9, hv + r * 0.5), (hu - ru * 0.6, hv + r * 1.55), (hu - ru * 0.1, hv + r * 0.8)], look.body
        )
        p.polygon(
            "ear", [(hu + ru * 0.1, hv + r * 0.8), (hu + ru * 0.5, hv + r * 1.55), (hu + ru * 0.85, hv + r * 0.5)], look.body
        )
    else:  # round ears
        p.ellipse("ear", hu - ru * 0.95, hv + r * 0.55, hu - ru * 0.25, hv + r * 1.35, look.body)
        p.ellipse("ear", hu + ru * 0.2, hv + r * 0.55, hu + ru * 0.9, hv + r * 1.35, look.body)
    p.ellipse("head", hu - ru, hv - r, hu + ru, hv + r, look.body)
    p.polygon(
        "snout",
        [(hu + ru * 0.6, hv + r * 0.2), (hu + ru * 0.6, hv - r * 0.75), (min(1.0, hu + ru * 1.6), hv - r * 0.45)],
        look.body,
    )
    p.ellipse("eye", hu + ru * 0.1, hv + r * 0.05, hu + ru * 0.45, hv + r * 0.4, look.accent)


def _vehicle(p: _Pen, look: Look) -> None:
    """A vehicle on two wheels in profile: a body, a cabin with a window."""
    p.rect("body", 0.0, 0.18, 1.0, 0.56, look.body, radius=0.3)
    p.polygon("cabin", [(0.22, 0.56), (0.3, 0.95), (0.7, 0.95), (0.82, 0.56)], look.body)
    p.polygon("window", [(0.32, 0.62), (0.37, 0.86), (0.66, 0.86), (0.72, 0.62)], look.accent)
    r = 0.2
    ru = r * p.h / p.w
    for u in (0.22, 0.78):
        p.ellipse("wheel", u - ru, 0.0, u + ru, 2 * r, look.accent)


def _building(p: _Pen, look: Look) -> None:
    """A house (walls, a roof, a door and windows) or a tower with a lamp."""
    if look.build == 1:
        p.polygon("tower", [(0.3, 0.0), (0.7, 0.0), (0.62, 0.82), (0.38, 0.82)], look.body)
        p.rect("lamp", 0.36, 0.82, 0.64, 0.92, look.accent)
        p.polygon("roof", [(0.32, 0.92), (0.68, 0.92), (0.5, 1.0)], look.body)
        p.rect("band", 0.32, 0.4, 0.68, 0.48, look.accent)
        return
    p.rect("walls", 0.08, 0.0, 0.92, 0.66, look.body)
    p.polygon("roof", [(0.0, 0.64), (1.0, 0.64), (0.5, 1.0)], look.accent)
    p.rect("door", 0.42, 0.0, 0.58, 0.3, look.accent)
    for u in (0.18, 0.66):
        p.rect("window", u, 0.38, u + 0.16, 0.54, look.accent)


def _object(p: _Pen, look: Look) -> None:
    """A balloon on its string, or a kite with its tail."""
    if look.build == 1:
        p.polygon("kite", [(0.5, 1.0), (0.95, 0.68), (0.5, 0.3), (0.05, 0.68)], look.body)
        p.line("spar", 0.5, 1.0, 0.5, 0.3, look.accent, 0.03)
        p.line("tail", 0.5, 0.3, 0.42, 0.0, look.accent, 0.03)
        return
    p.line("string", 0.5, 0.0, 0.5, 0.35, look.accent, 0.03)
    p.ellipse("balloon", 0.1, 0.3, 0.9, 1.0, look.body)
    p.ellipse("shine", 0.28, 0.72, 0.4, 0.88, look.accent)


_DRAW = {"boat": _boat, "bird": _bird, "animal": _animal, "vehicle": _vehicle, "building": _building, "object": _object}


def draw_figure(d: ImageDraw.ImageDraw, look: Look, cx: float, feet: float, height: float) -> tuple[str, ...]:
    """The character, standing on ``feet`` and centred on ``cx``, ``height`` tall for a person (other
    kinds take ``figure_box``'s share of it). Returns the parts it drew, in order."""
    if look.kind == "person":
        _person(d, look, cx, feet, height)
        return ("body", "belt", "head", *(("ears", "hat", "antenna")[look.extra - 1 : look.extra] if look.extra else ()), "eyes")
    w, h = figure_box(look, height)
    pen = _Pen(d, cx, feet, w, h, facing=-1 if look.head else 1)
    _DRAW[look.kind](pen, look)
    return tuple(pen.parts)


def _person(d: ImageDraw.ImageDraw, look: Look, cx: float, feet: float, height: float) -> None:
    """A standing figure: body, accent belt, head, extra (ears, a hat or an antenna), eyes."""
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
    belt_w = bw * 0.5
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


def render_sheet(name: str, appearance: str, size: tuple[int, int], take: str = "") -> bytes:
    """A reference sheet: the silhouette in its colours on a plain background, with the name."""
    look = look_for(name, appearance, take)
    w, h = size
    img = Image.new("RGB", size, SHEET_BACKGROUND)
    d = ImageDraw.Draw(img)
    font_px = max(10, round(min(size) * 0.07))
    font = ImageFont.load_default(size=font_px)
    label_h = round(font_px * 1.8)
    # As large as fits: 78 % of the room above the label, 86 % of the width.
    unit_w, unit_h = figure_box(look, 1.0)
    height = min((h - label_h) * 0.78 / unit_h, w * 0.86 / unit_w)
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
        kind=base.kind,
    )
