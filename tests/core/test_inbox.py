"""Parsing and validating inbox files, without Dagster."""

from __future__ import annotations

import os

import pytest

from vidpipe_core.config import get_settings
from vidpipe_core.errors import ConfigurationError, InvalidInput
from vidpipe_core.inbox.files import InboxSettings
from vidpipe_core.inbox.folders import free_path, open_inbox, write_note
from vidpipe_core.inbox.parse import parse_inbox_file, parse_request


@pytest.fixture
def settings(vp_env):
    s = get_settings()
    s.resolved_inbox_dir.mkdir(parents=True, exist_ok=True)
    return s


def test_yaml_keeps_aspect_ratios_dates_and_leading_zeros_as_text():
    request = parse_request("prompt: a\naspect_ratio: 16:9\nstyle: 2024-01-01\nid: '0123'\nseed: 12\n", "yaml")
    assert (request.aspect_ratio, request.style, request.id, request.seed) == ("16:9", "2024-01-01", "0123", 12)


def test_the_same_request_has_the_same_digest_in_every_format():
    as_yaml = parse_request("prompt: A fox\nscenes: 2\n", "yaml")
    as_json = parse_request('{"scenes": 2, "prompt": "A fox "}', "json")
    assert as_yaml.digest() == as_json.digest()
    assert parse_request("A fox", "text").digest() == parse_request("prompt: A fox", "yaml").digest()
    assert as_yaml.digest() != parse_request("prompt: A fox\nscenes: 3\n", "yaml").digest()


def test_parse_inbox_file_returns_the_validated_spec(settings):
    path = settings.resolved_inbox_dir / "fox.yaml"
    path.write_text("prompt: A fox in the snow\nscenes: 2\nclip_provider: animatic\n")
    entry = parse_inbox_file(path, settings)
    assert (entry.name, entry.spec.id, entry.spec.scenes) == ("fox.yaml", "a-fox-in-the-snow", 2)
    assert entry.request.model_dump(exclude_none=True) == {
        "prompt": "A fox in the snow",
        "scenes": 2,
        "clip_provider": "animatic",
    }
    assert entry.spec.providers.clips == "animatic"


def test_a_path_outside_the_inbox_is_refused_before_it_is_read(settings, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text("prompt: nope\n")
    for path in (settings.resolved_inbox_dir / ".." / "outside.yaml", outside, settings.resolved_inbox_dir / ".."):
        with pytest.raises(InvalidInput) as err:
            parse_inbox_file(path, settings)
        assert err.value.field == "name"


def test_limits_come_from_the_environment(monkeypatch, settings):
    monkeypatch.setenv("VIDPIPE_INBOX_MAX_BYTES", "10")
    path = settings.resolved_inbox_dir / "long.txt"
    path.write_text("A fox runs through the snow.")
    with pytest.raises(InvalidInput, match=r"file: is 28 bytes; shorten it \(allowed: at most 10 bytes\)"):
        parse_inbox_file(path, settings, InboxSettings())


def test_free_path_never_reuses_a_name_or_its_error_note(tmp_path):
    (tmp_path / "a.yaml").write_text("")
    (tmp_path / "a-2.yaml.error.txt").write_text("")
    assert free_path(tmp_path, "a.yaml").name == "a-3.yaml"
    assert free_path(tmp_path, "b.yaml").name == "b.yaml"


@pytest.mark.parametrize(
    "fmt, text, message",
    [
        ("json", "[" * 30000 + "]" * 30000, "file: is not usable JSON: RecursionError"),
        ("json", '{"prompt": "x", "seed": ' + "9" * 5000 + "}", "file: is not usable JSON: ValueError"),
        ("yaml", "prompt: " + "[" * 5000 + "]" * 5000, "file: is not valid YAML"),
        ("yaml", "prompt: !!python/object/apply:os.system ['echo no']", "could not determine a constructor"),
        (
            "yaml",
            "a: &a [x, x, x, x, x, x, x, x]\n"
            + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 8)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True))
            + "prompt: *h\n",
            "prompt: is a list, not a single value",
        ),
        ("yaml", "prompt: a fox\nscene: 2\n", "scene: is not a known field; did you mean 'scenes'?"),
        ("yaml", "prompt: a: b\n", "a value containing ': ' needs quotes"),
    ],
)
def test_hostile_or_mistaken_content_is_refused_quickly_with_a_reason(fmt, text, message):
    with pytest.raises(InvalidInput) as err:
        parse_request(text, fmt)
    assert message in str(err.value)


