"""The offline provider: a free, deterministic preview of timing and continuity.

Storyboard: the prompt split into beats by a local planner. Keyframes: Pillow drawings whose
palette comes from the style and whose composition comes from the frame prompt's words.
Clips: camera moves and cross-dissolves from start frame to end frame (``media``).
No network, no key; the same input always gives the same bytes."""
from __future__ import annotations

import colorsys
import hashlib
import io
import math
import re
from collections.abc import Sequence

from PIL import Image, ImageColor, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from vidpipe_core import media
from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.config import ANIMATIC_DURATIONS, Settings
from vidpipe_core.errors import InvalidInput, MediaError, ProviderError
from vidpipe_core.providers.base import ClipOutcome, ClipOutcomeKind, ClipRequest, KeyframeRequest, PollCallback, Usage
from vidpipe_core.schemas import Character, ProjectSpec, ScenePlan, Storyboard, StyleGuide
from vidpipe_core.scratch import scratch_dir

MODEL = "animatic"
RGB = tuple[int, int, int]


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from any parts."""
    return int.from_bytes(_digest(*parts)[:6], "big") / float(1 << 48)


# --------------------------------------------------------------------------------------
# Planner
# --------------------------------------------------------------------------------------

_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+")
_THEN = re.compile(r",?\s+(?:and\s+then|then|after\s+that|afterwards|finally|next|later|meanwhile)\s+", re.I)
_CLAUSES = re.compile(r"\s*[,:—–]\s+(?:(?:and|but|or)\s+)?|\s+-\s+|\s+(?:while|until|before|as|and|but)\s+", re.I)

# A beat that must fill several scenes becomes a run of shots along one of these progressions.
SHORT_PROGRESSION = ("Establishing wide shot", "Closer view", "The action unfolds", "Resolution")
PROGRESSION = (
    "Establishing wide shot",
    "Closer view",
    "The action begins",
    "Detail close-up",
    "The moment builds",
    "Turning point",
    "Resolution",
    "Closing wide shot",
)
CAMERA_MOVES = ("slow push-in", "gentle pull-out", "slow pan left", "slow pan right")

PALETTES: dict[str, list[str]] = {
    "noir": ["#0b0b0d", "#2b2b30", "#6e6e73", "#c9c9c9", "#f2f2f2"],
    "sunset": ["#2d1b4e", "#7b2d5b", "#e0524a", "#f29e4c", "#ffd58a"],
    "neon": ["#0d0221", "#2d00f7", "#f20089", "#00f5d4", "#fee440"],
    "cyberpunk": ["#0a0a23", "#3a0ca3", "#f72585", "#4cc9f0", "#b5179e"],
    "pastel": ["#ffd6e0", "#c1e1c1", "#bde0fe", "#fff1b6", "#e2c2ff"],
    "forest": ["#1b3022", "#2f5233", "#5a7d4f", "#a3b18a", "#dad7cd"],
    "ocean": ["#03045e", "#0077b6", "#00b4d8", "#90e0ef", "#caf0f8"],
    "desert": ["#5e3023", "#b5651d", "#e4a672", "#f3d9b1", "#87ceeb"],
    "winter": ["#1d3557", "#457b9d", "#a8dadc", "#e8f1f2", "#ffffff"],
    "snow": ["#2b3a55", "#6c8ead", "#c9d6df", "#eef2f5", "#ffffff"],
    "autumn": ["#3d2314", "#8c3b1c", "#d9622b", "#f2a541", "#f7d488"],
    "night": ["#050a1f", "#10194a", "#273c75", "#8c9ed9", "#f5f3ce"],
    "golden": ["#3b2a1a", "#8a5a2b", "#d99a3d", "#f2c572", "#fff2cc"],
    "vintage": ["#3e2f25", "#7d5a44", "#b08968", "#ddb892", "#ede0d4"],
    "sepia": ["#2e2118", "#5c4033", "#8b6b4a", "#c2a37c", "#efe2c8"],
    "watercolor": ["#5b8e7d", "#8fc1b5", "#f4e285", "#f4a259", "#bc4b51"],
    "anime": ["#22223b", "#4a4e69", "#ff6b9a", "#8ecae6", "#ffe66d"],
    "cinematic": ["#0f2027", "#203a43", "#2c5364", "#e07a5f", "#f2cc8f"],
    "space": ["#000005", "#14213d", "#3c096c", "#9d4edd", "#e0aaff"],
    "jungle": ["#081c15", "#1b4332", "#40916c", "#95d5b2", "#ffd166"],
    "underwater": ["#001219", "#005f73", "#0a9396", "#94d2bd", "#e9d8a6"],
    "monochrome": ["#111111", "#444444", "#777777", "#aaaaaa", "#eeeeee"],
}

CAMERA_STYLES: dict[str, str] = {
    "handheld": "handheld camera, close framing, slight sway, natural light",
    "documentary": "observational documentary camera, long lens, patient framing",
    "anime": "dynamic anime framing, clean compositions, parallax pans",
    "noir": "low-key lighting, hard shadows, slow dolly moves, Dutch angles",
    "drone": "aerial drone shots, wide vistas, slow glides",
    "aerial": "aerial drone shots, wide vistas, slow glides",
}
DEFAULT_CAMERA = "steady cinematic camera, 35mm lens, slow push-ins, pull-outs and gentle pans"

CHARACTER_NOUNS = frozenset(
    "robot girl boy man woman child kid cat dog fox wolf bear bird owl knight astronaut detective dragon wizard witch "
    "princess prince king queen sailor pilot explorer traveler traveller dancer musician farmer soldier scientist "
    "monster ghost alien horse rabbit lion tiger elephant whale fish penguin hero heroine stranger couple family "
    "grandmother grandfather mother father baby student teacher chef painter".split()
)
_ARTICLE_SUBJECT = re.compile(
    r"\b(?:a|an|the|his|her|their|our|my)\s+((?:[a-z][a-z-]*\s+){0,2}?)(" + "|".join(sorted(CHARACTER_NOUNS)) + r")s?\b", re.I)
_NAME = re.compile(r"\b[A-Z][a-z]{2,}\b")
_NOT_NAMES = frozenset(
    "The Then And But When While After Before Finally Meanwhile Next Later Suddenly Slowly Inside Outside Under "
    "Over Into With From This That These Those There Here Scene Night Morning Evening Dawn Dusk Style Camera".split()
)
_STOPWORDS = frozenset(
    "a an the and or but then of in on at to from with into onto over under by for as is are was were be its it "
    "his her their our my this that these those while until before after up down out through across frame scene "
    "opening closing shot view style palette camera wide close closer moment".split()
)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" \t\n.;,:!?—–-")


def _split_one(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Split at ``pattern``; a fragment under two words is glued back to its neighbour with the
    original separator, so "returns and smiles" never loses "smiles"."""
    spans: list[list[int]] = []
    start = 0
    for m in [*pattern.finditer(text), None]:
        end = m.start() if m else len(text)
        fragment = _clean(text[start:end])
        if fragment:
            if spans and (len(fragment.split()) < 2 or len(_clean(text[spans[-1][0]:spans[-1][1]]).split()) < 2):
                spans[-1][1] = end
            else:
                spans.append([start, end])
        start = m.end() if m else start
    return [_clean(text[a:b]) for a, b in spans]


