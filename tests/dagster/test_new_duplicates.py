"""`vidpipe new` twice with the same prompt and settings registers one project, not two: the
second call prints the first one's id (exit 0) and adds no row and no Dagster partition;
`--force` registers a second one."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vidpipe_core.projects import list_projects, load_spec, update_spec
from vidpipe_dagster.cli import app
from vidpipe_dagster.partitions import projects_partitions

runner = CliRunner()
PROMPT = "A kite escapes over a stormy beach and tangles in a palm tree"
NOTICE = "already has this prompt and these settings; printing its id (use --force for a new project)"


def _registered(vp_env) -> tuple[list[str], list[str]]:
    rows = [p.id for p in list_projects(vp_env.services())]
    return rows, sorted(vp_env.instance().get_dynamic_partitions(projects_partitions.name))


def _new(*args: str):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["new", *args])
    assert result.exit_code == 0, result.output
    return result


def test_same_prompt_and_settings_print_the_existing_id(vp_env):
    first = _new(PROMPT, "--scenes", "2").stdout.strip()
    assert first == "a-kite-escapes"
    again = _new(f"  {PROMPT} ", "--scenes", "2")  # the same prompt once stripped
    assert again.stdout == f"{first}\n"
    assert f"project {first} {NOTICE}" in again.stderr
    assert _registered(vp_env) == ([first], [first])


def test_other_settings_make_a_new_project(vp_env, monkeypatch):
    first = _new(PROMPT).stdout.strip()
    other_duration = _new(PROMPT, "--clip-duration", "2")
    assert other_duration.stdout.strip().startswith(f"{first}-") and "already has" not in other_duration.stderr
    # A default is a setting too: the same command under another default style is another video.
    monkeypatch.setenv("VIDPIPE_DEFAULT_STYLE", "charcoal sketch")
    other_style = _new(PROMPT).stdout.strip()
    ids = [first, other_duration.stdout.strip(), other_style]
    assert len(set(ids)) == 3
    rows, partitions = _registered(vp_env)
    assert sorted(rows) == partitions == sorted(ids)
    assert load_spec(vp_env.services(), other_style).style == "charcoal sketch"


def test_force_registers_a_second_project(vp_env):
    first = _new(PROMPT).stdout.strip()
    forced = _new(PROMPT, "--force")
    second = forced.stdout.strip()
    assert second != first and second.startswith(f"{first}-") and "already has" not in forced.stderr
    rows, partitions = _registered(vp_env)
    assert sorted(rows) == partitions == sorted([first, second])
    # Both are now identical projects; a third `new` names the oldest.
    assert _new(PROMPT).stdout == f"{first}\n"
    assert len(_registered(vp_env)[0]) == 2


def test_takes_are_not_settings_and_a_changed_setting_is(vp_env):
    """`regenerate` adds takes (the same video, new clips); `stitch --crossfade` changes a setting."""
    first = _new(PROMPT, "--clip-duration", "2").stdout.strip()
    services = vp_env.services()
    spec = load_spec(services, first)
    update_spec(services, spec.model_copy(update={"takes": {"0": "retake1"}}))
    assert _new(PROMPT, "--clip-duration", "2").stdout == f"{first}\n"
    update_spec(services, load_spec(services, first).model_copy(update={"crossfade": 0.5}))
    assert _new(PROMPT, "--clip-duration", "2").stdout.strip() != first
    assert _new(PROMPT, "--clip-duration", "2", "--crossfade", "0.5").stdout == f"{first}\n"
    assert len(_registered(vp_env)[0]) == 2


def test_explicit_id(vp_env):
    """`new --id X` again is a no-op; `--id Y` for the same prompt and settings is the caller's
    explicit choice of a second project; a taken id with other settings is still refused."""
    assert _new(PROMPT, "--id", "kite").stdout == "kite\n"
    again = _new(PROMPT, "--id", "kite")
    assert again.stdout == "kite\n" and f"project kite {NOTICE}" in again.stderr
    assert _new(PROMPT, "--id", "kite-two").stdout == "kite-two\n"
    refused = runner.invoke(app, ["new", PROMPT, "--id", "kite", "--scenes", "3"])
    assert refused.exit_code == 2 and "already taken" in refused.stderr
    refused = runner.invoke(app, ["new", PROMPT, "--id", "kite", "--force"])
    assert refused.exit_code == 2 and "already taken" in refused.stderr
    assert _registered(vp_env) == (["kite", "kite-two"], ["kite", "kite-two"])


def test_json_says_whether_the_project_is_new(vp_env):
    created = json.loads(_new(PROMPT, "--json").stdout)
    existing = json.loads(_new(PROMPT, "--json").stdout)
    assert created["existing"] is False and existing["existing"] is True
    assert created["project_id"] == existing["project_id"] == "a-kite-escapes"
    assert created["spec"] == existing["spec"]
    assert _registered(vp_env) == (["a-kite-escapes"], ["a-kite-escapes"])