def _bomb(levels: int, width: int, where: str) -> str:
    """A "billion laughs" document: width**levels references to one small list, through aliases."""
    text = f"l0: &l0 [{', '.join(['lol'] * width)}]\n"
    for i in range(1, levels):
        text += f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]\n"
    return text + f"{where}: *l{levels - 1}\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "text, message",
    [
        (_bomb(10, 10, "prompt"), "prompt: is a list, not a single value"),
        ("prompt: a fox\n" + _bomb(10, 10, "style"), "style: is a list, not a single value"),
        ("prompt: a fox\n" + _bomb(10, 10, "lol"), "l0: is not a known field"),
        (
            "a: &a {x: 1}\n"
            + "".join(f"{c}: &{c} {{<<: [{', '.join(['*' + p] * 9)}]}}\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
            + "prompt: *i\n",
            "file: uses a YAML merge key (<<) at line 2; write the fields out instead",
        ),
    ],
)
def test_alias_bombs_are_refused_without_being_expanded(text, message):
    with pytest.raises(InvalidInput) as err:
        parse_request(text, "yaml")
    assert message in str(err.value)


@pytest.mark.parametrize(
    "fmt, text, message",
    [
        ("yaml", "prompt: a fox\nscenes: 2\nprompt: a wolf\n", "file: field 'prompt' appears twice (line 3); keep one"),
        ("yaml", "prompt: a fox\n'prompt': a wolf\n", "file: field 'prompt' appears twice (line 2)"),
        ("yaml", "prompt: a fox\nstyle: {a: 1, a: 2}\n", "file: field 'a' appears twice (line 2)"),
        ("json", '{"prompt": "a fox", "scenes": 2, "prompt": "a wolf"}', "file: field 'prompt' appears twice; keep one"),
    ],
)
def test_a_field_given_twice_is_refused_instead_of_keeping_the_last(fmt, text, message):
    with pytest.raises(InvalidInput) as err:
        parse_request(text, fmt)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("nul.json", '{"prompt": "x \\u0000 y"}', "prompt: contains a control character (U+0000 at position 3); remove it"),
        ("esc.json", '{"prompt": "a fox", "style": "\\u001b[31mred"}', "style: contains a control character (U+001B at"),
        (
            "bell.yaml",
            'prompt: a fox\nnegative_prompt: "no \\a text"\n',
            "negative_prompt: contains a control character (U+0007 at position 4)",
        ),
        ("id.json", '{"prompt": "a fox", "id": "fox\\u0000"}', "id: contains a control character (U+0000 at position 4)"),
        ("del.txt", "a fox\x7f", "prompt: contains a control character (U+007F at position 6)"),
        ("surrogate.json", '{"prompt": "a \\ud800 fox"}', "prompt: is not valid UTF-8 (an unpaired surrogate U+D800"),
        ("invisible.txt", "\u200b\u200d\u2060\ufeff \u00a0\n", "prompt: has no visible characters"),
        ("seed.yaml", "prompt: a fox\nseed: 4294967296\n", "seed: 4294967296 is out of range (allowed: 0-4294967295"),
        ("budget.yaml", "prompt: a fox\nmax_cost_usd: -1\n", "max_cost_usd: -1.0 is negative; give the budget in USD"),
        ("budget.json", '{"prompt": "a fox", "max_cost_usd": -Infinity}', "max_cost_usd: -inf is not a finite number"),
        (
            "negative.json",
            '{"prompt": "a fox", "negative_prompt": "' + "n" * 1001 + '"}',
            "negative_prompt: is 1001 characters long (allowed: at most 1000)",
        ),
    ],
)
def test_text_and_numbers_the_pipeline_cannot_use_are_refused(settings, name, content, message):
    path = settings.resolved_inbox_dir / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        parse_inbox_file(path, settings)
    assert message in str(err.value)


