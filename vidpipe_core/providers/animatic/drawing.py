"""Keyframe painting: Pillow drawings whose palette comes from the style, whose composition comes
from the frame prompt's words, and whose characters are drawn as their sheets show them."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

from PIL import Image, ImageColor, ImageDraw

from vidpipe_core.providers.animatic import figures
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


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    w, h = size
    column = Image.new("RGB", (1, h))
    column.putdata([_mix(top, bottom, y / max(1, h - 1)) for y in range(h)])
    return column.resize((w, h), Image.Resampling.NEAREST)


def _words(prompt: str) -> list[str]:
    head = prompt.split("\n\n", 1)[0]  # the frame prompt, without the shared style suffix
    return [w for w in re.findall(r"[a-z][a-z'-]+", head.lower()) if w not in _STOPWORDS]


class _Composer:
    """Draws one keyframe's composition; every position, size and colour comes from hashes of the words."""

    def __init__(self, size: tuple[int, int], prompt: str, palette: list[RGB]) -> None:
        self.w, self.h = size
        self.prompt = prompt
        self.words = _words(prompt) or ["scene"]
        self.palette = sorted(palette, key=_luma)
        self.horizon = round(self.h * (0.56 + 0.14 * _unit("horizon", prompt)))

    def colour(self, *key: object) -> RGB:
        return self.palette[int(_unit(*key) * len(self.palette))]

    def sky(self) -> Image.Image:
        dark, light = self.palette[0], self.palette[-1]
        mid = self.palette[len(self.palette) // 2]
        night = any(w in ("night", "moon", "dark", "midnight", "stars") for w in self.words)
        return _gradient((self.w, self.h), dark if night else _mix(mid, dark, 0.3), _mix(mid, light, 0.5))

    def draw(self, img: Image.Image, characters: Sequence[figures.Look]) -> None:
        d = ImageDraw.Draw(img)
        self._sun(d)
        self._hills(d)
        for i, word in enumerate(sorted(set(self.words), key=lambda w: (-len(w), w))[:3]):
            self._landmark(d, word, i)
        for i, look in enumerate(characters[:3]):
            self._figure(d, look, i, len(characters[:3]))

    def _sun(self, d: ImageDraw.ImageDraw) -> None:
        r = round(self.h * (0.07 + 0.06 * _unit("sun-r", self.prompt)))
        cx = round(self.w * (0.15 + 0.7 * _unit("sun-x", self.prompt)))
        cy = round(self.horizon * (0.25 + 0.45 * _unit("sun-y", self.prompt)))
        glow = _mix(self.palette[-1], self.palette[len(self.palette) // 2], 0.4)
        d.ellipse((cx - r * 1.6, cy - r * 1.6, cx + r * 1.6, cy + r * 1.6), fill=_mix(glow, self.palette[0], 0.35))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=self.palette[-1])

    def _hills(self, d: ImageDraw.ImageDraw) -> None:
        for layer, (depth, shade) in enumerate(((0.0, 0.35), (0.06, 0.65))):
            base = self.horizon + round(self.h * depth)
            amp = self.h * (0.03 + 0.05 * _unit("amp", layer, self.prompt))
            phase = _unit("phase", layer, self.prompt) * 6.283
            freq = 1.5 + 2.5 * _unit("freq", layer, self.prompt)
            pts = [(x, base - amp * (1 + math.sin(phase + freq * 6.283 * x / self.w)) / 2) for x in range(0, self.w + 8, 8)]
            ground = _mix(self.palette[1 % len(self.palette)], self.palette[0], shade)
            d.polygon([(0, self.h), *pts, (self.w, self.h)], fill=ground)

    def _landmark(self, d: ImageDraw.ImageDraw, word: str, i: int) -> None:
        kind = int(_unit("kind", word) * 3)
        x = round(self.w * (0.08 + 0.84 * _unit("x", word, i)))
        size = self.h * (0.10 + 0.16 * _unit("size", word))
        base = self.horizon + round(self.h * 0.03 * i)
        fill = _mix(self.colour("landmark", word), self.palette[0], 0.3)
        if kind == 0:  # tree / spire
            d.polygon([(x, base - size), (x - size * 0.35, base), (x + size * 0.35, base)], fill=fill)
        elif kind == 1:  # building
            d.rectangle((x - size * 0.25, base - size, x + size * 0.25, base), fill=fill)
            d.rectangle((x - size * 0.12, base - size * 0.8, x - size * 0.02, base - size * 0.65), fill=self.palette[-1])
        else:  # rock / dome
            d.ellipse((x - size * 0.45, base - size * 0.5, x + size * 0.45, base + size * 0.2), fill=fill)

    def _figure(self, d: ImageDraw.ImageDraw, look: figures.Look, i: int, n: int) -> None:
        """A character as its sheet draws it (same silhouette, same colours); only its place is the frame's."""
        slot = (i + 0.5) / n
        x = self.w * (0.15 + 0.7 * (0.7 * slot + 0.3 * _unit("fig-x", i, self.prompt)))
        feet = min(self.horizon + self.h * 0.1, caption_box((self.w, self.h))[1] - self.h * 0.02)
        figures.draw_figure(d, look, x, feet, self.h * look.height)


def render_keyframe(request: KeyframeRequest, size: tuple[int, int]) -> bytes:
    """One keyframe, composed from its own prompt alone: sky, hills, landmarks and the characters the
    frame lists, drawn from their sheets. The previous frame is not blended in (that piled up
    see-through copies frame after frame); continuity is the pipeline's (frame k is shared by two
    scenes). No caption: frame k belongs to two scenes, so each clip draws its own scene's caption."""
    palette = resolve_palette(request.style)
    composer = _Composer(size, request.prompt, palette)
    img = composer.sky()
    composer.draw(img, [figures.look_from_sheet(c.name, c.appearance, c.png) for c in request.characters])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
