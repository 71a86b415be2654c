"""The Dagster instance the CLI talks to: `$DAGSTER_HOME`, or `<data_dir>/dagster` when unset,
configured from the repository's dagster.yaml the first time."""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from vidpipe_core.config import Settings
from vidpipe_core.db import display_url
from vidpipe_core.errors import ConfigurationError, ProjectNotFound, one_line
from vidpipe_core.projects import project_exists
from vidpipe_core.services import Services
from vidpipe_dagster.partitions import PROJECTS

NEW_PROJECT_JOB = "new_project"  # the job that creates a project from the UI (vidpipe_dagster.create)
# The local instance's settings (run queue, the video-operations pool's limit, run monitoring). It ships
# inside the package, so an installed vidpipe (`pip install .`, not only `-e .`) has it; the repository's
# top-level dagster.yaml, which `make dev` and the docs name, is a link to this file.
INSTANCE_YAML = Path(__file__).resolve().parent / "dagster.yaml"


def _home_setting(settings: Settings) -> str:
    """How the user names the Dagster home: DAGSTER_HOME, or its default under VIDPIPE_DATA_DIR."""
    home = settings.dagster_home
    return (
        f"DAGSTER_HOME={home}"
        if os.environ.get("DAGSTER_HOME")
        else f"DAGSTER_HOME (unset; default {home} under VIDPIPE_DATA_DIR)"
    )


def ensure_dagster_home(settings: Settings) -> Path:
    """The Dagster home folder with a dagster.yaml in it (the repository's, copied the first time).
    ConfigurationError naming DAGSTER_HOME when the folder or the file cannot be created."""
    home = settings.dagster_home
    target = home / "dagster.yaml"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copyfile(INSTANCE_YAML, target)
    except OSError as exc:
        raise ConfigurationError(
            f"{_home_setting(settings)} cannot be used as the Dagster home ({target} could not be created): "
            f"{one_line(exc)}; set DAGSTER_HOME to a folder this user can create and write"
        ) from exc
    os.environ["DAGSTER_HOME"] = str(home)
    return home


_UNSET_VARIABLE = re.compile(r'environment variable "(?P<name>[^"]+)" which is not set')


def _config_finding(message: str) -> str:
    """The line that says what is wrong in one of Dagster's config errors: "Post processing at path
    root:postgres_db:port ... failed:" is followed by 'PostProcessingError: Value "x" stored in env
    variable "VIDPIPE_PG_PORT" cannot be coerced into an int.'"""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith("failed:"):
        return lines[1].rpartition("Error: ")[2]
    return lines[0] if lines else message


@contextmanager
def _quiet_retries() -> Iterator[list[str]]:
    """Dagster's PostgreSQL storage logs each failed connection attempt on the root logger, which
    prints them (four lines each) when nothing configured logging: collect them instead, for the
    one-line error should the instance not load."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Collect(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield seen
    finally:
        root.removeHandler(handler)


def _instance_cause(exc: BaseException) -> str:
    # Dagster's config errors append the whole instance schema ("Expected: {...}"), or start with
    # the repr of every field of the storage's config: keep the findings.
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors and all(hasattr(e, "message") for e in errors):
        findings = dict.fromkeys(_config_finding(str(e.message)) for e in errors)
        return f"{type(exc).__name__}: {'; '.join(findings)}"[:300]
    return re.sub(r'\s*Expected: ".*', "", one_line(exc, limit=100_000), flags=re.S)[:300]


def get_instance(settings: Settings) -> dg.DagsterInstance:
    """The Dagster instance at the Dagster home; ConfigurationError naming DAGSTER_HOME and its
    dagster.yaml when the instance cannot be loaded (unreadable or invalid file, storage that
    cannot be opened)."""
    home = ensure_dagster_home(settings)
    with _quiet_retries() as retries:
        try:
            return dg.DagsterInstance.get()
        except Exception as exc:
            raise _instance_error(settings, home, exc, retries) from exc


def _instance_error(settings: Settings, home: Path, exc: Exception, retries: list[str]) -> ConfigurationError:
    where = f"the Dagster instance in {_home_setting(settings)} cannot be loaded from {home / 'dagster.yaml'}"
    unset = sorted({m["name"] for m in _UNSET_VARIABLE.finditer(str(exc))})
    if unset:
        are = "they are" if len(unset) > 1 else "it is"
        return ConfigurationError(
            f"{where}: it reads {', '.join(unset)} from the environment, and {are} not set; "
            "set them (README: PostgreSQL), or use another dagster.yaml"
        )
    cause, fix = _instance_cause(exc), "fix that file (or delete it and vidpipe writes the default)"
    if retries:  # "too many retries for DB connection": say why the last attempt failed
        last = retries[-1].strip().splitlines()[0].removeprefix("Retrying failed database connection: ")
        cause += f" (the last attempt: {last[:200]})"
        fix = "check that its database server is running and reachable with these settings, or " + fix
    return ConfigurationError(f"{where}: {cause}; {fix}, or set DAGSTER_HOME to another folder")


def register_partition(instance: dg.DagsterInstance, project_id: str) -> bool:
    """Add the project's partition; True when this call added it (False: it was there)."""
    if instance.has_dynamic_partition(PROJECTS, project_id):
        return False
    instance.add_dynamic_partitions(PROJECTS, [project_id])
    return True


