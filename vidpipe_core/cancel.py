"""Stopping work that runs in threads: a token that every wait inside a step watches.

A signal (SIGTERM from CI, systemd or a container stop; SIGINT) reaches only the main thread,
where Dagster turns it into an exception. A step that waits in worker threads (clips wait for a
pool slot, poll an operation, run ffmpeg) would then block the exception in
``ThreadPoolExecutor.__exit__`` for as long as the slowest wait. So a step cancels its token
when its main thread is interrupted, and every wait made with the token ends within
``MAX_WAIT_S`` by raising :class:`Interrupted`. Work already paid for stays in the ledger.
"""

from __future__ import annotations

import threading
import time

from vidpipe_core.errors import VidpipeError

MAX_WAIT_S = 0.5  # longest a cancelled wait keeps going


class Interrupted(VidpipeError):
    """The step was asked to stop (a signal, or its run was terminated)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"stopped: {reason}; paid work is kept, `vidpipe resume` continues it")


class CancelToken:
    """Cancelled by itself, or through its parent (a step's token cancels the work it started)."""

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent
        self._reason = ""

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.cancelled)

    @property
    def reason(self) -> str:
        if self._event.is_set():
            return self._reason
        return self._parent.reason if self._parent is not None else ""

    def cancel(self, reason: str) -> None:
        if self is NEVER:
            return
        if not self._event.is_set():
            self._reason = reason
            self._event.set()

    def check(self) -> None:
        if self.cancelled:
            raise Interrupted(self.reason)

    def sleep(self, seconds: float) -> None:
        """time.sleep that ends early, raising Interrupted, when the token is cancelled."""
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            self.check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._event.wait(min(remaining, MAX_WAIT_S))


NEVER: CancelToken = CancelToken()  # for callers with nothing to cancel; cancel() on it does nothing
