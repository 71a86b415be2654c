"""Bad input: a clear error naming the field and what is allowed, exit code 2, nothing left behind."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vidpipe_dagster.cli import app
from vidpipe_dagster.partitions import projects_partitions

runner = CliRunner()


def _leftovers(vp_env) -> dict:
    services = vp_env.services()
    from vidpipe_core.projects import list_projects

    projects_dir = vp_env.data_dir / "artifacts" / "projects"
    return {
        "rows": [p.id for p in list_projects(services)],
        "partitions": vp_env.instance().get_dynamic_partitions(projects_partitions.name),
        "folders": sorted(p.name for p in projects_dir.iterdir()) if projects_dir.exists() else [],
    }


@pytest.mark.parametrize(
    "args, field, allowed",
    [
        (["   "], "prompt", "describe"),
        (["x" * 4001], "prompt", "at most 4000"),
        (["a cat", "--id", "../x"], "id", "lower-case letters"),
        (["a cat", "--id", "Upper"], "id", "lower-case letters"),
        (["a cat", "--id", "a" * 64], "id", "1-63 characters"),
        (["a cat", "--id", "-lead"], "id", "starting with a letter or digit"),
        (["a cat", "--aspect-ratio", "4:3"], "aspect_ratio", "16:9, 9:16"),
        (["a cat", "--clip-duration", "0"], "clip_duration", "1, 2, 3"),
        (["a cat", "--clip-duration", "60"], "clip_duration", "1, 2, 3"),
        (["a cat", "--scenes", "0"], "scenes", "1-24"),
        (["a cat", "--scenes", "99"], "scenes", "1-24"),
        (["a cat", "--provider", "sora"], "provider", "auto, animatic, google"),
        (["a cat", "--safety-policy", "ignore"], "safety_policy", "fail, skip, retry"),
        (["a cat", "--max-cost", "nan"], "max_cost_usd", "nan is not a finite number"),
        (["a cat", "--max-cost", "inf"], "max_cost_usd", "inf is not a finite number"),
        (["a cat", "--max-cost", "-inf"], "max_cost_usd", "-inf is not a finite number"),
        (["a cat", "--max-cost", "-1"], "max_cost_usd", "-1.0 is negative"),
        (["a cat", "--seed", "-1"], "seed", "0-4294967295"),
        (["a cat", "--seed", "4294967296"], "seed", "0-4294967295"),
        (["a cat", "--crossfade", "nan"], "crossfade", "nan is not a finite number"),
        (["\u200b\u200c\u200d\u2060\ufeff \u00a0"], "prompt", "no visible characters"),
        (["a \x00 cat"], "prompt", "contains a control character (U+0000 at position 3); remove it"),
        (["a \x1b[2J cat"], "prompt", "contains a control character (U+001B at position 3); remove it"),
        (["a cat", "--style", "noir\x07"], "style", "U+0007 at position 5"),
        (["a cat", "--id", "cat\x00"], "id", "U+0000 at position 4"),
        (["a cat", "--negative-prompt", "n" * 1001], "negative_prompt", "at most 1000"),
        (["a cat", "--negative-prompt", "no\x7f"], "negative_prompt", "U+007F at position 3"),
        # A command-line argument that is not UTF-8 reaches Python as a lone surrogate (surrogateescape).
        (["caf\udcff"], "prompt", "is not valid UTF-8 (byte 0xff at position 4)"),
    ],
)
def test_bad_input_is_rejected_and_leaves_nothing(vp_env, args, field, allowed):
    result = runner.invoke(app, ["new", *args])
    assert result.exit_code == 2, result.output
    assert f"{field}:" in result.output and allowed in result.output
    assert _leftovers(vp_env) == {"rows": [], "partitions": [], "folders": []}


def test_google_clip_duration_is_checked_against_the_model(vp_env, monkeypatch):
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_API_KEY", "sentinel-not-a-key")
    result = runner.invoke(app, ["new", "a cat", "--provider", "google", "--clip-duration", "5"])
    assert result.exit_code == 2
    assert "clip_duration" in result.output and "4, 6, 8" in result.output
    assert _leftovers(vp_env)["rows"] == []


def test_google_without_credentials_says_what_to_set(vp_env):
    result = runner.invoke(app, ["new", "a cat", "--provider", "google"])
    assert result.exit_code == 2  # a configuration to fix (docs/configuration.md, "Errors and exit codes")
    assert "GOOGLE_GENAI_USE_VERTEXAI" in result.output
    assert _leftovers(vp_env)["rows"] == []


def test_taken_id_is_rejected(vp_env):
    assert runner.invoke(app, ["new", "a cat", "--id", "cat"]).exit_code == 0
    result = runner.invoke(app, ["new", "another cat", "--id", "cat"])
    assert result.exit_code == 2 and "already taken" in result.output
    assert _leftovers(vp_env)["rows"] == ["cat"]


def test_new_generates_unique_ids_from_the_prompt(vp_env):
    first = runner.invoke(app, ["new", "A Fox jumps!"]).output.strip()
    second = runner.invoke(app, ["new", "A fox jumps"]).output.strip()
    assert first == "a-fox-jumps"
    assert second.startswith("a-fox-jumps-") and second != first
    assert sorted(_leftovers(vp_env)["partitions"]) == sorted([first, second])


def test_render_unknown_project_says_so(vp_env):
    result = runner.invoke(app, ["render", "nope"])
    assert result.exit_code == 2
    assert "'nope' does not exist" in result.output and "vidpipe new" in result.output
    result = runner.invoke(app, ["render", "../etc"])
    assert result.exit_code == 2 and "id:" in result.output


# Unicode format characters: refused wherever text comes in, naming the character -----------------

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "a cat\u202etac a" shows as "a cata cat"
FAMILY = "👩\u200d👩\u200d👧"  # three emoji joined by ZERO WIDTH JOINERs: one glyph


@pytest.mark.parametrize(
    "args, where",
    [
        ([f"a cat {RLO}tac a"], "prompt: contains an invisible format character (U+202E RIGHT-TO-LEFT OVERRIDE at position 7)"),
        (["a cat", "--style", "ink\u2066wash"], "style: contains an invisible format character (U+2066 LEFT-TO-RIGHT ISOLATE at"),
        (["a cat", "--negative-prompt", "no\u200btext"], "negative_prompt: contains an invisible format character (U+200B"),
        (
            ["a cat", "--id", f"cat{RLO}"],
            "id: contains an invisible format character (U+202E RIGHT-TO-LEFT OVERRIDE at position 4)",
        ),
        (["a\u200dcat"], "(U+200D ZERO WIDTH JOINER at position 2)"),  # a joiner outside an emoji sequence
    ],
)
def test_new_refuses_format_characters_naming_them(vp_env, args, where):
    result = runner.invoke(app, ["new", *args])
    assert result.exit_code == 2, result.output
    assert where in " ".join(result.output.split()) and RLO not in result.output
    assert _leftovers(vp_env) == {"rows": [], "partitions": [], "folders": []}


def test_an_emoji_sequence_is_text(vp_env):
    result = runner.invoke(app, ["new", f"a family {FAMILY} at the beach", "--style", "pastel 🏳\ufe0f\u200d🌈", "--json"])
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)["spec"]
    assert spec["prompt"] == f"a family {FAMILY} at the beach" and spec["style"] == "pastel 🏳\ufe0f\u200d🌈"


@pytest.mark.parametrize("command", [["render"], ["status"], ["resume", "--dry-run"], ["delete", "--yes"]])
def test_an_id_with_a_format_character_is_named_by_every_command(vp_env, command):
    result = runner.invoke(app, [command[0], f"cat{RLO}", *command[1:]])
    assert result.exit_code == 2, result.output
    assert "U+202E RIGHT-TO-LEFT OVERRIDE at position 4" in " ".join(result.output.split()) and RLO not in result.output


def test_edit_refuses_format_characters_in_a_scene_prompt(vp_env):
    assert runner.invoke(app, ["new", "a cat", "--id", "cat"]).exit_code == 0
    for option in ("--description", "--start-frame", "--end-frame", "--motion"):
        result = runner.invoke(app, ["edit", "cat", "--scene", "1", option, f"pan {RLO}left"])
        assert result.exit_code == 2, result.output
        assert "contains an invisible format character (U+202E RIGHT-TO-LEFT OVERRIDE at position 5)" in " ".join(
            result.output.split()
        )
