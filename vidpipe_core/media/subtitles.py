"""Subtitles of the final mix (pure: it reads no file): each spoken line timed where its scene sits
in the stitched video, written as SubRip (``final.srt``), WebVTT (``final.vtt``) and, for burning
into the picture, an ASS script whose font and margins follow the frame's size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vidpipe_core.spoken import SpokenKind, SpokenLine

MIN_CUE_S = 0.2  # a cue shorter than this (a line starting at its scene's very end) is not shown


@dataclass(frozen=True)
class Cue:
    """One subtitle: [start, end) seconds of the final video, the line's text, its scene (0-based)."""

    start: float
    end: float
    text: str
    scene_index: int
    kind: SpokenKind
    audio: Path | None = None  # the line's speech, played from ``start`` for the cue's length


def cues(lines: Sequence[SpokenLine], spans: Mapping[int, tuple[float, float]]) -> list[Cue]:
    """The lines' cues, in time order: a line starts ``offset_s`` after its scene does in the final
    video (``spans``: scene index -> [start, end) seconds, crossfades included) and lasts its
    ``duration_s``, clipped inside its scene. A line of a scene not in the video (left out by the
    safety filter) has no cue."""
    out = []
    for line in lines:
        if line.scene_index not in spans or not line.text.strip():
            continue
        lo, hi = spans[line.scene_index]
        start = min(max(lo, lo + max(0.0, line.offset_s)), hi)
        end = min(hi, start + max(0.0, line.duration_s))
        if end - start < MIN_CUE_S:
            continue
        out.append(Cue(round(start, 3), round(end, 3), " ".join(line.text.split()), line.scene_index, line.kind, line.audio))
    return sorted(out, key=lambda c: (c.start, c.scene_index))


def layered(items: Sequence[Cue]) -> list[Cue]:
    """The cues as a track that shows one cue at a time (an mp4's ``mov_text`` track cannot overlap
    two): where lines overlap (a scene's narration over its dialogue), the lines showing at once
    are one cue, one line each, in the order they began; cues that do not overlap are unchanged."""
    bounds = sorted({t for c in items for t in (c.start, c.end)})
    out: list[Cue] = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        showing = [c for c in items if c.start <= lo and hi <= c.end]
        if not showing:
            continue
        text = "\n".join(c.text for c in showing)
        if out and out[-1].end == lo and out[-1].text == text:
            out[-1] = Cue(out[-1].start, hi, text, out[-1].scene_index, out[-1].kind, out[-1].audio)
        else:
            out.append(Cue(lo, hi, text, showing[0].scene_index, showing[0].kind, showing[0].audio))
    return out


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _plain(text: str) -> str:
    """The text without anything a player would read as markup or as the end of a cue (its line
    breaks kept, blank lines never: one ends a cue)."""
    rows = (" ".join(row.replace("-->", "->").replace("<", "‹").replace(">", "›").split()) for row in text.splitlines())
    return "\n".join(row for row in rows if row)


def srt(items: Sequence[Cue]) -> str:
    blocks = [f"{k}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n{_plain(c.text)}\n" for k, c in enumerate(items, 1)]
    return "\n".join(blocks)


def vtt(items: Sequence[Cue]) -> str:
    blocks = [f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n{_plain(c.text)}\n" for c in items]
    return "WEBVTT\n\n" + "\n".join(blocks)


@dataclass(frozen=True)
class SafeArea:
    """Where burned subtitles go, in pixels of the frame: font size and margins."""

    font_size: int
    margin_v: int
    margin_h: int


def safe_area(width: int, height: int) -> SafeArea:
    """Font and margins from the frame's size. Landscape (16:9): a font of 5.5 % of the height,
    8 % of the height from the bottom edge and 10 % of the width from each side (inside the
    title-safe area). Portrait (9:16): the width bounds a line, so a font of 6 % of the width, and
    18 % of the height from the bottom (above the captions and buttons short-video apps draw)."""
    if width >= height:
        return SafeArea(max(8, round(height * 0.055)), round(height * 0.08), round(width * 0.10))
    return SafeArea(max(8, round(width * 0.06)), round(height * 0.18), round(width * 0.08))


def ass(items: Sequence[Cue], width: int, height: int) -> str:
    """An ASS script of the cues for a ``width`` x ``height`` frame (its play resolution: sizes are
    pixels): white text, a dark outline and shadow, bottom centre inside ``safe_area``."""
    area = safe_area(width, height)
    outline = max(1, round(area.font_size / 12))
    head = (
        "[Script Info]\nScriptType: v4.00+\nWrapStyle: 0\nScaledBorderAndShadow: yes\n"
        f"PlayResX: {width}\nPlayResY: {height}\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
        "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, "
        "MarginV, Encoding\n"
        f"Style: Default,DejaVu Sans,{area.font_size},&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,0,0,0,0,100,100,0,0,1,"
        f"{outline},{max(1, outline // 2)},2,{area.margin_h},{area.margin_h},{area.margin_v},1\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    )

    def clock(s: float) -> str:
        cs = max(0, round(s * 100))
        return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"

    def text(t: str) -> str:
        return _plain(t).replace("\\", "＼").replace("{", "(").replace("}", ")").replace("\n", "\\N")

    events = [f"Dialogue: 0,{clock(c.start)},{clock(c.end)},Default,,0,0,0,,{text(c.text)}\n" for c in items]
    return head + "".join(events)


def iso639_2(language: str | None) -> str:
    """The three-letter code an mp4 track's language is written in, from a BCP 47 tag ("en-GB" ->
    "eng"); "und" when there is none or it is not known."""
    if not language:
        return "und"
    primary = language.strip().replace("_", "-").split("-")[0].lower()
    if len(primary) == 3 and primary.isalpha():
        return primary
    return _ISO639_1.get(primary, "und")


_ISO639_1 = {
    "ar": "ara", "bn": "ben", "cs": "cze", "da": "dan", "de": "ger", "el": "gre", "en": "eng", "es": "spa",
    "fa": "per", "fi": "fin", "fr": "fre", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind", "it": "ita",
    "ja": "jpn", "ko": "kor", "ms": "may", "nl": "dut", "no": "nor", "pl": "pol", "pt": "por", "ro": "rum",
    "ru": "rus", "sv": "swe", "sw": "swa", "ta": "tam", "te": "tel", "th": "tha", "tr": "tur", "uk": "ukr",
    "ur": "urd", "vi": "vie", "zh": "chi",
}  # fmt: skip
