"""Issue 24 through the whole graph: an animatic project with narration (espeak-ng) and a
crossfade renders to a final.mp4 with a `mov_text` track, and `final.srt` / `final.vtt` whose cues
are the storyboard's narration lines, each inside its scene's range in the final timeline (±0.1 s
after the crossfades), with an audible voice under them; the same project without narration is
silent and has no subtitles. Real Dagster, espeak-ng, ffmpeg; PyAV reads the results."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from tests.core.test_final_mix import _audio, _parse_srt, _track
from vidpipe_core.steps.state import resolve_state
from vidpipe_dagster.runner import failure_message, register, render

PROMPT = "A lighthouse keeper climbs the stairs. The lamp turns. Ships pass in the night."
CLIP_S, CROSSFADE = 3, 0.5

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is missing (.ci/run installs it)")


def test_a_narrated_project_has_subtitles_of_its_lines_inside_their_scenes(vp_env) -> None:  # type: ignore[no-untyped-def]
    spec = register(PROMPT, id="narrated-keeper", scenes=3, clip_duration=CLIP_S, crossfade=CROSSFADE)
    assert spec.narration
    result = render(spec.id)
    assert result.success, failure_message(result)
    services = vp_env.services()
    narration = [s.narration for s in resolve_state(services, spec.id).scenes]
    assert all(narration)

    video = Path(services.store.path(spec.id, "final.mp4"))
    codec, track = _track(video)
    assert codec.startswith("mov_text/")
    srt = _parse_srt(services.store.read_bytes(spec.id, "final.srt").decode())
    vtt = _parse_srt(services.store.read_bytes(spec.id, "final.vtt").decode())
    assert [c[2] for c in srt] == narration and [c[2] for c in vtt] == narration
    assert [c[2] for c in track] == narration
    for index, (start, end, _text) in enumerate(srt):  # scene i spans [i·(d−x), i·(d−x)+d] once crossfaded
        scene_start = index * (CLIP_S - CROSSFADE)
        assert scene_start - 0.1 <= start < end <= scene_start + CLIP_S + 0.1, (index, start, end)

    samples = _audio(video)
    with av.open(str(video)) as media:
        rate = media.streams.audio[0].rate
    for start, end, _text in srt:  # the narrator is heard inside each cue
        window = samples[int(start * rate) : int(end * rate)]
        assert np.sqrt(np.mean(window**2)) > 0.01, (start, end)


def test_without_narration_the_video_has_no_subtitles(vp_env) -> None:  # type: ignore[no-untyped-def]
    spec = register(PROMPT, id="quiet-keeper", scenes=2, clip_duration=1, narration=False)
    result = render(spec.id)
    assert result.success, failure_message(result)
    services = vp_env.services()
    with av.open(str(services.store.path(spec.id, "final.mp4"))) as media:
        assert not media.streams.subtitles
    assert not services.store.exists(spec.id, "final.srt")
