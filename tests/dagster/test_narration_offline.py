"""The offline narrator (the animatic): espeak-ng when it is on PATH, else silence of each line's
planned length and a one-line note; and projects registered before narration existed keep their
settings and fingerprints. The real Dagster assets, the real espeak-ng and ffmpeg."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import wave

import numpy as np
import pytest
from sqlalchemy import select

from tests.helpers import latest_metadata
from vidpipe_core.models import NarrationLine, Project
from vidpipe_core.projects import load_spec
from vidpipe_core.providers.animatic.speech import NO_ESPEAK
from vidpipe_core.speech import estimated_seconds
from vidpipe_core.steps.state import clip_prompt, resolve_state
from vidpipe_core.steps.storyboard import storyboard_fingerprint
from vidpipe_dagster.resume import plan_resume
from vidpipe_dagster.runner import failure_message, register, render

PROMPT = "A lighthouse keeper climbs the stairs. The lamp turns. Ships pass in the night."


def _samples(data: bytes) -> tuple[int, np.ndarray]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def _lines(services, project_id):
    with services.db.session() as s:
        return s.scalars(
            select(NarrationLine).where(NarrationLine.project_id == project_id).order_by(NarrationLine.scene_index)
        ).all()


def test_without_espeak_each_line_is_silence_of_its_planned_length_with_a_note(vp_env, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no espeak-ng (ffmpeg is the bundled binary, found by its path)
    spec = register(PROMPT, id="silent-keeper", scenes=3, clip_duration=3)
    assert spec.narration
    result = render(spec.id, assets=["storyboard", "narration"])
    assert result.success, failure_message(result)
    services = vp_env.services()
    scenes = resolve_state(services, spec.id).scenes
    rows = _lines(services, spec.id)
    assert [r.scene_index for r in rows] == [0, 1, 2] and all(s.narration for s in scenes)
    for row, scene in zip(rows, scenes, strict=True):
        rate, samples = _samples(services.store.read_bytes(spec.id, row.path))
        assert len(samples) / rate == pytest.approx(estimated_seconds(scene.narration), abs=1e-3)
        assert not samples.any()  # silence
        assert row.note == NO_ESPEAK and row.cost_usd == 0
    meta = latest_metadata(vp_env.instance(), "narration", spec.id)
    assert NO_ESPEAK in meta["notes"] and "\n" not in NO_ESPEAK
    assert [r.data["line"] for r in meta["lines"].records] == [s.narration for s in scenes]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs Debian's espeak-ng (.ci/run installs it)")
def test_with_espeak_every_narrated_scene_is_audible_and_said_again_the_same_when_damaged(vp_env):
    spec = register(PROMPT, id="spoken-keeper", scenes=3, clip_duration=3)
    result = render(spec.id, assets=["storyboard", "narration"])
    assert result.success, failure_message(result)
    services = vp_env.services()
    rows = _lines(services, spec.id)
    assert len(rows) == 3
    for row in rows:
        rate, samples = _samples(services.store.read_bytes(spec.id, row.path))
        rms = np.sqrt(np.mean(samples**2))
        assert rms > 300, (row.scene_index, rms)  # speech, well above silence (full scale is 32767)
        assert 0.3 < len(samples) / rate <= spec.clip_duration + 1e-3 and row.note is None
        assert row.duration_s == pytest.approx(len(samples) / rate)
    # espeak-ng says a line the same every time: a damaged file is said again for free.
    sha = rows[0].sha256
    services.store.write_bytes(spec.id, rows[0].path, b"damaged")
    result = render(spec.id, assets=["narration"])
    assert result.success, failure_message(result)
    assert hashlib.sha256(services.store.read_bytes(spec.id, rows[0].path)).hexdigest() == sha
    assert latest_metadata(vp_env.instance(), "narration", spec.id)["repaired"] == 1


def test_a_project_registered_before_narration_keeps_its_settings_and_fingerprints(vp_env):
    spec = register(PROMPT, id="old-keeper", scenes=2, clip_duration=2)
    services = vp_env.services()
    with services.db.session() as s:  # the spec as stored before narration existed
        row = s.get(Project, spec.id)
        row.spec = {k: v for k, v in row.spec.items() if k not in ("narration", "voice", "language")}
    old = load_spec(services, spec.id)
    assert not old.narration and old.voice is None and old.language is None
    # The storyboard's fingerprint is the one it always had: these fields, nothing else.
    before = {
        "prompt": old.prompt,
        "style": old.style,
        "scenes": old.scenes,
        "aspect": old.aspect_ratio,
        "duration": old.clip_duration,
        "provider": "animatic",
        "model": "animatic",
    }
    assert (
        storyboard_fingerprint(old, "animatic", "animatic")
        == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    )
    narrated = old.model_copy(update={"narration": True})
    assert storyboard_fingerprint(narrated, "animatic", "animatic") != storyboard_fingerprint(old, "animatic", "animatic")

    result = render(spec.id)
    assert result.success, failure_message(result)
    state = resolve_state(services, spec.id)
    assert all(not s.narration and not s.dialogue and not s.sound for s in state.scenes)
    for c, scene in zip(state.clips, state.scenes, strict=True):  # the clip prompt has no cue lines
        assert c.done and c.prompt == f"{scene.motion_prompt}\n\nScene: {scene.description}\n{state.style.prompt_suffix()}"
        assert clip_prompt(scene, state.style) == c.prompt
    assert _lines(services, spec.id) == []
    assert latest_metadata(vp_env.instance(), "narration", spec.id)["narration"] is False
    assert plan_resume(vp_env.instance(), services, spec.id).assets == []
