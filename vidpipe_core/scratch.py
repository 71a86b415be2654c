"""Scratch space for work files (ffmpeg inputs and outputs, local copies of an object store's
files), under the data directory: the only local disk a step uses, so that with the databases
on PostgreSQL and the artifacts in S3 a step can run on any host.

Each scratch folder is named after the process that made it (``<purpose>@<pid>@<host>@<random>``)
and removed when the work ends. A process killed with SIGKILL cannot remove its own, so every
start removes the folders of processes on this host that no longer exist. Nothing is left in the
system temp directory, and nothing is removed that a live process (or another host) still uses."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidpipe_core.liveness import process_alive, this_host

SCRATCH_DIR = "tmp"
_SEP = "@"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"


def owner_tag(pid: int | None = None) -> str:
    """``<pid>@<host>``: who made a scratch folder or a partial file."""
    return f"{os.getpid() if pid is None else pid}{_SEP}{_host()}"


def owner_is_gone(tag: str) -> bool:
    """True only when the tag names a process of this host that no longer runs."""
    try:
        pid_text, host = tag.split(_SEP, 1)
        pid = int(pid_text)
    except ValueError:
        return False
    return host == _host() and process_alive(pid, this_host()) is False


def scratch_root(data_dir: Path) -> Path:
    return Path(data_dir) / SCRATCH_DIR


@contextmanager
def scratch_dir(data_dir: Path, purpose: str) -> Iterator[Path]:
    """A fresh folder under ``<data dir>/tmp``, removed afterwards in every case."""
    root = scratch_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{purpose}{_SEP}{owner_tag()}{_SEP}", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clean_stale_scratch(data_dir: Path) -> list[str]:
    """Remove the scratch folders of dead processes of this host; returns their names."""
    root = scratch_root(data_dir)
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        parts = entry.name.split(_SEP)
        if len(parts) != 4 or not owner_is_gone(f"{parts[1]}{_SEP}{parts[2]}"):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                continue
        removed.append(entry.name)
    return removed
