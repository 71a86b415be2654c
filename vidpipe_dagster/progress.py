"""Progress from inside assets: always to the Dagster log; also to an in-process listener
(the CLI's live display) when one is registered."""

from __future__ import annotations

import threading
from collections.abc import Callable

import dagster as dg

from vidpipe_core.steps.report import Progress, ProgressEvent

_listeners: list[Callable[[str, ProgressEvent], None]] = []
_lock = threading.Lock()


def add_listener(fn: Callable[[str, ProgressEvent], None]) -> None:
    with _lock:
        _listeners.append(fn)


def remove_listener(fn: Callable[[str, ProgressEvent], None]) -> None:
    with _lock:
        if fn in _listeners:
            _listeners.remove(fn)


def for_context(context: dg.AssetExecutionContext) -> Progress:
    partition = context.partition_key

    def emit(event: ProgressEvent) -> None:
        context.log.info(f"[{event.stage}] {event.message}")
        with _lock:
            listeners = list(_listeners)
        for fn in listeners:
            fn(partition, event)

    return emit
