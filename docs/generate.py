"""Write the generated parts of docs/ from their one home: in configuration.md, from
vidpipe_core/config.py, the settings table (each `Settings` field's variable, default and
description) and the list prices; in automation.md, from vidpipe_core/request.py, the fields an
inbox file may set (each `ProjectRequest` field's default and description).

    .venv/bin/python docs/generate.py           # rewrite them in place
    .venv/bin/python docs/generate.py --check   # exit 1 when the page and the code differ

tests/test_docs.py (and tests/dagster/test_one_request.py for the inbox fields) fail when they
differ, so a setting or a request field cannot be added, renamed or re-described without the page
following."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from vidpipe_core.config import DEFAULT_PRICES, PRICE_RATES, Settings
from vidpipe_core.request import fields_markdown

DOCS = Path(__file__).resolve().parent
PAGE = DOCS / "configuration.md"
PAGES = (PAGE, DOCS / "automation.md")
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) \(docs/generate\.py\) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value}`"
    if isinstance(value, dict):
        if all(isinstance(v, dict) for v in value.values()):
            return "the list prices below"
        return ", ".join(f"`{k}`: {v:g}" for k, v in value.items())
    if isinstance(value, tuple | list):
        return f"`{json.dumps(list(value))}`"
    if isinstance(value, float):
        return f"{value:g}"
    return f"`{value}`" if isinstance(value, str) else str(value)


def settings_rows() -> list[str]:
    """One table row per Settings field, in the class's order."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if not field.description:
            raise ValueError(f"Settings.{name} has no description: give it one in vidpipe_core/config.py")
        default = field.get_default(call_default_factory=True, validated_data={})
        rows.append(f"| `VIDPIPE_{name.upper()}` | {_default(default)} | {_cell(field.description)} |")
    return rows


def price_rows() -> list[str]:
    """The list prices (USD) of DEFAULT_PRICES, one row per model."""
    rows = ["| model | " + " | ".join(f"`{r}`" for r in PRICE_RATES) + " |", "|---|" + "---|" * len(PRICE_RATES)]
    for model, rates in DEFAULT_PRICES.items():
        cells = [f"{rates[r]:g}" if r in rates else "" for r in PRICE_RATES]
        rows.append(f"| `{model}` | " + " | ".join(cells) + " |")
    return rows


def request_rows() -> list[str]:
    """The fields of a project request (an inbox file's; `vidpipe new`'s options), one row each."""
    return fields_markdown().splitlines()


GENERATORS = {"settings": settings_rows, "prices": price_rows, "request-fields": request_rows}


def render(page: str) -> str:
    """``page`` with every generated block rewritten; a block of an unknown name is an error."""

    def body(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise ValueError(f"no generator for the block {name!r} (known: {', '.join(GENERATORS)})")
        return match[1] + "\n".join(GENERATORS[name]()) + "\n" + match[4]

    return BLOCK.sub(body, page)


def main(argv: list[str]) -> int:
    stale = 0
    for path in PAGES:
        page = path.read_text(encoding="utf-8")
        fresh = render(page)
        if fresh == page:
            continue
        if "--check" in argv:
            print(f"{path} is out of date: run `.venv/bin/python docs/generate.py`", file=sys.stderr)
            stale += 1
        else:
            path.write_text(fresh, encoding="utf-8")
            print(f"rewrote the generated blocks of {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
