"""The hand-over of frames to clips made beside the keyframes step: a scene waits for its two
frames, and gives up (nothing paid) when they will not come or the step is interrupted."""

from __future__ import annotations

import threading
import time

import pytest

from vidpipe_core.cancel import CancelToken, Interrupted
from vidpipe_core.steps.frame_feed import FrameFeed, FramesNotMade


def _waiter(feed: FrameFeed, scene: int, cancel: CancelToken) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def wait() -> None:
        try:
            feed.wait_for_scene(scene, cancel)
            out.append("ready")
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, out


def test_a_scene_waits_for_both_of_its_frames():
    feed, cancel = FrameFeed(), CancelToken()
    thread, out = _waiter(feed, 1, cancel)  # scene 2: frames 2 and 3 (1 and 2 counted from 0)
    feed.add(0, b"a")
    feed.add(1, b"b")
    time.sleep(0.2)
    assert out == [] and thread.is_alive()
    feed.add(2, b"c")
    thread.join(2)
    assert out == ["ready"]
    feed.wait_for_scene(0, cancel)  # frames already here: no wait


def test_a_failed_keyframes_step_releases_every_waiting_scene_with_the_reason():
    feed, cancel = FrameFeed(), CancelToken()
    feed.add(0, b"a")
    feed.add(1, b"b")
    waiting = [_waiter(feed, scene, cancel) for scene in (1, 2)]
    feed.fail("keyframes, frame 3: the image model is unavailable")
    for thread, out in waiting:
        thread.join(2)
        [error] = out
        assert isinstance(error, FramesNotMade)
        assert "not submitted, its frames were not made (keyframes, frame 3: the image model is unavailable)" in str(error)
    feed.wait_for_scene(0, cancel)  # scene 1's frames were made before the failure: it goes on


def test_a_frame_that_fails_the_check_ends_the_feed_there():
    feed = FrameFeed(check=lambda k, png: "is 64x64, expected 768x432" if png == b"small" else None)
    cancel = CancelToken()
    feed.add(0, b"a")
    feed.add(1, b"b")
    feed.add(2, b"small")
    feed.add(3, b"d")  # a later good frame does not make the scenes after the bad one ready
    feed.wait_for_scene(0, cancel)
    for scene in (1, 2):
        with pytest.raises(FramesNotMade, match="is 64x64"):
            feed.wait_for_scene(scene, cancel)
    assert feed.failed == "is 64x64, expected 768x432"


def test_an_interrupted_step_ends_the_wait():
    feed = FrameFeed()
    cancel = CancelToken(feed.interrupt)
    thread, out = _waiter(feed, 0, cancel)
    time.sleep(0.1)
    feed.interrupt.cancel("KeyboardInterrupt in the keyframes part of the clips step")
    thread.join(5)  # without the interrupt no frame ever comes: the wait would never end
    assert not thread.is_alive()
    [error] = out
    assert isinstance(error, Interrupted) and "KeyboardInterrupt" in str(error)
