"""An S3-compatible server for tests: moto's HTTP server on 127.0.0.1, started and stopped here.

`VIDPIPE_TEST_S3_ENDPOINT` points the tests at another S3 server instead (MinIO, Ceph, AWS):
then `VIDPIPE_TEST_S3_KEY`/`VIDPIPE_TEST_S3_SECRET` are its credentials and nothing is started.

Fixtures:
- `s3_session` (session): the running server, shared by every test of one pytest worker.
- `s3`: a fresh bucket on it, and the AWS variables set so vidpipe (s3fs) reaches it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest


@dataclass
class S3Server:
    endpoint: str
    key: str
    secret: str

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )

    def env(self) -> dict[str, str]:
        """The standard AWS variables a process needs to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@dataclass
class S3Bucket:
    server: S3Server
    bucket: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/vidpipe"

    def keys(self) -> list[str]:
        client = self.server.client()
        out: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            out.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(out)

    def get(self, key: str) -> bytes:
        return self.server.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, data: bytes) -> None:
        self.server.client().put_object(Bucket=self.bucket, Key=key, Body=data)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(endpoint: str, proc: subprocess.Popen[bytes] | None, timeout: float = 60.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the S3 test server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(endpoint + "/", timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the S3 test server at {endpoint} did not answer within {timeout:.0f} s")


@contextmanager
def moto_server(name: str = "testing") -> Iterator[S3Server]:
    """moto's S3 server on a free port of 127.0.0.1 (keys ``<name>-key`` and a random secret),
    stopped when the block ends. The bench (bench/celery.py) starts its S3 server here too."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server = S3Server(endpoint=f"http://127.0.0.1:{port}", key=f"{name}-key", secret=f"{name}-secret-{uuid.uuid4().hex}")
        _wait_until_up(server.endpoint, proc)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def s3_session() -> Iterator[S3Server]:
    external = os.environ.get("VIDPIPE_TEST_S3_ENDPOINT")
    if external:
        server = S3Server(
            endpoint=external.rstrip("/"),
            key=os.environ.get("VIDPIPE_TEST_S3_KEY", ""),
            secret=os.environ.get("VIDPIPE_TEST_S3_SECRET", ""),
        )
        _wait_until_up(server.endpoint, None, timeout=10)
        yield server
        return
    with moto_server() as server:
        yield server


@pytest.fixture
def s3(s3_session: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh, empty bucket; the AWS variables point at the server (and nowhere else)."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key, raising=False)
    for key, value in s3_session.env().items():
        monkeypatch.setenv(key, value)
    bucket = f"vp-{uuid.uuid4().hex[:12]}"
    s3_session.client().create_bucket(Bucket=bucket)
    return S3Bucket(server=s3_session, bucket=bucket)
