"""Project ids. An id is the Dagster partition key and the artifact folder name, so this
validation is a security boundary: nothing that fails it ever reaches a path."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable

from vidpipe_core.errors import InvalidInput
from vidpipe_core.text import text_problem

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ID_RULE = "1-63 characters: lower-case letters, digits and '-', starting with a letter or digit"


def validate_project_id(value: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        problem = text_problem(value) if isinstance(value, str) else None
        if problem is not None:  # say which character, rather than show an id that reads like another
            raise InvalidInput("id", problem, ID_RULE)
        raise InvalidInput("id", f"{value!r} is not a valid project id", ID_RULE)
    return value


def is_valid_project_id(value: str) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


# Words an id should not end on: articles, prepositions, conjunctions, pronouns and auxiliaries.
# "a-kite-escapes-over-a" reads as cut off; "a-kite-escapes" does not. Off, up, down and out are
# not here: as the end of a phrasal verb they finish it ("a-paper-boat-sets-off").
STOPWORDS = frozenset(
    """
    a an the
    about above across after against along amid among around as at before behind below beneath
    beside besides between beyond by during for from in inside into near of on onto outside over
    past per since than through throughout till to toward towards under underneath until upon via
    with within without
    and but either neither nor or so then yet because if once though unless when whenever where
    whereas wherever whether while
    her his its my our their your this that these those which who whom whose what
    am are be been being is was were do does did has have had will would can could shall should
    may might must
    """.split()
)
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")  # "rain-filled" is one word
_APOSTROPHE = re.compile(r"(?<=[a-z0-9])'(?=[a-z0-9])")  # "fox's" -> "foxs", not "fox-s"
FALLBACK_SLUG = "project"


def _fit(words: list[str], max_len: int) -> list[str]:
    """The longest run of whole words from the start whose slug is at most ``max_len`` long. A
    first word that is longer on its own is cut at one of its hyphens, or, with none, at max_len:
    the only cut inside a word, when there is no whole word to end on."""
    kept: list[str] = []
    for word in words:
        if len("-".join([*kept, word])) > max_len:
            if not kept:
                parts = _fit(word.split("-"), max_len) if "-" in word else []
                kept = parts or [word[:max_len]]
            break
        kept.append(word)
    return kept


def slug_from_prompt(prompt: str, max_words: int = 5, max_len: int = 40) -> str:
    """A readable slug of the prompt's first words (ASCII only, accents dropped), never empty:
    at most ``max_words`` whole words and ``max_len`` characters, and it ends on a meaningful word,
    not on a stopword ("A kite escapes over a hill" -> "a-kite-escapes"). A prompt of stopwords
    only keeps them ("Into the" -> "into-the"); one without ASCII letters or digits is "project"."""
    text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode().lower()
    words = _fit(_WORD.findall(_APOSTROPHE.sub("", text))[:max_words], max_len)
    meaningful = list(words)
    while meaningful and meaningful[-1] in STOPWORDS:
        meaningful.pop()
    return "-".join(meaningful or words).strip("-") or FALLBACK_SLUG


def new_project_id(prompt: str, taken: Callable[[str], bool]) -> str:
    """A unique id: the slug, or the slug plus a short random suffix when the slug is taken."""
    base = slug_from_prompt(prompt)
    if not taken(base):
        return base
    for _ in range(20):
        candidate = f"{base}-{secrets.token_hex(3)}"
        if not taken(candidate):
            return candidate
    raise InvalidInput("id", "could not generate a unique id; pass one with --id")
