"""The storyboard keeps the characters a person gave: Gemini's output that drops or renames one is
refused (and asked for again), the animatic lists them first and shows each, the step applies their
appearances."""

from __future__ import annotations

import json

from vidpipe_core.providers.animatic.planner import plan_storyboard
from vidpipe_core.providers.google.storyboard import _parse_storyboard, storyboard_prompt, storyboard_schema
from vidpipe_core.schemas import GivenCharacter, ProjectSpec, StageProviders, given_cast_problem, with_given_cast

GIVEN = [GivenCharacter(name="Mara", appearance="tall, red coat"), GivenCharacter(name="Tom")]


def _spec(**fields) -> ProjectSpec:  # type: ignore[no-untyped-def]
    providers = StageProviders(storyboard="animatic", keyframes="animatic", clips="animatic")
    values = {"id": "p", "prompt": "A fox crosses a frozen river at dawn", "style": "ink", "aspect_ratio": "16:9"}
    return ProjectSpec(**{**values, "clip_duration": 4, "scenes": 3, "providers": providers, **fields})


def _board(names: list[str], shown: list[list[str]]) -> str:
    scene = {"description": "d", "start_frame_prompt": "s", "end_frame_prompt": "e", "motion_prompt": "m"}
    guide = {"visual_style": "v", "color_palette": ["red"], "camera_style": "c"}
    guide["characters"] = [{"name": n, "appearance": f"{n} look"} for n in names]  # type: ignore[assignment]
    return json.dumps({"title": "t", "style_guide": guide, "scenes": [{**scene, "characters": c} for c in shown]})


def test_a_board_that_drops_or_hides_a_given_character_is_refused():
    board, problem = _parse_storyboard(_board(["Mara", "Tom"], [["Mara"], ["Tom"]]), 2, GIVEN)
    assert board is not None and problem == ""
    board, problem = _parse_storyboard(_board(["Mara", "Thomas"], [["Mara"], ["Thomas"]]), 2, GIVEN)
    assert board is None and "lacks the given character(s) 'Tom'" in problem
    board, problem = _parse_storyboard(_board(["Mara", "Tom"], [["Mara"], ["Mara"]]), 2, GIVEN)
    assert board is None and "no scene shows the given character(s) 'Tom'" in problem
    # Without given characters, the same board is fine.
    assert _parse_storyboard(_board(["Mara", "Thomas"], [["Mara"], ["Thomas"]]), 2)[0] is not None


def test_gemini_is_asked_for_the_given_names_in_the_prompt_and_the_schema():
    spec = _spec(characters=GIVEN)
    prompt = storyboard_prompt(spec)
    assert "- Mara: tall, red coat" in prompt and "exactly these names" in prompt
    prefix = storyboard_schema(spec)["$defs"]["StyleGuide"]["properties"]["characters"]["prefixItems"]
    assert [p["properties"]["name"]["const"] for p in prefix] == ["Mara", "Tom"]
    assert prefix[0]["properties"]["appearance"]["const"] == "tall, red coat"
    assert "prefixItems" not in json.dumps(storyboard_schema(_spec())) and "given" not in storyboard_prompt(_spec())


def test_the_animatic_lists_the_given_characters_first_and_shows_each():
    board = plan_storyboard(_spec(characters=GIVEN))
    assert [c.name for c in board.style_guide.characters][:3] == ["Mara", "Tom", "the fox"]
    assert board.style_guide.characters[0].appearance == "tall, red coat"
    assert given_cast_problem(board, GIVEN) is None


def test_the_given_appearance_replaces_the_models():
    board = plan_storyboard(_spec())
    named = board.style_guide.characters[0].name
    kept = with_given_cast(board, [GivenCharacter(name=named, appearance="a blue scarf")])
    assert kept.style_guide.characters[0].appearance == "a blue scarf"
    assert with_given_cast(board, [GivenCharacter(name=named)]) == board


def test_a_characters_list_names_its_entry_from_1_and_its_fields():
    from vidpipe_core.request import characters_from_cli, check_fields

    problems = check_fields({"prompt": "x", "characters": [{"name": "Mara"}, {"name": "Tom", "img": "t.png"}]})[1]
    assert [str(p) for p in problems] == [
        "characters[2].img: is not a known field; did you mean 'image'? (allowed: name, appearance, image)"
    ]
    assert "is not a list" in str(check_fields({"prompt": "x", "characters": "Mara"})[1][0])
    assert characters_from_cli(["Mara=./m.png", "Tom"], ["Tom=short, green hat"]) == [
        {"name": "Mara", "image": "./m.png"},
        {"name": "Tom", "appearance": "short, green hat"},
    ]
