"""Is the process behind a lock, a run or a scratch folder still there?

On the same host the answer is exact: the process id exists and (when recorded) started at the
recorded time, so a recycled pid is not mistaken for the original. On another host nothing can
be checked from here (None); callers then go by heartbeat age."""

from __future__ import annotations

import multiprocessing
import os
import socket

import psutil

START_TOLERANCE_S = 1.0


def this_host() -> str:
    return socket.gethostname()


def owner_pid() -> int:
    """The process that owns the work: a step process started by Dagster's multiprocess executor
    (spawn) belongs to the run worker that started it, which outlives it between steps."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid else os.getpid()


def process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_alive(pid: int, host: str, started: float | None = None) -> bool | None:
    """True/False when the process can be checked from here, None when it runs on another host."""
    if host != this_host():
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) <= START_TOLERANCE_S
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists but cannot be inspected (another user's process): not ours to call dead
