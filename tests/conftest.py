"""Shared fixtures. Every test gets its own data dir and Dagster home; nothing touches ~/."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["tests.emulator_fixtures", "tests.postgres.pg", "tests.s3server", "tests.scheduling"]

GOOGLE_ENV = (
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
)

ARTIFACT_DIR = Path(os.environ.get("VIDPIPE_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))


@dataclass
class VidpipeEnv:
    data_dir: Path
    dagster_home: Path

    def services(self):  # type: ignore[no-untyped-def]
        from vidpipe_core.services import Services

        return Services.create()

    def instance(self):  # type: ignore[no-untyped-def]
        from vidpipe_core.config import get_settings
        from vidpipe_dagster.instance import get_instance

        return get_instance(get_settings())


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's Google credentials or vidpipe settings."""
    for key in GOOGLE_ENV:
        monkeypatch.delenv(key, raising=False)
    for key in list(os.environ):
        if key.startswith("VIDPIPE_") and key not in ("VIDPIPE_TEST_POSTGRES_URL", "VIDPIPE_TEST_ARTIFACTS"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def vp_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VidpipeEnv:
    """A fresh vidpipe: SQLite + local artifacts under tmp_path, small animatic frames, 12 fps."""
    data = tmp_path / "data"
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("VIDPIPE_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("VIDPIPE_PROVIDER", "animatic")
    monkeypatch.setenv("VIDPIPE_ANIMATIC_RESOLUTION", "144")
    monkeypatch.setenv("VIDPIPE_FPS", "12")
    monkeypatch.setenv("VIDPIPE_DEFAULT_CLIP_DURATION", "1")
    # The preview images (ffmpeg over the whole video) are tested where they are the subject
    # (test_ui_metadata, test_previews, the browser and webserver tests); elsewhere they only cost time.
    monkeypatch.setenv("VIDPIPE_UI_PREVIEWS", "false")
    # Tiny clips: render them side by side as before (the default of 1 bounds 1080p memory).
    monkeypatch.setenv("VIDPIPE_LOCAL_RENDERS", "4")
    monkeypatch.chdir(tmp_path)
    return VidpipeEnv(data_dir=data, dagster_home=home)


@pytest.fixture
def artifact_dir() -> Path:
    ARTIFACT_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACT_DIR


@pytest.fixture
def gp(vp_env, google_env, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """vidpipe on the google provider against the wire emulator, with fast polling and retries."""
    monkeypatch.setenv("VIDPIPE_PROVIDER", "google")
    # These tests mean "render everything": no review gate (tests/dagster/test_review.py tests it).
    monkeypatch.setenv("VIDPIPE_REVIEW", "none")
    for key, value in {
        "POLL_INITIAL_S": "0.05",
        "POLL_MAX_S": "0.2",
        "POLL_TIMEOUT_S": "60",
        "RETRY_INITIAL_S": "0.01",
        "RETRY_MAX_S": "0.05",
    }.items():
        monkeypatch.setenv(f"VIDPIPE_{key}", value)
    return vp_env, google_env
