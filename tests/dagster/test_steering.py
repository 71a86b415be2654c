"""Steering before the clips are paid (issue 23 part 4): `vidpipe edit` of every field a reviewer
may change and the `edit_scene` job (one core function, the same results and messages), and
`vidpipe retake --frame K / --character NAME` and the `retake` job (cost and continuity cascade
said first, `--dry-run` spends and changes nothing, then exactly that cascade is made again).
Animatic projects here; the google provider against the emulator in test_steering_google.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.helpers import latest_metadata
from vidpipe_core.projects import load_spec
from vidpipe_core.scene_fields import SCENE_FIELDS
from vidpipe_core.steps.state import resolve_state, stored_document
from vidpipe_dagster.cli import app
from vidpipe_dagster.create import PROJECT_TAG
from vidpipe_dagster.runner import failure_message, register, render

PROMPT = "A fox walks through a snowy forest at dawn. It meets an owl on a branch. They watch the sun rise over the hills."


def _defs():  # type: ignore[no-untyped-def]
    from vidpipe_dagster.definitions import defs

    return defs()


def _job(vp_env, name: str, op: str, **config):  # type: ignore[no-untyped-def]
    job = _defs().resolve_job_def(name)
    return job.execute_in_process(run_config={"ops": {op: {"config": config}}}, instance=vp_env.instance(), raise_on_error=False)


def _output_metadata(vp_env, result) -> dict:  # type: ignore[no-untyped-def]
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def _rendered(pid: str, scenes: int = 3) -> str:
    spec = register(PROMPT, id=pid, scenes=scenes, clip_duration=1)
    assert render(spec.id).success
    return spec.id


def _made(vp_env, pid: str) -> tuple[int, int]:
    """Frames and clips the last render made (not reused)."""
    instance = vp_env.instance()
    clips = latest_metadata(instance, "clips", pid)  # lists only the counts that are not 0
    return latest_metadata(instance, "keyframes", pid)["generated"], clips.get("generated", 0)


def _cast(vp_env, pid: str) -> list[str]:
    return [c["name"] for c in stored_document(vp_env.services(), pid)["storyboard"]["style_guide"]["characters"]]


# edit ----------------------------------------------------------------------------------------------

# Scene 2 of 3 (frames 1..4): what an edit of each field leaves to make again, as the CLI says it.
EXPECTED = {
    "description": ("frames to regenerate: none", "clips to regenerate: the clip of scene 2", 0, 1),
    "motion": ("frames to regenerate: none", "clips to regenerate: the clip of scene 2", 0, 1),
    "end_frame": (
        "frames to regenerate: the frame between scenes 2 and 3, the end frame of scene 3",
        "clips to regenerate: the clips of scenes 2, 3",
        2,
        2,
    ),
}


@pytest.mark.parametrize("option", sorted(EXPECTED))
def test_an_edit_of_each_prompt_makes_again_exactly_what_it_said(vp_env, option):
    pid = _rendered(f"edit-{option.replace('_', '-')}")
    flag = f"--{option.replace('_', '-')}"
    result = CliRunner().invoke(app, ["edit", pid, "--scene", "2", flag, "A lantern glows on the snow"])
    assert result.exit_code == 0, result.output
    frames, clips, n_frames, n_clips = EXPECTED[option]
    line = " ".join(result.output.split())
    assert f"scene 2 updated; {frames}; {clips}." in line
    assert render(pid).success
    assert _made(vp_env, pid) == (n_frames, n_clips)


def test_an_edit_of_the_characters_redraws_the_frames_that_show_them(vp_env):
    pid = _rendered("edit-cast")
    cast = _cast(vp_env, pid)
    before = resolve_state(vp_env.services(), pid)
    assert cast, "the animatic names the fox and the owl"
    new = [n for n in cast if n not in before.scenes[1].characters][:1]
    result = CliRunner().invoke(app, ["edit", pid, "--scene", "2", "--characters", ", ".join(new)])
    assert result.exit_code == 0, result.output
    # Frame 2 (scene 2's start) shows scene 2's characters: it, and through continuity every later
    # frame and clip, no longer match what is stored; frame 1 and nothing else stays.
    line = " ".join(result.output.split())
    assert (
        "frames to regenerate: the frame between scenes 1 and 2, the frame between scenes 2 and 3, the end frame of "
        "scene 3; clips to regenerate: the clips of scenes 1, 2, 3." in line
    )
    assert resolve_state(vp_env.services(), pid).scenes[1].characters == new
    assert render(pid).success
    after = resolve_state(vp_env.services(), pid)
    assert after.frames[0].row.id == before.frames[0].row.id  # frame 1 reused
    assert after.frames[1].row.sha256 != before.frames[1].row.sha256  # frame 2 drawn with the new cast
    assert after.clips[0].row.sha256 != before.clips[0].row.sha256
    # The animatic draws a frame from its own prompt: frame 3 is rendered again (its fingerprint
    # names frame 2) with the same bytes, so the frames and clips after it are reused.
    assert _made(vp_env, pid) == (2, 2)


def test_an_unchanged_field_changes_nothing(vp_env):
    pid = _rendered("edit-same")
    scene = resolve_state(vp_env.services(), pid).scenes[1]
    for f in SCENE_FIELDS:
        value = getattr(scene, f.name)
        value = ", ".join(value) if isinstance(value, list) else value
        if not value:
            continue  # an empty text is refused; an empty cast is tested above
        result = CliRunner().invoke(app, ["edit", pid, "--scene", "2", f.flag, value])
        assert result.exit_code == 0, result.output
        assert "frames to regenerate: none; clips to regenerate: none" in " ".join(result.output.split()), f.option
    assert render(pid).success
    assert _made(vp_env, pid) == (0, 0)


def test_the_cli_and_the_edit_scene_job_give_the_same_results_and_messages(vp_env):
    a, b = _rendered("edit-by-cli"), _rendered("edit-by-job")
    cli = CliRunner().invoke(app, ["edit", a, "--scene", "3", "--end-frame", "The owl flies off", "--motion", "Tilt up"])
    assert cli.exit_code == 0, cli.output
    job = _job(vp_env, "edit_scene", "change_scene", project=b, scene=3, end_frame="The owl flies off", motion="Tilt up")
    assert job.success
    summary = _output_metadata(vp_env, job)["summary"]
    assert summary.startswith("scene 3 updated; frames to regenerate: the end frame of scene 3;")
    assert summary in " ".join(cli.output.split())
    assert [s.model_dump() for s in resolve_state(vp_env.services(), a).scenes] == [
        s.model_dump() for s in resolve_state(vp_env.services(), b).scenes
    ]
    assert vp_env.instance().get_run_by_id(job.run_id).tags[PROJECT_TAG] == b

    cast = _cast(vp_env, b)
    bad = [
        (["--scene", "4", "--motion", "x"], {"scene": 4, "motion": "x"}, "scene: 4 is out of range (allowed: 1-3)"),
        (["--scene", "1", "--motion", " "], {"scene": 1, "motion": " "}, "motion: must not be empty"),
        (
            ["--scene", "1", "--characters", "Nobody"],
            {"scene": 1, "characters": "Nobody"},
            f"characters: 'Nobody' is not among the style guide's characters (allowed: {', '.join(map(repr, cast))})",
        ),
    ]
    before = stored_document(vp_env.services(), b)
    for argv, config, message in bad:
        out = CliRunner().invoke(app, ["edit", b, *argv])
        assert out.exit_code == 2 and message in " ".join(out.output.split()), (out.output, message)
        run = _job(vp_env, "edit_scene", "change_scene", project=b, **config)
        assert not run.success and message in failure_message(run), failure_message(run)
    assert stored_document(vp_env.services(), b) == before  # nothing written


# retake ----------------------------------------------------------------------------------------------


def _rows(vp_env, pid: str) -> tuple[list[int], list[int]]:
    """The ledger row ids of the project's current frames and clips."""
    state = resolve_state(vp_env.services(), pid)
    return [f.row.id for f in state.frames], [c.row.id for c in state.clips]


