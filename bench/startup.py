"""`startup`: how long the `vidpipe` command takes to start and exit when it does little.

Each row is a fresh process, timed from spawn to exit (wall clock, output discarded): `vidpipe
--help`, every subcommand's `--help`, and `vidpipe list` on a registry of 3 projects; for
contrast, the interpreter alone (`python -c pass`) and `python -c "import dagster"` /
`"import google.genai"`, the imports that help must not pay for (the target: every help under
0.5 s). One untimed warm-up run of each first (it writes the bytecode cache of a fresh
checkout), then N rounds, each running every command once, so load drifts hit all alike."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import PYTHON, Report, fmt_s, fresh_home, log, remove_home, summary, table

VIDPIPE = str(Path(PYTHON).parent / "vidpipe")
TARGET_S = 0.5
PROMPTS = ("A lighthouse keeper climbs the stairs", "A paper boat sets off down a gutter", "A fox crosses a snowy field")


def _commands() -> list[tuple[str, list[str], str]]:
    """(label, argv, kind): kind is "help" (held to the target), "command" or "contrast"."""
    from typer.main import get_command

    from vidpipe_dagster.cli import app

    rows = [("python -c pass", [PYTHON, "-c", "pass"], "contrast"), ("vidpipe --help", [VIDPIPE, "--help"], "help")]
    rows += [(f"vidpipe {name} --help", [VIDPIPE, name, "--help"], "help") for name in sorted(get_command(app).commands)]
    rows += [
        ("vidpipe list (3 projects)", [VIDPIPE, "list"], "command"),
        ('python -c "import dagster"', [PYTHON, "-c", "import dagster"], "contrast"),
        ('python -c "import google.genai"', [PYTHON, "-c", "import google.genai"], "contrast"),
    ]
    return rows


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    code = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120).returncode
    return time.perf_counter() - started, code


def run(quick: bool = False) -> Report:
    rounds = 3 if quick else 15
    root = fresh_home("startup")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as a user runs it: .pyc cached
    env.update({"VIDPIPE_PROVIDER": "animatic", "COLUMNS": "120"})
    try:
        for prompt in PROMPTS:
            subprocess.run([VIDPIPE, "new", prompt], env=env, check=True, capture_output=True, timeout=120)
        commands = _commands()
        log(f"startup: warm-up of {len(commands)} commands")
        for _label, argv, _kind in commands:
            _time(argv, env)
        times: dict[str, list[float]] = {label: [] for label, _argv, _kind in commands}
        codes: dict[str, set[int]] = {label: set() for label, _argv, _kind in commands}
        for i in range(rounds):
            for label, argv, _kind in commands:
                seconds, code = _time(argv, env)
                times[label].append(seconds)
                codes[label].add(code)
            log(f"startup: round {i + 1}/{rounds}")
    finally:
        remove_home(root)
    return _report(commands, times, codes, rounds)


def _report(commands: list[tuple[str, list[str], str]], times: dict, codes: dict, rounds: int) -> Report:  # type: ignore[type-arg]
    report = Report("startup", "startup — `vidpipe` commands that do little, from spawn to exit")
    report.setup = [
        "Each command in a fresh process, spawn to exit (`subprocess.run`, output discarded), console script "
        f"`{Path(VIDPIPE).name}` of this venv; fresh SQLite VIDPIPE_DATA_DIR + DAGSTER_HOME with 3 projects registered.",
        "Bytecode caching on (PYTHONDONTWRITEBYTECODE unset), after one untimed warm-up run of each command.",
        f"{rounds} rounds, each running every command once in the order below; median (min–max) of {rounds}.",
    ]
    summaries = {label: summary(times[label]) for label, _argv, _kind in commands}
    rows = []
    for label, _argv, kind in commands:
        s = summaries[label]
        verdict = ("yes" if s["median"] < TARGET_S else "**no**") if kind == "help" else "–"
        bad_exit = sorted(c for c in codes[label] if c != 0)
        rows.append([f"`{label}`", fmt_s(s, 3), verdict, ", ".join(map(str, bad_exit)) or "0"])
    report.tables.append(table(["command", "seconds, median (min–max)", f"help under {TARGET_S} s", "exit codes"], rows))
    helps = {label: summaries[label]["median"] for label, _argv, kind in commands if kind == "help"}
    slowest = max(helps, key=lambda k: helps[k])
    floor = summaries["python -c pass"]["median"]
    dagster = summaries['python -c "import dagster"']["median"]
    report.notes = [
        f"Slowest help: `{slowest}` at {helps[slowest]:.3f} s median "
        f"({helps[slowest] - floor:.3f} s above the bare interpreter's {floor:.3f} s); "
        + ("every help is under the target." if helps[slowest] < TARGET_S else "over the target."),
        f"Importing Dagster alone takes {dagster:.3f} s, {dagster / helps[slowest]:.1f}× the slowest help: "
        "help screens do not import it (tests/test_cli_startup.py checks the modules, not the time).",
    ]
    report.data = {
        "rounds": rounds,
        "target_s": TARGET_S,
        "commands": [
            {"label": label, "argv": [Path(a).name if a in (PYTHON, VIDPIPE) else a for a in argv], "kind": kind}
            for label, argv, kind in commands
        ],
        "summary_s": summaries,
        "exit_codes": {label: sorted(c) for label, c in codes.items()},
    }
    return report


if __name__ == "__main__":
    from bench.__main__ import run_one

    sys.exit(run_one("startup", "--quick" in sys.argv))
