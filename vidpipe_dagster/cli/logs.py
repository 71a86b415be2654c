"""The log files of the `vidpipe` command: a traceback, or a failed run's Dagster event log,
under <data dir>/logs."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from vidpipe_core.config import get_settings
from vidpipe_dagster.cli.scrub import _scrub


def _data_dir() -> Path:
    try:
        return get_settings().data_dir
    except Exception:
        return Path(os.environ.get("VIDPIPE_DATA_DIR") or ".vidpipe").expanduser().resolve()


def _write_log(text: str, name: str | None = None) -> Path | None:
    """Write ``text`` to a new log file under <data dir>/logs (the system temp dir when that is
    not writable); its path, or None when neither can be written."""
    name = name or f"vidpipe-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{os.getpid()}.log"
    for folder in (_data_dir() / "logs", Path(tempfile.gettempdir())):
        path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError:
            continue
        return path
    return None


def _run_log_file(run_id: str) -> Path | None:
    """The run's whole Dagster event log in a file under <data dir>/logs (None if it cannot be written)."""
    from vidpipe_dagster.runner import run_log

    try:
        text = run_log(run_id)
    except Exception as exc:  # the log is a convenience: its absence must not hide the failure
        text = f"the event log of run {run_id} could not be read: {exc!r}\n"
    return _write_log(_scrub(text), name=f"run-{run_id}.log")