def remove_partition(instance: dg.DagsterInstance, project_id: str) -> None:
    if instance.has_dynamic_partition(PROJECTS, project_id):
        instance.delete_dynamic_partition(PROJECTS, project_id)


def has_partition(instance: dg.DagsterInstance, project_id: str) -> bool:
    return instance.has_dynamic_partition(PROJECTS, project_id)


def ensure_partition(instance: dg.DagsterInstance, services: Services, project_id: str) -> None:
    """The project's partition, added when its row exists without one (a registration that died
    between the two steps, or an inbox tick that failed before Dagster added the partition).
    The row is what makes a project: ProjectNotFound when there is none."""
    if not project_exists(services, project_id):
        raise ProjectNotFound(project_id)
    register_partition(instance, project_id)


def run_instance_text(instance: dg.DagsterInstance) -> str:
    """The Dagster instance a run uses, as a person names it (a run started by `dagster job
    execute` without DAGSTER_HOME uses a temporary one that is deleted when it exits)."""
    if instance.is_ephemeral:
        return "an ephemeral in-memory Dagster instance"
    env = os.environ.get("DAGSTER_HOME")
    if not env:
        return "a temporary Dagster instance (DAGSTER_HOME is not set)"
    root = Path(instance.root_directory).resolve()
    return f"DAGSTER_HOME={env}" if Path(env).expanduser().resolve() == root else f"the instance in {root} (DAGSTER_HOME={env})"


def refuse_unknown_project(instance: dg.DagsterInstance, services: Services, project_id: str) -> None:
    """ConfigurationError, one line, unless the run's Dagster instance has the project's
    partition and vidpipe's database has the project. Every step calls it before it does
    anything, so a run started from `dagster job execute`, the UI or the daemon against another
    instance, or for an id never registered, writes nothing and pays for nothing. The line names
    the instance the run used, the one vidpipe uses, and the command that fixes it."""
    in_instance = has_partition(instance, project_id)
    in_database = project_exists(services, project_id)
    if in_instance and in_database:
        return
    instance_text = run_instance_text(instance)
    default_home = services.settings.data_dir / "dagster"
    database = f"vidpipe's database ({display_url(services.settings.resolved_database_url)})"
    create = f'`vidpipe new "<prompt>" --id {project_id}`'
    then = "then start the run again"
    if instance.is_ephemeral or not os.environ.get("DAGSTER_HOME"):
        missing = f" and {database} has no such project" if not in_database else ""
        also = f" and {create}" if not in_database else ""
        why = (
            f"this run uses {instance_text}{missing}; vidpipe uses {services.settings.dagster_home}: "
            f"run `export DAGSTER_HOME={services.settings.dagster_home}`{also}"
        )
    elif not in_database:
        also = "" if in_instance else f" (nor is it a partition of this run's instance, {instance_text})"
        if in_instance:
            then += f" (or, for a partition added by mistake, remove it with `vidpipe delete {project_id}`)"
        why = (
            f"{database} has no such project{also}: create it with {create} or, in the Dagster UI, the "
            f"`{NEW_PROJECT_JOB}` job (Jobs -> {NEW_PROJECT_JOB} -> Launchpad, `id: {project_id}`)"
        )
    else:
        fixes = [f"add it to this instance with `vidpipe render {project_id}`"]
        if Path(os.environ["DAGSTER_HOME"]).expanduser().resolve() != default_home:
            fixes.insert(0, f"use the DAGSTER_HOME it was created with (`export DAGSTER_HOME={default_home}` for the default)")
        why = (
            f"it is in {database} but not a partition of this run's Dagster instance, {instance_text}; "
            f"vidpipe uses DAGSTER_HOME when set, else {default_home}: {', or '.join(fixes)}"
        )
    raise ConfigurationError(f"nothing done for project {project_id!r}: {why}; {then}")
