"""A cancel ends every backoff: the one wait between attempts (retry.backoff_sleep), the retries of
retry_call, and the google image model's retries of a response without an image."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vidpipe_core.cancel import CancelToken, Interrupted
from vidpipe_core.config import Settings
from vidpipe_core.providers.base import KeyframeRequest
from vidpipe_core.providers.google import GoogleKeyframes
from vidpipe_core.retry import backoff_sleep, retry_call
from vidpipe_core.schemas import StyleGuide

LONG_S = 30.0  # a backoff no test could sit out: returning at all means the cancel ended it


def test_a_cancel_from_another_thread_ends_a_long_backoff() -> None:
    token = CancelToken()
    started = threading.Event()

    def cancel_once_waiting() -> None:
        started.wait(5)
        time.sleep(0.2)  # let the backoff begin
        token.cancel("SIGTERM")

    canceller = threading.Thread(target=cancel_once_waiting)
    canceller.start()
    begun = time.monotonic()
    with pytest.raises(Interrupted) as info:
        started.set()
        backoff_sleep(LONG_S, token)
    canceller.join()
    assert info.value.reason == "SIGTERM"
    assert time.monotonic() - begun < LONG_S / 2  # well before the delay


def test_a_backoff_runs_its_course_without_a_cancel() -> None:
    backoff_sleep(0.0)
    backoff_sleep(0.01, CancelToken())


def test_retry_call_waits_through_the_cancellable_backoff() -> None:
    token = CancelToken()
    calls = []

    def fails_and_is_cancelled() -> None:
        calls.append(1)
        token.cancel("run terminated")
        raise ConnectionError("reset")

    with pytest.raises(Interrupted):
        retry_call(
            fails_and_is_cancelled,
            stage="clips",
            scene=0,
            attempts=5,
            initial_s=LONG_S,
            max_s=LONG_S,
            is_transient=lambda exc: True,
            cancel=token,
        )
    assert calls == [1]  # no second attempt after the cancel


class _NoImageClient:
    """A genai client whose image model answers without an image, and a cancel arrives meanwhile."""

    def __init__(self, token: CancelToken) -> None:
        self.calls = 0
        self.models = SimpleNamespace(generate_content=self._generate)
        self._token = token

    def _generate(self, **_: Any) -> Any:
        self.calls += 1
        self._token.cancel("SIGINT")
        return SimpleNamespace(candidates=[], prompt_feedback=None, usage_metadata=None)


def test_a_cancel_ends_the_image_models_retry_backoff(tmp_path: Path) -> None:
    token = CancelToken()
    client = _NoImageClient(token)
    settings = Settings(data_dir=tmp_path, retry_initial_s=LONG_S, retry_max_s=LONG_S)
    style = StyleGuide(visual_style="watercolor", color_palette=["teal"], camera_style="static")
    request = KeyframeRequest("p", 0, "a fox", "scene 1", style, "16:9", None)
    with pytest.raises(Interrupted):
        GoogleKeyframes(settings, client).render(request, cancel=token)
    assert client.calls == 1
