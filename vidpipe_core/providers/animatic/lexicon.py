"""The words the animatic understands, in one place: what kind of thing a noun names (so a duck is
drawn as a bird and a boat as a boat), the time of day a text describes (its light and sky), the
scenery it mentions (water, buildings, trees), the colour words characters are drawn in, and where a
phrase may end (titles and captions are shortened there, never mid-phrase).

A leaf module: the planner, the figures and the drawing all read it, and it imports none of them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

RGB = tuple[int, int, int]

# --- what a subject is --------------------------------------------------------------------------

Kind = Literal["person", "animal", "bird", "boat", "vehicle", "building", "object"]
KINDS: tuple[Kind, ...] = ("person", "animal", "bird", "boat", "vehicle", "building", "object")

_KIND_NOUNS: dict[Kind, str] = {
    "person": "robot girl boy man woman child kid knight astronaut detective wizard witch princess prince king queen "
    "sailor pilot explorer traveler traveller dancer musician farmer soldier scientist ghost alien hero heroine "
    "stranger couple family grandmother grandfather mother father baby student teacher chef painter keeper gardener "
    "fisherman fisher doctor nurse monk giant elf dwarf troll clown poet",
    "animal": "cat dog fox wolf bear horse rabbit hare lion tiger elephant mouse deer cow pig sheep goat squirrel badger "
    "otter monkey frog turtle tortoise whale dolphin fish seal cub pup puppy kitten lamb calf foal fawn dragon monster "
    "hedgehog raccoon beaver",
    "bird": "bird duck duckling owl owlet penguin swan goose gull seagull crow raven robin sparrow eagle hawk parrot "
    "pigeon dove heron stork crane chick hen chicken rooster flamingo pelican",
    "boat": "boat ship sailboat yacht canoe kayak raft ferry steamer tugboat barge houseboat submarine",
    "vehicle": "car truck bus train tram bicycle bike tractor van taxi motorbike scooter plane airplane rocket",
    "building": "house lighthouse castle tower cottage cabin barn church temple greenhouse windmill hut shop palace",
    "object": "balloon kite lantern ball umbrella clock book letter flower crown sword key bottle",
}
NOUN_KINDS: dict[str, Kind] = {noun: kind for kind, nouns in _KIND_NOUNS.items() for noun in nouns.split()}

# The kinds a planner makes recurring characters of: things that act. Buildings and objects are
# drawn when a storyboard names them as characters, but the planner does not cast the greenhouse.
CHARACTER_KINDS: tuple[Kind, ...] = ("person", "animal", "bird", "boat", "vehicle")
_OBJECT_CHARACTERS = frozenset({"balloon", "kite"})  # objects that travel through a story
CHARACTER_NOUNS = frozenset(noun for noun, kind in NOUN_KINDS.items() if kind in CHARACTER_KINDS or noun in _OBJECT_CHARACTERS)

_WORD = re.compile(r"[a-z][a-z'-]*")


def _singular(word: str) -> str:
    if word in NOUN_KINDS:
        return word
    for suffix, repl in (("ies", "y"), ("ves", "f"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and word[: -len(suffix)] + repl in NOUN_KINDS:
            return word[: -len(suffix)] + repl
    return word


def kind_of(name: str, appearance: str = "") -> Kind:
    """The kind of subject a character is ("the paper boat" -> boat, "the curious duck" -> bird): the
    last noun of its name (the head noun: "the fox cub", "the lighthouse keeper"), else the first
    noun of its appearance ("a young woman with a dog"), else a person (a name such as "Mara")."""
    for text, pick in ((name, -1), (appearance, 0)):
        kinds = [NOUN_KINDS[w] for w in (_singular(w) for w in _WORD.findall(text.lower())) if w in NOUN_KINDS]
        if kinds:
            return kinds[pick]
    return "person"


def is_noun(word: str) -> bool:
    """A word the lexicon knows as a subject noun (any kind, singular or plural)."""
    return _singular(word.lower()) in NOUN_KINDS


# --- the time of day ----------------------------------------------------------------------------

TimeOfDay = Literal["dawn", "day", "dusk", "night"]

_TIME_PHRASES: tuple[tuple[str, TimeOfDay], ...] = (
    (r"dawn|daybreak|sunrise|sun ?rises?|sun ?rising|sun comes up|first light|morning", "dawn"),
    (r"dusk|sunset|sundown|sun ?sets|sun ?setting|sun goes down|twilight|evening|nightfall|golden hour", "dusk"),
    (r"night|midnight|moon|moonlit|moonlight|stars|starry|starlit|darkness", "night"),
    (r"day|daytime|daylight|noon|midday|afternoon|sunny|sunlit|sunshine|bright sun", "day"),
)
_TIME = re.compile(r"\b(" + "|".join(p for p, _ in _TIME_PHRASES) + r")\b", re.I)
_TIME_OF: list[tuple[re.Pattern[str], TimeOfDay]] = [(re.compile(rf"^(?:{p})$", re.I), t) for p, t in _TIME_PHRASES]
TIME_PHRASE: dict[TimeOfDay, str] = {"dawn": "at dawn", "day": "in daylight", "dusk": "at dusk", "night": "at night"}


def time_of_day(text: str) -> TimeOfDay | None:
    """The time of day a text describes: its first time word wins ("at dawn", "as the sun rises",
    "under the moon"), so a scene's own words come before a style suffix that follows them."""
    m = _TIME.search(text)
    if not m:
        return None
    phrase = m.group(1)
    return next(t for p, t in _TIME_OF if p.match(phrase))


