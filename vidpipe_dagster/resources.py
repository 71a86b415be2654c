"""The vidpipe resource: settings, database and artifact store for the assets.
Empty fields mean "from the environment" (VIDPIPE_*), so one definition serves a laptop,
CI and a Postgres deployment alike."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from vidpipe_core.config import get_settings
from vidpipe_core.services import Services


class VidpipeResource(dg.ConfigurableResource):
    data_dir: str | None = None
    database_url: str | None = None
    artifacts_url: str | None = None

    _services: Services | None = PrivateAttr(default=None)

    def services(self) -> Services:
        if self._services is None:
            overrides: dict[str, Any] = {
                k: v
                for k, v in {
                    "data_dir": self.data_dir,
                    "database_url": self.database_url,
                    "artifacts_url": self.artifacts_url,
                }.items()
                if v
            }
            self._services = Services.create(get_settings(**overrides))
        return self._services
