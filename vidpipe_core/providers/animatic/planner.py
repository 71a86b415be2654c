"""Storyboard planning without a model: the prompt split into beats, a palette and camera style
from the style's words, recurring characters from the prompt's subjects and names."""

from __future__ import annotations

import colorsys
import hashlib
import re
from collections.abc import Sequence

from vidpipe_core.errors import InvalidInput
from vidpipe_core.providers.animatic.lexicon import (
    BOUNDARY_WORDS,
    CHARACTER_NOUNS,
    COLOUR_WORDS,
    TIME_PHRASE,
    TimeOfDay,
    is_noun,
    phrase_ends,
    time_of_day,
)
from vidpipe_core.scenes import scene_label
from vidpipe_core.schemas import Character, ProjectSpec, ScenePlan, Storyboard, StyleGuide
from vidpipe_core.speech import MAX_NARRATION_CHARS, WORDS_PER_SECOND


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from any parts."""
    return int.from_bytes(_digest(*parts)[:6], "big") / float(1 << 48)


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
    "watercolour": ["#5b8e7d", "#8fc1b5", "#f4e285", "#f4a259", "#bc4b51"],
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

# A recurring character: "a/the <up to two words> <noun>", singular (the plural "the houseboats" is scenery).
_ARTICLE_SUBJECT = re.compile(
    r"\b(?:a|an|the|his|her|their|our|my)\s+((?:[a-z][a-z-]*\s+){0,2}?)(" + "|".join(sorted(CHARACTER_NOUNS)) + r")\b", re.I
)
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


_DETERMINERS = frozenset("a an the his her their our my its two three some".split())
_JOINS_SUBJECTS = re.compile(r"^,?\s*(?:and|or)\s*$", re.I)


def _names_a_subject(fragment: str) -> bool:
    """A bare subject ("a fox cub", "the old man", "Mara"): at most four words, opening on a
    determiner or a name and ending on a known noun or a name; no verb in it to make a clause."""
    words = fragment.split()
    if not words or len(words) > 4:
        return False
    opens = words[0].lower() in _DETERMINERS or words[0][:1].isupper()
    last = words[-1]
    return opens and (is_noun(last) or (len(words) == 1 and last[:1].isupper()))


def _split_one(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Split at ``pattern``; a fragment under two words is glued back to its neighbour with the
    original separator, so "returns and smiles" never loses "smiles"; and "A and B" (two subjects
    of one clause: "a fox cub and an old owl watch ...") is never split, so both stay in one scene."""
    spans: list[list[int]] = []
    start = 0
    for m in [*pattern.finditer(text), None]:
        if m is not None and _JOINS_SUBJECTS.match(m.group(0)) and _names_a_subject(_clean(text[start : m.start()])):
            continue  # keep "A and B" together: the fragment goes on past this "and"
        end = m.start() if m else len(text)
        fragment = _clean(text[start:end])
        if fragment:
            if spans and (len(fragment.split()) < 2 or len(_clean(text[spans[-1][0] : spans[-1][1]]).split()) < 2):
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
    groups = [beats[i * k // n : (i + 1) * k // n] for i in range(n)]
    return ["; then ".join([g[0], *(_lower_first(b) for b in g[1:])]) for g in groups]


def _expand(beats: list[str], n: int) -> list[str]:
    """More scenes than beats: each beat gets a run of shots along PROGRESSION."""
    k = len(beats)
    counts = [n // k + (1 if i < n % k else 0) for i in range(k)]
    out = []
    for beat, m in zip(beats, counts, strict=True):
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
            text = f"{text} ({scene_label(i)})"
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
    for dh, light, sat in [(0.0, 0.15, 0.45), (0.06, 0.32, 0.5), (0.5, 0.55, 0.6), (0.56, 0.72, 0.55), (0.1, 0.88, 0.4)]:
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


# Colour words a planned character is drawn in (figures.COLOUR_WORDS knows them all): saturated, so
# they stand out from the landscape's palette.
CHARACTER_COLOURS = (
    "crimson",
    "orange",
    "amber",
    "lime",
    "emerald",
    "teal",
    "turquoise",
    "cobalt",
    "violet",
    "magenta",
    "pink",
    "scarlet",
)
MAX_CHARACTERS = 4  # a keyframe draws at most four figures (drawing.MAX_FIGURES)


def _rgb(text: str) -> tuple[int, int, int] | None:
    m = re.fullmatch(r"#?([0-9a-fA-F]{6})", text.strip())
    return (int(m.group(1)[0:2], 16), int(m.group(1)[2:4], 16), int(m.group(1)[4:6], 16)) if m else None


def _character_colours(key: str, palette: Sequence[str], taken: Sequence[str]) -> tuple[str, str]:
    """Two colour words for a character: far from the palette and from other characters' colours."""
    avoid = [c for c in (_rgb(p) for p in palette) if c is not None] + [COLOUR_WORDS[t] for t in taken]

    def far(word: str, others: list[tuple[int, int, int]]) -> float:
        c = COLOUR_WORDS[word]
        return min((sum((a - b) ** 2 for a, b in zip(c, o, strict=True)) ** 0.5 for o in others), default=999.0)

    ranked = sorted(CHARACTER_COLOURS, key=lambda w: _unit("character-colour", key, w))
    body = max(ranked, key=lambda w: min(far(w, avoid), 140.0))  # the first one far enough, in hash order
    accent = max((w for w in ranked if w != body), key=lambda w: min(far(w, [*avoid, COLOUR_WORDS[body]]), 140.0))
    return body, accent


def find_characters(prompt: str, palette: Sequence[str], limit: int = MAX_CHARACTERS) -> list[Character]:
    """Recurring subjects: "a/the <adjective>* <character noun>" phrases and capitalised names, at most ``limit``.
    Each is given two colour words (its body and its accents) that the keyframes draw it in."""
    found: dict[str, str] = {}  # key -> display name
    for m in _ARTICLE_SUBJECT.finditer(prompt):
        named = re.search(r"\b([A-Z][a-z]{2,}),?\s+$", prompt[: m.start()])
        if named and named.group(1) not in _NOT_NAMES:
            continue  # "Mara the gardener": the name is the character, the rest describes her
        noun = m.group(2).lower()
        after = re.match(r"\s+([a-z]+)\b", prompt[m.end() :])
        if after and is_noun(after.group(1)):  # "a fox cub": the cub is the subject, and a fox
            noun = f"{noun} {after.group(1)}"
        adjectives = " ".join(w for w in m.group(1).lower().split() if w not in _STOPWORDS)
        found.setdefault(noun, f"the {adjectives + ' ' if adjectives else ''}{noun}")
    for m in _NAME.finditer(prompt):
        word = m.group(0)
        if word not in _NOT_NAMES and word.lower() not in _STOPWORDS and word.lower() not in CHARACTER_NOUNS:
            found.setdefault(word.lower(), word)
    characters: list[Character] = []
    taken: list[str] = []
    for key, name in list(found.items())[:limit]:
        body, accent = _character_colours(key, palette, taken)
        taken += [body, accent]
        characters.append(
            Character(
                name=name,
                appearance=f"{name}, drawn the same in every shot: simple readable silhouette, {body} body with "
                f"{accent} accents, same proportions and outfit",
            )
        )
    return characters


def character_key(name: str) -> str:
    """The word a scene's text uses for a character ("the small robot" -> "robot", "Mara" -> "mara")."""
    words = name.lower().split()
    return words[-1] if words else ""


_PRONOUN = re.compile(r"\b(?:it|he|she|they|him|them)\b", re.I)


def cast_scenes(texts: Sequence[str], characters: Sequence[Character]) -> list[list[str]]:
    """Which characters each scene shows, in the style guide's order: those its text mentions ("a fox
    cub and an old owl watch ..." shows both). A pronoun goes on with the previous scene's cast: "It waters a flower" keeps the
    previous scene's subject, "a curious duck follows it" adds it, "at dawn they part" keeps them. A character in no scene text appears where the story
    starts to act (scene 2, or 1 if there is one scene)."""
    where: dict[str, list[int]] = {c.name: [] for c in characters}
    for c in characters:
        key = character_key(c.name)
        where[c.name] = [i for i, t in enumerate(texts) if re.search(rf"\b{re.escape(key)}s?\b", t.lower())]
    for i in range(1, len(texts)):
        previous = [name for name, scenes in where.items() if i - 1 in scenes]
        if _PRONOUN.search(texts[i]) is None:
            continue
        for name in previous:
            if i not in where[name]:
                where[name].append(i)
                where[name].sort()
    for scenes in where.values():
        if not scenes:
            scenes.append(min(1, len(texts) - 1))
    return [[c.name for c in characters if i in where[c.name]] for i in range(len(texts))]


TITLE_WORDS = 12


def _title(prompt: str) -> str:
    """The first beat, shortened to at most TITLE_WORDS words at a phrase boundary ("A paper boat sets
    off down a rain-filled gutter", never "A fox cub and an old"); whole when it has no boundary."""
    beats = split_beats(prompt)
    words = (beats[0] if beats else _clean(prompt)).split()
    ends = [k for k in phrase_ends(words) if k <= TITLE_WORDS]
    title = _clean(" ".join(words[: ends[-1]] if ends else words))
    return (title[:1].upper() + title[1:]) if title else "Untitled"


def scene_times(texts: Sequence[str]) -> list[TimeOfDay | None]:
    """The time of day of each scene: the one its text names, else the previous scene's (story time
    goes on until a scene says otherwise), else None (the style may still name one)."""
    out: list[TimeOfDay | None] = []
    for t in texts:
        out.append(time_of_day(t) or (out[-1] if out else None))
    return out


_LOWERABLE = frozenset("a an the it its he she they we his her their our this that these those then there".split())


def _lower_first(text: str) -> str:
    """Lower-case the first word for use mid-sentence, unless it may be a name."""
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first.lower() in _LOWERABLE else text


def _when(time: TimeOfDay | None) -> str:
    return f", {TIME_PHRASE[time]}" if time else ""


def _scene_plan(i: int, texts: list[str], style: StyleGuide, cast: list[str], times: Sequence[TimeOfDay | None]) -> ScenePlan:
    """One scene's plan. Its closing frame is also the next scene's opening picture (continuity), the
    one the next clip holds: so it is lit at the next scene's time of day."""
    text = texts[i]
    move = CAMERA_MOVES[int(_unit("move", i, text) * len(CAMERA_MOVES))]
    nxt = texts[i + 1] if i + 1 < len(texts) else None
    end = f"Closing frame of {scene_label(i)}{_when(times[min(i + 1, len(texts) - 1)])}: {_lower_first(text)}, the moment settled"
    end += f", composed so the next scene can begin from it ({_lower_first(nxt)})" if nxt else ", a calm final image"
    return ScenePlan(
        description=f"{text}.",
        start_frame_prompt=f"Opening frame of {scene_label(i)}{_when(times[i])}: {_lower_first(text)}. {style.visual_style}.",
        end_frame_prompt=f"{end}. {style.visual_style}.",
        motion_prompt=f"Camera: {move} while {_lower_first(text)}; subjects move naturally from the opening to the closing frame.",
        transition_notes=("Fade in from black. " if i == 0 else "")
        + (
            f"Continuous cut: {scene_label(i)}'s last frame is {scene_label(i + 1)}'s first frame."
            if nxt
            else f"Final {scene_label(i)}: hold on the last frame, then fade out to black."
        ),
        characters=list(cast),
    )


def _cast_with_given(spec: ProjectSpec, palette: Sequence[str]) -> list[Character]:
    """The characters the person gave (their names, and appearances where given; first), then those
    the prompt names that are not among them."""
    found = find_characters(spec.prompt, palette)
    if not spec.characters:
        return found
    given_keys = {character_key(c.name) for c in spec.characters} | {c.name.casefold() for c in spec.characters}
    cast: list[Character] = []
    taken: list[str] = []
    for c in spec.characters:
        body, accent = _character_colours(character_key(c.name), palette, taken)
        taken += [body, accent]
        look = f"{c.name}, drawn the same in every shot: simple readable silhouette, {body} body with {accent} accents"
        cast.append(Character(name=c.name, appearance=c.appearance or look))
    rest = [f for f in found if character_key(f.name) not in given_keys and f.name.casefold() not in given_keys]
    return cast + rest[: max(0, MAX_CHARACTERS - len(cast))]


def plan_storyboard(spec: ProjectSpec) -> Storyboard:
    style_text = spec.style.strip() or "cinematic"
    palette = palette_for(style_text)
    style = StyleGuide(
        visual_style=style_text,
        color_palette=palette,
        camera_style=camera_style_for(style_text),
        characters=_cast_with_given(spec, palette),
    )
    texts = scene_texts(spec.prompt, spec.scenes)
    cast = cast_scenes(texts, style.characters)
    times = scene_times(texts)
    scenes = [_scene_plan(i, texts, style, cast[i], times) for i in range(len(texts))]
    if spec.narration:
        scenes = [
            p.model_copy(update={"narration": narration_line(t, spec.clip_duration)}) for p, t in zip(scenes, texts, strict=True)
        ]
    return Storyboard(title=_title(spec.prompt), style_guide=style, scenes=scenes)


# Words a spoken line must not end on: articles and determiners, and the words that open a phrase.
_DANGLING = BOUNDARY_WORDS | frozenset("a an the this that these those his her its their my your our some every".split())


def narration_line(text: str, seconds: float) -> str:
    """A voice-over line from a scene's text: its first words, whole, as many as the storyboard's
    pace allows in ``seconds`` (never a word cut), ending as a sentence."""
    limit = max(1, int(seconds * WORDS_PER_SECOND))
    words: list[str] = []
    for word in text.split()[:limit]:
        if len(" ".join([*words, word])) > MAX_NARRATION_CHARS - 1:
            break
        words.append(word)
    # End where a phrase ends ("…down a rain-filled gutter", not "…gutter at"), when one does.
    ends = [k for k in phrase_ends(text.split()) if k <= len(words)]
    words = words[: ends[-1]] if ends else words
    while len(words) > 1 and words[-1].lower().strip("\"'(),;:") in _DANGLING:  # never "…climbs the."
        words.pop()
    line = " ".join(words).rstrip(",;:.!?-")
    return f"{line[:1].upper()}{line[1:]}." if line else ""
