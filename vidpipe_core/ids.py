"""Project ids. An id is the Dagster partition key and the artifact folder name, so this
validation is a security boundary: nothing that fails it ever reaches a path."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable

from vidpipe_core.errors import InvalidInput

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ID_RULE = "1-63 characters: lower-case letters, digits and '-', starting with a letter or digit"


def validate_project_id(value: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidInput("id", f"{value!r} is not a valid project id", ID_RULE)
    return value


def is_valid_project_id(value: str) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def slug_from_prompt(prompt: str, max_words: int = 5, max_len: int = 40) -> str:
    """A readable slug from the first words of the prompt (ASCII only); never empty."""
    text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode().lower()
    words = re.findall(r"[a-z0-9]+", text)[:max_words]
    slug = "-".join(words)[:max_len].strip("-")
    return slug or "project"


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
