"""The exit codes of `vidpipe` have one table (`EXIT_CODES` in vidpipe_dagster/cli/exits.py): it is
pinned here, a command's error and a run step's error (known by class name only) get the same code
from it, and the pages people read (the table of docs/configuration.md, every "exits N" in the
README and docs/) agree with it. The real command producing each code: tests/test_cli_output.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vidpipe_core import errors
from vidpipe_dagster.cli.exits import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_OK,
    class_exit_code,
    exit_code,
    run_exit_code,
)
from vidpipe_dagster.runner import StepFailure

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "configuration.md"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

PINNED = {
    "InvalidInput": 2,
    "InvalidInputs": 2,
    "ProjectNotFound": 2,
    "ConfigurationError": 2,
    "ProjectBusy": 3,
    "KeyboardInterrupt": 130,
}
ROW = re.compile(r"^\| (\d+) \| (.*) \|$")
MENTION = re.compile(r"\bexit(?:s|ed)?(?: with)?(?: status| code)? (\d+)\b", re.IGNORECASE)


def _error_classes() -> dict[str, type[BaseException]]:
    """Every error class a person may read the name of: vidpipe's own, and KeyboardInterrupt."""
    found: dict[str, type[BaseException]] = {"KeyboardInterrupt": KeyboardInterrupt}
    todo: list[type[BaseException]] = [errors.VidpipeError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def _documented_table(text: str) -> dict[int, str]:
    """The exit-code table of the page: code -> its meaning."""
    section = text.split("## Errors and exit codes", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            rows[int(match[1])] = match[2]
    return rows


def test_the_table_is_pinned():
    assert {cls.__name__: code for cls, code in EXIT_CODES.items()} == PINNED
    assert (EXIT_OK, EXIT_FAILURE) == (0, 1)


def test_a_command_and_a_run_step_get_the_same_code_for_an_error():
    classes = _error_classes()
    for name, cls in classes.items():
        listed = [base for base in EXIT_CODES if issubclass(cls, base)]
        if listed:  # a step names only the class it raised: a subclass of a listed error is listed too
            assert cls in EXIT_CODES, f"{name} is a {listed[0].__name__}: list it in EXIT_CODES"
        assert class_exit_code(name) == EXIT_CODES.get(cls, EXIT_FAILURE), name
    assert class_exit_code(None) == class_exit_code("RuntimeError") == EXIT_FAILURE


@pytest.mark.parametrize("name, code", PINNED.items())
def test_exit_code_follows_the_table(name, code):
    cls = _error_classes()[name]
    exc = cls.__new__(cls)  # no message needed: only the class decides
    assert exit_code(exc) == code
    if code != 130:  # a run's step never reports an interrupt: the run itself was interrupted
        assert run_exit_code([StepFailure("clips", "message", name)]) == code


def _disagreements(text: str) -> list[str]:
    """Where the exit-code table of ``text`` and EXIT_CODES differ: a code one has and the other
    has not, an error class named on the row of another code, a row that leaves out a class."""
    rows = _documented_table(text)
    codes = {EXIT_OK, EXIT_FAILURE, *EXIT_CODES.values()}
    found = [f"exit {code}: on the page, not in the table" for code in sorted(set(rows) - codes)]
    found += [f"exit {code}: in the table, not on the page" for code in sorted(codes - set(rows))]
    classes = _error_classes()
    for code, meaning in rows.items():
        named = {token for token in re.findall(r"`([^`]+)`", meaning) if token in classes}
        found += [
            f"exit {code}: names {name}, which exits {class_exit_code(name)}"
            for name in sorted(named)
            if class_exit_code(name) != code
        ]
        if code != EXIT_FAILURE:  # every other error exits 1: its row names a few as examples
            missing = {cls.__name__ for cls, c in EXIT_CODES.items() if c == code} - named
            found += [f"exit {code}: does not name {name}" for name in sorted(missing)]
    return found


def test_the_page_agrees_with_the_table():
    assert _disagreements(PAGE.read_text(encoding="utf-8")) == []


def test_every_exit_status_the_pages_mention_is_one_of_the_table():
    codes = {EXIT_OK, EXIT_FAILURE, *EXIT_CODES.values()}
    mentions = [
        (page.relative_to(REPO), number, int(match[1]))
        for page in PAGES
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1)
        for match in MENTION.finditer(line)
    ]
    assert mentions, "no exit status found: is MENTION right?"
    assert [m for m in mentions if m[2] not in codes] == []


def test_the_page_check_sees_each_kind_of_disagreement():
    page = (
        "## Errors and exit codes\n\n| exit code | meaning |\n|---|---|\n| 0 | done |\n"
        "| 1 | failed (`ProjectBusy`) |\n| 2 | fix it (`InvalidInput`, `InvalidInputs`, `ProjectNotFound`) |\n"
        "| 3 | busy (`ProjectBusy`) |\n| 4 | what? |\n\n## Next\n| 130 | not this section |\n"
    )
    assert _disagreements(page) == [
        "exit 4: on the page, not in the table",
        "exit 130: in the table, not on the page",
        "exit 1: names ProjectBusy, which exits 3",
        "exit 2: does not name ConfigurationError",
    ]
