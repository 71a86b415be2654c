"""Progress from inside assets: to the Dagster log; also to an in-process listener (the CLI's
live display) when one is registered. A scene's "still waiting" lines (``heartbeat``: a poll, a
first poll's countdown) go to the Dagster log at most once per HEARTBEAT_LOG_S: each is an
event-log write (~10 ms of CPU on SQLite), and a wait polled every quarter second wrote four a
second per clip; the listeners get every one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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


def for_context(context: dg.AssetExecutionContext) -> Progress:
    partition = context.partition_key
    logged: dict[tuple[str, int | None], float] = {}  # (stage, scene) -> when its last heartbeat was logged

    def due(event: ProgressEvent) -> bool:
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
            context.log.info(f"[{event.stage}] {event.message}")
        with _lock:
            listeners = list(_listeners)
        for fn in listeners:
            fn(partition, event)

    return emit
