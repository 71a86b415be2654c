"""The google provider's client and credentials: whether the environment can reach Vertex AI (and
why not), one shared ``genai.Client`` per process and environment, what the stages share
(:class:`_GoogleStage`: one remote call with bounded retries), and the small readers of a response
every stage uses. The messages name variables, never their values (:func:`redact`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.config import Settings
from vidpipe_core.errors import ConfigurationError
from vidpipe_core.retry import describe_exception, is_transient_google, retry_call

log = logging.getLogger("vidpipe.google")

NAME = "google"
REQUEST_TIMEOUT_S = 300  # per HTTP request (image generation can be slow)
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_API_KEY_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")

_SETUP_HINT = (
    "set GOOGLE_GENAI_USE_VERTEXAI=true and either GOOGLE_API_KEY=<Vertex AI express-mode key>, "
    "or GOOGLE_CLOUD_PROJECT=<project> and GOOGLE_CLOUD_LOCATION=<region, e.g. us-central1> with "
    "Application Default Credentials (`gcloud auth application-default login`)"
)


# --- credentials ---------------------------------------------------------------------------


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true")


def _vertex_mode(env: Mapping[str, str]) -> bool:
    # The SDK lets GOOGLE_GENAI_USE_ENTERPRISE override GOOGLE_GENAI_USE_VERTEXAI.
    if env.get("GOOGLE_GENAI_USE_ENTERPRISE") is not None:
        return _truthy(env.get("GOOGLE_GENAI_USE_ENTERPRISE"))
    return _truthy(env.get("GOOGLE_GENAI_USE_VERTEXAI"))


def _env_api_key(env: Mapping[str, str]) -> str | None:
    for var in _API_KEY_VARS:
        if env.get(var, "").strip():
            return env[var].strip()
    return None


def _uses_express_mode(env: Mapping[str, str]) -> bool:
    """Mirrors the SDK: project/location from the environment win over an API key."""
    return bool(_env_api_key(env)) and not (env.get("GOOGLE_CLOUD_PROJECT") or env.get("GOOGLE_CLOUD_LOCATION"))


def _adc_available(env: Mapping[str, str]) -> bool:
    """Application Default Credentials are findable without a network call."""
    explicit = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if explicit:
        return Path(explicit).expanduser().is_file()
    config_dir = env.get("CLOUDSDK_CONFIG")
    if config_dir:
        candidates = [Path(config_dir)]
    elif os.name == "nt":
        candidates = [Path(env.get("APPDATA", "")) / "gcloud"]
    else:
        candidates = [Path(env.get("HOME", str(Path.home()))) / ".config" / "gcloud"]
    if any((c / "application_default_credentials.json").is_file() for c in candidates):
        return True
    # On Google Cloud runtimes ADC comes from the metadata server.
    return any(env.get(v) for v in ("GCE_METADATA_HOST", "GCE_METADATA_IP", "K_SERVICE", "CLOUD_RUN_JOB"))


def google_credentials_status(env: Mapping[str, str] = os.environ) -> tuple[bool, str]:
    """Whether the google provider can run (Vertex AI mode with usable auth), and why not.

    The message names variables, never their values.
    """
    vertex = _vertex_mode(env)
    api_key = _env_api_key(env)
    project = env.get("GOOGLE_CLOUD_PROJECT", "").strip()
    location = env.get("GOOGLE_CLOUD_LOCATION", "").strip()
    if not vertex:
        if api_key:
            return False, (
                "a Gemini API key is set but Vertex AI mode is off: in google-genai 3.x Veo video "
                "generation (generate_videos) works only in Vertex AI mode. Set "
                "GOOGLE_GENAI_USE_VERTEXAI=true and keep GOOGLE_API_KEY if it is a Vertex AI "
                "express-mode key, or set GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION with "
                "Application Default Credentials. Until then use the animatic provider."
            )
        return False, f"no Google credentials configured: {_SETUP_HINT}; or use the animatic provider"
    if project or location:
        ignored = " (GOOGLE_API_KEY is ignored while GOOGLE_CLOUD_PROJECT/GOOGLE_CLOUD_LOCATION are set)" if api_key else ""
        if not project and not _adc_available(env):
            return False, (
                "GOOGLE_CLOUD_LOCATION is set without GOOGLE_CLOUD_PROJECT" + ignored + ": set "
                "GOOGLE_CLOUD_PROJECT and Application Default Credentials, or unset "
                "GOOGLE_CLOUD_LOCATION to use express mode with GOOGLE_API_KEY"
            )
        if not _adc_available(env):
            return False, (
                "GOOGLE_CLOUD_PROJECT is set but no Application Default Credentials were found"
                + ignored
                + ": run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS "
                "to a service-account key file; or unset GOOGLE_CLOUD_PROJECT/GOOGLE_CLOUD_LOCATION "
                "and use an express-mode GOOGLE_API_KEY"
            )
        where = location or "global (set GOOGLE_CLOUD_LOCATION, e.g. us-central1, for Veo)"
        return True, f"Vertex AI: project from GOOGLE_CLOUD_PROJECT, location {where}, Application Default Credentials"
    if api_key:
        return True, "Vertex AI express mode (API key from the environment)"
    return False, f"GOOGLE_GENAI_USE_VERTEXAI is on but there is nothing to authenticate with: {_SETUP_HINT}"


def redact(text: str, env: Mapping[str, str] = os.environ) -> str:
    """Remove any API key from ``text`` (defence in depth for messages built from responses)."""
    for var in _API_KEY_VARS:
        secret = env.get(var, "").strip()
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    return text


def _describe(exc: BaseException) -> str:
    return redact(describe_exception(exc))


# --- shared client -------------------------------------------------------------------------

_shared_clients: dict[str, Any] = {}
_shared_lock = threading.Lock()


def _environment_key(env: Mapping[str, str]) -> str:
    """What the SDK builds a client from (every GOOGLE_* variable), as a digest: two clients are
    interchangeable exactly when these agree, and the key itself holds no secret."""
    relevant = sorted((k, v) for k, v in env.items() if k.startswith(("GOOGLE_", "CLOUDSDK_")))
    return hashlib.sha256(json.dumps(relevant).encode()).hexdigest()


def shared_genai_client() -> Any:
    """One ``genai.Client`` per process and environment: building one costs ~40 ms of CPU (an SSL
    context) and a new connection, and every stage of every run in a process would build its own."""
    ok, message = google_credentials_status(os.environ)
    if not ok:
        raise ConfigurationError(f"google provider: {message}")
    key = _environment_key(os.environ)
    with _shared_lock:
        client = _shared_clients.get(key)
        if client is None:
            from google import genai
            from google.genai import types

            # vertexai=True explicitly: only then does the SDK read GOOGLE_VERTEX_BASE_URL
            # (with the flag from the environment it reads GOOGLE_GEMINI_BASE_URL).
            # retry_options stays None: the SDK makes exactly one attempt per call.
            try:
                client = genai.Client(vertexai=True, http_options=types.HttpOptions(timeout=REQUEST_TIMEOUT_S * 1000))
            except ValueError as exc:  # the SDK's own "missing project/key" checks
                raise ConfigurationError(f"google provider: {redact(str(exc))}; {_SETUP_HINT}") from None
            _shared_clients[key] = client
        return client


class GoogleClient:
    """Gives the stages their ``genai.Client``: the process's shared one, or one passed in (tests)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    def get(self) -> Any:
        if self._client is None:
            self._client = shared_genai_client()
        return self._client

    def vertex(self) -> Any:
        client = self.get()
        if not getattr(client, "vertexai", False):
            _, message = google_credentials_status(os.environ)
            raise ConfigurationError(f"google provider: Veo needs Vertex AI mode; {message}")
        return client

    def download_headers(self) -> dict[str, str]:
        """Auth for Cloud Storage downloads: the express-mode key, else an ADC bearer token."""
        api_key = getattr(getattr(self.get(), "_api_client", None), "api_key", None)
        if api_key is None and _uses_express_mode(os.environ):
            api_key = _env_api_key(os.environ)
        if api_key:
            return {"x-goog-api-key": api_key}
        import google.auth
        import google.auth.transport.requests

        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        credentials.refresh(google.auth.transport.requests.Request())
        return {"Authorization": f"Bearer {credentials.token}"}


