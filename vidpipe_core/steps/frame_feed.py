"""Keyframes handed to the clips step while later frames are still being rendered.

Frames are rendered one after another (each is conditioned on the one before), and a scene's
clip needs only its own two frames. When one step makes both, the clips step takes each scene
as soon as frames ``i`` and ``i+1`` are recorded and pass the keyframes check's per-frame test,
so the first clips' video operations run while frames 3..N are rendered (the clips of an N=8
project start after 2-5 frames instead of 9). A frame that fails that test, or a keyframes step
that fails, stops every clip that has not been submitted; the ones already submitted were made
from good frames, are paid, and finish."""

from __future__ import annotations

import threading
from collections.abc import Callable

from vidpipe_core.cancel import MAX_WAIT_S, CancelToken
from vidpipe_core.errors import VidpipeError
from vidpipe_core.scenes import scene_label


class FramesNotMade(VidpipeError):
    """A clip's frames will not be made in this step (the keyframes step failed or a frame failed
    its check); nothing was paid for the clip."""


class FrameFeed:
    """The frames recorded so far, in order. ``check(k, png)`` is the keyframes check's test of
    one frame (None when it passes); a frame that fails it ends the feed."""

    def __init__(self, check: Callable[[int, bytes], str | None] | None = None) -> None:
        self._check = check or (lambda _k, _png: None)
        self._ready = threading.Condition()
        self._made = -1  # the last frame, counted from 0, that is recorded and passed the check
        self._failed: str | None = None
        # Cancelled when the step is interrupted: the clips' waits (slots, polls) end too.
        self.interrupt = CancelToken()

    def add(self, k: int, png: bytes) -> None:
        """Frame ``k`` is recorded (frames arrive in order, each once)."""
        problem = self._check(k, png)
        with self._ready:
            if problem is not None:
                self._failed = self._failed or problem
            elif self._failed is None:
                self._made = max(self._made, k)
            self._ready.notify_all()

    def fail(self, why: str) -> None:
        """No more frames come: every clip still waiting gives up (FramesNotMade)."""
        with self._ready:
            self._failed = self._failed or why
            self._ready.notify_all()

    @property
    def failed(self) -> str | None:
        return self._failed

    def wait_for_scene(self, scene: int, cancel: CancelToken) -> None:
        """Return once both frames of ``scene`` (0-based) are recorded; FramesNotMade when they
        will not be, Interrupted when ``cancel`` is cancelled."""
        with self._ready:
            while self._made < scene + 1:
                if self._failed is not None:
                    raise FramesNotMade(f"{scene_label(scene)}: not submitted, its frames were not made ({self._failed})")
                cancel.check()
                self._ready.wait(MAX_WAIT_S)
