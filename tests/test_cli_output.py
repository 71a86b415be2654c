"""The output contract of the `vidpipe` console script (docs/cli.md, and "Errors
and exit codes" in docs/configuration.md): the result alone on stdout, never wrapped; progress and errors on stderr, one
line per failed stage with the command that fixes it and the Dagster log in a file; --json
documents; each documented exit code from a real case; `list` with full ids; help that wraps and
shows defaults, without importing Dagster or the Google SDK."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import VIDPIPE, Output, spawn, wait_for
from vidpipe_core import media
from vidpipe_core.locks import project_lock

ERROR_LINE = re.compile(r"^error: (?P<where>[a-z_]+(, (scene|frame) \d+)?): (?P<rest>.*)$")
LOG_PATH = re.compile(r"Dagster log: (?P<path>\S+\.log)\)$")


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([VIDPIPE, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def _new(*args: str) -> str:
    proc = _run("new", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1, proc.stdout  # the id, alone
    return proc.stdout.strip()


def _failure_line(proc: subprocess.CompletedProcess, code: int) -> tuple[re.Match, Path]:
    """The run failed with ``code`` and said so in exactly one line, without Dagster's log or a
    stack trace; the line's match and the log file it names (which holds the whole event log)."""
    assert proc.returncode == code, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "Stack Trace" not in proc.stderr and "Traceback" not in proc.stderr and " - dagster - " not in proc.stderr
    match = ERROR_LINE.match(errors[0])
    assert match, errors[0]
    log = LOG_PATH.search(errors[0])
    assert log, errors[0]
    path = Path(log["path"])
    assert path.parent.name == "logs"
    text = path.read_text()
    assert "STEP_FAILURE" in text and "Stack Trace" in text
    return match, path


# stdout: the result alone ---------------------------------------------------------------------------


def test_render_piped_to_tail_is_exactly_the_mp4_path(vp_env, tmp_path, monkeypatch):
    data = tmp_path / ("a-long-folder-name-" * 9) / "data"
    monkeypatch.setenv("VIDPIPE_DATA_DIR", str(data))
    project = _new("A paper boat sets off down a rain-filled gutter", "--scenes", "2", "--id", "paper-boat-in-a-long-place")
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    shell = f"'{VIDPIPE}' render {project} 2>'{err}' | tee '{out}' | tail -n 1"
    proc = subprocess.run(shell, shell=True, env={**os.environ, "COLUMNS": "40"}, capture_output=True, text=True, timeout=120)
    expected = data.resolve() / "artifacts" / "projects" / project / "final.mp4"
    assert len(str(expected)) > 200
    assert proc.stdout == f"{expected}\n"  # `P=$(vidpipe render ID | tail -n 1)` is the path
    assert out.read_text() == f"{expected}\n"  # and it is all that went to stdout
    progress = err.read_text()
    assert "[storyboard]" in progress and "[final_video] final video written" in progress
    info = media.probe(expected)
    assert info.has_video and abs(info.duration_s - 2.0) <= 0.25


