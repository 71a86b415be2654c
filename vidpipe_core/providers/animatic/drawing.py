"""Keyframe painting: Pillow drawings whose light comes from the time of day the frame prompt names
(dawn: a low sun in a warm sky; night: a moon and stars in a dark one), whose palette comes from the
style, whose ground, water and landmarks come from its words, and whose characters are drawn as their
sheets show them."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

from PIL import Image, ImageColor, ImageDraw

from vidpipe_core.providers.animatic import figures
from vidpipe_core.providers.animatic.lexicon import (
    Kind,
    Landmark,
    TimeOfDay,
    scenery,
    shows_snow,
    shows_water,
    time_of_day,
)
from vidpipe_core.providers.animatic.motion import caption_box
from vidpipe_core.providers.animatic.planner import _STOPWORDS, _hash_palette, _unit
from vidpipe_core.providers.base import KeyframeRequest
from vidpipe_core.schemas import StyleGuide

RGB = tuple[int, int, int]


def _parse_colour(text: str) -> RGB | None:
    try:
        c = ImageColor.getrgb(text.strip())
    except (ValueError, AttributeError):
        return None
    return (c[0], c[1], c[2])


def resolve_palette(style: StyleGuide) -> list[RGB]:
    """RGB colours of the style guide; names Pillow does not know (LLM palettes) fall back to a hash palette."""
    colours = [c for c in (_parse_colour(t) for t in style.color_palette) if c is not None]
    if len(colours) < 3:
        colours += [c for c in (_parse_colour(t) for t in _hash_palette(style.visual_style.lower())) if c is not None][
            : 5 - len(colours)
        ]
    return colours


def _luma(c: RGB) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def _words(prompt: str) -> list[str]:
    head = prompt.split("\n\n", 1)[0]  # the frame prompt, without the shared style suffix
    return [w for w in re.findall(r"[a-z][a-z'-]+", head.lower()) if w not in _STOPWORDS]


# Sky colours by the time of day (top of the sky, at the horizon), the light's disc and its glow.
SKIES: dict[TimeOfDay, tuple[RGB, RGB]] = {
    "dawn": ((64, 74, 138), (252, 176, 124)),
    "day": ((84, 148, 222), (198, 228, 246)),
    "dusk": ((56, 42, 102), (238, 112, 74)),
    "night": ((6, 10, 30), (30, 40, 84)),
}
SUN: dict[TimeOfDay, RGB] = {"dawn": (255, 200, 96), "day": (255, 248, 214), "dusk": (248, 102, 52)}
MOON: RGB = (234, 234, 220)
STAR: RGB = (226, 228, 210)
DEEP_WATER: RGB = (24, 64, 104)
SNOW: RGB = (236, 240, 246)
MAX_FIGURES = 4
FLOATING: tuple[Kind, ...] = ("boat", "bird")  # drawn on the water in a scene with water


class _Composer:
    """Draws one keyframe's composition: the light and sky from the time of day the prompt names, the
    ground (or water) and the landmarks its words name; every remaining position, size and colour
    comes from hashes of the words."""

    def __init__(self, size: tuple[int, int], prompt: str, palette: list[RGB], take: str = "") -> None:
        self.w, self.h = size
        # The words decide what is drawn; a retake's token moves only what the hashes place.
        self.prompt = f"{prompt}\x1ftake {take}" if take else prompt
        self.words = _words(prompt) or ["scene"]
        self.palette = sorted(palette, key=_luma)
        self.time = time_of_day(prompt.split("\n\n", 1)[0])
        self.water = shows_water(self.words)
        self.snow = shows_snow(self.words)
        low, span = (0.5, 0.08) if self.water else (0.56, 0.14)
        self.horizon = round(self.h * (low + span * _unit("horizon", self.prompt)))
        self.bank = round(self.horizon + self.h * 0.14)  # a scene with water: the near bank, where walkers stand
        self.sky_top, self.sky_low = self._sky_colours()

    def colour(self, *key: object) -> RGB:
        return self.palette[int(_unit(*key) * len(self.palette))]

    def _sky_colours(self) -> tuple[RGB, RGB]:
        dark, light = self.palette[0], self.palette[-1]
        mid = self.palette[len(self.palette) // 2]
        if self.time is None:  # no time of day named: the style's palette lights the scene
            night = any(w in ("dark", "stars") for w in self.words)
            return (dark if night else _mix(mid, dark, 0.3)), _mix(mid, light, 0.5)
        top, low = SKIES[self.time]
        tint = 0.12 if self.time == "night" else 0.18  # the style tints the light, it does not replace it
        return _mix(top, mid, tint), _mix(low, mid, tint * 0.7)

    def sky(self) -> Image.Image:
        """The sky's gradient, reaching its horizon colour at the horizon."""
        column = Image.new("RGB", (1, self.h))
        column.putdata([_mix(self.sky_top, self.sky_low, min(1.0, y / max(1, self.horizon))) for y in range(self.h)])
        return column.resize((self.w, self.h), Image.Resampling.NEAREST)

    def _ground(self, shade: float) -> RGB:
        ground = _mix(self.palette[1 % len(self.palette)], self.palette[0], shade)
        if self.snow:
            ground = _mix(SNOW, ground, 0.15 + 0.2 * shade)
        if self.time == "night":
            return _mix(ground, (4, 6, 18), 0.55)
        if self.time in ("dawn", "dusk"):
            return _mix(ground, self.sky_low, 0.12)
        return ground

    def draw(self, img: Image.Image, characters: Sequence[figures.Look]) -> None:
        d = ImageDraw.Draw(img)
        self._light(d)
        named = scenery(self.words)
        for i, (word, kind) in enumerate(w for w in named if w[1] == "peak"):
            self._landmark(d, word, kind, i)
        self._hills(d)
        if self.water:
            self._water(d, bank=any(look.kind not in FLOATING for look in characters[:MAX_FIGURES]))
        landmarks = [w for w in named if w[1] != "peak"][:3]
        if not named and not self.water:  # words that name no scenery: landmarks from their hashes
            landmarks = [
                (word, LANDMARKS[int(_unit("kind", word) * 3)])
                for word in sorted(set(self.words), key=lambda w: (-len(w), w))[:3]
            ]
        for i, (word, kind) in enumerate(landmarks):
            self._landmark(d, word, kind, i)
        shown = list(characters[:MAX_FIGURES])
        # On water, what floats is behind what stands on the near bank.
        order = sorted(range(len(shown)), key=lambda i: self.water and shown[i].kind not in FLOATING)
        for i in order:
            self._figure(d, shown[i], i, len(shown))

    # --- the light --------------------------------------------------------------------------

    def _light(self, d: ImageDraw.ImageDraw) -> None:
        if self.time is None:
            self._palette_sun(d)
        elif self.time == "night":
            self._moon(d)
        else:
            self._sun(d, self.time)

    def _palette_sun(self, d: ImageDraw.ImageDraw) -> None:
        r = round(self.h * (0.07 + 0.06 * _unit("sun-r", self.prompt)))
        cx = round(self.w * (0.15 + 0.7 * _unit("sun-x", self.prompt)))
        cy = round(self.horizon * (0.25 + 0.45 * _unit("sun-y", self.prompt)))
        glow = _mix(self.palette[-1], self.palette[len(self.palette) // 2], 0.4)
        d.ellipse((cx - r * 1.6, cy - r * 1.6, cx + r * 1.6, cy + r * 1.6), fill=_mix(glow, self.palette[0], 0.35))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=self.palette[-1])

    def sun_place(self) -> tuple[int, int, int]:
        """Centre and radius of the sun: low on the horizon at dawn and dusk (the hills hide its lower
        part), high in the day."""
        r = round(self.h * (0.07 + 0.04 * _unit("sun-r", self.prompt)))
        cx = round(self.w * (0.15 + 0.7 * _unit("sun-x", self.prompt)))
        if self.time == "day":
            cy = round(self.horizon * (0.2 + 0.15 * _unit("sun-y", self.prompt)))
        else:
            cy = round(self.horizon - r * (0.2 + 0.5 * _unit("sun-y", self.prompt)))
        return cx, cy, r

    def _sun(self, d: ImageDraw.ImageDraw, time: TimeOfDay) -> None:
        cx, cy, r = self.sun_place()
        sun = SUN[time]
        for scale, weight in ((2.2, 0.22), (1.5, 0.45)):  # the glow: rings between the sky and the sun
            sky_here = _mix(self.sky_top, self.sky_low, min(1.0, cy / max(1, self.horizon)))
            g = r * scale
            d.ellipse((cx - g, cy - g, cx + g, cy + g), fill=_mix(sky_here, sun, weight))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=sun)

    def _moon(self, d: ImageDraw.ImageDraw) -> None:
        for k in range(28):  # stars
            x = round(self.w * _unit("star-x", k, self.prompt))
            y = round(self.horizon * 0.85 * _unit("star-y", k, self.prompt))
            s = 1 if _unit("star-s", k, self.prompt) < 0.7 else 2
            d.rectangle((x, y, x + s - 1, y + s - 1), fill=STAR)
        r = round(self.h * (0.06 + 0.03 * _unit("moon-r", self.prompt)))
        cx = round(self.w * (0.15 + 0.7 * _unit("moon-x", self.prompt)))
        cy = round(self.horizon * (0.22 + 0.2 * _unit("moon-y", self.prompt)))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=MOON)
        shadow = _mix(self.sky_top, self.sky_low, cy / max(1, self.horizon))  # the crescent's dark side
        off = r * 0.55
        d.ellipse((cx - r + off, cy - r - off * 0.4, cx + r + off, cy + r - off * 0.4), fill=shadow)

    # --- the land -----------------------------------------------------------------------------

    def _hills(self, d: ImageDraw.ImageDraw) -> None:
        layers = ((0.0, 0.35),) if self.water else ((0.0, 0.35), (0.06, 0.65))  # water: only the far shore
        for layer, (depth, shade) in enumerate(layers):
            base = self.horizon + round(self.h * depth)
            amp = self.h * (0.03 + 0.05 * _unit("amp", layer, self.prompt))
            phase = _unit("phase", layer, self.prompt) * 6.283
            freq = 1.5 + 2.5 * _unit("freq", layer, self.prompt)
            pts = [(x, base - amp * (1 + math.sin(phase + freq * 6.283 * x / self.w)) / 2) for x in range(0, self.w + 8, 8)]
            d.polygon([(0, self.h), *pts, (self.w, self.h)], fill=self._ground(shade))

    def _water(self, d: ImageDraw.ImageDraw, *, bank: bool) -> None:
        """Water from the far shore down, ripples, the light's reflection; a near bank when a figure
        must stand somewhere."""
        top = _mix(self.sky_low, DEEP_WATER, 0.45)
        bottom = _mix(self.sky_top, DEEP_WATER, 0.7)
        for y in range(self.horizon, self.h):
            d.line((0, y, self.w, y), fill=_mix(top, bottom, (y - self.horizon) / max(1, self.h - self.horizon)))
        glint = _mix(top, self.sky_low if self.time != "night" else MOON, 0.55)
        for k in range(10):
            y = self.horizon + round((self.h - self.horizon) * (0.06 + 0.9 * _unit("ripple-y", k, self.prompt)))
            x = self.w * _unit("ripple-x", k, self.prompt)
            half = self.w * (0.04 + 0.06 * _unit("ripple-w", k, self.prompt))
            d.line((x - half, y, x + half, y), fill=glint, width=max(1, self.h // 180))
        if self.time in ("dawn", "dusk", "day"):  # the sun's path on the water
            cx, _cy, r = self.sun_place()
            sun = SUN[self.time]
            for k, y in enumerate(range(self.horizon + 2, self.h, max(2, self.h // 40))):
                half = r * (0.9 - 0.5 * (y - self.horizon) / max(1, self.h - self.horizon)) * (0.6 + 0.4 * (k % 2))
                d.line((cx - half, y, cx + half, y), fill=_mix(top, sun, 0.6), width=max(1, self.h // 180))
        if bank:
            amp = self.h * 0.02
            phase = _unit("bank", self.prompt) * 6.283
            pts = [(x, self.bank - amp * (1 + math.sin(phase + 6.283 * x / self.w)) / 2) for x in range(0, self.w + 8, 8)]
            d.polygon([(0, self.h), *pts, (self.w, self.h)], fill=self._ground(0.65))

    def _landmark(self, d: ImageDraw.ImageDraw, word: str, kind: Landmark, i: int) -> None:
        x = round(self.w * (0.08 + 0.84 * _unit("x", word, i)))
        size = self.h * (0.10 + 0.16 * _unit("size", word)) * (0.8 if self.water else 1.0)
        base = self.horizon + (0 if self.water else round(self.h * 0.03 * i))
        fill = _mix(self.colour("landmark", word), self.palette[0], 0.3)
        if self.time == "night":
            fill = _mix(fill, (4, 6, 18), 0.5)
        lit = (250, 214, 120) if self.time in ("night", "dusk") else self.palette[-1]  # windows
        if kind == "tree":  # a stand of conifers on their trunks
            for k, (dx, hs) in enumerate(((-0.32, 0.75), (0.0, 1.0), (0.3, 0.85))):
                tx, top = x + size * dx, base - size * hs
                d.rectangle((tx - size * 0.04, base - size * 0.2, tx + size * 0.04, base), fill=_mix(fill, (40, 28, 20), 0.5))
                d.polygon(
                    [(tx, top), (tx - size * 0.28, base - size * 0.16), (tx + size * 0.28, base - size * 0.16)],
                    fill=_mix(fill, self.palette[0], 0.12 * k),
                )
        elif kind == "building":  # a row of houses
            for k, (dx, hs) in enumerate(((-0.3, 0.8), (0.0, 1.0), (0.3, 0.65))):
                left = x + size * (dx - 0.14)
                d.rectangle((left, base - size * hs, left + size * 0.28, base), fill=_mix(fill, self.palette[0], 0.1 * k))
                d.rectangle((left + size * 0.08, base - size * hs * 0.8, left + size * 0.16, base - size * hs * 0.65), fill=lit)
        elif kind == "peak":  # a mountain behind the hills
            big = size * 2.2
            d.polygon([(x, base - big), (x - big * 0.8, base), (x + big * 0.8, base)], fill=_mix(fill, self.sky_low, 0.35))
        else:  # a rock
            d.ellipse((x - size * 0.45, base - size * 0.5, x + size * 0.45, base + size * 0.2), fill=fill)

    def _figure(self, d: ImageDraw.ImageDraw, look: figures.Look, i: int, n: int) -> None:
        """A character as its sheet draws it (same kind, silhouette and colours); only its place is
        the frame's: on the water if it floats and the scene has water, else on the ground."""
        slot = (i + 0.5) / n
        x = self.w * (0.15 + 0.7 * (0.7 * slot + 0.3 * _unit("fig-x", i, self.prompt)))
        if self.water and look.kind in FLOATING:
            ground = self.horizon + self.h * 0.1
        elif self.water:
            ground = self.bank + self.h * 0.04
        else:
            ground = self.horizon + self.h * 0.1
        feet = min(ground, caption_box((self.w, self.h))[1] - self.h * 0.02)
        unit_w = figures.figure_box(look, 1.0)[0]
        height = min(self.h * look.height, self.w * 0.4 / unit_w)  # a boat in a tall frame: at most 40 % of its width
        figures.draw_figure(d, look, x, feet, height)


LANDMARKS: tuple[Landmark, ...] = ("tree", "building", "rock")  # for words no scenery names


def render_keyframe(request: KeyframeRequest, size: tuple[int, int]) -> bytes:
    """One keyframe, composed from its own prompt alone: sky, hills, landmarks and the characters the
    frame lists, drawn from their sheets. The previous frame is not blended in (that piled up
    see-through copies frame after frame); continuity is the pipeline's (frame k is shared by two
    scenes). No caption: frame k belongs to two scenes, so each clip draws its own scene's caption."""
    palette = resolve_palette(request.style)
    composer = _Composer(size, request.prompt, palette, request.variant)
    img = composer.sky()
    composer.draw(img, [figures.look_from_sheet(c.name, c.appearance, c.png) for c in request.characters])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
