"""Errors of the `vidpipe` console script: configuration and environment problems are one line
naming the setting (exit 2), anything unexpected is one line (exit 1); the traceback is behind
--debug or in a log file that the line names, with no secret in either. And `vidpipe new` is
all-or-nothing: a registration killed half-way leaves the id free, and a project row without a
partition is repaired."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidpipe_core.errors import ConfigurationError, InvalidInput, ProjectBusy, ProjectNotFound, ProviderError
from vidpipe_dagster.cli import app
from vidpipe_dagster.cli.exits import exit_code, run_exit_code
from vidpipe_dagster.partitions import projects_partitions

VIDPIPE = str(Path(sys.executable).parent / "vidpipe")
LOG_HINT = re.compile(r"\(full traceback in (?P<path>\S+\.log); run with --debug to print it\)")
SECRET = "pw-sentinel-9f3a7c"
API_KEY = f"key-sentinel-{secrets.token_hex(8)}"  # per run, shaped like no real key


def _vidpipe(*args: str, env: dict[str, str] | None = None, argv0: list[str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "GOOGLE_API_KEY": API_KEY, **(env or {})}
    return subprocess.run([*(argv0 or [VIDPIPE]), *args], env=full_env, capture_output=True, text=True, timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess, code: int, *names: str) -> Path:
    """The process failed with ``code`` and one short error naming ``names``; the log it names."""
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3, proc.stderr
    assert lines[-1].startswith("error: ")
    assert "Traceback" not in proc.stderr
    for name in names:
        assert name in proc.stderr
    assert SECRET not in proc.stderr and API_KEY not in proc.stderr
    match = LOG_HINT.search(proc.stderr)
    assert match, proc.stderr
    log = Path(match["path"])
    text = log.read_text()
    assert "Traceback (most recent call last)" in text
    assert SECRET not in text and API_KEY not in text
    return log


def _rows(vp_env) -> list[str]:
    from vidpipe_core.projects import list_projects

    return [p.id for p in list_projects(vp_env.services())]


def _partitions(vp_env) -> list[str]:
    return vp_env.instance().get_dynamic_partitions(projects_partitions.name)


# configuration errors: exit 2, one line naming the setting --------------------------------------


@pytest.mark.parametrize(
    "url, fix",
    [
        ("/proc/forbidden/artifacts", "a folder this user can create"),
        ("{file}/under-a-file", "a folder this user can create"),
        ("nosuchproto://bucket/x", "an fsspec URL"),
        # s3fs is installed: s3:// works, but keys in the URL are refused (they would show in every URI).
        (f"s3://AKIDEXAMPLE:{SECRET}@bucket/prefix", "AWS_SECRET_ACCESS_KEY"),
        # What fsspec would find wrong only at the first read or write, inside a step (exit 1).
        ("s3://", "names no bucket"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:notaport/x", "Port could not be cast to integer"),
    ],
)
def test_unusable_artifacts_url_is_one_line(vp_env, tmp_path, url, fix):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    proc = _vidpipe("new", "a cat", "--id", "cat", env={"VIDPIPE_ARTIFACTS_URL": url.format(file=a_file)})
    log = _one_line_error(proc, 2, "VIDPIPE_ARTIFACTS_URL", "cannot be used", fix)
    assert log.parent == vp_env.data_dir / "logs"
    assert _rows(vp_env) == [] and _partitions(vp_env) == []


# An object store that cannot be reached: no credentials (botocore's NoCredentialsError), or an
# endpoint where nothing listens. The first request a new project makes says what to set; it must
# not say that "an earlier project left files" (there are none) nor exit 1.
NO_AWS = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_MAX_ATTEMPTS": "1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # discard: nothing listens
}


@pytest.mark.parametrize(
    "keys, said",
    [
        ({}, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET}, "is up and reachable"),
    ],
)
def test_an_object_store_that_cannot_be_reached_is_one_line(vp_env, keys, said):
    outside = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no key, no profile
    env = {**outside, **NO_AWS, **keys, "VIDPIPE_ARTIFACTS_URL": "s3://bucket/prefix"}
    proc = subprocess.run([VIDPIPE, "new", "a cat", "--id", "cat"], env=env, capture_output=True, text=True, timeout=120)
    _one_line_error(proc, 2, "VIDPIPE_ARTIFACTS_URL=s3://bucket/prefix cannot be used", said)
    assert "earlier project" not in proc.stderr
    assert _rows(vp_env) == [] and _partitions(vp_env) == []


@pytest.mark.parametrize(
    "url, cause",
    [
        (f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:1/x", "Connection refused"),
        ("sqlite:////proc/forbidden/x/y.db", "/proc/forbidden"),
        ("notadb://", "notadb"),
        (f"mysql://user:{SECRET}@127.0.0.1/x", "MySQLdb"),  # a driver that is not installed
        (f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:notaport/x", "its port 'notaport' is not a number"),
    ],
)
def test_unusable_database_url_is_one_line(vp_env, url, cause):
    proc = _vidpipe("new", "a cat", env={"VIDPIPE_DATABASE_URL": url})
    _one_line_error(proc, 2, "VIDPIPE_DATABASE_URL", cause)
    if SECRET in url:
        assert "***@127.0.0.1" in proc.stderr


@pytest.mark.parametrize("command", ["list", "migrate"])
def test_commands_without_their_own_handling_are_covered_by_main(vp_env, command):
    proc = _vidpipe(command, env={"VIDPIPE_DATABASE_URL": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:1/x"})
    _one_line_error(proc, 2, "VIDPIPE_DATABASE_URL", "***@127.0.0.1")


def test_unwritable_data_dir_logs_to_the_temp_dir(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _vidpipe("list", env={"VIDPIPE_DATA_DIR": "/proc/forbidden/vidpipe", "TMPDIR": str(tmp)})
    log = _one_line_error(proc, 2, "VIDPIPE_DATABASE_URL", "VIDPIPE_DATA_DIR")
    assert log.parent == tmp


PG_YAML = Path(__file__).resolve().parent.parent / "dagster.postgres.yaml"
PG_ENV = {"VIDPIPE_PG_HOST": "127.0.0.1", "VIDPIPE_PG_USER": "postgres", "VIDPIPE_PG_PASSWORD": SECRET}


@pytest.mark.parametrize(
    "case, said",
    [
        ("invalid-yaml", ""),
        ("unreadable", ""),
        ("unwritable-home", ""),
        ("unknown-key", ""),
        # The PostgreSQL instance of docs/deployment.md without its variables, with a port that is no number,
        # and with a server that refuses: Dagster's retries are not printed (four lines each).
        ("unset-variables", "it reads VIDPIPE_PG_DAGSTER_DB, VIDPIPE_PG_HOST, VIDPIPE_PG_PASSWORD"),
        ("bad-port", 'env variable "VIDPIPE_PG_PORT" cannot be coerced into an int'),
        ("refused", "port 1 failed: Connection refused"),
    ],
)
def test_unloadable_dagster_instance_is_one_line(vp_env, case, said):
    home = vp_env.dagster_home
    home.mkdir(parents=True)
    env: dict[str, str] = {}
    if case == "invalid-yaml":
        (home / "dagster.yaml").write_text("run_storage: [\n  bad: {")
    elif case == "unreadable":
        (home / "dagster.yaml").mkdir()  # as good as unreadable, even for root
    elif case == "unknown-key":
        (home / "dagster.yaml").write_text("no_such_setting: 1\n")
    elif case == "unwritable-home":
        env = {"DAGSTER_HOME": "/proc/forbidden/dagster"}
    else:
        (home / "dagster.yaml").write_text(PG_YAML.read_text())
        port = {"bad-port": "notaport", "refused": "1"}.get(case)
        env = {} if port is None else {**PG_ENV, "VIDPIPE_PG_PORT": port, "VIDPIPE_PG_DAGSTER_DB": "dagster"}
    proc = _vidpipe("new", "a cat", "--id", "cat", env=env)
    _one_line_error(proc, 2, "DAGSTER_HOME", "dagster.yaml", said)
    assert _rows(vp_env) == []


@pytest.mark.parametrize(
    "env, said",
    [
        ({"VIDPIPE_FPS": "0"}, "setting VIDPIPE_FPS: 0 must be a number more than 0; fix the environment variable"),
        ({"VIDPIPE_POLL_TIMEOUT_S": "nan"}, "setting VIDPIPE_POLL_TIMEOUT_S: nan must be a number more than 0"),
        ({"VIDPIPE_NARRATION_CONCURRENCY": "0"}, "setting VIDPIPE_NARRATION_CONCURRENCY: 0 must be a number more than 0"),
        ({"VIDPIPE_RETRY_MAX_S": "-1"}, "setting VIDPIPE_RETRY_MAX_S: -1.0 must be a number, 0 or more"),
        ({"VIDPIPE_PRICES": "{bad"}, "setting VIDPIPE_PRICES is not valid JSON (Expecting property name"),
        ({"VIDPIPE_VIDEO_DURATIONS": "4,6"}, "setting VIDPIPE_VIDEO_DURATIONS is not valid JSON (Extra data at column 2)"),
        ({"VIDPIPE_VIDEO_DURATIONS": "[]"}, "setting VIDPIPE_VIDEO_DURATIONS: [] must list the clip durations"),
        ({"VIDPIPE_PRICES": '{"veo": {"per_second": "a"}}'}, "setting VIDPIPE_PRICES (veo.per_second): Input should be"),
        ({"VIDPIPE_CONFIG": "{tmp}/missing.toml"}, "VIDPIPE_CONFIG={tmp}/missing.toml does not exist"),
        ({"VIDPIPE_CONFIG": "{tmp}"}, "VIDPIPE_CONFIG={tmp} is a folder"),
        ({"VIDPIPE_CONFIG": "{tmp}/broken.toml"}, "the config file {tmp}/broken.toml (VIDPIPE_CONFIG, or ./vidpipe.toml)"),
        (
            {"VIDPIPE_CONFIG": "{tmp}/scenes.toml"},
            "a valid integer, unable to parse string as an integer; fix it in the config file {tmp}/scenes.toml",
        ),
        # A default the project would refuse names the variable, not the --option nobody passed.
        ({"VIDPIPE_DEFAULT_SCENES": "0"}, "setting VIDPIPE_DEFAULT_SCENES: 0 is out of range (allowed: 1-24)"),
        ({"VIDPIPE_DEFAULT_STYLE": "noir\u202e"}, "setting VIDPIPE_DEFAULT_STYLE: contains an invisible format character"),
        ({"VIDPIPE_DEBUG": "maybe"}, "setting VIDPIPE_DEBUG: 'maybe' is not true or false"),
        ({"VIDPIPE_CELERY_BROKER": f"amqp://u:{SECRET}@127.0.0.1:notaport//"}, "setting VIDPIPE_CELERY_BROKER: the URL"),
    ],
)
def test_a_setting_that_cannot_be_used_is_one_line(vp_env, tmp_path, env, said):
    """Every VIDPIPE_ variable (and the TOML file) that parses wrong is one line naming it, exit 2,
    before anything is written: not pydantic's traceback (exit 1), nor a failure mid-render."""
    (tmp_path / "broken.toml").write_text("fps = [\n")
    (tmp_path / "scenes.toml").write_text('default_scenes = "many"\n')
    env = {name: value.replace("{tmp}", str(tmp_path)) for name, value in env.items()}
    proc = _vidpipe("new", "a cat", "--id", "cat", env=env)
    _one_line_error(proc, 2, said.replace("{tmp}", str(tmp_path)))
    assert _rows(vp_env) == []


