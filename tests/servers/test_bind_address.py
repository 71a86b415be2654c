"""`make dev` serves the UI on loopback only, unless the user asks otherwise (HOST=0.0.0.0)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.servers.deployment import REPO

MAKEFILE = REPO / "Makefile"


def _dev_recipe() -> list[str]:
    lines = MAKEFILE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^dev\s*:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_makefile_dev_binds_loopback_by_default():
    text = MAKEFILE.read_text()
    host = re.search(r"^HOST\s*:=\s*(\S+)\s*$", text, re.MULTILINE)
    assert host and host.group(1) == "127.0.0.1", "HOST must default to 127.0.0.1"
    serve = [line for line in _dev_recipe() if re.search(r"\bdagster(-webserver)? dev\b|dagster-webserver", line)]
    assert len(serve) == 1, _dev_recipe()
    assert re.search(r"(^|\s)(-h|--host)\s+\$\(HOST\)(\s|$)", serve[0]), f"the dev server must bind $(HOST): {serve[0]}"
    assert "0.0.0.0" not in serve[0]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("exported_host", [None, "0.0.0.0"])
def test_make_dev_dry_run_expands_to_loopback(exported_host):
    """Also when the environment exports HOST (CI and Node setups often do)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "MAKEFLAGS", "MFLAGS")}
    if exported_host:
        env["HOST"] = exported_host
    proc = subprocess.run(
        ["make", "-n", "--no-print-directory", "dev"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    serve = [line for line in proc.stdout.splitlines() if " dev " in f"{line} " and "dagster" in line]
    assert serve, proc.stdout
    assert re.search(r"\s-h 127\.0\.0\.1(\s|$)", serve[-1]), serve[-1]
