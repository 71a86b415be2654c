"""A global bound on live video operations, built on Dagster's own concurrency pools.

One slot of pool `video-operations` (setting `VIDPIPE_VIDEO_POOL`) is claimed per operation,
from submission until its video is downloaded, with the same instance storage calls Dagster's
executor uses for `pool=` steps. So the limit holds across every run, process and project on
the instance, shows in the UI's concurrency page, and is changed like any pool:

    dagster instance concurrency set video-operations 8     # or concurrency.pools.default_limit

A per-asset `pool=` would bound *steps* (one clips step holds up to N operations); claiming per
operation is what bounds the paid, rate-limited resource.

Dagster's slot claim is a select-then-update that two processes can win at once (the update
does not re-check that the slot is free; seen here as 3 live operations under a limit of 2).
Its executor rarely claims concurrently; vidpipe claims from many threads and processes, so
claims of a pool are serialised: a PostgreSQL advisory lock on the instance's own database, or
a file lock in DAGSTER_HOME next to the SQLite storage.

A claim is per run and scene (step key `clips[scene-N]`): a clips step that runs again for the
same run (a Celery task redelivered after its worker died) gets back the very slots the dead
delivery held, at once, and never a second one.

A claim that waits longer than a second frees the slots of runs that are dead (see
``vidpipe_dagster.healing``) and, every few seconds, says which runs hold the slots; it ends
within half a second when the step is interrupted."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import dagster as dg
from dagster_postgres import PostgresEventLogStorage
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import ConfigurationError
from vidpipe_core.scenes import scene_label, scene_number
from vidpipe_dagster.healing import HealReport, heal_pool
from vidpipe_dagster.internals import is_sqlite_event_log, slot_event_log

FIRST_WAIT_INTERVAL_S = 0.2
MAX_WAIT_INTERVAL_S = 0.5
HEAL_AFTER_S = 1.0  # a wait this long looks for dead holders ...
HEAL_EVERY_S = 2.0  # ... and again this often
REPORT_EVERY_S = 5.0  # and says who holds the slots this often
_init_lock = threading.Lock()
_claim_lock = threading.Lock()
_slot_freed = threading.Condition()
_heal_lock = threading.Lock()
_last_heal: dict[tuple[int, str], tuple[float, HealReport]] = {}


def claim_lock_kind(instance: dg.DagsterInstance) -> str:
    """Which lock serialises claims on this instance's event-log storage: "postgres" (an advisory
    lock) or "sqlite" (a file lock in DAGSTER_HOME). Any other storage that has pools is refused:
    without a lock, concurrent claims overshoot the limit (see the module docstring)."""
    storage = instance.event_log_storage
    if isinstance(storage, PostgresEventLogStorage):
        return "postgres"
    if is_sqlite_event_log(storage) and instance.root_directory:
        return "sqlite"
    raise ConfigurationError(
        f"the Dagster instance's event-log storage ({type(storage).__module__}.{type(storage).__name__}) has no lock "
        "that keeps the video-operations limit under concurrent claims; use the PostgreSQL storage "
        "(dagster.postgres.yaml) or SQLite in DAGSTER_HOME (dagster.yaml)"
    )


class DagsterPoolSlots:
    def __init__(
        self,
        instance: dg.DagsterInstance,
        pool: str,
        run_id: str,
        step_key: str,
        *,
        stale_after_s: float = 120.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.instance, self.pool, self.run_id, self.step_key = instance, pool, run_id, step_key
        self.storage = slot_event_log(instance)  # claims need not wait behind the run's log writes
        self.stale_after_s = stale_after_s
        self.on_wait = on_wait or (lambda _message: None)
        self.lock_kind = claim_lock_kind(instance) if self.enforced else None
        self._limit_known = False  # the pool has its limit (checked by the first hold of this step)

    @property
    def enforced(self) -> bool:
        return bool(self.storage.supports_global_concurrency_limits)

    def _ensure_limit(self) -> None:
        """Give the pool its default limit the first time it is used. Check-then-insert races
        between threads and processes (on PostgreSQL the losing insert aborts its transaction,
        dagster-io/dagster#33552), so a failure is fine when the key now exists."""
        if self._limit_known:
            return
        with _init_lock:
            if self.pool in self.storage.get_concurrency_keys():
                self._limit_known = True
                return
            try:
                self.storage.initialize_concurrency_limit_to_default(self.pool)
            except DBAPIError:
                if self.pool not in self.storage.get_concurrency_keys():
                    raise
            self._limit_known = True

    def _refuse_no_slots(self) -> None:
        """A pool with no slots (an instance whose dagster.yaml sets no default limit, or a limit of
        0) would make every clip wait for ever while saying the slots are held by no live run."""
        if self.storage.get_concurrency_info(self.pool).slot_count > 0:
            return
        raise ConfigurationError(
            f"the Dagster pool {self.pool!r} has no slots, so no clip could ever start; give it a limit with "
            f"`dagster instance concurrency set {self.pool} 4`, or set concurrency.pools.default_limit in "
            "$DAGSTER_HOME/dagster.yaml (vidpipe's own, vidpipe_dagster/dagster.yaml, sets 4)"
        )

    @contextmanager
    def _claim_mutex(self) -> Iterator[None]:
        """One claim of this pool at a time, across threads, processes and (on PostgreSQL) hosts.
        (The SQLite storage's own connections hold a non-reentrant lock, so none is opened here.)"""
        with _claim_lock:
            if self.lock_kind == "postgres":
                key = int(hashlib.sha256(f"vidpipe-pool:{self.pool}".encode()).hexdigest()[:15], 16)
                storage = cast(PostgresEventLogStorage, self.storage)  # lock_kind says so
                with storage.index_connection() as conn:
                    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                    try:
                        yield
                    finally:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            elif self.lock_kind == "sqlite" and self.instance.root_directory:
                name = f".vidpipe-pool-{hashlib.sha256(self.pool.encode()).hexdigest()[:12]}.lock"
                with open(Path(self.instance.root_directory) / name, "a+") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                    try:
                        yield
                    finally:
                        fcntl.flock(handle, fcntl.LOCK_UN)
            else:
                raise AssertionError(f"no claim lock for {self.lock_kind!r}")  # claim_lock_kind refused it

    def _claim(self, key: str) -> bool:
        with self._claim_mutex():
            return self.storage.claim_concurrency_slot(self.pool, self.run_id, key).is_claimed

    def _heal(self) -> tuple[HealReport, bool]:
        """Heal the pool at most once per HEAL_EVERY_S per process, however many threads wait
        (50 waiting renders of 4 scenes would otherwise sweep the instance 100 times a second).
        Returns the latest report and whether this call made it."""
        key = (id(self.storage), self.pool)
        with _heal_lock:
            last = _last_heal.get(key)
            now = time.monotonic()
            if last is not None and now - last[0] < HEAL_EVERY_S:
                return last[1], False
            report = heal_pool(self.instance, self.pool, self.stale_after_s)
            _last_heal[key] = (now, report)
            return report, True

    def _heal_and_describe(self, scene_index: int, waited_s: float, report: bool) -> None:
        """Free the slots of dead runs; every REPORT_EVERY_S, say who holds the slots."""
        healed, ran = self._heal()
        for line in healed.lines() if ran else ():
            self.on_wait(f"{self.pool}: {line}")
        if report:
            limit = self.storage.get_concurrency_info(self.pool).slot_count
            holders = "; ".join(healed.live_holders) or "no live run (freeing)"
            self.on_wait(
                f"{scene_label(scene_index)} has waited {waited_s:.0f} s for a {self.pool} slot (limit {limit}); held by {holders}"
            )

    @contextmanager
    def hold(self, scene_index: int, cancel: CancelToken = NEVER) -> Iterator[None]:
        cancel.check()
        if not self.enforced:
            yield
            return
        self._ensure_limit()
        key = f"{self.step_key}[scene-{scene_number(scene_index)}]"  # shown in the UI's Concurrency page: numbered from 1
        delay = FIRST_WAIT_INTERVAL_S
        started = time.monotonic()
        next_heal, next_report = started + HEAL_AFTER_S, started + REPORT_EVERY_S
        try:
            # A claim that succeeds needs no look at the pool's size (one query less per operation
            # on the hand-over between two scenes); one that must wait first refuses a pool of none.
            claimed = self._claim(key)
            if not claimed:
                self._refuse_no_slots()
            while not claimed:
                # Back off with jitter (a blocked claim costs ~3 ms of CPU on SQLite; Dagster's SQL
                # storage never sets a sleep interval). The cap stays short: a freed slot is assigned
                # to the next waiter in Dagster's pending queue and sits idle until that waiter wakes
                # (a 1 s cap cut slot use from 87 % to 79 % in bench `many`). A slot freed in this
                # process wakes its waiters at once (threads of one clips step).
                with _slot_freed:
                    _slot_freed.wait(timeout=delay * random.uniform(0.75, 1.25))
                cancel.check()
                delay = min(delay * 2, MAX_WAIT_INTERVAL_S)
                now = time.monotonic()
                if now >= next_heal:
                    reporting = now >= next_report
                    self._heal_and_describe(scene_index, now - started, reporting)
                    next_heal = now + HEAL_EVERY_S
                    if reporting:
                        next_report = now + REPORT_EVERY_S
                claimed = self._claim(key)
        except BaseException:
            # Interrupted while queued: leave Dagster's pending queue, or the next waiter is
            # assigned a slot that nobody takes (if this fails too, healing frees it later).
            with contextlib.suppress(Exception):
                self.storage.free_concurrency_slot_for_step(self.run_id, key)
            raise
        try:
            yield
        finally:
            self._free(key)
            with _slot_freed:
                _slot_freed.notify_all()

    def _free(self, key: str) -> None:
        """Free a held slot behind the claims' lock (across processes too: the file lock on SQLite),
        so a free never meets a claim in SQLite's busy handler, which waits in sleeps of 1 to
        100 ms where the lock hands over at once."""
        with self._claim_mutex():
            self.storage.free_concurrency_slot_for_step(self.run_id, key)
