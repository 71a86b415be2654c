"""Generated project ids: whole words, ending on a meaningful one, within the length limit."""

from __future__ import annotations

import pytest

from vidpipe_core.ids import STOPWORDS, new_project_id, slug_from_prompt, validate_project_id


@pytest.mark.parametrize(
    "prompt, slug",
    [
        # The examples: the cut no longer leaves "-over-a" dangling.
        ("A kite escapes over a stormy beach and tangles in a palm tree", "a-kite-escapes"),
        ("A paper boat sets off down a rain-filled gutter at dawn", "a-paper-boat-sets-off"),
        ("A fox steals a loaf of bread from a market stall", "a-fox-steals-a-loaf"),
        ("A Café at Night, with Jazz & rain!", "a-cafe-at-night"),
        ("A fox in the snow", "a-fox-in-the-snow"),
        # A hyphenated word is one word: it is kept whole or not at all.
        ("A rain-filled gutter carries a paper boat to the sea", "a-rain-filled-gutter-carries"),
        ("Rain-filled", "rain-filled"),
        # An apostrophe joins its word instead of splitting off an "s".
        ("The fox's tail over the fence", "the-foxs-tail"),
        ("Don't look down", "dont-look-down"),
    ],
)
def test_slug_ends_on_a_meaningful_word(prompt, slug):
    assert slug_from_prompt(prompt) == slug
    assert slug.rsplit("-", 1)[-1] not in STOPWORDS
    assert validate_project_id(slug) == slug


def test_slug_never_cuts_inside_a_word_to_fit_the_length():
    prompt = "Extraordinarily luminous jellyfish drift beneath midnight"
    slug = slug_from_prompt(prompt)
    assert slug == "extraordinarily-luminous-jellyfish-drift"  # 40 characters: "-beneath" would not fit
    assert len(slug) <= 40
    words = prompt.lower().split()
    assert slug.split("-") == words[: len(slug.split("-"))]
    assert slug_from_prompt(prompt, max_len=20) == "extraordinarily"


def test_a_long_hyphenated_first_word_is_cut_at_a_hyphen_and_a_longer_single_word_at_the_limit():
    assert slug_from_prompt("state-of-the-art-camera-rig-on-a-windswept-mountain-top", max_len=20) == "state-of-the-art"
    assert slug_from_prompt("a" * 50) == "a" * 40  # no whole word fits: the only cut inside a word


@pytest.mark.parametrize(
    "prompt, slug",
    [
        ("Into the", "into-the"),  # stopwords only: kept, rather than nothing
        ("   Of   ", "of"),
        ("!!!", "project"),  # nothing ASCII to spell with
        ("一只风筝飞过海滩", "project"),
        ("Ένας αετός", "project"),
        ("Über den Wolken", "uber-den-wolken"),  # accents dropped, letters kept
    ],
)
def test_slug_falls_back_sensibly(prompt, slug):
    assert slug_from_prompt(prompt) == slug


def test_new_project_id_suffixes_a_taken_slug():
    assert new_project_id("A kite escapes over a hill", lambda i: False) == "a-kite-escapes"
    generated = new_project_id("A kite escapes over a hill", lambda i: i == "a-kite-escapes")
    assert generated.startswith("a-kite-escapes-") and len(generated) == len("a-kite-escapes") + 7
    assert validate_project_id(generated) == generated
