"""Hints that are true: what `vidpipe status` and a failed run say to do next is what happens when
one does it. A scene the safety filter refused for good (the `fail` policy, or `retry` with its
retries used up) is not promised by `vidpipe resume`, and the fixes named instead work; a budget
that cannot cover the project names the budget that does; a repair reads as one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidpipe_core import media
from vidpipe_core.steps.clips import SAFE_PREFIX
from vidpipe_core.steps.edit import edit_scene
from vidpipe_core.steps.state import resolve_state, spent_usd
from vidpipe_core.storage import Layout
from vidpipe_dagster.cli import app
from vidpipe_dagster.runner import register, render


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _next(project_id: str) -> list[str]:
    code, out = _invoke("status", project_id, "--json")
    assert code == 0, out
    return json.loads(out)["next"]


def _submissions(emu) -> int:  # type: ignore[no-untyped-def]
    return emu.stats()["requests"]["video_submit"]


@pytest.mark.parametrize("policy", ["fail", "retry"])
def test_a_refused_scene_is_not_promised_and_the_named_fixes_work(gp, policy):
    vp_env, g = gp
    # Under `retry` the provider refuses the rephrased prompts too: it objects to the very words
    # a rephrasing adds, so the retries are used up.
    word = "family-friendly" if policy == "retry" else "forbiddenword"
    assert policy == "fail" or word in SAFE_PREFIX
    g.emulator.configure(safety_word=word)
    spec = register("A fox crosses a snowy field", id=f"refused-{policy}", scenes=2, clip_duration=4, safety_policy=policy)
    assert render(spec.id, assets=["storyboard"]).success
    edit_scene(vp_env.services(), spec.id, 1, motion_prompt=f"The camera follows the {word} fox")

    assert not render(spec.id).success
    rejections = resolve_state(vp_env.services(), spec.id).clips[1].row.safety_reasons
    assert len(rejections) == (3 if policy == "retry" else 1)  # the first try and VIDPIPE_SAFETY_RETRIES=2 more

    steps = _next(spec.id)
    assert not [s for s in steps if "makes" in s and ("scene 2" in s or "final video" in s)], steps
    (refused,) = [s for s in steps if "refused scene 2" in s]
    assert f"`vidpipe resume {spec.id}` fails the same way" in refused
    assert f'`vidpipe edit {spec.id} --scene 2 --motion "..."`' in refused
    assert f"`vidpipe edit {spec.id} --safety-policy skip`" in refused
    # True: resuming as it stands fails again and submits nothing; its error names the same fixes.
    paid = _submissions(g.emulator)
    code, out = _invoke("resume", spec.id)
    assert code == 1 and _submissions(g.emulator) == paid
    assert f'`vidpipe edit {spec.id} --scene 2 --motion "..."`' in out and f"`vidpipe edit {spec.id} --safety-policy skip`" in out

    # The fix it names: leave the scene out. Then resume makes the final video, paying nothing more.
    code, out = _invoke("edit", spec.id, "--safety-policy", "skip")
    assert code == 0, out
    (step,) = _next(spec.id)
    assert step.startswith(f"`vidpipe resume {spec.id}` makes the final video;")
    code, out = _invoke("resume", spec.id)
    assert code == 0, out
    assert _submissions(g.emulator) == paid
    assert abs(media.probe(vp_env.services().store.path(spec.id, Layout.FINAL)).duration_s - 4.0) <= 0.25
    assert _next(spec.id) == []


def test_every_scene_refused_under_skip_is_not_sent_back_to_resume(gp):
    vp_env, g = gp
    g.emulator.configure(safety_word="forbiddenword")
    spec = register("A fox crosses a snowy field", id="all-refused", scenes=1, clip_duration=4, safety_policy="skip")
    assert render(spec.id, assets=["storyboard"]).success
    edit_scene(vp_env.services(), spec.id, 0, motion_prompt="The camera follows the forbiddenword fox")
    code, out = _invoke("render", spec.id)
    assert code == 1 and "nothing to stitch" in out
    assert f'`vidpipe edit {spec.id} --scene 1 --motion "..."`' in out and "tries again" not in out
    steps = _next(spec.id)
    assert not [s for s in steps if "final video" in s], steps
    assert [s for s in steps if "refused every scene" in s and f"`vidpipe edit {spec.id} --scene 1 --motion" in s]
    assert _invoke("resume", spec.id)[0] == 1  # as it says: resuming alone fails the same way

    code, out = _invoke("edit", spec.id, "--scene", "1", "--motion", "The camera follows the fox")
    assert code == 0, out
    code, out = _invoke("resume", spec.id)
    assert code == 0, out
    assert _next(spec.id) == []


def test_a_budget_that_cannot_fit_names_the_budget_that_does(vp_env, monkeypatch):
    monkeypatch.setenv("VIDPIPE_PRICES", json.dumps({"animatic": {"per_second": 0.25}}))
    monkeypatch.setenv("VIDPIPE_REVIEW", "none")  # priced clips would be under review; this test renders everything
    spec = register("A lamp lights a quiet street", id="dear", scenes=3, clip_duration=1, max_cost_usd=0.5)
    (step,) = _next(spec.id)
    assert "never rendered" not in step and not step.startswith("`vidpipe render")
    assert "raise the budget to at least $0.75 (`vidpipe edit dear --max-cost 0.75`), then `vidpipe render dear`" in step

    code, out = _invoke("render", spec.id)
    assert code == 1 and "raise the budget to at least $0.75 (`vidpipe edit dear --max-cost 0.75`)" in out
    assert spent_usd(vp_env.services(), spec.id) == 0.0

    # Doing what it says is enough.
    assert _invoke("edit", spec.id, "--max-cost", "0.75")[0] == 0
    code, out = _invoke("render", spec.id)
    assert code == 0, out
    assert spent_usd(vp_env.services(), spec.id) == pytest.approx(0.75)
    assert _next(spec.id) == []


def test_a_repair_reads_as_one_and_happens(vp_env):
    spec = register("Rain on a tin roof", id="mended", scenes=2, clip_duration=1)
    assert render(spec.id).success
    clip = Path(vp_env.services().store.path(spec.id, resolve_state(vp_env.services(), spec.id).clips[0].row.path))
    good = clip.read_bytes()
    clip.write_bytes(good[:300])

    (step,) = _next(spec.id)
    assert step.startswith(f"`vidpipe resume {spec.id}` repairs the clip of scene 1 (fetched again from its operation")
    assert ") and makes the final video; projected cost $0.00" in step and "makes repairs" not in step
    assert _invoke("resume", spec.id)[0] == 0
    assert clip.read_bytes() == good and _next(spec.id) == []
