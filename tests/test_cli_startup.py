"""`vidpipe --help` and every subcommand's `--help` import neither Dagster nor the google-genai
SDK: they are imported by the commands that need them, so help starts fast (the time itself is
measured in bench/startup.py, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

# In a fresh interpreter: which heavy packages each help screen imported, cumulatively.
PROBE = r"""
import json, sys
from typer.main import get_command
from typer.testing import CliRunner
from vidpipe_dagster.cli import app

HEAVY = ("dagster", "google.genai")
runner = CliRunner()
report = {}
for args in [["--help"]] + [[name, "--help"] for name in sorted(get_command(app).commands)]:
    result = runner.invoke(app, args)
    report[" ".join(args)] = {"exit_code": result.exit_code, "heavy": [m for m in HEAVY if m in sys.modules]}
print(json.dumps(report))
"""


def test_help_imports_neither_dagster_nor_the_google_sdk(vp_env):
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"--help", "new --help", "render --help", "status --help", "list --help"} <= set(report)
    assert {args: r["exit_code"] for args, r in report.items() if r["exit_code"] != 0} == {}
    assert {args: r["heavy"] for args, r in report.items() if r["heavy"]} == {}
