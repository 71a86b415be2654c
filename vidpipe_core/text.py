"""Text a person types, and what may be in it: the one rule for every text field of a project
(prompt, style, negative prompt, id, an edited scene prompt) and for the name of an inbox file.

Refused, naming the character (U+XXXX and its Unicode name) and its 1-based position:

- control characters (category Cc) but tab, newline and carriage return, and lone surrogates
  (what a command-line argument that is not UTF-8 becomes, or a JSON "\\ud800" escape);
- format characters (category Cf): the bidirectional controls (U+202A-U+202E, U+2066-U+2069,
  U+200E, U+200F, U+061C) that make text read in another order than it runs, zero-width
  characters (U+200B, U+2060, U+FEFF), the soft hyphen and the rest. They are invisible, so a
  prompt or a file name that carries one does not say what it looks like it says (and two
  prompts that look the same are not).

Kept, because they are how some text is written: the zero-width joiner U+200D inside an emoji
sequence (👩‍👩‍👧, 🏳️‍🌈), and U+200C/U+200D between letters or marks of scripts that need them
(Persian, Sinhala, Devanagari: "ශ්‍රී"); tag characters U+E0020-U+E007F in an emoji flag
(🏴󠁧󠁢󠁳󠁣󠁴󠁿). Latin, Greek or Cyrillic letters have no use for a joiner, so one between them is refused.

This module is a leaf (it imports only ``errors``) so that providers may use it too.
"""

from __future__ import annotations

import re
import unicodedata

from vidpipe_core.errors import InvalidInput

# Control characters (category Cc) but tab, newline and carriage return, and lone surrogates.
_UNUSABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})  # spaces, line breaks, zero-width and format characters

ZWNJ, ZWJ = "\u200c", "\u200d"
_VARIATION_SELECTORS = frozenset({"\ufe0e", "\ufe0f"})
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_BLACK_FLAG = "\U0001f3f4"  # the base of the tag-sequence flags (England, Scotland, Wales)
_TAGS, _CANCEL_TAG = range(0xE0020, 0xE007F), 0xE007F
# Scripts whose letters join: a joiner between two of their letters or marks shapes the text.
_NOT_JOINING_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")


def _is_emoji(ch: str) -> bool:
    """A pictographic symbol (category So: 👩, 🌈, ❤, ♀, 🏳) or a skin-tone modifier."""
    return unicodedata.category(ch) == "So" or ord(ch) in _SKIN_TONES


def _emoji_before(text: str, i: int) -> bool:
    """An emoji ends just before ``text[i]`` (a variation selector after it counts as part of it)."""
    j = i - 1
    while j >= 0 and text[j] in _VARIATION_SELECTORS:
        j -= 1
    return j >= 0 and _is_emoji(text[j])


def _joins_letters(text: str, i: int) -> bool:
    """``text[i]`` stands between two letters or marks of a script that uses joiners."""
    if i == 0 or i + 1 >= len(text):
        return False

    def joining(ch: str) -> bool:
        if unicodedata.category(ch)[0] not in "LM":
            return False
        name = unicodedata.name(ch, "")
        return bool(name) and not name.startswith(_NOT_JOINING_SCRIPTS)

    return joining(text[i - 1]) and joining(text[i + 1])


def _in_tag_flag(text: str, i: int) -> bool:
    """``text[i]`` is a tag character of an emoji flag: 🏴, tags, then the cancel tag."""
    start = i
    while start > 0 and ord(text[start - 1]) in _TAGS:
        start -= 1
    if start == 0 or text[start - 1] != _BLACK_FLAG:
        return False
    end = i
    while end < len(text) and ord(text[end]) in _TAGS:
        end += 1
    return end < len(text) and ord(text[end]) == _CANCEL_TAG


def _allowed_format(text: str, i: int) -> bool:
    ch = text[i]
    if ch == ZWJ and _emoji_before(text, i) and i + 1 < len(text) and _is_emoji(text[i + 1]):
        return True
    if ch in (ZWJ, ZWNJ) and _joins_letters(text, i):
        return True
    code = ord(ch)
    if code == _CANCEL_TAG:
        return i > 0 and (ord(text[i - 1]) in _TAGS) and _in_tag_flag(text, i - 1)
    return code in _TAGS and _in_tag_flag(text, i)


def misleading_characters(text: str) -> list[int]:
    """The 0-based indices of the format characters (category Cf) of ``text`` that are not part
    of an emoji sequence or of a joining script."""
    return [i for i, ch in enumerate(text) if unicodedata.category(ch) == "Cf" and not _allowed_format(text, i)]


def describe(ch: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: a character as a person can look it up."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}" if name else f"U+{ord(ch):04X}"


def text_problem(value: str) -> str | None:
    """What makes ``value`` unusable or misleading, as the end of a sentence ("contains ... at
    position 3; remove it"), or None when it can be stored, sent and shown as it is."""
    bad = _UNUSABLE.search(value)
    if bad is not None:
        code, position = ord(bad.group()), bad.start() + 1
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
            return f"is not valid UTF-8 (byte 0x{code - 0xDC00:02x} at position {position}); pass the text as UTF-8"
        if 0xD800 <= code <= 0xDFFF:
            return f"is not valid UTF-8 (an unpaired surrogate U+{code:04X} at position {position}); pass the text as UTF-8"
        return f"contains a control character (U+{code:04X} at position {position}); remove it"
    found = misleading_characters(value)
    if found:
        first, more = found[0], len(found) - 1
        also = f", and {more} more such character{'s' if more > 1 else ''}" if more else ""
        return (
            f"contains an invisible format character ({describe(value[first])} at position {first + 1}{also}) "
            "that hides or reorders text; remove it"
        )
    return None


def check_text(field: str, value: str) -> str:
    """``value`` if it can be stored, sent and printed as it is and shows what it says;
    InvalidInput naming the first character that cannot (1-based position), so nothing fails
    later with an encoding traceback and nothing reads differently from what it is."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"{value!r} is not text")
    problem = text_problem(value)
    if problem is not None:
        raise InvalidInput(field, problem)
    return value


def nested_text_problem(value: object, where: str = "") -> str | None:
    """The first string in a JSON-like ``value`` (dicts, lists) with a ``text_problem``, as
    "<dotted path>: <problem>" (e.g. "style_guide.characters.0.name: contains ..."); None if none."""
    if isinstance(value, str):
        problem = text_problem(value)
        return f"{where or 'text'}: {problem}" if problem else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = nested_text_problem(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def has_visible_text(text: str) -> bool:
    return any(not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE for ch in text)


def escape_invisible(text: str) -> str:
    """``text`` fit to print: every character that would not show as itself (controls, format
    characters, undecodable bytes) as an escape (``\\u202e``, ``\\x1b``, ``\\xff``), the rest as it is."""
    out = []
    for i, ch in enumerate(text):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable() or (unicodedata.category(ch) == "Cf" and _allowed_format(text, i)):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)
