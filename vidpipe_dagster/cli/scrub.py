"""Secrets taken out of what the `vidpipe` command prints or writes to a log file."""

from __future__ import annotations

import os
import re

from vidpipe_core.errors import scrub_url

_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_SECRET_URLS = ("VIDPIPE_DATABASE_URL", "VIDPIPE_ARTIFACTS_URL", "VIDPIPE_CELERY_BROKER", "VIDPIPE_CELERY_BACKEND")


def _scrub(text: str) -> str:
    """``text`` without secrets: API keys (the Google provider's redaction), passwords in the
    URL settings, and the value of any variable whose name says it is a secret."""
    try:
        from vidpipe_core.providers.google import redact

        text = redact(text)
    except Exception:
        pass
    for name, value in os.environ.items():
        if name in _SECRET_URLS and value:
            text = scrub_url(text, value)
        elif _SECRET_NAME.search(name) and len(value) >= 8:
            text = text.replace(value, "***")
    return text
