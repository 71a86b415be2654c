"""The vidpipe resource: the one source of vidpipe's settings for the assets, the sensors and the
jobs, and the database and artifact store built from them.

A field left empty means "from the environment" (VIDPIPE_*, or the config file), so one
definition serves a laptop, CI and a Postgres deployment alike; a deployment or a test sets them
in `Definitions` instead (`definitions.build_defs(VidpipeResource(...))`). The Definitions take
their executor from it too (`dagster_executor`)."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from vidpipe_core.config import Settings, get_settings
from vidpipe_core.errors import ConfigurationError
from vidpipe_core.services import Services

# Read from the environment only (the celery executor's run worker and `vidpipe worker` read them
# there): a URL with a password must not enter Dagster's config, which is stored with each run.
ENVIRONMENT_ONLY = ("celery_broker", "celery_backend")


class VidpipeResource(dg.ConfigurableResource):
    data_dir: str | None = Field(default=None, description="VIDPIPE_DATA_DIR; default: the environment's.")
    database_url: str | None = Field(default=None, description="VIDPIPE_DATABASE_URL; default: the environment's.")
    artifacts_url: str | None = Field(default=None, description="VIDPIPE_ARTIFACTS_URL; default: the environment's.")
    settings: dict[str, Any] = Field(
        default={},
        description="Any other vidpipe setting by name (a VIDPIPE_ variable's name in lower case, without the "
        "prefix), e.g. {provider: animatic, clip_concurrency: 2}; a setting not named here is the environment's. "
        f"Not {' or '.join(ENVIRONMENT_ONLY)}: those are read from the environment only.",
    )

    _settings: Settings | None = PrivateAttr(default=None)
    _services: Services | None = PrivateAttr(default=None)

    def vidpipe_settings(self) -> Settings:
        """The settings: this resource's fields over the environment's. ConfigurationError naming
        a field that is no setting, or one read from the environment only."""
        if self._settings is None:
            unknown = sorted(set(self.settings) - set(Settings.model_fields))
            if unknown:
                raise ConfigurationError(
                    f"the vidpipe resource's settings name {', '.join(map(repr, unknown))}, which "
                    f"{'are not settings' if len(unknown) > 1 else 'is not a setting'}; a setting is named as its "
                    "VIDPIPE_ variable in lower case without the prefix, e.g. clip_concurrency"
                )
            secret = sorted(set(self.settings) & set(ENVIRONMENT_ONLY))
            if secret:
                raise ConfigurationError(
                    f"the vidpipe resource's settings name {', '.join(secret)}: set "
                    f"{' and '.join('VIDPIPE_' + s.upper() for s in secret)} in the environment instead "
                    "(a URL with a password must not be stored with each run)"
                )
            fields = {"data_dir": self.data_dir, "database_url": self.database_url, "artifacts_url": self.artifacts_url}
            overrides: dict[str, Any] = {k: v for k, v in fields.items() if v}
            self._settings = get_settings(**{**self.settings, **overrides})
        return self._settings

    def services(self) -> Services:
        if self._services is None:
            self._services = Services.create(self.vidpipe_settings())
        return self._services
