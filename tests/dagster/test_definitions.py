"""The definitions take every vidpipe setting from the vidpipe resource: a deployment, or a test,
configures `Definitions` with a resource instead of environment variables, and the assets, the
sensors, the jobs and the executor all follow it. No VIDPIPE_ variable is set here (conftest
clears them); only DAGSTER_HOME, which is Dagster's."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from vidpipe_core import media
from vidpipe_core.errors import ConfigurationError
from vidpipe_core.projects import list_projects, load_spec
from vidpipe_core.services import Services
from vidpipe_core.storage import Layout
from vidpipe_dagster.definitions import build_defs
from vidpipe_dagster.instance import get_instance
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.sensors import inbox_sensor

SMALL = {"provider": "animatic", "animatic_resolution": 144, "fps": 12, "default_clip_duration": 1, "ui_previews": False}


@pytest.fixture
def resource(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VidpipeResource:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.chdir(tmp_path)  # the environment's default data dir would be ./.vidpipe
    assert not [k for k in os.environ if k.startswith("VIDPIPE_") and not k.startswith("VIDPIPE_TEST_")]
    return VidpipeResource(data_dir=str(tmp_path / "data"), settings={**SMALL, "inbox_min_age_s": 0})


def test_definitions_configured_with_a_resource_register_and_render_with_its_settings(resource, tmp_path):
    defs = build_defs(resource)
    instance = get_instance(resource.vidpipe_settings())
    created = defs.resolve_job_def("new_project").execute_in_process(
        run_config={
            "ops": {"register_project": {"config": {"prompt": "A heron waits in the reeds", "id": "heron", "scenes": 1}}}
        },
        instance=instance,
    )
    assert created.success
    services = Services.create(resource.vidpipe_settings())
    assert load_spec(services, "heron").clip_duration == 1  # the resource's default, not the environment's 4

    result = defs.resolve_job_def("render_project").execute_in_process(partition_key="heron", instance=instance)
    assert result.success
    info = media.probe(services.store.path("heron", Layout.FINAL))
    assert (info.width, info.height) == (256, 144) and abs(info.duration_s - 1.0) <= 0.25  # the resource's resolution
    assert str(services.store.path("heron", Layout.FINAL)).startswith(str(tmp_path / "data"))
    assert not (tmp_path / ".vidpipe").exists()  # nothing where the environment's settings point


def test_the_inbox_sensor_reads_its_limits_from_the_resource(resource):
    """The resource allows one file per tick (the environment's default: 500): of two files, the
    tick registers one and leaves the other for the next."""
    resource = VidpipeResource(data_dir=resource.data_dir, settings={**resource.settings, "inbox_max_files_per_tick": 1})
    settings = resource.vidpipe_settings()
    settings.resolved_inbox_dir.mkdir(parents=True)
    (settings.resolved_inbox_dir / "fox.txt").write_text("A fox crosses a snowy field.\n")
    (settings.resolved_inbox_dir / "owl.txt").write_text("An owl lands on a fence post.\n")
    instance = get_instance(settings)
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), definitions=build_defs(resource), resources={"vidpipe": resource}
    )
    result = inbox_sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert len(result.run_requests) == 1
    assert len(list_projects(Services.create(settings))) == 1
    assert sorted(p.name for p in settings.resolved_inbox_dir.glob("*.txt")) in (["fox.txt"], ["owl.txt"])


def test_the_executor_is_the_resources():
    assert build_defs(VidpipeResource()).executor is dg.in_process_executor  # the environment's default
    assert build_defs(VidpipeResource(settings={"dagster_executor": "multiprocess"})).executor is dg.multiprocess_executor


def test_a_setting_the_resource_cannot_take_is_named():
    with pytest.raises(ConfigurationError, match=r"'clip_concurency', which is not a setting"):
        build_defs(VidpipeResource(settings={"clip_concurency": 2}))
    with pytest.raises(ConfigurationError, match=r"set VIDPIPE_CELERY_BROKER in the environment instead"):
        VidpipeResource(settings={"celery_broker": "amqp://u:secret@broker//"}).vidpipe_settings()
