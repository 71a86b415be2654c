"""ARCHITECTURE.md stays a true map: every file or folder it names in backticks exists, and every
package (a folder with __init__.py) of vidpipe_core, vidpipe_dagster and vidpipe_emulator has an
entry. When code moves, the failure lists each stale name with its line, to be mended on the page.

A name is looked up from the package its section is about (the first folder named in the section's
heading: "## The domain (`vidpipe_core/`)"), from the repository's root, and from the last folder
named before it on the same table row or line (`providers/animatic/`: `lexicon.py`, ...)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "ARCHITECTURE.md"
PACKAGES = ("vidpipe_core", "vidpipe_dagster", "vidpipe_emulator")

TICKED = re.compile(r"`([^`]+)`")
#: A file or folder name: path characters only, with a folder separator or a file suffix.
PATHLIKE = re.compile(r"^[\w.-]+(?:/[\w.-]*)*$")
SUFFIXES = (".py", ".md", ".yaml", ".toml", ".lock", ".mako")


def _is_path(token: str) -> bool:
    return bool(PATHLIKE.match(token)) and ("/" in token or token.endswith(SUFFIXES))


def named_paths(text: str) -> tuple[list[str], set[Path]]:
    """(the stale names, each with its line; every path that a name resolves to)."""
    stale: list[str] = []
    found: set[Path] = set()
    root = REPO
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            folders = [t for t in TICKED.findall(line) if _is_path(t) and (REPO / t).is_dir()]
            root = REPO / folders[0] if folders else REPO
        for cell in line.split("|") if line.startswith("|") else [line]:
            last_dir: Path | None = None
            for token in TICKED.findall(cell):
                if not _is_path(token):
                    continue
                bases = [root, REPO] + ([last_dir] if last_dir else [])
                hits = [(base / token).resolve() for base in bases if (base / token).exists()]
                hits = [h for h in hits if h == REPO or REPO in h.parents]
                if not hits:
                    stale.append(f"line {number}: `{token}`")
                    continue
                found.update(hits)
                dirs = [h for h in hits if h.is_dir()]
                if dirs:
                    last_dir = dirs[-1]
    return stale, found


def packages() -> list[Path]:
    return sorted(init.parent for name in PACKAGES for init in (REPO / name).rglob("__init__.py"))


def test_every_name_in_architecture_md_exists():
    stale, _ = named_paths(PAGE.read_text(encoding="utf-8"))
    assert not stale, "ARCHITECTURE.md names files or folders that do not exist:\n" + "\n".join(stale)


def test_every_package_has_an_entry_in_architecture_md():
    _, found = named_paths(PAGE.read_text(encoding="utf-8"))
    missing = [p for p in packages() if p not in found and p / "__init__.py" not in found]
    assert packages(), "no package found: is REPO right?"
    assert not missing, "packages with no entry in ARCHITECTURE.md (name the folder or its __init__.py):\n" + "\n".join(
        str(p.relative_to(REPO)) + "/" for p in missing
    )


def test_the_check_finds_stale_names_and_missing_packages():
    """The two checks above on a page with one name that does not exist and no entry for steps/."""
    page = (
        "## The domain (`vidpipe_core/`)\n| rule | home |\n|---|---|\n"
        "| prices | `cost.py`, `providers/animatic/`: `planner.py`, `gone.py` |\n"
        "## Dagster (`vidpipe_dagster/`)\n`assets.py` and `../outside.md`\n"
    )
    stale, found = named_paths(page)
    assert stale == ["line 4: `gone.py`", "line 6: `../outside.md`"]
    assert REPO / "vidpipe_core" / "providers" / "animatic" / "planner.py" in found
    assert REPO / "vidpipe_core" / "steps" not in found and REPO / "vidpipe_core" in found
