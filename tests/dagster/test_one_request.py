"""One request, three ways in: `vidpipe new`'s options, the `new_project` job's config and the fields
of an inbox file are all built from `ProjectRequest`, say the same about each field, make the same
project from the same values, and validate the request once per registration. Real CLI (typer's
runner), real Dagster job run, real inbox look, real SQLite."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from vidpipe_core import projects
from vidpipe_core.config import get_settings
from vidpipe_core.inbox.tick import process_inbox
from vidpipe_core.projects import load_spec
from vidpipe_core.request import FIELDS, description, fields_markdown, offered
from vidpipe_dagster.cli import app
from vidpipe_dagster.create import NewProjectConfig

PROMPT = "A heron wades through the reeds at dawn"
# A value for every field, unlike each default: a field added to ProjectRequest fails this test
# until it is given one here, and so is checked through all three ways in.
EVERY_FIELD: dict[str, Any] = {
    "style": "ink wash",
    "aspect_ratio": "9:16",
    "clip_duration": 2,
    "scenes": 3,
    "max_cost_usd": 3.5,
    "provider": "animatic",
    "storyboard_provider": "animatic",
    "keyframe_provider": "animatic",
    "clip_provider": "animatic",
    "generate_audio": False,
    "negative_prompt": "no text",
    "seed": 7,
    "fast": True,
    "safety_policy": "skip",
    "crossfade": 0.5,
    "burn_subtitles": True,
    # The person's own files: "FILES/" is the folder `_with_files` writes them to.
    "characters": [{"name": "Mara", "appearance": "tall, red coat", "image": "FILES/mara.png"}, {"name": "Tom"}],
    "music": "FILES/theme.wav",
    "review": "keyframes",
    "narration": False,
    "voice": "Puck",
    "language": "de-DE",
}
OWN_FILES = ("characters", "music")


def _with_files(values: dict[str, Any], folder: Any) -> dict[str, Any]:
    """``values`` with the files of EVERY_FIELD made in ``folder`` and named by their absolute paths."""
    import json
    import wave

    from PIL import Image

    Image.new("RGB", (256, 300), (120, 20, 60)).save(folder / "mara.png")
    with wave.open(str(folder / "theme.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * 64)
    return json.loads(json.dumps(values).replace("FILES/", f"{folder}/"))


def _new_command() -> Any:
    return typer.main.get_command(app).commands["new"]  # type: ignore[attr-defined]


def _config_fields() -> dict[str, Any]:
    return NewProjectConfig.to_config_schema().as_field().config_type.fields  # type: ignore[no-any-return]


def test_every_field_is_an_option_a_config_field_and_an_inbox_field_saying_the_same():
    assert set(EVERY_FIELD) == set(FIELDS) - {"prompt", "id"}
    options = {p.name: p for p in _new_command().params}
    config = _config_fields()
    # the command's own: --force, --json; --character-appearance, the rest of the characters
    assert set(options) == {*FIELDS, "force", "as_json", "character_appearance"}
    assert set(config) == {*FIELDS, "force"}
    table = fields_markdown()
    for name in FIELDS:
        about, option, field = offered(name), options[name], config[name]
        text = description(name)
        assert text.endswith(".") and option.help == text, name
        assert f"| `{name}` |" in table and f"| {text} |" in table, name
        if about is None:  # the prompt: required everywhere, no default to show
            assert option.param_type_name == "argument" and option.required
            assert field.is_required and field.description == text
            continue
        assert option.param_type_name == "option" and not field.is_required  # null: the default
        default = about.default.text()
        assert field.description == f"{text} Default (null): {default}."
        assert f"| `{name}` | {default} | {text} |" in table
        if about.default.value is not None:  # a fixed value: the option's own default, shown as typer shows one
            assert option.default == about.default.value and option.show_default is True, name
        else:  # a setting, another field, words: the option is None unless given, the help says what that means
            shown = default if about.default.field is None else options[about.default.field].opts[0]
            assert option.default is None and option.show_default == shown, name
        if about.default.setting is not None:  # a setting's built-in value and its variable, as the settings say
            setting = about.default.setting
            assert default == f"{type(get_settings()).model_fields[setting].default}, or VIDPIPE_{setting.upper()}"
    # Spellings people already type keep working.
    assert options["max_cost_usd"].opts == ["--max-cost"]
    assert (options["generate_audio"].opts, options["generate_audio"].secondary_opts) == (["--audio"], ["--no-audio"])
    assert config["force"].description and not config["force"].is_required


def test_the_inbox_page_lists_every_field_as_the_model_says():
    """docs/automation.md's table of an inbox file's fields is what docs/generate.py makes from the
    model now: a field added or re-described fails here until the page follows."""
    import runpy
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    page = (docs / "automation.md").read_text(encoding="utf-8")
    assert "<!-- generated: request-fields (docs/generate.py) -->\n" + fields_markdown() in page
    assert runpy.run_path(str(docs / "generate.py"))["render"](page) == page


def _cli_args(values: dict[str, Any]) -> list[str]:
    options = {p.name: p for p in _new_command().params}
    args = []
    for name, value in values.items():
        option = options[name]
        if name == "characters":
            for c in value:
                args += ["--character", f"{c['name']}={c['image']}" if "image" in c else c["name"]]
                args += ["--character-appearance", f"{c['name']}={c['appearance']}"] if "appearance" in c else []
        elif isinstance(value, bool):
            args.append(option.opts[0] if value else option.secondary_opts[0])
        else:
            args += [option.opts[0], str(value)]
    return args


def _launch(vp_env, config: dict[str, Any]):  # type: ignore[no-untyped-def]
    from vidpipe_dagster.definitions import defs

    return (
        defs()
        .resolve_job_def("new_project")
        .execute_in_process(
            run_config={"ops": {"register_project": {"config": config}}}, instance=vp_env.instance(), raise_on_error=False
        )
    )


def _drop(vp_env, name: str, fields: dict[str, Any]):  # type: ignore[no-untyped-def]
    import json

    inbox = get_settings().resolved_inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_text(json.dumps(fields))
    return process_inbox(vp_env.services())


def test_the_same_values_make_the_same_project_every_way_in(vp_env, monkeypatch, tmp_path):
    monkeypatch.setenv("VIDPIPE_INBOX_MIN_AGE_S", "0")
    monkeypatch.setenv("VIDPIPE_INPUT_ROOTS", f'["{tmp_path}"]')  # the inbox's files too
    every = _with_files(EVERY_FIELD, tmp_path)
    cli = CliRunner().invoke(app, ["new", PROMPT, "--id", "by-cli", *_cli_args(every)])
    assert cli.exit_code == 0, cli.output
    assert _launch(vp_env, {"prompt": PROMPT, "id": "by-job", **every, "force": True}).success
    tick = _drop(vp_env, "heron.json", {"prompt": PROMPT, "id": "by-inbox", **every})
    assert [pid for pid, _ in tick.registered] == ["by-inbox"], tick.rejected

    services = vp_env.services()
    specs = {pid: load_spec(services, pid).model_dump(exclude={"id"}) for pid in ("by-cli", "by-job", "by-inbox")}
    assert specs["by-cli"] == specs["by-job"] == specs["by-inbox"]
    given = {k: v for k, v in EVERY_FIELD.items() if not k.endswith("provider") and k not in OWN_FILES}
    assert {k: specs["by-cli"][k] for k in given} == given  # every value arrived, none replaced by a default
    assert specs["by-cli"]["providers"] == {"storyboard": "animatic", "keyframes": "animatic", "clips": "animatic"}
    mara, tom = specs["by-cli"]["characters"]
    assert (mara["name"], mara["appearance"], mara["image"]["path"]) == ("Mara", "tall, red coat", "inputs/character_01_mara.png")
    assert (tom["name"], tom["appearance"], tom["image"]) == ("Tom", None, None)
    assert specs["by-cli"]["music"]["path"] == "inputs/music.wav"


@pytest.fixture
def build_spec_calls(monkeypatch) -> list[str]:
    """The prompt of every call of the real `build_spec`, wherever the vidpipe packages refer to it."""
    calls: list[str] = []
    real = projects.build_spec

    def counted(settings, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(request.prompt)
        return real(settings, request, *args, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("vidpipe") and getattr(module, "build_spec", None) is real:
            monkeypatch.setattr(module, "build_spec", counted)
    return calls


def test_a_registration_validates_its_request_once(vp_env, monkeypatch, build_spec_calls):
    """`vidpipe new`, an inbox file and a `new_project` run each judge the request once, and then
    pass the typed spec on (it used to be built three or four times on the way)."""
    monkeypatch.setenv("VIDPIPE_INBOX_MIN_AGE_S", "0")
    result = CliRunner().invoke(app, ["new", "A kite over the dunes", "--scenes", "2"])
    assert result.exit_code == 0, result.output
    assert build_spec_calls == ["A kite over the dunes"]

    tick = _drop(vp_env, "fox.yaml", {"prompt": "A fox in the snow", "scenes": 2})
    assert [pid for pid, _ in tick.registered] == ["a-fox-in-the-snow"]
    assert build_spec_calls[1:] == ["A fox in the snow"]

    assert _launch(vp_env, {"prompt": "A lamp in the fog", "scenes": 2}).success
    assert build_spec_calls[2:] == ["A lamp in the fog"]

    # The same again: each way in still judges it once, and finds the project instead of a second one.
    again = CliRunner().invoke(app, ["new", "A kite over the dunes", "--scenes", "2"])
    assert again.exit_code == 0 and again.stdout.strip() == "a-kite-over-the-dunes"
    assert build_spec_calls[3:] == ["A kite over the dunes"]
    assert len(projects.list_projects(vp_env.services())) == 3
