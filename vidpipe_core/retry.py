"""The one retry helper: bounded exponential backoff with full jitter.

Every remote call in vidpipe goes through :func:`retry_call`, so the final error always
names the stage, the scene and the cause. SDK-level retries stay off (google-genai does not
retry unless ``HttpOptions.retry_options`` is set), so nothing is retried twice. Every wait
between attempts (a retry, a poll, a lock claim) is :func:`backoff_sleep`, which a cancel ends.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TypeVar

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import ProviderError, VidpipeError
from vidpipe_core.scenes import scene_number
from vidpipe_core.steps import KEYFRAMES

T = TypeVar("T")

log = logging.getLogger("vidpipe.retry")

TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

RetryCallback = Callable[[int, BaseException, float], None]  # (failed attempt, error, delay)


def backoff_delay(attempt: int, initial_s: float, max_s: float, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Full jitter: uniform in [0, min(max_s, initial_s * 2**(attempt-1))] for the n-th failure."""
    cap = min(max_s, initial_s * (2 ** max(0, attempt - 1)))
    return rng(0.0, max(0.0, cap))


def backoff_sleep(delay_s: float, cancel: CancelToken = NEVER) -> None:
    """The wait between two attempts: ``delay_s`` seconds, ended early by ``cancel`` (within
    ``cancel.MAX_WAIT_S``, raising :class:`vidpipe_core.cancel.Interrupted`); a token already
    cancelled raises at once. Every retry and backoff in vidpipe_core waits through this."""
    cancel.sleep(delay_s)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind an exception, when there is one."""
    code = getattr(exc, "code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    return None


def describe_exception(exc: BaseException) -> str:
    """A one-line cause for an error message (no headers, no request bodies)."""
    message = getattr(exc, "message", None)
    status = getattr(exc, "status", None)
    code = status_of(exc)
    if code is not None and isinstance(message, str) and message:
        head = f"{code} {status}" if status else str(code)
        return f"{head}: {message}"
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def retry_call(
    fn: Callable[[], T],
    *,
    stage: str,
    scene: int | None,
    attempts: int,
    initial_s: float,
    max_s: float,
    is_transient: Callable[[BaseException], bool],
    sleep: Callable[[float], None] | None = None,
    cancel: CancelToken = NEVER,
    on_retry: RetryCallback | None = None,
    describe: Callable[[BaseException], str] = describe_exception,
    logger: logging.Logger | None = None,
) -> T:
    """Call ``fn`` until it succeeds, at most ``attempts`` times.

    Transient errors (as judged by ``is_transient``) are retried after a full-jitter
    exponential delay; anything else, or the last transient error, becomes a
    :class:`ProviderError` naming stage, scene and status, chained to the cause.
    Errors vidpipe raises on purpose (``VidpipeError``) pass through unchanged. The waits are
    :func:`backoff_sleep` with ``cancel`` (so a cancel ends them), unless ``sleep`` is given (tests).
    """
    logger = logger or log
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except VidpipeError:
            raise
        except Exception as exc:
            transient = is_transient(exc)
            if not transient or attempt >= attempts:
                cause = describe(exc)
                if transient:
                    cause = f"{cause} (gave up after {attempts} attempts)"
                raise ProviderError(stage, cause, scene=scene, status=status_of(exc)) from exc
            delay = backoff_delay(attempt, initial_s, max_s)
            # As ProviderError names it: 1-based, a frame for keyframes, else a scene.
            where = stage if scene is None else f"{stage}, {'frame' if stage == KEYFRAMES else 'scene'} {scene_number(scene)}"
            logger.warning("%s: attempt %d/%d failed (%s); retrying in %.2fs", where, attempt, attempts, describe(exc), delay)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            if sleep is None:
                backoff_sleep(delay, cancel)
            else:
                sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _transient_transport_errors() -> tuple[type[BaseException], ...]:
    """Connection/timeout exception types of the HTTP stacks google-genai may use.

    google-genai 3.x sends through ``httpx2`` (a fork of httpx in its own namespace) and
    falls back to ``httpx``; with mTLS client certificates it uses google-auth's
    ``requests`` session. A dropped connection surfaces as ``RemoteProtocolError``
    ("Server disconnected without sending a response"), which is not a ``NetworkError``.
    """
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        for name in ("TimeoutException", "NetworkError", "RemoteProtocolError"):
            cls = getattr(module, name, None)
            if isinstance(cls, type):
                found.append(cls)
    try:
        import requests

        found += [requests.exceptions.ConnectionError, requests.exceptions.Timeout]
    except ImportError:  # pragma: no cover
        pass
    try:
        from google.auth import exceptions as auth_exceptions

        found.append(auth_exceptions.TransportError)  # network failure during token refresh
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


_TRANSPORT_ERRORS: tuple[type[BaseException], ...] | None = None


def _http_status_error_types() -> tuple[type[BaseException], ...]:
    types_: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        cls = getattr(module, "HTTPStatusError", None)
        if isinstance(cls, type):
            types_.append(cls)
    return tuple(types_)


def is_transient_google(exc: BaseException) -> bool:
    """429/5xx from the Google APIs, timeouts and dropped or refused connections."""
    global _TRANSPORT_ERRORS
    if _TRANSPORT_ERRORS is None:
        _TRANSPORT_ERRORS = _transient_transport_errors()
    try:
        from google.genai import errors as genai_errors

        if isinstance(exc, genai_errors.APIError):
            return exc.code in TRANSIENT_HTTP_STATUSES
    except ImportError:  # pragma: no cover
        pass
    status_errors = _http_status_error_types()
    if status_errors and isinstance(exc, status_errors):
        return status_of(exc) in TRANSIENT_HTTP_STATUSES
    return isinstance(exc, _TRANSPORT_ERRORS)
