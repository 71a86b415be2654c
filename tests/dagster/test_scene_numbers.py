"""Scene numbers are 1-based wherever a person sees them: the CLI's --scene, its messages, the
clips' file names, `vidpipe status`; the database keeps 0-based indices. And `status` says
what to do next and where the files are."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import latest_metadata, mean_abs_diff
from vidpipe_core import media
from vidpipe_core.liveness import this_host
from vidpipe_core.projects import load_spec
from vidpipe_core.providers.animatic.motion import caption_box, draw_caption
from vidpipe_core.steps.state import resolve_state, spent_usd
from vidpipe_core.storage import Layout
from vidpipe_dagster.cli import app
from vidpipe_dagster.healing import HEARTBEAT_TAG, HOST_TAG, PARTITION_TAG, PID_TAG
from vidpipe_dagster.runner import register, render
from vidpipe_dagster.status import project_status

PROMPT = "A lighthouse keeper climbs the stairs. She lights the lamp. A ship turns away from the rocks."


def _caption_pixels(img: Image.Image) -> np.ndarray:
    """The caption band's text: bright pixels on the darkened band."""
    band = img.convert("L").crop(caption_box(img.size))
    return np.asarray(band, dtype=np.float32) > 128


def _caption_shown(frame: Image.Image, captions: list[str]) -> str:
    """Which of ``captions`` the decoded frame shows: the one whose text, drawn as the animatic
    draws captions, covers the same pixels of the band."""

    def mismatch(text: str) -> float:
        drawn = Image.new("RGB", frame.size, (0, 0, 0))
        draw_caption(drawn, text)
        return float(np.mean(_caption_pixels(drawn) != _caption_pixels(frame)))

    return min(captions, key=mismatch)


def _clips(services, project_id: str) -> dict[int, tuple[str, str]]:
    """Scene number -> (clip file, sha256) of the current clips."""
    return {c.index + 1: (c.row.path, c.row.sha256) for c in resolve_state(services, project_id).clips if c.done}


def test_regenerating_scene_2_changes_exactly_the_clip_captioned_scene_2(vp_env):
    spec = register(PROMPT, id="numbers", scenes=3, clip_duration=1)
    assert render(spec.id).success
    services = vp_env.services()
    state = resolve_state(services, spec.id)
    captions = [f"Scene {i + 1}: {s.description}" for i, s in enumerate(state.scenes)]
    before = _clips(services, spec.id)
    # Clip n shows "Scene n: ..." from its first frame to its last: the caption a viewer reads there.
    for n, (path, _sha) in before.items():
        for at in ("first", 0.5, "last"):
            frame = media.read_frame(services.store.path(spec.id, path), at)
            assert _caption_shown(frame, captions).startswith(f"Scene {n}: "), (n, at)
    final = services.store.path(spec.id, Layout.FINAL)
    # Mid-scene, where the camera moves are well under way (each starts from its keyframe, easing in).
    windows = {1: (0.5, 0.6, 0.7), 2: (1.5, 1.6, 1.7), 3: (2.5, 2.6, 2.7)}
    final_before = {n: [media.read_frame(final, t) for t in ts] for n, ts in windows.items()}
    clip_frames_before = {
        n: [media.read_frame(services.store.path(spec.id, p), t) for t in (0.3, 0.5, 0.7)] for n, (p, _) in before.items()
    }

    result = CliRunner().invoke(app, ["regenerate", spec.id, "--scene", "2"])
    assert result.exit_code == 0, result.output
    assert "new takes for scene 2" in result.output

    after = _clips(services, spec.id)
    assert after[1] == before[1] and after[3] == before[3]
    assert after[2][0] != before[2][0] and after[2][1] != before[2][1]
    assert Path(after[2][0]).name.startswith("scene_002_")  # the file is named by the scene's number too
    assert load_spec(services, spec.id).takes.keys() == {"1"}  # the database counts from 0
    clips_meta = latest_metadata(vp_env.instance(), "clips", spec.id)
    assert (clips_meta["generated"], clips_meta["reused"]) == (1, 2)
    rows = {r.data["scene"]: r.data["status"] for r in clips_meta["scenes"].records}
    assert rows == {1: "reused", 2: "generated", 3: "reused"}

    # Decoded frames: only the clip of scene 2 moves differently; it still shows "Scene 2: ...".
    for n, (path, _sha) in after.items():
        frames = [media.read_frame(services.store.path(spec.id, path), t) for t in (0.3, 0.5, 0.7)]
        diffs = [mean_abs_diff(a, b) for a, b in zip(clip_frames_before[n], frames, strict=True)]
        if n == 2:
            assert max(diffs) > 1.5, diffs
        else:
            assert max(diffs) == 0.0, (n, diffs)
    last = media.read_frame(services.store.path(spec.id, after[2][0]), "last")
    assert _caption_shown(last, captions).startswith("Scene 2: ")

    # The final video changes only in scene 2's second.
    for n, ts in windows.items():
        diffs = [mean_abs_diff(a, media.read_frame(final, t)) for a, t in zip(final_before[n], ts, strict=True)]
        if n == 2:
            assert min(diffs) > 1.5, diffs
        else:
            assert max(diffs) < 0.5, (n, diffs)


