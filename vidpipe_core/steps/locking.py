"""How every step starts: the project's lock (held with a heartbeat), then the leftovers of
writers that died are cleared from the project's folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from vidpipe_core import locks
from vidpipe_core.services import Services


def default_run_id() -> str:
    """The run id of a step called outside Dagster (a test, a notebook)."""
    return f"local-{os.getpid()}"


@contextmanager
def step_lock(services: Services, project_id: str, run_id: str | None) -> Iterator[locks.Holder]:
    with locks.project_lock(services, project_id, run_id or default_run_id(), wait_s=services.settings.lock_wait_s) as holder:
        services.store.clean_partials(project_id)
        yield holder
