"""The documentation tells the truth about the code it stands beside.

* Every fenced block right after a ``<!-- runnable: NAME -->`` line in README.md or docs/*.md runs:
  here, verbatim with ``bash -e`` in an empty folder (so a fresh data dir and Dagster home), or,
  when it needs a fresh clone or servers, in the test named in ``DELEGATED``.
* docs/configuration.md's generated tables are the `Settings` and list prices of vidpipe_core/config.py.
* Every relative link (and its #anchor) and every repository path named in backticks exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- runnable: ", re.M)
BLOCK = re.compile(r"^<!-- runnable: (?P<name>[\w-]+) -->\n```\w*\n(?P<body>.*?)^```$", re.S | re.M)

#: Runnable blocks that another test runs (a fresh clone, servers, minutes): name -> that test file,
#: which must find the block by its name.
DELEGATED = {"ci-recipe": "tests/dagster/test_ci_recipe.py"}

#: What every block here runs with besides PATH and HOME: the animatic at a small size (the blocks'
#: own options choose scenes and lengths; these only make the frames small).
TINY = {
    "VIDPIPE_ANIMATIC_RESOLUTION": "144",
    "VIDPIPE_FPS": "12",
    "VIDPIPE_UI_PREVIEWS": "false",
    "VIDPIPE_LOCAL_RENDERS": "4",
}


def _rel(page: Path) -> str:
    return str(page.relative_to(REPO))


def runnable_blocks() -> dict[str, tuple[str, str]]:
    """name -> (page, the block's text), over every page; a marker without a block right after
    it, or a name used twice, is an error."""
    found: dict[str, tuple[str, str]] = {}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = list(BLOCK.finditer(text))
        assert len(blocks) == len(MARKER.findall(text)), (
            f"{_rel(page)}: a <!-- runnable: NAME --> line not followed by a ``` block"
        )
        for match in blocks:
            name = match["name"]
            assert name not in found, f"runnable block {name!r} is in both {found[name][0]} and {_rel(page)}"
            found[name] = (_rel(page), match["body"])
    return found


BLOCKS = runnable_blocks()


def test_every_marked_block_is_run_here_or_by_its_own_test():
    assert set(DELEGATED) <= set(BLOCKS), f"DELEGATED names blocks no page has: {sorted(set(DELEGATED) - set(BLOCKS))}"
    for name, test in DELEGATED.items():
        assert f'"{name}"' in (REPO / test).read_text(encoding="utf-8"), f"{test} does not run the block {name!r}"
    assert set(BLOCKS) - set(DELEGATED), "no block is run here"


def _clean_env(home: Path) -> dict[str, str]:
    """PATH (this interpreter's bin first, as an activated venv) and HOME, nothing of this session's
    VIDPIPE_*, DAGSTER_HOME or Google variables; PYTHONPATH kept so a worktree tests its own code."""
    env = {"PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **TINY}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def _check_videos(stdout: str) -> list[Path]:
    """Every MP4 whose path the block printed (a line's last word) is a playable video: a video
    stream that decodes and lasts more than 0 s."""
    import av

    videos = sorted({Path(p) for p in re.findall(r"(?:^|\s)(/\S+\.mp4)$", stdout, re.M)})
    for video in videos:
        assert video.is_file(), f"the block printed {video}, which does not exist"
        try:
            with av.open(str(video)) as container:
                assert container.duration and container.duration > 0, f"{video}: no duration"
                assert next(container.decode(video=0), None) is not None, f"{video}: no video frame decodes"
        except av.error.FFmpegError as exc:
            pytest.fail(f"the block printed {video}, which is not a playable video: {exc}")
    return videos


@pytest.mark.parametrize("name", sorted(set(BLOCKS) - set(DELEGATED)))
def test_runnable_block_runs(name, tmp_path):
    page, body = BLOCKS[name]
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(sys.prefix, target_is_directory=True)  # for `. .venv/bin/activate`
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", body],
        cwd=work,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{page}, block {name!r} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr, f"{page}, block {name!r}:\n{proc.stderr[-4000:]}"
    videos = _check_videos(proc.stdout)
    if re.search(r"^\s*(?:\S*/)?vidpipe (?:render|resume|demo)\b(?!.*--(?:help|dry-run))", body, re.M):
        assert videos, f"{page}, block {name!r} renders but printed no video path:\n{proc.stdout[-2000:]}"


# The configuration page -----------------------------------------------------------------------


def test_configuration_page_is_the_settings_of_config_py():
    """docs/configuration.md's generated tables are what docs/generate.py makes from the code now:
    a setting added, renamed, re-described or with a new default fails here until the page follows."""
    import runpy

    generate = runpy.run_path(str(REPO / "docs" / "generate.py"))
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page.count("<!-- generated: ") == 2, "docs/configuration.md lost a generated block (settings, prices)"
    fresh = generate["render"](page)
    stale = sorted(set(page.splitlines()) - set(fresh.splitlines()))
    missing = sorted(set(fresh.splitlines()) - set(page.splitlines()))
    assert fresh == page, (
        "docs/configuration.md is out of step with vidpipe_core/config.py; run `.venv/bin/python docs/generate.py`\n"
        + "".join(f"  on the page, not in the code: {line}\n" for line in stale)
        + "".join(f"  in the code, not on the page: {line}\n" for line in missing)
    )


# Links and paths ------------------------------------------------------------------------------

FENCE = re.compile(r"^```.*?^```$", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
REPO_PATH = re.compile(r"`(?P<path>(?:vidpipe_core|vidpipe_dagster|vidpipe_emulator|tests|bench|docs)/[\w./-]*)`")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a page: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_and_named_paths_exist():
    broken = []
    for page in PAGES:
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for match in LINK.finditer(text):
            target = match["target"]
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists() or REPO not in file.parents:
                broken.append(f"{_rel(page)}: link to {target}: no such file in the repository")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{_rel(page)}: link to {target}: {_rel(file)} has no heading #{anchor}")
        for match in REPO_PATH.finditer(page.read_text(encoding="utf-8")):
            if not (REPO / match["path"]).exists():
                broken.append(f"{_rel(page)}: names `{match['path']}`, which does not exist")
    assert not broken, "\n".join(broken)


def test_ci_script_parses_and_runs_the_readme_test_command():
    """CI runs `.ci/run` on a clean clone: a syntax error there (a merge once put a whole block
    inside a comment's backquote) fails CI in 0 s while every test here passes."""
    script = REPO / ".ci" / "run"
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^make test\b", readme, re.M), "README.md no longer gives `make test` as the test command"
    commands = [line.strip() for line in script.read_text(encoding="utf-8").splitlines()]
    assert "make test" in commands, ".ci/run must run the README's test command, `make test`"
