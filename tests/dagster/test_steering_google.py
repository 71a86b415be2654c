"""`vidpipe retake` with the google provider: the real google-genai SDK against the wire emulator.
The cost and the cascade are said first, `--dry-run` sends no request, and the retake sends the
same prompt again (with a seed), gets a new image, and re-makes exactly the frames and clips it
announced, no more requests and no other cost than it said."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from vidpipe_core import media
from vidpipe_core.steps.state import ledger_costs, resolve_state
from vidpipe_core.storage import Layout
from vidpipe_dagster.cli import app
from vidpipe_dagster.runner import register, render


def _rows(services, pid: str) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    state = resolve_state(services, pid)
    return [f.row.id for f in state.frames], [c.row.id for c in state.clips]


def _remade(before, after) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    """Frame numbers and scene numbers (from 1) whose frame or clip is a new ledger row."""
    frames = [k + 1 for k, (a, b) in enumerate(zip(before[0], after[0], strict=True)) if a != b]
    return frames, [i + 1 for i, (a, b) in enumerate(zip(before[1], after[1], strict=True)) if a != b]


def _stated_cost(output: str) -> float:
    match = re.search(r"it costs \$(\d+\.\d\d)", " ".join(output.split()))
    assert match, output
    return float(match.group(1))


def _requests(emu) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return dict(emu.stats()["requests"])


def test_google_retake_of_a_frame_spends_only_what_it_announced(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A red kite over green hills at noon", id="retake-google", scenes=3, clip_duration=4)
    assert render(spec.id).success
    services = vp_env.services()
    before, spent = _rows(services, spec.id), ledger_costs(services, spec.id).total
    old = resolve_state(services, spec.id).frames[2]
    [original] = [r for r in emu.records("image") if r.prompt and old.prompt.strip() in r.prompt]
    counts = _requests(emu)

    dry = CliRunner().invoke(app, ["retake", spec.id, "--frame", "3", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    said = " ".join(dry.output.split())
    assert "re-makes frames 3, 4 and the clips of scenes 2, 3 (continuity)" in said
    assert _stated_cost(dry.output) == round(2 * 4 * 0.40 + 2 * ledger_costs(services, spec.id).keyframes / 4, 2)
    assert _requests(emu) == counts and _rows(services, spec.id) == before  # nothing sent, nothing changed

    done = CliRunner().invoke(app, ["retake", spec.id, "--frame", "3", "--yes"])
    assert done.exit_code == 0, done.output
    now = _requests(emu)
    assert now["image"] - counts["image"] == 2 and now["video_submit"] - counts["video_submit"] == 2
    assert now["text"] == counts["text"]  # no new storyboard
    retaken = [r for r in emu.records("image") if r.prompt and old.prompt.strip() in r.prompt][-1]
    assert retaken.prompt == original.prompt and retaken.image_sha256 == original.image_sha256  # same prompt, same inputs
    assert "seed" not in original.config and retaken.config.get("seed") is not None
    new = resolve_state(services, spec.id).frames[2]
    assert new.prompt == old.prompt and new.row.sha256 != old.row.sha256  # a new image
    assert _remade(before, _rows(services, spec.id)) == ([3, 4], [2, 3])
    assert round(ledger_costs(services, spec.id).total - spent, 2) == _stated_cost(done.output)
    info = media.probe(services.store.path(spec.id, Layout.FINAL))
    assert info.video_codec == "h264" and abs(info.duration_s - 12.0) <= 0.25


def test_google_retake_of_a_character_sheet_redraws_every_frame_from_its_first(gp):
    vp_env, g = gp
    emu = g.emulator
    spec = register("A fox and an owl in a snowy forest at dawn", id="resheet-google", scenes=3, clip_duration=4)
    assert render(spec.id).success
    services = vp_env.services()
    state = resolve_state(services, spec.id)
    sheet = state.sheets[1]  # the emulator's storyboard shows the second character from scene 2 on
    first = min(f.index for f in state.frames if sheet.name in f.characters)
    before, counts = _rows(services, spec.id), _requests(emu)
    [original] = [r for r in emu.records("image") if r.prompt and f"Character reference sheet of {sheet.name}:" in r.prompt]

    done = CliRunner().invoke(app, ["retake", spec.id, "--character", sheet.name, "--yes"])
    assert done.exit_code == 0, done.output
    frames = list(range(first + 1, len(state.frames) + 1))
    clips = list(range(max(1, first), len(state.scenes) + 1))
    said = " ".join(done.output.split())
    assert f"re-makes frames {', '.join(map(str, frames))} and the clips of scenes {', '.join(map(str, clips))}" in said
    now = _requests(emu)
    assert now["image"] - counts["image"] == 1 + len(frames)
    assert now["video_submit"] - counts["video_submit"] == len(clips)
    retaken = [r for r in emu.records("image") if r.prompt and f"Character reference sheet of {sheet.name}:" in r.prompt][-1]
    assert retaken.prompt == original.prompt and retaken.config.get("seed") is not None
    after = resolve_state(services, spec.id)
    assert after.sheet(sheet.name).row.sha256 != sheet.row.sha256
    assert _remade(before, _rows(services, spec.id)) == (frames, clips)