@pytest.mark.parametrize("number", ["0", "4"])
def test_a_scene_number_outside_1_to_k_is_refused_before_anything_happens(vp_env, number):
    spec = register(PROMPT, id="bad-number", scenes=3, clip_duration=1)
    assert render(spec.id, assets=["storyboard"]).success
    services, instance = vp_env.services(), vp_env.instance()
    runs = len(instance.get_runs())
    board = Path(services.store.path(spec.id, Layout.STORYBOARD)).read_bytes()

    regenerate = CliRunner().invoke(app, ["regenerate", spec.id, "--scene", "2", "--scene", number])
    edit = CliRunner().invoke(app, ["edit", spec.id, "--scene", number, "--motion", "A slow pan"])
    for result in (regenerate, edit):
        assert result.exit_code == 2, result.output
        assert f"scene: {number} is out of range" in result.output and "(allowed: 1-3)" in result.output
    assert ("numbered from 1" in regenerate.output) == (number == "0")
    assert load_spec(services, spec.id).takes == {}
    assert Path(services.store.path(spec.id, Layout.STORYBOARD)).read_bytes() == board
    assert len(instance.get_runs()) == runs and spent_usd(services, spec.id) == 0.0


def test_status_after_an_edit_says_what_resume_makes_and_costs(vp_env, monkeypatch):
    monkeypatch.setenv("VIDPIPE_PRICES", json.dumps({"animatic": {"per_second": 0.25}}))
    monkeypatch.setenv("VIDPIPE_REVIEW", "none")  # priced clips would be under review; this test renders everything
    spec = register(PROMPT, id="edited", scenes=3, clip_duration=1, max_cost_usd=5.0)
    services = vp_env.services()
    never = project_status(services, spec.id)
    assert [a["state"] for a in never["assets"]] == ["missing"] * 6 and never["paths"] == {"clips": [], "characters": []}
    assert never["next"] == [
        f"never rendered: `vidpipe render {spec.id}` makes it; projected cost $0.75 (spent $0.00 of the $5.00 budget)"
    ]

    assert render(spec.id).success
    done = project_status(services, spec.id)
    assert [a["state"] for a in done["assets"]] == ["materialized"] * 6 + ["success"]
    assert done["next"] == [] and [s["clip"] for s in done["scenes"]] == ["done"] * 3

    result = CliRunner().invoke(app, ["edit", spec.id, "--scene", "2", "--motion", "The camera tilts up to the lamp"])
    assert result.exit_code == 0, result.output
    assert "frames to regenerate: none; clips to regenerate: the clip of scene 2." in result.output

    report = project_status(services, spec.id)
    states = {a["asset"]: a["state"] for a in report["assets"]}
    assert states["storyboard"] == states["keyframes"] == "materialized"
    assert states["clips"] == "out of date: the clip of scene 2 is missing"
    assert states["final_video"].startswith("out of date")
    assert [(s["scene"], s["clip"]) for s in report["scenes"]] == [(1, "done"), (2, "out of date"), (3, "done")]
    assert report["next"] == [
        f"`vidpipe resume {spec.id}` makes the clip of scene 2 and the final video; "
        "projected cost $0.25 (spent $0.75 of the $5.00 budget)"
    ]
    paths = report["paths"]
    for key in ("final_video", "contact_sheet", "storyboard"):
        assert Path(paths[key]).is_file(), key
    assert paths["final_video"] == services.store.uri(spec.id, Layout.FINAL)
    assert [c["scene"] for c in paths["clips"]] == [1, 3]  # scene 2 has no current clip
    assert all(Path(c["path"]).is_file() for c in paths["clips"])

    # The command prints them.
    out = CliRunner().invoke(app, ["status", spec.id]).output
    assert "out of date" in out and report["next"][0] in out and paths["contact_sheet"] in out

    assert CliRunner().invoke(app, ["resume", spec.id]).exit_code == 0
    assert project_status(services, spec.id)["next"] == []


def _started_run(instance: dg.DagsterInstance, project_id: str, pid: int) -> str:
    """A STARTED run of the project whose steps run in process ``pid`` on this host."""
    run_id = str(uuid.uuid4())
    tags = {PARTITION_TAG: project_id, PID_TAG: str(pid), HOST_TAG: this_host(), HEARTBEAT_TAG: f"{time.time():.3f}"}
    instance.add_run(dg.DagsterRun(job_name="render_project", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags))
    return run_id


def test_status_names_a_live_run_and_sends_a_dead_one_to_resume(vp_env):
    spec = register(PROMPT, id="runs", scenes=2, clip_duration=1)
    services, instance = vp_env.services(), vp_env.instance()
    live = _started_run(instance, spec.id, os.getpid())
    report = project_status(services, spec.id)
    assert report["next"] == [f"run {live[:8]} is rendering this project; `vidpipe status {spec.id}` shows how far it got"]

    instance.report_run_failed(instance.get_run_by_id(live))
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = _started_run(instance, spec.id, gone.pid)
    report = project_status(services, spec.id)
    assert report["assets"][-1]["state"] == "dead"
    hint, plan = report["next"]
    assert hint.startswith(f"run {dead[:8]} is dead (pid {gone.pid}") and f"`vidpipe resume {spec.id}`" in hint
    assert plan.startswith(
        f"`vidpipe resume {spec.id}` makes the storyboard, its characters' reference sheets, 3 keyframes, 2 clips "
        "and the final video;"
    )
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.STARTED  # status changes nothing
