"""Progress from inside assets: to the Dagster log; also to an in-process listener (the CLI's
live display) when one is registered. A scene's "still waiting" lines (``heartbeat``: a poll, a
first poll's countdown) go to the Dagster log at most once per HEARTBEAT_LOG_S: each is an
event-log write (~10 ms of CPU on SQLite), and a wait polled every quarter second wrote four a
second per clip; the listeners get every one. A line that opens work whose end is logged
(``opening``: a frame's or a sheet's "rendering …", the storyboard's "planning …", an animatic
clip's "rendering …") goes to the listeners only: its end follows in the log, and the pair was two
events per image or clip in every render's event log.

The Dagster log lines are written by one thread per step, in order, so a step does not wait for
the event log's write (a keyframe's two lines were two commits between one image request and the
next); the asset's `_step` waits for them (``flush``) before the step records its result."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import dagster as dg

from vidpipe_core.steps.report import Progress, ProgressEvent

_listeners: list[Callable[[str, ProgressEvent], None]] = []
_lock = threading.Lock()
HEARTBEAT_LOG_S = 1.0


def add_listener(fn: Callable[[str, ProgressEvent], None]) -> None:
    with _lock:
        _listeners.append(fn)


def remove_listener(fn: Callable[[str, ProgressEvent], None]) -> None:
    with _lock:
        if fn in _listeners:
            _listeners.remove(fn)


class _LogWriter:
    """Writes one step's lines to its Dagster log on a thread of its own, in the order given."""

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        self._log = context.log
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidpipe-progress")
        self._written: list[Future[None]] = []

    def write(self, line: str) -> None:
        try:
            self._written.append(self._pool.submit(self._log.info, line))
        except RuntimeError:  # flushed already (the step is ending): write it here
            self._log.info(line)

    def flush(self) -> None:
        """Wait until every line is in the event log; the first write that failed raises here."""
        self._pool.shutdown(wait=True)
        for future in self._written:
            future.result()


_writers: dict[int, _LogWriter] = {}  # id(context) -> its step's writer


def flush(context: dg.AssetExecutionContext) -> None:
    """Every progress line of ``context``'s step is in its Dagster log once this returns."""
    with _lock:
        writer = _writers.pop(id(context), None)
    if writer is not None:
        writer.flush()


def for_context(context: dg.AssetExecutionContext) -> Progress:
    partition = context.partition_key
    with _lock:
        writer = _writers.setdefault(id(context), _LogWriter(context))
    logged: dict[tuple[str, int | None], float] = {}  # (stage, scene) -> when its last heartbeat was logged

    def due(event: ProgressEvent) -> bool:
        if event.opening:
            return False
        if not event.heartbeat:
            return True
        now, key = time.monotonic(), (event.stage, event.scene)
        with _lock:
            if now - logged.get(key, -HEARTBEAT_LOG_S) < HEARTBEAT_LOG_S:
                return False
            logged[key] = now
            return True

    def emit(event: ProgressEvent) -> None:
        if due(event):
            writer.write(f"[{event.stage}] {event.message}")
        with _lock:
            listeners = list(_listeners)
        for fn in listeners:
            fn(partition, event)

    return emit
