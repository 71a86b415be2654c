"""A background heartbeat: calls ``beat`` every ``interval_s`` while a block of work runs.

Other processes (on this host or another) decide that a holder of a project lock or a run is
dead when its heartbeat is older than the staleness setting (``VIDPIPE_HEARTBEAT_STALE_S``,
default 120 s, beats every ``VIDPIPE_HEARTBEAT_INTERVAL_S``, default 15 s). Beating from a
thread, rather than from the work itself, keeps a long ffmpeg stitch or a slow provider call
from looking dead."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger("vidpipe.heartbeat")


class Heartbeat:
    def __init__(self, interval_s: float, beat: Callable[[], None], *, name: str = "vidpipe-heartbeat") -> None:
        self.interval_s = max(0.05, interval_s)
        self.beat = beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception as exc:
                log.warning("heartbeat failed (%s: %s); trying again in %.0f s", type(exc).__name__, exc, self.interval_s)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