def _split(texts: Sequence[str], pattern: re.Pattern[str]) -> list[str]:
    return [part for t in texts for part in _split_one(t, pattern)]


def split_beats(prompt: str) -> list[str]:
    """Beats from coarse to fine: sentences and "then" first, clauses only when that is too few."""
    sentences = [_clean(s) for s in _SENTENCES.split(prompt) if _clean(s)]
    return _split(sentences, _THEN)


def _clause_beats(beats: list[str]) -> list[str]:
    finer = _split(beats, _CLAUSES)
    return finer if len(finer) > len(beats) else beats


def _merge(beats: list[str], n: int) -> list[str]:
    """Contiguous, evenly sized groups of beats."""
    k = len(beats)
    groups = [beats[i * k // n:(i + 1) * k // n] for i in range(n)]
    return ["; then ".join([g[0], *(_lower_first(b) for b in g[1:])]) for g in groups]


def _expand(beats: list[str], n: int) -> list[str]:
    """More scenes than beats: each beat gets a run of shots along PROGRESSION."""
    k = len(beats)
    counts = [n // k + (1 if i < n % k else 0) for i in range(k)]
    out = []
    for beat, m in zip(beats, counts):
        if m == 1:
            out.append(beat)
            continue
        out += [f"{phrase}: {_lower_first(beat)}" for phrase in _progression(m)]
    return out


def _progression(m: int) -> list[str]:
    """``m`` distinct shot phrases in story order (establishing first)."""
    if m <= 2:
        return list(SHORT_PROGRESSION[:m])
    if m <= len(SHORT_PROGRESSION):
        return [*SHORT_PROGRESSION[: m - 1], SHORT_PROGRESSION[-1]]
    p = len(PROGRESSION)
    if m <= p:
        return [PROGRESSION[round(j * (p - 1) / (m - 1))] for j in range(m)]
    return [f"{PROGRESSION[j * p // m]} ({j + 1}/{m})" for j in range(m)]


def scene_texts(prompt: str, n: int) -> list[str]:
    """Exactly ``n`` distinct, non-empty scene descriptions from a prompt."""
    if n < 1:
        raise InvalidInput("scenes", f"need at least one scene, got {n}")
    beats = split_beats(prompt)
    if not beats:
        raise InvalidInput("prompt", "the prompt has no words; describe what the video should show")
    if len(beats) < n:
        beats = _clause_beats(beats)
    beats = _merge(beats, n) if len(beats) > n else _expand(beats, n) if len(beats) < n else beats
    seen: set[str] = set()
    texts = []
    for i, b in enumerate(beats):
        text = b[0].upper() + b[1:]
        if text.lower() in seen:
            text = f"{text} (scene {i + 1})"
        seen.add(text.lower())
        texts.append(text)
    return texts


def _first_keyword(text: str, keywords: Sequence[str]) -> str | None:
    lowered = text.lower()
    hits = [(m.start(), k) for k in keywords if (m := re.search(rf"\b{re.escape(k)}", lowered))]
    return min(hits)[1] if hits else None


def _hash_palette(style: str) -> list[str]:
    base = _unit("palette", style)
    out = []
    for i, (dh, light, sat) in enumerate([(0.0, 0.15, 0.45), (0.06, 0.32, 0.5), (0.5, 0.55, 0.6), (0.56, 0.72, 0.55), (0.1, 0.88, 0.4)]):
        r, g, b = colorsys.hls_to_rgb((base + dh) % 1.0, light, sat)
        out.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return out


def palette_for(style: str) -> list[str]:
    """3-6 colours: a named palette for common style words, else colours derived from the style's hash."""
    key = _first_keyword(style, list(PALETTES))
    return list(PALETTES[key]) if key else _hash_palette(style.strip().lower())


def camera_style_for(style: str) -> str:
    key = _first_keyword(style, list(CAMERA_STYLES))
    return CAMERA_STYLES[key] if key else DEFAULT_CAMERA


def find_characters(prompt: str, palette: Sequence[str], limit: int = 4) -> list[Character]:
    """Recurring subjects: "a/the <adjective>* <character noun>" phrases and capitalised names."""
    found: dict[str, str] = {}   # key -> display name
    for m in _ARTICLE_SUBJECT.finditer(prompt):
        noun = m.group(2).lower()
        adjectives = " ".join(w for w in m.group(1).lower().split() if w not in _STOPWORDS)
        found.setdefault(noun, f"the {adjectives + ' ' if adjectives else ''}{noun}")
    for m in _NAME.finditer(prompt):
        word = m.group(0)
        if word not in _NOT_NAMES and word.lower() not in _STOPWORDS and word.lower() not in CHARACTER_NOUNS:
            found.setdefault(word.lower(), word)
    characters = []
    for key, name in list(found.items())[:limit]:
        colour = palette[int(_unit("character", key) * len(palette))]
        characters.append(Character(
            name=name,
            appearance=f"{name}, drawn the same in every shot: simple readable silhouette, {colour} accents, same proportions and outfit",
        ))
    return characters


def _title(prompt: str) -> str:
    beats = split_beats(prompt)
    words = re.findall(r"[\w'’-]+", beats[0] if beats else prompt)[:6]
    while len(words) > 1 and words[-1].lower() in _STOPWORDS:
        words.pop()
    title = " ".join(words)
    return (title[:1].upper() + title[1:]) if title else "Untitled"


_LOWERABLE = frozenset("a an the it its he she they we his her their our this that these those then there".split())


def _lower_first(text: str) -> str:
    """Lower-case the first word for use mid-sentence, unless it may be a name."""
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first.lower() in _LOWERABLE else text


def _scene_plan(i: int, texts: list[str], style: StyleGuide) -> ScenePlan:
    text = texts[i]
    move = CAMERA_MOVES[int(_unit("move", i, text) * len(CAMERA_MOVES))]
    nxt = texts[i + 1] if i + 1 < len(texts) else None
    end = f"Closing frame of scene {i + 1}: {_lower_first(text)}, the moment settled"
    end += f", composed so the next scene can begin from it ({_lower_first(nxt)})" if nxt else ", a calm final image"
    return ScenePlan(
        description=f"{text}.",
        start_frame_prompt=f"Opening frame of scene {i + 1}: {_lower_first(text)}. {style.visual_style}.",
        end_frame_prompt=f"{end}. {style.visual_style}.",
        motion_prompt=f"Camera: {move} while {_lower_first(text)}; subjects move naturally from the opening to the closing frame.",
        transition_notes=(f"Continuous cut: scene {i + 1}'s last frame is scene {i + 2}'s first frame." if nxt
                          else f"Final scene {i + 1}: hold on the last frame, then fade out."),
    )


def plan_storyboard(spec: ProjectSpec) -> Storyboard:
    style_text = spec.style.strip() or "cinematic"
    palette = palette_for(style_text)
    style = StyleGuide(visual_style=style_text, color_palette=palette, camera_style=camera_style_for(style_text),
                       characters=find_characters(spec.prompt, palette))
    texts = scene_texts(spec.prompt, spec.scenes)
    return Storyboard(title=_title(spec.prompt), style_guide=style,
                      scenes=[_scene_plan(i, texts, style) for i in range(len(texts))])


# --------------------------------------------------------------------------------------
# Keyframes
# --------------------------------------------------------------------------------------


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
        colours += [c for c in (_parse_colour(t) for t in _hash_palette(style.visual_style.lower()))][: 5 - len(colours)]
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
    head = prompt.split("\n\n", 1)[0]       # the frame prompt, without the shared style suffix
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

    def draw(self, img: Image.Image, characters: Sequence[Character]) -> None:
        d = ImageDraw.Draw(img)
        self._sun(d)
        self._hills(d)
        for i, word in enumerate(sorted(set(self.words), key=lambda w: (-len(w), w))[:3]):
            self._landmark(d, word, i)
        present = [c for c in characters if c.name.lower().split()[-1] in self.prompt.split("\n\n", 1)[0].lower()]
        for i, c in enumerate(present[:3]):
            self._figure(d, c.name, i, len(present[:3]))

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
        if kind == 0:      # tree / spire
            d.polygon([(x, base - size), (x - size * 0.35, base), (x + size * 0.35, base)], fill=fill)
        elif kind == 1:    # building
            d.rectangle((x - size * 0.25, base - size, x + size * 0.25, base), fill=fill)
            d.rectangle((x - size * 0.12, base - size * 0.8, x - size * 0.02, base - size * 0.65), fill=self.palette[-1])
        else:              # rock / dome
            d.ellipse((x - size * 0.45, base - size * 0.5, x + size * 0.45, base + size * 0.2), fill=fill)

    def _figure(self, d: ImageDraw.ImageDraw, name: str, i: int, n: int) -> None:
        """A character: colour and height fixed by its name (recognisable across frames), place by the frame."""
        height = self.h * (0.2 + 0.1 * _unit("fig-h", name))
        slot = (i + 0.5) / n
        x = round(self.w * (0.15 + 0.7 * (0.7 * slot + 0.3 * _unit("fig-x", name, self.prompt))))
        feet = self.horizon + round(self.h * 0.12)
        colour = self.colour("figure", name)
        head = height * 0.18
        d.rounded_rectangle((x - height * 0.14, feet - height * 0.78, x + height * 0.14, feet), radius=round(height * 0.08),
                            fill=colour, outline=self.palette[-1], width=max(1, round(self.h / 240)))
        d.ellipse((x - head, feet - height * 0.78 - head * 2, x + head, feet - height * 0.78), fill=colour,
                  outline=self.palette[-1], width=max(1, round(self.h / 240)))


def caption_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The caption band (left, top, right, bottom) of a frame of this size."""
    w, h = size
    font_px = _caption_font_px(size)
    band = 2 * round(font_px * 1.25) + 2 * max(3, font_px // 2)
    return 0, h - band, w, h


def _caption_font_px(size: tuple[int, int]) -> int:
    return max(10, round(min(size) * 0.05))


def _draw_caption(img: Image.Image, caption: str) -> None:
    box = caption_box(img.size)
    band = img.crop(box)
    img.paste(Image.blend(band, Image.new("RGB", band.size, (0, 0, 0)), 0.72), box[:2])
    font_px = _caption_font_px(img.size)
    font = ImageFont.load_default(size=font_px)
    d = ImageDraw.Draw(img)
    margin = max(4, font_px // 2)
    lines = _wrap(d, " ".join(caption.split()) or "(no caption)", font, img.width - 2 * margin, max_lines=2)
    line_h = round(font_px * 1.25)
    y = box[1] + (box[3] - box[1] - line_h * len(lines)) // 2
    for line in lines:
        d.text((margin, y), line, font=font, fill=(245, 245, 240))
        y += line_h


def _wrap(d: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int,
          max_lines: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; the last line is ellipsized when text remains."""
    words, lines = text.split(), []
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and d.textlength(f"{line} {words[0]}", font=font) <= width:
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if words or (lines and d.textlength(lines[-1], font=font) > width):
        last = lines[-1] + (" " + " ".join(words) if words else "")
        lines[-1] = media.ellipsize(d, last, font, width)
    return lines


def _evolve(reference_png: bytes, size: tuple[int, int], prompt: str) -> Image.Image:
    """The previous frame's picture (without its caption band), pushed in and drifted towards a
    point chosen by the new prompt, sized to this frame's picture area: the new frame grows from it."""
    with Image.open(io.BytesIO(reference_png)) as ref:
        ref = ref.convert("RGB")
    picture = ref.crop((0, 0, ref.width, max(1, caption_box(ref.size)[1])))
    scale = 1.08
    cw, ch = picture.width / scale, picture.height / scale
    left = (picture.width - cw) * _unit("focus-x", prompt)
    top = (picture.height - ch) * _unit("focus-y", prompt)
    area = (size[0], max(1, caption_box(size)[1]))
    return picture.resize(area, Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))


REFERENCE_WEIGHT = 0.45   # how much of the previous frame shows through the new background


def render_keyframe(request: KeyframeRequest, size: tuple[int, int]) -> bytes:
    palette = resolve_palette(request.style)
    composer = _Composer(size, request.prompt, palette)
    img = composer.sky()
    if request.reference_png:
        under = img.copy()
        under.paste(_evolve(request.reference_png, size, request.prompt), (0, 0))
        img = Image.blend(img, under, REFERENCE_WEIGHT)
    composer.draw(img, request.style.characters)
    _draw_caption(img, request.caption)
    # Declare the caption band, so the clip renderer keeps it still while the picture moves.
    info = PngInfo()
    info.add_text(media.STATIC_BAND_KEY, f"{caption_box(img.size)[1] / img.height:.6f}")
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------


def _seed_text(request: ClipRequest) -> str:
    """The prompt decides the camera move and tone; a seed or a regeneration take varies them
    (after a blank line, so a move the prompt names explicitly is still honoured)."""
    if request.seed is None and not request.variant:
        return request.prompt
    return f"{request.prompt}\n\ntake {request.variant!r} seed {request.seed!r}"


class AnimaticProvider:
    """Storyboard, keyframe and clip provider in one; free and deterministic."""

    name = "animatic"
    reproducible = True      # the same request renders the same bytes, so a damaged file is re-rendered for free

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def model_for(self, spec: ProjectSpec) -> str:
        return MODEL

    # StoryboardProvider
    def plan(self, spec: ProjectSpec) -> tuple[Storyboard, Usage]:
        return plan_storyboard(spec), Usage()

    # KeyframeProvider
    def expected_size(self, aspect_ratio: str) -> tuple[int, int] | None:
        return media.dimensions(aspect_ratio, self.settings.animatic_resolution)

    def render(self, request: KeyframeRequest) -> tuple[bytes, Usage]:
        size = media.dimensions(request.aspect_ratio, self.settings.animatic_resolution)
        return render_keyframe(request, size), Usage()

    # ClipProvider
    def allowed_durations(self, spec: ProjectSpec) -> tuple[int, ...]:
        return tuple(ANIMATIC_DURATIONS)

    def _operation(self, request: ClipRequest) -> str:
        digest = hashlib.sha256()
        for part in (request.prompt, request.duration_s, request.aspect_ratio, request.generate_audio, request.seed,
                     request.variant, self.settings.fps, self.settings.animatic_resolution):
            digest.update(repr(part).encode("utf-8") + b"\x1f")
        digest.update(hashlib.sha256(request.start_png).digest() + hashlib.sha256(request.end_png).digest())
        return f"animatic:{request.project_id}:{request.scene_index}:{digest.hexdigest()[:12]}"

    def submit(self, request: ClipRequest, model: str, cancel: CancelToken = NEVER) -> str:
        """Nothing runs remotely: the operation name identifies the render, which happens in `wait`."""
        if request.duration_s not in ANIMATIC_DURATIONS:
            raise InvalidInput("clip_duration", f"{request.duration_s} s is not an animatic clip length",
                               allowed=", ".join(str(d) for d in ANIMATIC_DURATIONS))
        media.dimensions(request.aspect_ratio, self.settings.animatic_resolution)
        return self._operation(request)

    def wait(self, operation: str, request: ClipRequest, model: str, on_poll: PollCallback | None = None,
             cancel: CancelToken = NEVER) -> ClipOutcome:
        if not operation.startswith("animatic:"):
            raise ProviderError("clips", f"{operation!r} is not an animatic operation", scene=request.scene_index)
        size = media.dimensions(request.aspect_ratio, self.settings.animatic_resolution)
        if on_poll is not None:
            on_poll(f"rendering {request.duration_s}s animatic clip at {size[0]}x{size[1]}")
        try:
            with scratch_dir(self.settings.data_dir, "vidpipe-clip") as workdir:
                video = media.render_animatic_clip(request.start_png, request.end_png, duration_s=request.duration_s,
                                                   fps=self.settings.fps, size=size, audio=request.generate_audio,
                                                   seed_text=_seed_text(request), workdir=workdir, cancel=cancel)
        except MediaError as exc:
            return ClipOutcome(kind=ClipOutcomeKind.FAILED, error=str(exc))
        return ClipOutcome(kind=ClipOutcomeKind.DONE, video=video, usage=Usage(video_seconds=float(request.duration_s)))
