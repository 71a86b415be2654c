"""The handles every step needs, built once from settings."""
from __future__ import annotations

from dataclasses import dataclass

from vidpipe_core.config import Settings, get_settings
from vidpipe_core.db import Database
from vidpipe_core.storage import ArtifactStore


@dataclass
class Services:
    settings: Settings
    db: Database
    store: ArtifactStore

    @classmethod
    def create(cls, settings: Settings | None = None) -> "Services":
        settings = settings or get_settings()
        return cls(settings=settings, db=Database(settings.resolved_database_url), store=ArtifactStore(settings.resolved_artifacts_url))
