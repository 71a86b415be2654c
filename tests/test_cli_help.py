"""What a newcomer reads first: every option of every command says what it does, a flag shows no
value type (`--json`, not `--json <bool>`), each default reads whole on an 80-column terminal, and
`vidpipe --version` answers. Walks the commands by introspection, so a new option is checked too."""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from vidpipe_dagster.cli import app

GROUP = typer.main.get_command(app)
COMMANDS: dict[str, Any] = dict(GROUP.commands)  # type: ignore[attr-defined]


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option"]


def _help(*argv: str, columns: int) -> str:
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def _words(text: str) -> str:
    """The help's words in order, the box drawing and line breaks gone: a default that wraps onto
    a second line reads whole; one cut ("…") or folded inside a word does not."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _default_text(option: Any) -> str | None:
    """The `[default: ...]` typer writes for ``option``, or None when it shows none."""
    if isinstance(option.show_default, str):
        return f"[default: ({option.show_default})]"
    if not option.show_default or option.default in (None, ""):
        return None
    if option.is_flag:
        if not option.secondary_opts:
            return None
        return f"[default: {(option.opts if option.default else option.secondary_opts)[0].lstrip('-')}]"
    return f"[default: {option.default}]"


def test_every_option_of_every_command_has_help():
    missing = [
        f"{name or 'vidpipe'} {option.opts[0]}"
        for name, command in [("", GROUP), *COMMANDS.items()]
        for option in _options(command)
        if not (option.help or "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_flags_show_no_value_type_and_defaults_read_whole_at_80_columns(command):
    argv = [command] if command else []
    text = _help(*argv, columns=80)
    assert "<bool>" not in text
    assert "…" not in text
    words = _words(text)
    for option in _options(COMMANDS[command] if command else GROUP):
        default = _default_text(option)
        if default is not None:
            assert " ".join(default.split()) in words, (option.opts, text)


def test_version_prints_the_installed_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"vidpipe {version('vidpipe')}\n"
