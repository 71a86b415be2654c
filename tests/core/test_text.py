"""Text that cannot mislead (vidpipe_core/text.py): format characters that hide or reorder text are
refused, naming the character and its position; emoji sequences and scripts that need a joiner
are text like any other."""

from __future__ import annotations

import pytest

from vidpipe_core.errors import InvalidInput
from vidpipe_core.text import check_text, escape_invisible, nested_text_problem

# The bidirectional controls, the zero-width and other format characters the rule is about.
REFUSED = {
    "\u202a": "LEFT-TO-RIGHT EMBEDDING",
    "\u202b": "RIGHT-TO-LEFT EMBEDDING",
    "\u202c": "POP DIRECTIONAL FORMATTING",
    "\u202d": "LEFT-TO-RIGHT OVERRIDE",
    "\u202e": "RIGHT-TO-LEFT OVERRIDE",
    "\u2066": "LEFT-TO-RIGHT ISOLATE",
    "\u2067": "RIGHT-TO-LEFT ISOLATE",
    "\u2068": "FIRST STRONG ISOLATE",
    "\u2069": "POP DIRECTIONAL ISOLATE",
    "\u200e": "LEFT-TO-RIGHT MARK",
    "\u200f": "RIGHT-TO-LEFT MARK",
    "\u061c": "ARABIC LETTER MARK",
    "\u200b": "ZERO WIDTH SPACE",
    "\u200c": "ZERO WIDTH NON-JOINER",
    "\u200d": "ZERO WIDTH JOINER",
    "\u2060": "WORD JOINER",
    "\ufeff": "ZERO WIDTH NO-BREAK SPACE",
    "\u00ad": "SOFT HYPHEN",
    "\u2063": "INVISIBLE SEPARATOR",
}

ACCEPTED = [
    "a family 👩\u200d👩\u200d👧 at the beach",  # family: man, woman, girl joined by ZWJ
    "a 🏳\ufe0f\u200d🌈 flag on a pole",  # rainbow flag: white flag, VS16, ZWJ, rainbow
    "a coder 👨🏽\u200d💻 at night",  # skin tone, then ZWJ
    "a heart on fire ❤\ufe0f\u200d🔥",
    "the flag of Scotland 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # tag sequence
    "a temple in ශ්\u200dරී ලංකා",  # Sinhala: the joiner after the virama makes the conjunct
    "می\u200cخواهم a Persian word with its non-joiner",
]


@pytest.mark.parametrize("ch, name", REFUSED.items(), ids=[f"U+{ord(c):04X}" for c in REFUSED])
def test_a_format_character_is_refused_by_code_name_and_position(ch, name):
    with pytest.raises(InvalidInput) as err:
        check_text("prompt", f"a cat{ch}on a mat")
    message = str(err.value)
    assert message.startswith(f"prompt: contains an invisible format character (U+{ord(ch):04X} {name} at position 6)")
    assert message.endswith("; remove it") and ch not in message


def test_every_one_is_counted_and_the_first_named():
    with pytest.raises(InvalidInput) as err:
        check_text("style", "ink\u2066wash\u2069 and \u202egold")
    assert "(U+2066 LEFT-TO-RIGHT ISOLATE at position 4, and 2 more such characters)" in str(err.value)


@pytest.mark.parametrize("text", ACCEPTED)
def test_emoji_sequences_and_joining_scripts_are_text(text):
    assert check_text("prompt", text) == text
    assert escape_invisible(text) == text  # printed as they are


@pytest.mark.parametrize(
    "text, position",
    [
        ("a\u200db", 2),  # a joiner between Latin letters joins nothing
        ("\u200d👩", 1),  # no emoji before it
        ("👩\u200d", 2),  # none after it
        ("👩\u200d a", 2),
        ("flag \U000e0067\U000e007f", 6),  # tags without the black flag they belong to
        ("🏴\U000e0067\U000e0062", 2),  # a tag sequence never cancelled
    ],
)
def test_a_joiner_or_tag_outside_its_sequence_is_refused(text, position):
    with pytest.raises(InvalidInput) as err:
        check_text("prompt", text)
    assert f"at position {position}" in str(err.value)


def test_printing_escapes_what_would_not_show():
    assert escape_invisible("photo\u202egpj.txt") == "photo\\u202egpj.txt"
    assert escape_invisible("a\u200bb\x1b[2J\udcff") == "a\\u200bb\\x1b[2J\\xff"


def test_a_nested_document_names_the_field():
    board = {"title": "t", "style_guide": {"characters": [{"name": "Ann", "appearance": "tall"}, {"name": "B\u202eob"}]}}
    problem = nested_text_problem(board)
    assert problem is not None and problem.startswith("style_guide.characters.1.name: contains an invisible format")
    assert nested_text_problem({"scenes": [{"description": "👩\u200d👩\u200d👧 play"}]}) is None
