"""The instance settings an installed vidpipe starts with, and a pool that could never start a clip.

An install that is not editable (`pip install .`) once had no dagster.yaml beside the package: the
Dagster home got a file without a pool limit, every clip then waited for a slot for ever, and the
log said the slots were "held by no live run (freeing)"."""

from __future__ import annotations

import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import yaml

from vidpipe_core.cancel import CancelToken
from vidpipe_core.config import get_settings
from vidpipe_core.errors import ConfigurationError
from vidpipe_dagster.instance import INSTANCE_YAML, ensure_dagster_home
from vidpipe_dagster.pools import DagsterPoolSlots

REPO = Path(__file__).resolve().parents[2]


def test_the_dagster_home_gets_the_packaged_settings_which_the_repository_file_is(vp_env):
    home = ensure_dagster_home(get_settings())
    written = yaml.safe_load((home / "dagster.yaml").read_text())
    assert written["concurrency"]["pools"]["default_limit"] > 0
    assert written["concurrency"]["runs"]["max_concurrent_runs"] > 0
    assert INSTANCE_YAML.parent.name == "vidpipe_dagster"  # inside the package, so every install has it
    assert (REPO / "dagster.yaml").samefile(INSTANCE_YAML)  # what `make dev` and the docs name


@pytest.mark.slow
def test_a_built_wheel_carries_the_instance_settings(tmp_path):
    """What `pip install .` installs: the wheel built from this checkout."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("vidpipe-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = archive.read("vidpipe_dagster/dagster.yaml")
    assert packaged == INSTANCE_YAML.read_bytes()


def test_a_pool_without_slots_is_refused_at_once_with_the_fix(vp_env):
    instance = vp_env.instance()
    instance.event_log_storage.set_concurrency_slots("video-operations", 0)
    slots = DagsterPoolSlots(instance, "video-operations", "run-without-slots", "clips")
    cancel = CancelToken()
    timer = threading.Timer(20, cancel.cancel, args=("the pool without slots was waited on",))
    timer.start()
    try:
        with pytest.raises(ConfigurationError) as refused, slots.hold(1, cancel):
            pass
    finally:
        timer.cancel()
    message = str(refused.value)
    assert "no slots" in message and "dagster instance concurrency set video-operations" in message
    assert "\n" not in message
    assert instance.event_log_storage.get_concurrency_info("video-operations").claimed_slots == []
