"""One keyframes materialization resolves the project once, reads no frame it has just made and
each reused frame once, builds the contact sheet from those bytes and checks them without
decoding them again."""

from __future__ import annotations

from pathlib import Path

from tests.core.test_keyframes_step import count_keyframe_io
from tests.helpers import check_results, latest_metadata
from vidpipe_core import media
from vidpipe_core.scenes import frame_tag
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.storage import Layout
from vidpipe_dagster.runner import failure_message, register, render

SCENES = 3
METADATA = {
    "frames",
    "generated",
    "reused",
    "repaired",
    "provider",
    "model",
    "cost_usd",
    "projected_cost_usd",
    "contact_sheet",
    "contact_sheet_image",
    "project_nonce",
}  # and the review desk (vidpipe_dagster/desk.py) for a project under review: not this one (test_review_desk)


def _keyframes(project_id: str) -> str:
    result = render(project_id, assets=["keyframes"])
    assert result.success, failure_message(result)
    return result.run_id


def test_a_keyframes_materialization_reads_and_resolves_once(vp_env, monkeypatch):
    monkeypatch.setenv("VIDPIPE_UI_PREVIEWS", "true")  # the contact sheet's image is made from the bytes in hand too
    spec = register(
        "A paper boat drifts down a gutter. It reaches the river. A duck inspects it.",
        id="boat",
        scenes=SCENES,
        clip_duration=1,
        provider="animatic",
    )
    assert render(spec.id, assets=["storyboard", "characters"]).success  # the sheets the frames are drawn from
    services, instance = vp_env.services(), vp_env.instance()
    counts = count_keyframe_io(monkeypatch)

    run_id = _keyframes(spec.id)
    assert (counts.resolves, counts.reads) == (1, 0)  # the frames it made are not read back
    frames = resolve_state(services, spec.id).frames
    files = [Path(services.store.path(spec.id, f.row.path)).read_bytes() for f in frames]
    sheet = Path(services.store.path(spec.id, Layout.CONTACT_SHEET)).read_bytes()
    assert sheet == media.contact_sheet(files, labels=[frame_tag(k, SCENES) for k in range(SCENES + 1)])
    metadata = latest_metadata(instance, "keyframes", spec.id)
    assert set(metadata) == METADATA and (metadata["generated"], metadata["reused"]) == (SCENES + 1, 0)
    assert check_results(instance, run_id) == {"keyframes_decode": True}

    counts.resolves = counts.reads = counts.decodes = 0
    run_id = _keyframes(spec.id)
    # Each reused frame read once (checked against the ledger) and decoded once (for the sheet).
    assert (counts.resolves, counts.reads, counts.decodes) == (1, SCENES + 1, SCENES + 1)
    assert Path(services.store.path(spec.id, Layout.CONTACT_SHEET)).read_bytes() == sheet
    assert check_results(instance, run_id) == {"keyframes_decode": True}
