"""The Dagster instance the CLI talks to: `$DAGSTER_HOME`, or `<data_dir>/dagster` when unset,
configured from the repository's dagster.yaml the first time."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from vidpipe_core.config import Settings
from vidpipe_core.errors import ProjectNotFound
from vidpipe_dagster.partitions import projects_partitions

REPO_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
FALLBACK_YAML = "telemetry:\n  enabled: false\n"


def ensure_dagster_home(settings: Settings) -> Path:
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        if REPO_DAGSTER_YAML.is_file():
            shutil.copyfile(REPO_DAGSTER_YAML, target)
        else:
            target.write_text(FALLBACK_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance(settings: Settings) -> dg.DagsterInstance:
    ensure_dagster_home(settings)
    return dg.DagsterInstance.get()


def register_partition(instance: dg.DagsterInstance, project_id: str) -> None:
    if not instance.has_dynamic_partition(projects_partitions.name, project_id):
        instance.add_dynamic_partitions(projects_partitions.name, [project_id])


def require_partition(instance: dg.DagsterInstance, project_id: str) -> None:
    if not instance.has_dynamic_partition(projects_partitions.name, project_id):
        raise ProjectNotFound(project_id)
