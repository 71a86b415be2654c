"""The commands that look after the installation: `worker` (a Celery worker) and `migrate`."""

from __future__ import annotations

import os
from collections.abc import Callable

import typer

from vidpipe_core.config import Settings, get_settings
from vidpipe_core.errors import ConfigurationError, InvalidInput
from vidpipe_dagster.cli.output import _fail, _note
from vidpipe_dagster.cli.scrub import _scrub


def _setting(name: str) -> str:
    """Help text for an option whose default is a setting: its built-in value and variable."""
    return f"{Settings.model_fields[name].default}, or VIDPIPE_{name.upper()}"


def _check_celery_urls(settings: Settings, shown: Callable[[str], str]) -> None:
    """A broker or result backend Celery cannot use: one line, exit 2, before the worker starts
    (Celery itself prints a traceback, and for a backend exits 0)."""
    from celery.app.backends import by_url  # type: ignore[import-untyped]
    from kombu import Connection

    from vidpipe_core.errors import one_line

    checks = (
        ("VIDPIPE_CELERY_BROKER", settings.celery_broker, lambda url: Connection(url).transport, "amqp://user@host:5672//"),
        ("VIDPIPE_CELERY_BACKEND", settings.celery_backend, by_url, "rpc:// or redis://host:6379/0"),
    )
    for name, url, load, example in checks:
        try:
            load(url)
        except Exception as exc:
            cause = _scrub(one_line(exc)).replace(url, shown(url))
            raise ConfigurationError(f"setting {name}={shown(url)} cannot be used: {cause}; use a URL such as {example}") from exc


def worker(
    queue: str | None = typer.Option(None, "--queue", show_default=_setting("celery_queue"), help="Queue to take steps from."),
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, show_default="the number of CPUs", help="Steps run at once (worker processes)."
    ),
    name: str | None = typer.Option(None, "--name", show_default="vidpipe-<random>@<host>", help="Celery node name."),
    loglevel: str = typer.Option("INFO", "--loglevel", show_default=True, help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run a Celery worker that executes render steps of runs using VIDPIPE_DAGSTER_EXECUTOR=celery, on this host."""
    import uuid

    from vidpipe_core.errors import redact_url

    settings = get_settings()
    queue = queue or settings.celery_queue
    level = loglevel.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise _fail(InvalidInput("--loglevel", f"{loglevel!r} is not one of DEBUG, INFO, WARNING, ERROR"))
    node = name or f"vidpipe-{uuid.uuid4().hex[:6]}"
    node = node if "@" in node else f"{node}@%h"
    # Loaded once here, before the pool forks: a bad setting fails now, and each worker process
    # starts its first step without importing Dagster and the definitions again.
    import vidpipe_dagster.definitions  # noqa: F401
    from vidpipe_dagster.celery_executor import celery_app

    def shown(url: str) -> str:  # the password masked; rpc:// as it is
        return redact_url(url) if "@" in url or "?" in url else url

    _check_celery_urls(settings, shown)
    _note(
        f"vidpipe worker {node}: queue {queue}, broker {shown(settings.celery_broker)}, "
        f"backend {shown(settings.celery_backend)}, concurrency {concurrency or os.cpu_count()}"
    )
    argv = ["worker", f"--queues={queue}", f"--hostname={node}", f"--loglevel={level}", "--without-gossip", "--without-mingle"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    import celery.app.trace  # type: ignore[import-untyped]

    # Celery would log each step's whole result (its serialized Dagster events) on success.
    celery.app.trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"
    celery_app(settings, queue).worker_main(argv)


def migrate() -> None:
    """Apply the database migrations (also done automatically on first use)."""
    from vidpipe_core.db import migrate as run

    settings = get_settings()
    run(settings.resolved_database_url)
    _note("database is at the newest revision")
