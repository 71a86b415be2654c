"""What Dagster's materializations say about a project, and which of them are its own. A leaf:
the assets write the nonce, and status, resume and the runner read it back without importing
each other.

Dagster's records cannot be wiped one partition at a time, so a project id registered again
(after its database was lost or its project deleted) still has the earlier project's
materializations. Each materialization a step records carries the nonce of the project record
it was made for (``NONCE_KEY``), and a registration marks an earlier project's latest one as
not this project's (``SUPERSEDED_KEY``, `runner.supersede_earlier`)."""

from __future__ import annotations

import dagster as dg

from vidpipe_core.integrity import digest_problem
from vidpipe_core.services import Services
from vidpipe_core.steps.state import project_nonce
from vidpipe_core.storage import Layout

NONCE_KEY = "project_nonce"  # metadata: the project record a materialization belongs to
# Metadata of the runless materialization a registration records over an earlier project's latest
# one (`runner.supersede_earlier`): its text says why; it is never this project's.
SUPERSEDED_KEY = "superseded"


def nonce_metadata(services: Services, project_id: str) -> dict[str, str]:
    """The metadata entry that ties a materialization to the project record it was made for."""
    nonce = project_nonce(services, project_id)
    return {NONCE_KEY: nonce} if nonce else {}


def latest_materialization(instance: dg.DagsterInstance, name: str, project_id: str) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[project_id]), limit=1
    ).records
    return records[0] if records else None


def metadata_value(record: dg.EventLogRecord, key: str) -> object:
    materialization = record.asset_materialization
    entry = materialization.metadata.get(key) if materialization else None
    return entry.value if entry is not None else None


def belongs_to_project(record: dg.EventLogRecord, nonce: str | None) -> bool:
    """A materialization is trusted only for the project record that made it (its nonce); projects
    registered before nonces existed (None) trust every materialization of their partition but
    the marks a registration leaves over an earlier project's (`runner.supersede_earlier`)."""
    if metadata_value(record, SUPERSEDED_KEY) is not None:
        return False
    return nonce is None or metadata_value(record, NONCE_KEY) == nonce


def final_video_problem(services: Services, project_id: str, record: dg.EventLogRecord) -> str | None:
    """What is wrong with final.mp4 against the sha256 its materialization recorded (None: nothing)."""
    expected = metadata_value(record, "sha256")
    try:
        data = services.store.read_bytes(project_id, Layout.FINAL)
    except FileNotFoundError:
        data = None
    problem = digest_problem(data, expected if isinstance(expected, str) else None)
    return f"final.mp4: {problem}" if problem else None