def _holder(client: Any | None) -> GoogleClient:
    return client if isinstance(client, GoogleClient) else GoogleClient(client)


class _GoogleStage:
    name = NAME
    reproducible = False  # every request is paid for and gives new bytes

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.client = _holder(client)

    def _call(
        self,
        fn: Callable[[], Any],
        *,
        stage: str,
        scene: int | None,
        describe: Callable[[BaseException], str] = _describe,
        cancel: CancelToken = NEVER,
    ) -> Any:
        """One remote call with bounded retries; the waits between attempts end when ``cancel`` is cancelled."""
        s = self.settings
        cancel.check()
        return retry_call(
            fn,
            stage=stage,
            scene=scene,
            attempts=s.retry_attempts,
            initial_s=s.retry_initial_s,
            max_s=s.retry_max_s,
            is_transient=is_transient_google,
            cancel=cancel,
            describe=describe,
            logger=log,
        )


def _token_usage(response: Any) -> tuple[int, int]:
    meta = getattr(response, "usage_metadata", None)
    if meta is None:
        return 0, 0
    out = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return meta.prompt_token_count or 0, out


def _response_text(response: Any) -> str | None:
    try:
        candidates = response.candidates or []
        if not candidates or candidates[0].content is None:
            return None
        texts = [
            p.text for p in (candidates[0].content.parts or []) if getattr(p, "text", None) and not getattr(p, "thought", False)
        ]
        return "".join(texts) or None
    except AttributeError:
        return None
