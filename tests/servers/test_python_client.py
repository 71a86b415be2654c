"""docs/python-client.md, run: the documented example drives the shared deployment's webserver and
daemon with Dagster's Python client and vidpipe's `VidpipeClient` (no private client method), and
the video it names is a real one. A bad spec's message reaches the program through the same calls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import pytest
from dagster import DagsterRunStatus

from tests.servers.deployment import REPO
from vidpipe_dagster.client import VidpipeClient, VidpipeClientError

pytestmark = pytest.mark.usefixtures("daemon")
EXAMPLE = REPO / "examples" / "python_client.py"


def _client(webserver) -> VidpipeClient:  # type: ignore[no-untyped-def]
    host, port = webserver.webserver_url.removeprefix("http://").split(":")
    return VidpipeClient(host, int(port))


def test_the_documented_example_goes_from_prompt_to_video(webserver) -> None:  # type: ignore[no-untyped-def]
    host, port = webserver.webserver_url.removeprefix("http://").split(":")
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--host",
            host,
            "--port",
            port,
            "--scenes",
            "2",
            "--review",
            "keyframes",
            "A lighthouse keeper feeds a gull. The gull flies over the sea at dusk.",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=webserver.env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert "approved" in lines, f"the project did not stop for review: {done.stdout}"
    path = Path(lines["final video"])
    assert path.is_file() and path.is_relative_to(webserver.data_dir)
    with av.open(str(path)) as media:
        stream = media.streams.video[0]
        frames = sum(1 for _ in media.decode(stream))
        assert frames >= 12 and float(media.duration or 0) / 1e6 >= 1.5  # 2 scenes of 1 s at 12 fps
    assert lines["cost"] == "$0.00"  # the animatic


def test_a_bad_spec_is_read_from_the_run_through_public_calls(webserver) -> None:  # type: ignore[no-untyped-def]
    client = _client(webserver)
    made = client.new_project("A gull", scenes=99, aspect_ratio="4:3")
    assert client.wait(made, timeout=120) == DagsterRunStatus.FAILURE
    message = client.failure(made)
    assert message and message.startswith("2 problems"), message
    assert "scenes" in message and "aspect_ratio" in message
    with pytest.raises(VidpipeClientError, match="2 problems"):
        client.started_by(made, timeout=5)
    assert client.project_of(made) is None


def test_a_project_without_a_video_reports_none(webserver) -> None:  # type: ignore[no-untyped-def]
    assert _client(webserver).final_video("no-such-project") is None