def test_a_celery_backend_that_cannot_be_used_stops_the_worker_in_one_line(vp_env):
    proc = _vidpipe("worker", env={"VIDPIPE_CELERY_BACKEND": "nosuch://"})
    _one_line_error(proc, 2, "setting VIDPIPE_CELERY_BACKEND=nosuch:// cannot be used: ModuleNotFoundError")


def test_debug_prints_the_traceback(vp_env):
    proc = _vidpipe(
        "--debug", "new", "a cat", env={"VIDPIPE_DATABASE_URL": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:1/x"}
    )
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr and "OperationalError" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: VIDPIPE_DATABASE_URL=")
    assert SECRET not in proc.stderr
    assert not (vp_env.data_dir / "logs").exists()


def test_input_errors_stay_one_line_without_a_log(vp_env):
    proc = _vidpipe("render", "no-such-project")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "does not exist" in proc.stderr
    assert "traceback" not in proc.stderr


# anything else: exit 1, one line with the exception type; the traceback in a log -----------------


def test_unexpected_error_is_one_line_with_a_log(vp_env):
    assert _vidpipe("new", "a cat", "--id", "cat").returncode == 0
    db = sqlite3.connect(vp_env.data_dir / "vidpipe.db")
    with db:
        db.execute("UPDATE projects SET spec = '[]'")  # damaged by hand: `list` meets a list, not a dict
    db.close()
    proc = _vidpipe("list")
    log = _one_line_error(proc, 1)
    assert proc.stderr.startswith("error: AttributeError: ")
    assert "$ vidpipe list" in log.read_text()


def test_unexpected_error_message_and_log_are_redacted(vp_env):
    script = textwrap.dedent(f"""
        import sys
        import vidpipe_core.projects as projects
        from vidpipe_dagster.cli import main

        def broken(services):
            raise RuntimeError("boom with {API_KEY} and a password {SECRET}\\nsecond line")

        projects.list_projects = broken
        sys.argv = ["vidpipe", "list"]
        main()
    """)
    proc = _vidpipe(argv0=[sys.executable, "-c", script], env={"VIDPIPE_PG_PASSWORD": SECRET})
    log = _one_line_error(proc, 1, "RuntimeError: boom with *** and a password ***")
    assert "second line" not in proc.stderr and "second line" in log.read_text()


def test_an_error_quoting_a_format_character_prints_it_escaped(vp_env):
    """Whatever text an error quotes (a provider's reason, a path), the line on the terminal shows
    what it is: U+202E as \\u202e, never reordering the rest of the line."""
    script = textwrap.dedent("""
        import sys
        import vidpipe_core.projects as projects
        from vidpipe_core.errors import ProviderError
        from vidpipe_dagster.cli import main

        def refused(services):
            raise ProviderError("storyboard", "the model said: evil\u202etxt.exe")

        projects.list_projects = refused
        sys.argv = ["vidpipe", "list", "--json"]
        main()
    """)
    proc = _vidpipe(argv0=[sys.executable, "-c", script])
    assert proc.returncode == 1 and "\u202e" not in proc.stderr + proc.stdout
    assert proc.stderr.strip() == "error: storyboard: the model said: evil\\u202etxt.exe"
    assert json.loads(proc.stdout)["error"]["message"] == "storyboard: the model said: evil\\u202etxt.exe"


def test_keyboard_interrupt_exits_130(vp_env):
    script = textwrap.dedent("""
        import sys
        import vidpipe_core.projects as projects
        from vidpipe_dagster.cli import main

        def interrupted(services):
            raise KeyboardInterrupt

        projects.list_projects = interrupted
        sys.argv = ["vidpipe", "list"]
        main()
    """)
    proc = _vidpipe(argv0=[sys.executable, "-c", script])
    assert proc.returncode == 130 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "exc, code",
    [
        (InvalidInput("id", "bad"), 2),
        (ProjectNotFound("x"), 2),
        (ConfigurationError("no ffmpeg"), 2),
        (ProjectBusy("x", "run 1"), 3),
        (ProviderError("clips", "gone"), 1),
        (RuntimeError("bug"), 1),
    ],
)
def test_exit_codes(exc, code):
    assert exit_code(exc) == code