# --- scenery ------------------------------------------------------------------------------------

Landmark = Literal["tree", "building", "rock", "peak"]

WATER_WORDS = frozenset(
    "sea ocean harbour harbor canal river lake pond gutter stream bay lagoon waves wave waterfall puddle water shore "
    "beach port marina creek brook".split()
)
_SCENERY: dict[str, Landmark] = {
    **{w: "building" for w in "city town village houses house street streets houseboats houseboat rooftops roofs".split()},
    **{w: "building" for w in "greenhouse lighthouse castle tower cottage cabin barn church temple windmill".split()},
    **{w: "tree" for w in "forest woods wood trees tree garden park jungle orchard grove meadow".split()},
    **{w: "rock" for w in "rock rocks cliff cliffs hill hills boulder boulders cave".split()},
    **{w: "peak" for w in "mountain mountains peak peaks volcano".split()},
}


SNOW_WORDS = frozenset("snow snowy snowfall frozen ice icy frost frosty winter wintry blizzard".split())


def shows_snow(words: Iterable[str]) -> bool:
    return any(w in SNOW_WORDS for w in words)


def shows_water(words: Iterable[str]) -> bool:
    return any(w in WATER_WORDS for w in words)


def scenery(words: Sequence[str]) -> list[tuple[str, Landmark]]:
    """The landmarks a text's words name, in order, each word once."""
    out: list[tuple[str, Landmark]] = []
    for w in words:
        if w in _SCENERY and all(w != seen for seen, _ in out):
            out.append((w, _SCENERY[w]))
    return out


# --- colours a character may be drawn in ----------------------------------------------------------

# Saturated and far apart, so a character's colours are recognisable (and testable) in any scene.
COLOUR_WORDS: dict[str, RGB] = {
    "crimson": (200, 24, 48),
    "red": (220, 40, 40),
    "scarlet": (236, 56, 24),
    "orange": (244, 128, 24),
    "amber": (240, 176, 16),
    "yellow": (246, 220, 40),
    "gold": (212, 170, 40),
    "lime": (150, 220, 40),
    "green": (40, 170, 70),
    "emerald": (16, 150, 110),
    "teal": (0, 140, 140),
    "turquoise": (40, 210, 200),
    "cyan": (30, 200, 235),
    "blue": (40, 90, 220),
    "cobalt": (20, 60, 170),
    "indigo": (80, 40, 170),
    "violet": (150, 70, 220),
    "purple": (130, 40, 160),
    "magenta": (220, 30, 170),
    "pink": (245, 120, 170),
    "brown": (130, 80, 40),
    "white": (248, 248, 248),
    "black": (20, 20, 24),
    "grey": (130, 130, 134),
    "gray": (130, 130, 134),
    "silver": (190, 194, 200),
}


# --- where a phrase may end -----------------------------------------------------------------------

# A phrase may end before one of these words (prepositions, conjunctions, subordinators): what
# comes before it reads as a whole ("A paper boat sets off | down a gutter"), never "an old".
BOUNDARY_WORDS = frozenset(
    "about above across after against along among around as at before behind below beneath beside between beyond by "
    "down during for from in inside into near of off on onto out outside over past since through to toward towards "
    "under until up upon via while with within without and but or nor so yet then when where who which whose "
    "because although though".split()
)
_CLOSING_PUNCTUATION = (",", ";", ":", ".", "!", "?", "—", "–", ")")


def phrase_ends(words: Sequence[str]) -> list[int]:
    """The counts ``k`` (1 <= k <= len(words)) such that ``words[:k]`` ends at a phrase boundary:
    before a boundary word (not right after one: "and | then"), after a word with closing
    punctuation, and at the end."""

    def bare(word: str) -> str:
        return word.lower().strip("\"'()")

    ends = [
        k
        for k in range(1, len(words))
        if words[k - 1].endswith(_CLOSING_PUNCTUATION)
        or (bare(words[k]) in BOUNDARY_WORDS and bare(words[k - 1]) not in BOUNDARY_WORDS)
    ]
    return [*ends, len(words)] if words else []
