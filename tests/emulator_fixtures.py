"""Pytest fixtures that point the real google-genai SDK at ``vidpipe_emulator``.

Load with ``pytest_plugins = ["tests.emulator_fixtures"]`` in the root
``conftest.py``.

Findings from the google-genai 3.6.1 source (``client.py``,
``_base_url.py``, ``_api_client.py``) that shape ``google_env``:

* **Express mode vs project/location.**  With ``GOOGLE_GENAI_USE_VERTEXAI``
  set and *no* explicit constructor arguments, ``BaseApiClient.__init__``
  lets ``GOOGLE_CLOUD_PROJECT``/``GOOGLE_CLOUD_LOCATION`` from the
  environment take precedence over ``GOOGLE_API_KEY`` ("The project/location
  from the environment variables will take precedence over the API key") and
  drops the key.  The client then needs ADC credentials (``google.auth``) on
  the first request and sends ``Authorization: Bearer`` to
  ``.../projects/{p}/locations/{l}/publishers/...``.  So the project/location
  variables *do* conflict with express mode and are removed here.  (An
  explicit ``api_key=`` argument would win over env project/location.)
* **Base URL variable.**  ``Client.__init__`` calls
  ``get_base_url(vertexai_constructor_arg, http_options)``; it only reads
  ``GOOGLE_VERTEX_BASE_URL`` when ``vertexai=True`` is passed *explicitly*.
  For ``genai.Client()`` with the Vertex flag coming from the environment it
  reads ``GOOGLE_GEMINI_BASE_URL`` instead (then still runs in Vertex mode).
  Both are set to the emulator URL so either construction style works.
* Express-mode requests go to ``{base}/v1beta1/publishers/google/models/...``
  with the key in the ``x-goog-api-key`` header.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from vidpipe_emulator import Emulator

if TYPE_CHECKING:
    from google import genai

#: Variables that would switch the SDK away from express mode against the emulator.
_CONFLICTING_ENV = (
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_GENAI_CLIENT_MODE",
    "GOOGLE_API_USE_CLIENT_CERTIFICATE",
    "GOOGLE_API_USE_MTLS_ENDPOINT",
)


@dataclass(frozen=True)
class GoogleEnv:
    """What ``google_env`` returns."""

    emulator: Emulator
    #: The sentinel API key placed in ``GOOGLE_API_KEY`` (search logs/outputs for leaks).
    api_key: str
    base_url: str

    def client(self, **kwargs: Any) -> genai.Client:
        """``genai.Client(**kwargs)`` built from the environment set by the fixture."""
        from google import genai

        return genai.Client(**kwargs)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A started emulator with tiny media sizes and short Veo latency."""
    emu = Emulator(image_height=144, video_height=144, video_latency_s=0.3)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def google_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> GoogleEnv:
    """Standard SDK env vars so ``genai.Client()`` uses Vertex express mode against ``emulator``."""
    api_key = f"sk-sentinel-{secrets.token_hex(8)}"
    base_url = emulator.base_url
    for name in _CONFLICTING_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_API_KEY", api_key)
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", base_url)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", base_url)
    # httpx honours proxy variables; make sure loopback traffic never goes to a proxy.
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        monkeypatch.setenv(name, ",".join(p for p in (current, "127.0.0.1", "localhost") if p))
    return GoogleEnv(emulator=emulator, api_key=api_key, base_url=base_url)