@pytest.mark.parametrize(
    "classes, code",
    [
        (["ProviderError"], 1),
        ([None], 1),  # an exception that is no vidpipe error
        (["ConfigurationError"], 2),
        (["InvalidInput", "ProviderError"], 2),
        (["ProviderError", "ProjectBusy"], 3),
    ],
)
def test_exit_code_of_a_failed_run_follows_its_steps_errors(classes, code):
    from vidpipe_dagster.runner import StepFailure

    assert run_exit_code([StepFailure("clips", "message", c) for c in classes]) == code


def test_invalid_setting_names_the_variable():
    from vidpipe_core.config import get_settings
    from vidpipe_dagster.cli.output import _settings_error

    os.environ["VIDPIPE_FPS"] = "many"
    try:
        with pytest.raises(Exception) as info:
            get_settings()
    finally:
        del os.environ["VIDPIPE_FPS"]
    error = _settings_error(info.value)
    assert isinstance(error, ConfigurationError) and "VIDPIPE_FPS" in str(error) and exit_code(error) == 2


# `vidpipe new` is all-or-nothing ------------------------------------------------------------------


def test_new_killed_between_partition_and_row_leaves_the_id_free(vp_env):
    script = textwrap.dedent("""
        import os, signal
        import vidpipe_core.projects as projects
        from vidpipe_dagster.runner import register

        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)   # the partition is added, the row not yet written

        projects.create_project = killed
        register("a cat on a windowsill", id="cat")
    """)
    proc = _vidpipe(argv0=[sys.executable, "-c", script])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _rows(vp_env) == []  # the id is not taken ...
    result = CliRunner().invoke(app, ["new", "a cat on a windowsill", "--id", "cat"])
    assert result.exit_code == 0, result.output  # ... so `new` succeeds
    assert _rows(vp_env) == ["cat"] and _partitions(vp_env) == ["cat"]


def test_failed_row_insert_removes_the_partition_it_added(vp_env, monkeypatch):
    import vidpipe_core.projects as projects
    from vidpipe_dagster.runner import register

    def refused(*args, **kwargs):
        raise RuntimeError("the database refused the row")

    monkeypatch.setattr(projects, "create_project", refused)
    with pytest.raises(RuntimeError):
        register("a cat on a windowsill", id="cat")
    assert _rows(vp_env) == [] and _partitions(vp_env) == []


def test_row_without_partition_is_repaired(vp_env):
    from vidpipe_core.projects import build_spec, create_project
    from vidpipe_core.request import ProjectRequest
    from vidpipe_dagster.instance import ensure_partition

    services = vp_env.services()
    spec = build_spec(services.settings, ProjectRequest(prompt="a cat on a windowsill", id="cat"))
    create_project(services, spec, "cli")  # a registration that died before the partition
    instance = vp_env.instance()
    assert _partitions(vp_env) == []
    ensure_partition(instance, services, "cat")
    ensure_partition(instance, services, "cat")  # idempotent
    assert _partitions(vp_env) == ["cat"]
    with pytest.raises(ProjectNotFound):
        ensure_partition(instance, services, "no-such-project")
    assert _partitions(vp_env) == ["cat"]