def test_list_piped_shows_full_ids(vp_env):
    first = _new("a fox", "--id", "a-fox-steals-a-loaf-of-bread-from-the-village-baker-at-dawn")
    second = _new("another fox", "--id", "a-fox-steals-a-loaf-of-bread-from-the-village-baker-at-dusk")
    proc = _run("list", env={"COLUMNS": "40"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [first, second]
    assert all(len(line.split("\t")) == 5 for line in lines)
    assert proc.stdout.splitlines()[0].split("\t")[4] == "-"  # no final video yet


# --json --------------------------------------------------------------------------------------------


def test_json_documents_of_new_render_status_list_and_resume(vp_env):
    proc = _run("new", "A kite escapes over a windy beach", "--scenes", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    new = json.loads(proc.stdout)
    project = new["project_id"]
    assert new["exit_code"] == 0 and new["spec"]["id"] == project and new["spec"]["scenes"] == 2
    assert new["spec"]["providers"] == {"storyboard": "animatic", "keyframes": "animatic", "clips": "animatic"}

    proc = _run("render", project, "--json")
    assert proc.returncode == 0, proc.stderr
    render = json.loads(proc.stdout)
    assert render["project_id"] == project and render["status"] == "success" and render["exit_code"] == 0
    assert isinstance(render["run_id"], str) and render["failures"] == [] and render["log"] is None
    assert media.probe(render["video"]).has_video
    assert "[final_video]" in proc.stderr  # progress still on stderr

    proc = _run("status", project, "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["project_id"] == project and status["exit_code"] == 0
    stages = ["storyboard", "characters", "keyframes", "clips", "narration", "final_video"]
    assert [a["asset"] for a in status["assets"][:6]] == stages
    assert all(a["state"] == "materialized" for a in status["assets"][:6])
    assert [s["scene"] for s in status["scenes"]] == [1, 2] and all("index" not in s for s in status["scenes"])
    assert all(s["clip"] == "done" for s in status["scenes"])
    assert {a["run_id"] for a in status["assets"]} == {render["run_id"]}  # the whole id, as render --json gives it
    # Every time carries its offset (UTC), the run's row too (when it started), and none is in the future.
    whens = [datetime.fromisoformat(a["when"]) for a in status["assets"]]
    assert len(whens) == 7 and all(w.utcoffset() == timedelta(0) for w in whens)
    assert whens[6] <= min(whens[:6]) and max(whens) <= datetime.now(UTC)
    assert set(status["cost"]) >= {"spent_usd", "projected_usd", "budget_usd"}

    proc = _run("list", "--json")
    assert proc.returncode == 0, proc.stderr
    (listed,) = json.loads(proc.stdout)
    assert listed["id"] == project and listed["scenes"] == 2 and listed["final_video"] == render["video"]
    assert listed["providers"]["clips"] == "animatic" and datetime.fromisoformat(listed["created"]).utcoffset() == timedelta(0)

    proc = _run("resume", project, "--json")
    assert proc.returncode == 0, proc.stderr
    resume = json.loads(proc.stdout)
    assert resume["status"] == "success" and resume["run_id"] is None and resume["video"] == render["video"]
    assert resume["plan"]["stages"] == [] and resume["dry_run"] is False


def test_json_is_printed_when_a_command_fails_before_running(vp_env):
    proc = _run("render", "no-such-project", "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed" and doc["exit_code"] == 2 and doc["run_id"] is None
    assert doc["failures"] == [
        {"stage": None, "scene": None, "message": doc["failures"][0]["message"], "error": "ProjectNotFound"}
    ]
    assert "does not exist" in doc["failures"][0]["message"]
    assert proc.stderr.startswith("error: project 'no-such-project' does not exist")

    proc = _run("status", "no-such-project", "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["error"] == "ProjectNotFound"

    proc = _run("new", "   ", "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 2 and doc["error"]["error"] == "InvalidInput" and doc["error"]["message"].startswith("prompt:")


# exit codes, each from a real case ------------------------------------------------------------------


def test_exit_0_done(vp_env):
    project = _new("a cat naps in the sun", "--scenes", "1")
    proc = _run("render", project)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(f"/{project}/final.mp4"), proc.stderr


def test_exit_1_a_stage_failed_is_one_line_with_the_command_and_the_log(vp_env):
    project = _new("a dog waits at the door", "--scenes", "2")
    proc = _run("stitch", project)  # before any clip exists
    match, _log = _failure_line(proc, 1)
    assert match["where"] == "final_video"
    assert match["rest"].startswith(f"project '{project}' has no finished clip for any scene; run `vidpipe render {project}`")
    assert proc.stdout == ""


def test_exit_1_a_provider_failure_names_its_scene_and_resume(gp):
    vp_env, g = gp
    g.emulator.configure(error_word="meltdown")
    project = _new("A reactor meltdown seen from far away", "--scenes", "1", "--clip-duration", "4")
    proc = _run("render", project, "--json")
    match, log = _failure_line(proc, 1)
    assert match["where"] == "clips, scene 1" and "clips, scene 1: clips" not in proc.stderr
    assert f"`vidpipe resume {project}`" in match["rest"]
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed" and doc["exit_code"] == 1 and doc["video"] is None and doc["log"] == str(log)
    (failure,) = doc["failures"]
    assert failure["stage"] == "clips" and failure["scene"] == 1 and failure["error"] == "ProviderError"
    assert not failure["message"].startswith("clips")
    for text in (proc.stdout, proc.stderr, log.read_text()):
        assert g.api_key not in text


def test_exit_2_bad_input_or_configuration(vp_env):
    proc = _run("new", "a cat", "--provider", "foo")
    assert proc.returncode == 2 and "allowed: auto, animatic, google" in proc.stderr
    proc = _run("new", "a cat", "--provider", "google")  # no Google credentials in the test environment
    assert proc.returncode == 2 and "GOOGLE_GENAI_USE_VERTEXAI" in proc.stderr
    proc = _run("render", "no-such-project")
    assert proc.returncode == 2 and "vidpipe new" in proc.stderr


def test_exit_3_the_project_is_busy(vp_env):
    project = _new("two trains pass in the night", "--scenes", "1")
    with project_lock(vp_env.services(), project, "another-run"):  # held by this (live) process
        proc = _run("render", project, "--json")
    match, _log = _failure_line(proc, 3)
    assert match["where"] == "storyboard"
    assert "is being rendered by run another-run" in match["rest"] and f"`vidpipe status {project}`" in match["rest"]
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 3 and doc["failures"][0]["error"] == "ProjectBusy"


def test_exit_130_interrupted(vp_env):
    project = _new("a slow parade of lanterns", "--scenes", "24", "--clip-duration", "8")
    proc = spawn("render", project)
    out = Output(proc)
    try:
        wait_for(lambda: "[clips] scene 1: submitted" in out.text(), timeout=120, what="the first clip")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.close()
    assert code == 130, text
    assert f"`vidpipe resume {project}`" in text and "Stack Trace" not in text


# --verbose ------------------------------------------------------------------------------------------


def test_verbose_streams_the_dagster_log(vp_env):
    project = _new("a dog waits at the door", "--scenes", "1")
    proc = _run("--verbose", "stitch", project)
    assert proc.returncode == 1
    assert " - dagster - " in proc.stderr and "STEP_FAILURE" in proc.stderr and "RUN_FAILURE" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("error: final_video: ")


# help -----------------------------------------------------------------------------------------------

COMMANDS = ["new", "render", "demo", "resume", "regenerate", "retake", "stitch", "edit", "status", "list", "migrate", "worker"]


def test_help_imports_neither_dagster_nor_the_google_sdk():
    script = textwrap.dedent(f"""
        import sys
        from vidpipe_dagster.cli import main

        for argv in [["--help"], *([c, "--help"] for c in {COMMANDS!r})]:
            sys.argv = ["vidpipe", *argv]
            try:
                main()
            except SystemExit as exit:
                assert exit.code in (0, None), (argv, exit.code)
            loaded = [m for m in ("dagster", "google.genai") if m in sys.modules]
            assert not loaded, (argv, loaded)
        print("ok", file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "ok", proc.stderr


def _plain(text: str) -> str:
    """Help text with the box drawing removed: the words, one output line per line."""
    return "\n".join(" ".join(re.sub(r"[│╭╮╰╯─]", " ", line).split()) for line in text.splitlines())


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help_wraps_naturally_and_shows_defaults(command):
    from vidpipe_dagster.cli import app

    proc = _run(*command, "--help", env={"COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    text = _plain(proc.stdout)
    # On a wide terminal a command's description is one line: no hard line break inside a sentence.
    import typer.main

    group = typer.main.get_command(app)
    docs = [group.help] if not command else [group.commands[command[0]].help]  # type: ignore[attr-defined]
    if not command:
        docs += [c.help for c in group.commands.values()]  # type: ignore[attr-defined]
    for doc in docs:
        words = " ".join(doc.replace("`", "").split())
        assert any(words in line for line in text.splitlines()), (words, text)
    if command == ["new"]:
        for option, values in {
            "--provider": "auto, animatic, google",
            "--storyboard-provider": "auto, animatic, google",
            "--aspect-ratio": "16:9 or 9:16",
            "--safety-policy": "fail, skip or retry",
            "--clip-duration": "[default: (4, or VIDPIPE_DEFAULT_CLIP_DURATION)]",
            "--scenes": "[default: (4, or VIDPIPE_DEFAULT_SCENES)]",
            "--crossfade": "[default: 0.0]",
        }.items():
            block = text.split(option + " ", 1)[1].split("\n--", 1)[0]
            assert values in " ".join(block.split()), (option, block)