def test_tab_newline_and_carriage_return_are_text(settings):
    path = settings.resolved_inbox_dir / "ok.json"
    path.write_text('{"prompt": "A fox\\tin the snow.\\r\\nIt runs."}')
    assert parse_inbox_file(path, settings).spec.prompt == "A fox\tin the snow.\r\nIt runs."


@pytest.mark.parametrize("folder", ["", "accepted", "rejected"])
def test_a_linked_inbox_or_folder_is_refused_and_nothing_is_touched(settings, tmp_path, folder):
    inbox = settings.resolved_inbox_dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    linked = inbox / folder if folder else inbox
    if folder:
        linked.symlink_to(elsewhere)
    else:
        inbox.rmdir()
        inbox.symlink_to(elsewhere)
    with pytest.raises(ConfigurationError) as err:
        with open_inbox(settings):
            pass
    assert f"inbox: {linked} is a symbolic link (to {elsewhere})" in str(err.value)
    assert "nothing was moved" in str(err.value)
    assert list(elsewhere.iterdir()) == []


def test_a_file_where_a_folder_belongs_is_refused(settings):
    (settings.resolved_inbox_dir / "rejected").write_text("not a folder")
    with pytest.raises(ConfigurationError, match=r"rejected is not a folder; move it away"):
        with open_inbox(settings):
            pass


def test_a_note_never_writes_through_a_link(tmp_path):
    folder, outside = tmp_path / "rejected", tmp_path / "outside.txt"
    folder.mkdir()
    outside.write_text("precious")
    (folder / "a.yaml.error.txt").symlink_to(outside)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        write_note(fd, "a.yaml.error.txt", "why")
    finally:
        os.close(fd)
    assert outside.read_text() == "precious"
    note = folder / "a.yaml.error.txt"
    assert not note.is_symlink() and note.read_text() == "why"
    assert sorted(p.name for p in folder.iterdir()) == ["a.yaml.error.txt"]  # no temporary left


@pytest.mark.parametrize(
    "name, content",
    [
        ("both.yaml", "prompt: A fox in the snow\naspect_ratio: '4:3'\nscene: 2\n"),
        ("both.json", '{"prompt": "A fox in the snow", "aspect_ratio": "4:3", "scene": 2}'),
    ],
)
def test_every_problem_of_a_file_is_named_at_once(settings, name, content):
    """An unknown field (refused by the file's schema) and a bad value (refused by the project's
    rules) are both named, so the file is fixed in one go."""
    path = settings.resolved_inbox_dir / name
    path.write_text(content)
    with pytest.raises(InvalidInput) as err:
        parse_inbox_file(path, settings)
    text = str(err.value)
    assert text.startswith("2 problems: (1) scene: is not a known field; did you mean 'scenes'?")
    assert "(2) aspect_ratio: '4:3' is not supported (allowed: 16:9, 9:16)" in text
    assert [p.field for p in err.value.problems] == ["scene", "aspect_ratio"]


def test_several_bad_values_are_named_together_and_one_stays_as_it_was(settings):
    path = settings.resolved_inbox_dir / "values.yaml"
    path.write_text("prompt: A fox\nscenes: 99\nseed: -1\nsafety_policy: maybe\n")
    with pytest.raises(InvalidInput) as err:
        parse_inbox_file(path, settings)
    assert [p.field for p in err.value.problems] == ["scenes", "seed", "safety_policy"]
    path.write_text("prompt: A fox\nscenes: 99\n")
    with pytest.raises(InvalidInput) as err:
        parse_inbox_file(path, settings)
    assert str(err.value) == "scenes: 99 is out of range (allowed: 1-24)"
