"""Parsing and validating inbox files, without Dagster."""
from __future__ import annotations

import pytest

from vidpipe_core.config import get_settings
from vidpipe_core.errors import InvalidInput
from vidpipe_core.inbox import InboxSettings, free_path, parse_inbox_file, parse_request


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
    assert entry.request.options() == {"scenes": 2, "clip_provider_name": "animatic"}


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


@pytest.mark.parametrize("fmt, text, message", [
    ("json", "[" * 30000 + "]" * 30000, "file: is not usable JSON: RecursionError"),
    ("json", '{"prompt": "x", "seed": ' + "9" * 5000 + "}", "file: is not usable JSON: ValueError"),
    ("yaml", "prompt: " + "[" * 5000 + "]" * 5000, "file: is not valid YAML"),
    ("yaml", "prompt: !!python/object/apply:os.system ['echo no']", "could not determine a constructor"),
    ("yaml", "a: &a [x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 8)}]\n" for p, c in zip("abcdefg", "bcdefgh")) + "prompt: *h\n",
     "prompt: is a list, not a single value"),
    ("yaml", "prompt: a fox\nscene: 2\n", "scene: is not a known field; did you mean 'scenes'?"),
    ("yaml", "prompt: a: b\n", "a value containing ': ' needs quotes"),
])
def test_hostile_or_mistaken_content_is_refused_quickly_with_a_reason(fmt, text, message):
    with pytest.raises(InvalidInput) as err:
        parse_request(text, fmt)
    assert message in str(err.value)
