"""A real local Dagster deployment for tests: `dagster-webserver` and `dagster-daemon` as
subprocesses on one instance, and a small GraphQL client for the webserver.

Each server runs in its own process group (it spawns a code server, and the daemon spawns run
workers), so stopping it stops everything it started. Output goes to a log file that the
servers' conftest attaches to the report of a failing test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = REPO / "workspace.yaml"
BIN = Path(sys.executable).parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5, alive: Callable[[], None] | None = None
) -> T:
    """Call `probe` until it returns something truthy; `alive` raises when a server died."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            value = probe()
            if value:
                return value
        except (requests.RequestException, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


def _die_with_parent() -> None:
    """Linux: SIGTERM the server if pytest itself is killed before its finalizers run."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ServerProcess:
    """One long-running command in its own process group, output to `log`."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> None:
        self.name, self.args, self.log = name, args, log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with status {code}:\n{self.tail()}")

    def tail(self, limit: int = 12000) -> str:
        try:
            text = self.log.read_bytes().decode("utf-8", "replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the process group (the server, its code server and run workers), then SIGKILL."""
        try:
            if self.proc.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
            # Children (code server, run workers) may outlive the leader by a moment.
            self._signal(signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.wait(10)
        finally:
            self._log_file.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class GraphQL:
    """POST /graphql; raises on transport or GraphQL errors and returns `data`."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.url = f"{base_url}/graphql"
        self.http = requests.Session()

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post(self.url, json={"query": query, "variables": variables}, timeout=60)
        if response.status_code >= 400:
            raise AssertionError(f"GraphQL HTTP {response.status_code}: {response.text[:4000]}")
        body = response.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]


WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name jobs { name } } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}"""


def loaded_location(gql: GraphQL) -> dict[str, str] | None:
    """{location, repository} once the code location is loaded; raises if it failed to load."""
    data = gql(WORKSPACE_QUERY)["workspaceOrError"]
    if data["__typename"] != "Workspace":
        raise RuntimeError(f"workspace error: {data}")
    for entry in data["locationEntries"]:
        if entry["loadStatus"] != "LOADED":
            return None
        loc = entry["locationOrLoadError"]
        if loc is None:
            return None
        if loc["__typename"] == "PythonError":
            raise RuntimeError(f"code location {entry['name']} failed to load: {loc['message']}\n{loc['stack']}")
        for repo in loc["repositories"]:
            if "render_project" in {j["name"] for j in repo["jobs"]}:
                return {"location": loc["name"], "repository": repo["name"]}
    return None


def start_webserver(env: dict[str, str], log: Path, timeout: float = 90.0) -> tuple[ServerProcess, str, dict[str, str]]:
    port = free_port()
    server = ServerProcess(
        "dagster-webserver", [str(BIN / "dagster-webserver"), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)], env, log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "dagster-webserver /server_info",
            lambda: requests.get(f"{base}/server_info", timeout=5).ok,
            timeout,
            alive=server.check_alive,
        )
        location = wait_for(
            "the vidpipe code location to load", lambda: loaded_location(GraphQL(base)), timeout, alive=server.check_alive
        )
    except BaseException:
        server.stop()
        raise
    return server, base, location


def start_daemon(env: dict[str, str], log: Path) -> ServerProcess:
    return ServerProcess("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)], env, log)
