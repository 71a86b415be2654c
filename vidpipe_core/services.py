"""The handles every step needs, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass

from vidpipe_core.config import Settings, get_settings
from vidpipe_core.db import Database
from vidpipe_core.scratch import clean_stale_scratch
from vidpipe_core.storage import ArtifactStore


@dataclass
class Services:
    settings: Settings
    db: Database
    store: ArtifactStore

    @classmethod
    def create(cls, settings: Settings | None = None, *, housekeeping: bool = True) -> Services:
        settings = settings or get_settings()
        if housekeeping:
            clean_stale_scratch(settings.data_dir)  # work folders of processes that were killed
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            store=ArtifactStore(settings.resolved_artifacts_url, settings.data_dir),
        )
