"""Every use of Dagster's private API (`dagster._…`) in vidpipe, behind one door.

Dagster's public API has no equivalent for what is here (dagster==1.13.27, the version in
requirements.lock). Each name is pinned by a contract test in tests/dagster/test_internals.py
that checks the signature or behaviour vidpipe relies on, so a Dagster upgrade that changes one
fails there, by name, instead of somewhere in a run. No other vidpipe module imports `dagster._`
(tests/test_imports.py checks it). What each is for, and the public API that would replace it:

- ``execute_run``: run a run created beforehand (`runner.render` creates it with the code
  location's origin, so the UI can re-execute it). Replace with `dg.execute_job` once it can
  execute such a run: today it creates its own run, without an origin.
- ``code_location_origin`` (``LoadableTargetOrigin``, ``ManagedGrpcPythonEnvCodeLocationOrigin``,
  ``RemoteRepositoryOrigin``, ``RemoteJobOrigin``, ``SINGLETON_REPOSITORY_NAME``): the origin the
  webserver gives runs of workspace.yaml's code location. Replace with `dg.execute_job` taking a
  code location, or with launching through the webserver (GraphQL `launchRun`), which builds it.
- ``create_execution_plan``, ``execute_plan_iterator``: what dagster-celery's task does on a
  worker, one step of an existing run. Replace with a public "execute these steps of this run"
  API (`dg.execute_job` runs a whole job as a new run).
- ``ReconstructableJob``: the job a celery task names, rebuilt on the worker from the run
  worker's `reconstructable_job.to_dict()` (the public `dg.reconstructable` returns one but
  offers no way back from the dict). Replace with a public reconstructable-job type.
- ``ExecuteStepArgs``: what a celery task carries (dagster-celery's own payload), packed and
  unpacked with the public `dg.serialize_value` / `dg.deserialize_value`. Replace with a public
  step-execution payload.
- ``EngineEventData``: the metadata of the engine event a worker writes when it takes or refuses a
  step, and the marker that pairs it with the run worker's "delegating" event in the UI. Replace
  with a metadata mapping when `DagsterInstance.report_engine_event` takes one.
- ``RetryMode``, ``get_retries_config``: the `retries` config of an executor and its value (what
  `dg.multiprocess_executor` takes). Replace with a public helper for an executor's retries.
- ``PlanOrchestrationContext``, ``ExecutionPlan``, ``ExecutionStep``: the types in the signature
  of the public `dg.Executor.execute`. Replace when Dagster exports them.
- ``check_captured_interrupt``: whether Dagster has turned a SIGINT/SIGTERM into its interrupt
  flag during a run. Replace with a public interrupt check.
- ``is_sqlite_event_log`` (``SqliteEventLogStorage``, ``ConsolidatedSqliteEventLogStorage``): which
  lock serialises pool claims (`pools.claim_lock_kind`). Replace with a public property of
  `EventLogStorage` that names its backend.
- ``slot_event_log`` (``SqliteEventLogStorage``, its ``path_for_shard``, ``INDEX_SHARD_NAME``,
  and in `_SlotStorage` its ``_connect``, ``_db_lock``, ``_initdb``, ``_initialized_dbs`` and
  ``SQLITE_BUSY_TIMEOUT_SECONDS``): a second SQLite storage object on the instance's files for
  the pool's claims and frees, which one object's thread lock made wait behind the run's log
  writes, with one engine per file instead of one per connection. Replace with a storage whose
  connections do not hold one lock across unrelated database files nor build an engine each.

Importing this module costs nothing extra: ``import dagster`` loads these modules itself, except
the SQLite event-log storage, which the first Dagster instance a command opens loads."""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import DagsterInstance
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.events import EngineEventData
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator, execute_run
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.plan.step import ExecutionStep
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.event_log import EventLogStorage, SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._grpc.types import ExecuteStepArgs
from dagster._utils.interrupts import check_captured_interrupt
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.pool import NullPool

__all__ = [
    "SINGLETON_REPOSITORY_NAME",
    "EngineEventData",
    "ExecuteStepArgs",
    "ExecutionPlan",
    "ExecutionStep",
    "PlanOrchestrationContext",
    "ReconstructableJob",
    "RemoteJobOrigin",
    "RetryMode",
    "check_captured_interrupt",
    "code_location_origin",
    "create_execution_plan",
    "execute_plan_iterator",
    "execute_run",
    "get_retries_config",
    "is_sqlite_event_log",
    "slot_event_log",
]


def code_location_origin(module_name: str, attribute: str, job_name: str) -> RemoteJobOrigin:
    """The origin the webserver gives runs of ``job_name`` in the code location that loads
    ``module_name:attribute`` (a `python_module` entry of workspace.yaml, named after its module)
    from the Definitions' one repository: a run created with it can be re-executed from the UI."""
    target = LoadableTargetOrigin(
        executable_path=sys.executable, module_name=module_name, attribute=attribute, working_directory=os.getcwd()
    )
    location = ManagedGrpcPythonEnvCodeLocationOrigin(target)
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME), job_name)


def is_sqlite_event_log(storage: object) -> bool:
    """Whether ``storage`` (an instance's `event_log_storage`) is one of Dagster's SQLite ones."""
    return isinstance(storage, (SqliteEventLogStorage, ConsolidatedSqliteEventLogStorage))


class _SlotStorage(SqliteEventLogStorage):
    """Dagster's sharded SQLite event-log storage whose connections reuse one engine per database
    file. Dagster's own object creates (and disposes of) an engine for every connection, ~1.5 ms
    each, and a claim opens five connections, a free three: on an idle instance a claim took
    17 ms and a free 12 ms through Dagster's object, 8-12 ms and 6-9 ms through this one (NullPool
    still: every connection is a new one).
    Only vidpipe's pool claims and frees use it (`slot_event_log`)."""

    def __init__(self, base_dir: str) -> None:
        super().__init__(base_dir)
        self._engines: dict[str, Engine] = {}

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                engine = self._engines[shard] = create_engine(
                    self.conn_string_for_shard(shard), poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
                )
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn


_slot_storages: weakref.WeakKeyDictionary[DagsterInstance, EventLogStorage] = weakref.WeakKeyDictionary()
_slot_storages_lock = threading.Lock()


def slot_event_log(instance: DagsterInstance) -> EventLogStorage:
    """The storage object to claim and free ``instance``'s pool slots with: for Dagster's sharded
    SQLite storage a second object on the same files (`_SlotStorage`), one per instance. Every
    connection of one SQLite storage object takes its one thread lock (``_db_lock``) for as long
    as it is open, so the clips threads' claims (index.db) queued behind the step's log writes
    (each run's own .db file); a traced wave of four claims took 0.03-0.2 s each, that queue and
    the claims' own lock together. The slots' rows are in index.db, so the second object meets the first only in SQLite's own locking,
    where writers of different files never wait for each other. Other storages are used as they
    are (PostgreSQL's has no such lock; the consolidated SQLite storage keeps everything in one
    file)."""
    storage = instance.event_log_storage
    if type(storage) is not SqliteEventLogStorage:
        return storage
    with _slot_storages_lock:
        own = _slot_storages.get(instance)
        if own is None:
            own = _SlotStorage(os.path.dirname(storage.path_for_shard(INDEX_SHARD_NAME)))
            own.register_instance(instance)  # what its concurrency calls read the pool settings from
            # The instance's object has checked the index database's schema (alembic, ~25 ms): once is enough.
            own._initialized_dbs.update(storage._initialized_dbs & {INDEX_SHARD_NAME})
            _slot_storages[instance] = own
        return own
