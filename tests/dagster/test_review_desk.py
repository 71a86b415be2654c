"""The UI as a review desk (issue 23 part 6): the keyframes partition page of a project under review
carries each scene's prompts and characters, the character sheets, the projected clip cost and how
to approve (read back from the Dagster instance), and a project not under review carries none of
it (its clips follow in the same run: nobody decides on them there); the new_project, edit_scene and retake Launchpads open with a
filled, valid example config, and the jobs still refuse a bad one with a clear message."""

from __future__ import annotations

import re

import dagster as dg
import pytest
import yaml

from tests.helpers import latest_metadata
from vidpipe_core.approvals import record_approval
from vidpipe_core.steps.edit import edit_scene
from vidpipe_core.steps.state import resolve_state
from vidpipe_dagster.desk import APPROVE_JOB, APPROVE_OP
from vidpipe_dagster.runner import failure_message, register, render

UP_TO_KEYFRAMES = ["storyboard", "characters", "keyframes"]
DESK = {"scenes", "character_sheets", "projected_clip_cost_usd", "approve"}


def _defs():  # type: ignore[no-untyped-def]
    from vidpipe_dagster.definitions import defs

    return defs()


def _rows(markdown: str) -> list[list[str]]:
    """The body rows of a markdown table, cell by cell."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def test_the_keyframes_page_is_a_review_desk(gp):
    vp_env, g = gp
    spec = register("A red kite over green hills at noon", id="desk-google", scenes=3, clip_duration=4, review="keyframes")
    assert render(spec.id, assets=UP_TO_KEYFRAMES).success
    assert g.emulator.stats()["requests"]["video_submit"] == 0
    meta = latest_metadata(vp_env.instance(), "keyframes", spec.id)
    state = resolve_state(vp_env.services(), spec.id)

    # One row per scene, numbered from 1, with its frames and every field a reviewer may edit.
    rows = _rows(meta["scenes"])
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert [r[1] for r in rows] == ["1 → 2", "2 → 3", "3 → 4"]
    header = meta["scenes"].splitlines()[0]
    assert all(h in header for h in ("Description", "Start frame", "End frame", "Motion", "Characters"))
    for row, scene in zip(rows, state.scenes, strict=True):
        assert row[2] == " ".join(scene.description.replace("|", "\\|").split())
        assert row[4] == " ".join(scene.end_frame_prompt.replace("|", "\\|").split())
        assert row[6] == (", ".join(scene.characters) or "none")
    assert rows[1][3] == "(scene 1's end frame)"

    sheets = meta["character_sheets"]
    assert state.sheets and all(f"**{s.name}**" in sheets for s in state.sheets)
    assert f"/assets/characters?view=partitions&partition={spec.id}" in sheets
    assert "data:image" not in sheets  # the images are on the characters page, not recorded twice

    assert meta["projected_clip_cost_usd"] == pytest.approx(3 * 4 * 0.40)
    approve = meta["approve"]
    assert "$4.80 (3 clips)" in approve and f"`{APPROVE_JOB}`" in approve and f"vidpipe approve {spec.id}" in approve
    [block] = re.findall(r"```yaml\n(.*?)```", approve, flags=re.S)
    assert yaml.safe_load(block) == {"ops": {APPROVE_OP: {"config": {"project_id": spec.id}}}}
    assert "max_cost_usd: 4.80" in block  # offered, commented out

    # The desk shows what an edit changed the next time the keyframes are made.
    edit_scene(vp_env.services(), spec.id, 1, motion="The kite loops | twice")
    assert render(spec.id, assets=UP_TO_KEYFRAMES).success
    again = _rows(latest_metadata(vp_env.instance(), "keyframes", spec.id)["scenes"])
    assert again[1][5] == "The kite loops \\| twice"


def test_a_project_whose_clips_are_made_has_nothing_to_approve(vp_env):
    spec = register("A paper boat on a canal at dawn", id="desk-done", scenes=2, clip_duration=1, review="keyframes")
    assert render(spec.id).success  # stops before the clips: awaiting approval
    assert record_approval(vp_env.services(), spec.id).recorded
    assert render(spec.id).success
    assert render(spec.id, assets=["keyframes"]).success
    meta = latest_metadata(vp_env.instance(), "keyframes", spec.id)
    assert meta["projected_clip_cost_usd"] == 0.0 and "nothing to approve" in meta["approve"]
    assert "```yaml" not in meta["approve"]


def test_a_project_not_under_review_has_no_desk(vp_env):
    spec = register("A paper boat on a canal at dawn", id="desk-none", scenes=2, clip_duration=1, review="none")
    assert render(spec.id).success
    meta = latest_metadata(vp_env.instance(), "keyframes", spec.id)
    assert meta["frames"] == 3 and not DESK & set(meta)


@pytest.mark.parametrize("job_name", ["new_project", "edit_scene", "retake"])
def test_each_launchpad_opens_with_a_valid_example(vp_env, job_name):
    job = _defs().resolve_job_def(job_name)
    example = job.run_config
    assert example and example["ops"], f"{job_name} has no example config"
    dg.validate_run_config(job, example)  # raises when the example is not valid config
    [(op, body)] = example["ops"].items()
    # A bad config is still refused, naming the field.
    with pytest.raises(dg.DagsterInvalidConfigError, match="scene|prompt|project"):
        dg.validate_run_config(job, {"ops": {op: {"config": {k: v for k, v in body["config"].items() if k == "motion"}}}})


def test_the_examples_run_as_they_are(vp_env):
    """new_project's example registers a free animatic project; edit_scene's and retake's name an
    example id and say so in one line (the retake example is a dry run: it would spend nothing)."""
    instance = vp_env.instance()
    new = _defs().resolve_job_def("new_project").execute_in_process(instance=instance, raise_on_error=False)
    assert new.success
    for name in ("edit_scene", "retake"):
        result = _defs().resolve_job_def(name).execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        assert "project 'my-project' does not exist" in failure_message(result)
    assert _defs().resolve_job_def("retake").run_config["ops"]["take_again"]["config"]["dry_run"] is True
