"""The Dagster CLI against the real instance: `dagster job execute` with either executor, and a
failing step. The README's CI recipe itself, and the runs it refuses, are in test_ci_recipe.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from vidpipe_core import media
from vidpipe_core.storage import Layout
from vidpipe_dagster.runner import register

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")


def _dagster(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([DAGSTER, *args], cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=timeout)


def test_definitions_validate(vp_env):
    vp_env.instance()  # a DAGSTER_HOME that exists, as on a fresh clone
    proc = _dagster("definitions", "validate", "-w", "workspace.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("executor", [None, "multiprocess"])
def test_job_execute_renders_a_partition(vp_env, monkeypatch, executor):
    """`dagster job execute` of a registered project. By default the run executes its steps in its
    own process (they are a chain); VIDPIPE_DAGSTER_EXECUTOR=multiprocess gives Dagster's process
    per step, by configuration only."""
    if executor:
        monkeypatch.setenv("VIDPIPE_DAGSTER_EXECUTOR", executor)
    spec = register(
        "A snail races a leaf across a garden path.", id=f"ci-snail-{executor or 'default'}", scenes=2, clip_duration=1
    )
    proc = _dagster(
        "job",
        "execute",
        "-m",
        "vidpipe_dagster.definitions",
        "-j",
        "render_project",
        "--tags",
        json.dumps({"dagster/partition": spec.id}),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    info = media.probe(vp_env.services().store.path(spec.id, Layout.FINAL))
    assert info.has_video and abs(info.duration_s - 2.0) <= 0.25

    instance = vp_env.instance()
    [run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": spec.id}))
    starts = {
        e.step_key: e.dagster_event.pid
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
    }
    assert set(starts) == {"storyboard", "characters", "clips", "narration", "final_video"}  # keyframes: in clips
    assert len(set(starts.values())) == (5 if executor == "multiprocess" else 1), starts


def test_job_execute_exits_non_zero_on_an_injected_failure(gp):
    vp_env, g = gp
    g.emulator.configure(error_word="meltdown")
    spec = register("A reactor meltdown seen from far away", id="ci-broken", scenes=1, clip_duration=4)
    proc = _dagster(
        "job",
        "execute",
        "-m",
        "vidpipe_dagster.definitions",
        "-j",
        "render_project",
        "--tags",
        json.dumps({"dagster/partition": spec.id}),
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "scene 1" in out and "meltdown" in out
    assert not vp_env.services().store.exists(spec.id, Layout.FINAL)