def _remade(before: tuple[list[int], list[int]], after: tuple[list[int], list[int]]) -> tuple[list[int], list[int]]:
    """Frame numbers and scene numbers (from 1) whose frame or clip is a new ledger row."""
    return (
        [k + 1 for k, (a, b) in enumerate(zip(*(before[0], after[0]), strict=True)) if a != b],
        [i + 1 for i, (a, b) in enumerate(zip(*(before[1], after[1]), strict=True)) if a != b],
    )


def test_retake_of_a_frame_says_its_cascade_first_and_makes_exactly_it(vp_env):
    pid = _rendered("retake-frame")
    services = vp_env.services()
    before, runs, spec = _rows(vp_env, pid), len(vp_env.instance().get_runs()), load_spec(services, pid)
    old = resolve_state(services, pid).frames[2]

    dry = CliRunner().invoke(app, ["retake", pid, "--frame", "3", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    said = " ".join(dry.output.split())
    assert "a new take of frame 3 (the frame between scenes 2 and 3) re-makes frames 3, 4 and the clips of scenes 2, 3" in said
    assert "costs $0.00" in said and "nothing was spent or changed" in said
    assert load_spec(services, pid) == spec and len(vp_env.instance().get_runs()) == runs and _rows(vp_env, pid) == before

    # Without --yes and without a terminal: refused, nothing changed.
    refused = CliRunner().invoke(app, ["retake", pid, "--frame", "3"])
    assert refused.exit_code == 2 and "pass --yes" in refused.output
    assert load_spec(services, pid) == spec

    done = CliRunner().invoke(app, ["retake", pid, "--frame", "3", "--yes"])
    assert done.exit_code == 0, done.output
    assert _remade(before, _rows(vp_env, pid)) == ([3, 4], [2, 3])  # exactly what it said
    new = resolve_state(services, pid).frames[2]
    assert new.prompt == old.prompt and new.row.sha256 != old.row.sha256  # a new image from the same prompt


def test_retake_of_a_character_sheet_makes_exactly_the_cascade_it_said(vp_env):
    pid = _rendered("retake-sheet")
    services = vp_env.services()
    state = resolve_state(services, pid)
    name = state.sheets[-1].name
    before, sheet_sha = _rows(vp_env, pid), state.sheet(name).row.sha256

    result = CliRunner().invoke(app, ["retake", pid, "--character", name, "--yes"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    head = f"a new take of the reference sheet of {name!r} re-makes "
    assert head in said
    announced = said.split(head, 1)[1].split(" (continuity)")[0]
    after = resolve_state(services, pid)
    assert after.sheet(name).row.sha256 != sheet_sha and after.sheet(name).prompt == state.sheet(name).prompt
    assert latest_metadata(vp_env.instance(), "characters", pid)["generated"] == 1
    frames, clips = _remade(before, _rows(vp_env, pid))
    assert frames and announced.startswith(f"frame{'s' if len(frames) > 1 else ''} {', '.join(map(str, frames))} and ")
    assert announced.endswith(f"{', '.join(map(str, clips))}")


def test_retake_refuses_what_it_cannot_take_again_before_anything_happens(vp_env):
    pid = _rendered("retake-bad", scenes=2)
    spec, runs = load_spec(vp_env.services(), pid), len(vp_env.instance().get_runs())
    cast = ", ".join(repr(s.name) for s in resolve_state(vp_env.services(), pid).sheets)
    cases = [
        (["--frame", "4"], "frame: 4 is out of range (frame 1 starts scene 1, frame 3 ends scene 2) (allowed: 1-3)"),
        (["--frame", "0"], "frames are numbered from 1"),
        (["--character", "Nobody"], f"character: 'Nobody' has no reference sheet in this project (allowed: {cast})"),
        ([], "give exactly one of --frame K"),
        (["--frame", "1", "--character", "x"], "give exactly one of --frame K"),
    ]
    for argv, message in cases:
        result = CliRunner().invoke(app, ["retake", pid, *argv, "--yes"])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (argv, result.output)
    assert load_spec(vp_env.services(), pid) == spec and len(vp_env.instance().get_runs()) == runs


def test_the_retake_job_states_the_cost_and_cascade_and_its_sensor_renders(vp_env):
    import dagster as dg

    pid = _rendered("retake-job")
    spec = load_spec(vp_env.services(), pid)
    dry = _job(vp_env, "retake", "take_again", project=pid, frame=2, dry_run=True)
    assert dry.success
    meta = _output_metadata(vp_env, dry)
    # The animatic draws frame 3 again on the new frame 2 with the same bytes: the cascade stops there.
    assert meta["cascade"]["frames"] == [2, 3] and meta["cascade"]["clip_scenes"] == [1, 2]
    assert "re-makes frames 2, 3 and the clips of scenes 1, 2" in meta["summary"]
    assert load_spec(vp_env.services(), pid) == spec
    assert PROJECT_TAG not in vp_env.instance().get_run_by_id(dry.run_id).tags

    real = _job(vp_env, "retake", "take_again", project=pid, frame=2)
    assert real.success
    assert load_spec(vp_env.services(), pid).frame_take(1)
    instance = vp_env.instance()
    run = instance.get_run_by_id(real.run_id)
    [success] = instance.all_logs(real.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    sensor = _defs().resolve_sensor_def("render_retake")
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=success.dagster_event, dagster_instance=instance, dagster_run=run
    )
    request = sensor(context)
    assert isinstance(request, dg.RunRequest) and request.partition_key == pid

    bad = _job(vp_env, "retake", "take_again", project=pid, frame=9)
    assert not bad.success and "frame: 9 is out of range" in failure_message(bad)


def test_projects_without_a_retake_keep_their_fingerprints():
    """A take enters a frame's or sheet's fingerprint only when there is one: every ledger written
    before retakes existed stays current (digests computed by the code before this change)."""
    from vidpipe_core.fingerprint import keyframe_fingerprint, sheet_fingerprint

    sheet = {
        "provider": "google",
        "model": "gemini-2.5-flash-image",
        "name": "Mara",
        "appearance": "a tall woman in a red coat",
        "prompt": "Character reference sheet of Mara",
        "style": {"visual_style": "watercolour", "color_palette": ["red"]},
        "aspect_ratio": "16:9",
        "render_size": None,
    }
    before = "b9373580d11911794c535cf5e3fa85418e89c4277a1858e22f8a2b8710a185ed"
    assert sheet_fingerprint(**sheet) == sheet_fingerprint(**sheet, take="") == before
    assert sheet_fingerprint(**sheet, take="abc") not in (before, sheet_fingerprint(**sheet, take="abd"))
    frame = {
        "provider": "google",
        "model": "gemini-2.5-flash-image",
        "prompt": "A fox at the lake shore",
        "aspect_ratio": "16:9",
        "reference_sha256": "ab" * 32,
        "render_size": None,
    }
    old = "2140d9a75ad1b0b7f700b590b147136fb0c0d6bc5823c04f15d96b40cf54e964"  # as in test_characters.py
    assert keyframe_fingerprint(**frame, take="") == old and keyframe_fingerprint(**frame, take="abc") != old


def test_retake_frames_only_leaves_the_clips_to_resume(vp_env):
    pid = _rendered("retake-frames-only")
    before = _rows(vp_env, pid)
    result = CliRunner().invoke(app, ["retake", pid, "--frame", "2", "--frames-only", "--yes"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == pid and "`vidpipe resume retake-frames-only` makes the clips" in result.output
    state = resolve_state(vp_env.services(), pid)
    assert [f.done for f in state.frames] == [True] * 4 and state.frames[1].row.id != before[0][1]
    assert [c.index for c in state.clips_to_pay()] == [0, 1]  # the cascade's clips wait, nothing else
    assert CliRunner().invoke(app, ["resume", pid]).exit_code == 0
    assert _remade(before, _rows(vp_env, pid)) == ([2, 3], [1, 2])
