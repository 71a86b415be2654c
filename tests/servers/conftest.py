"""One local Dagster deployment per test session, shared by the server and browser tests:
a data dir + DAGSTER_HOME (the repository's dagster.yaml, SQLite) configured like `vp_env`,
a `dagster-webserver` and a `dagster-daemon` started on first use and stopped at the end.

Tests talk to the servers over HTTP, and to the same instance in-process through the
`deployment` fixture, which points this process's environment at it. When a test fails, the
servers' logs are attached to its report."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import GOOGLE_ENV
from tests.servers.deployment import REPO, GraphQL, ServerProcess, start_daemon, start_webserver, wait_for

_RUNNING: list[ServerProcess] = []

# Same small, offline settings as the `vp_env` fixture.
VIDPIPE_TEST_SETTINGS = {
    "VIDPIPE_PROVIDER": "animatic",
    "VIDPIPE_ANIMATIC_RESOLUTION": "144",
    "VIDPIPE_FPS": "12",
    "VIDPIPE_DEFAULT_CLIP_DURATION": "1",
    "VIDPIPE_DEFAULT_SCENES": "2",
}


@dataclass
class Deployment:
    root: Path
    env: dict[str, str]
    logs: Path
    webserver_url: str | None = None
    location: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return Path(self.env["VIDPIPE_DATA_DIR"])

    @property
    def dagster_home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    @property
    def inbox(self) -> Path:
        return self.data_dir / "inbox"

    def graphql(self) -> GraphQL:
        assert self.webserver_url, "the webserver is not running (request the `webserver` fixture)"
        return GraphQL(self.webserver_url)

    def instance(self):  # type: ignore[no-untyped-def]
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.dagster_home))


def _server_env(data_dir: Path, home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in GOOGLE_ENV and (not k.startswith("VIDPIPE_") or k in ("VIDPIPE_TEST_POSTGRES_URL", "VIDPIPE_TEST_ARTIFACTS"))
    }
    env.pop("VIDPIPE_TEST_POSTGRES_URL", None)
    env.update(VIDPIPE_TEST_SETTINGS)
    env.update({"VIDPIPE_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"})
    return env


@pytest.fixture(scope="session")
def _deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    root = tmp_path_factory.mktemp("deployment")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    logs = root / "logs"
    logs.mkdir()
    return Deployment(root=root, env=_server_env(root / "data", home), logs=logs)


@pytest.fixture
def deployment(_deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    """The shared deployment, with this process's environment pointed at the same instance."""
    for key, value in _deployment.env.items():
        if key.startswith("VIDPIPE_") or key == "DAGSTER_HOME":
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(_deployment.root)
    return _deployment


@pytest.fixture(scope="session")
def webserver(_deployment: Deployment) -> Iterator[Deployment]:
    t0 = time.monotonic()
    server, url, location = start_webserver(_deployment.env, _deployment.logs / "dagster-webserver.log")
    _RUNNING.append(server)
    _deployment.webserver_url, _deployment.location = url, location
    print(f"\ndagster-webserver ready at {url} in {time.monotonic() - t0:.1f}s (log: {server.log})")
    try:
        yield _deployment
    finally:
        _RUNNING.remove(server)
        server.stop()
        _deployment.webserver_url = None


@pytest.fixture(scope="session")
def daemon(_deployment: Deployment) -> Iterator[Deployment]:
    t0 = time.monotonic()
    server = start_daemon(_deployment.env, _deployment.logs / "dagster-daemon.log")
    _RUNNING.append(server)
    try:
        instance = _deployment.instance()

        def daemons_beating() -> bool:
            beats = instance.get_daemon_heartbeats()
            return {"SENSOR", "QUEUED_RUN_COORDINATOR"} <= set(beats)

        wait_for("dagster-daemon heartbeats (sensor, run queue)", daemons_beating, 90, alive=server.check_alive)
        print(f"\ndagster-daemon running in {time.monotonic() - t0:.1f}s (log: {server.log})")
        yield _deployment
    finally:
        _RUNNING.remove(server)
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for server in list(_RUNNING):
            report.sections.append((f"{server.name} log ({server.log})", server.tail()))
