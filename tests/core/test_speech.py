"""The rules of spoken words: language codes, voices, a line's estimated length and the speed-up
limit, and the Veo prompt's audio cues (a scene without cues keeps the prompt it always had)."""

from __future__ import annotations

import pytest

from vidpipe_core.errors import InvalidInput
from vidpipe_core.providers.animatic.planner import narration_line
from vidpipe_core.schemas import ScenePlan, StyleGuide
from vidpipe_core.speech import MAX_TEMPO, check_language, check_line, check_voice, estimated_seconds, tempo_for, veo_cues
from vidpipe_core.steps.state import clip_prompt

STYLE = StyleGuide(visual_style="ink", color_palette=["black"], camera_style="static")


def _scene(**fields: str) -> ScenePlan:
    return ScenePlan(description="A fox runs.", start_frame_prompt="a", end_frame_prompt="b", motion_prompt="Pan left.", **fields)


@pytest.mark.parametrize(("code", "tag"), [("en-us", "en-US"), ("de", "de"), ("zh-hans-cn", "zh-Hans-CN"), ("es-419", "es-419")])
def test_language_codes_are_bcp47_and_normalised(code, tag):
    assert check_language(code) == tag


@pytest.mark.parametrize("code", ["english", "en_US", "", "e", "en-USA-x", 3])
def test_a_language_that_is_no_bcp47_code_is_refused_saying_what_is_allowed(code):
    with pytest.raises(InvalidInput, match="language: .* is not a BCP-47 language code .*en-US"):
        check_language(code)


def test_voices_are_checked_against_the_narrators():
    assert check_voice("puck", ("Kore", "Puck")) == "Puck"
    with pytest.raises(InvalidInput, match="voice: 'Bob' is not a voice of the narrator .*Kore, Puck"):
        check_voice("Bob", ("Kore", "Puck"))


def test_a_line_is_judged_by_its_estimated_then_its_measured_length():
    assert estimated_seconds("one two three four five") == 2.0
    check_line(0, " ".join(["w"] * 11), 4)  # 4.4 s: fits sped up 1.1x
    with pytest.raises(InvalidInput, match=r"the line of scene 3 would take about 4.80 s, longer than the scene's 4 s"):
        check_line(2, " ".join(["w"] * 12), 4)
    assert tempo_for(0, 3.9, 4) == 1.0
    assert tempo_for(0, 4.4, 4) == pytest.approx(1.1)
    with pytest.raises(InvalidInput, match=r"the line of scene 1 is 4.70 s, .*at most 4.60 s"):
        tempo_for(0, 4.7, 4)
    assert MAX_TEMPO == 1.15


def test_the_animatic_line_is_whole_words_at_the_storyboards_pace():
    line = narration_line("a lighthouse keeper climbs the long stairs of the tower", 2)
    assert line == "A lighthouse keeper climbs."  # whole words, never ending on "the"
    assert estimated_seconds(line) <= 2


def test_veo_prompt_carries_dialogue_in_quotes_and_sound_cues_as_the_guide_writes_them():
    plain = _scene()
    assert clip_prompt(plain, STYLE) == f"Pan left.\n\nScene: A fox runs.\n{STYLE.prompt_suffix()}"
    cued = _scene(dialogue='The girl says: "Look, a fox!"', sound="leaves rustle", narration="Not in the prompt.")
    prompt = clip_prompt(cued, STYLE)
    assert 'The girl says: "Look, a fox!"\n' in prompt and "SFX: leaves rustle\n" in prompt
    assert "Not in the prompt" not in prompt
    assert veo_cues("", "Ambient noise: distant traffic") == "Ambient noise: distant traffic\n"
