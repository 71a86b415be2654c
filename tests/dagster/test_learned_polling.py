"""The clips step polls Veo on the schedule its ledger teaches: two 3-scene google renders on the
wire emulator (3 s operations), the second learning from the first's clips."""

from __future__ import annotations

import statistics

import dagster as dg
from sqlalchemy import select

from vidpipe_core.models import ClipStatus, VideoClip
from vidpipe_dagster.runner import register, render


def _polls_per_clip(vp_env, emu, project_id: str) -> list[int]:  # type: ignore[no-untyped-def]
    with vp_env.services().db.session() as s:
        rows = s.scalars(select(VideoClip).where(VideoClip.project_id == project_id)).all()
    assert len(rows) == 3 and all(r.status == ClipStatus.DONE for r in rows)
    polls = {t["name"]: t["polls"] for t in emu.operation_timings()}
    return [polls[r.operation_name] for r in rows]


def _log_lines(vp_env, run_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.user_message for r in vp_env.instance().all_logs(run_id) if r.user_message]


def test_second_render_polls_on_the_schedule_learned_from_the_first(gp):  # type: ignore[no-untyped-def]
    vp_env, g = gp
    emu = g.emulator
    emu.configure(video_latency_s=3.0)

    first = register("A paper boat drifts down a gutter", id="boat-one", scenes=3, clip_duration=4)
    result = render(first.id)
    assert result.success
    fixed = _polls_per_clip(vp_env, emu, first.id)
    # Nothing to learn from yet: the backoff (0.05 s doubling to 0.2 s) polls a 3 s operation ~16
    # times on an idle machine (6-8 at a load of 6 on 2 cores, where each poll itself takes ~0.3 s).
    assert statistics.median(fixed) >= 5, fixed
    assert not [line for line in _log_lines(vp_env, result.run_id) if "first poll in" in line]

    second = register("A paper plane glides over a schoolyard", id="boat-two", scenes=3, clip_duration=4)
    result = render(second.id)
    assert result.success
    learned = _polls_per_clip(vp_env, emu, second.id)
    assert statistics.median(learned) <= 2, learned
    # The long first wait reported progress without polling, in the run's Dagster log.
    lines = _log_lines(vp_env, result.run_id)
    assert [line for line in lines if "first poll in" in line and "learned from 3 earlier clips" in line], lines
    assert all(t["lag_s"] is not None for t in emu.operation_timings())
    assert dg.DagsterRunStatus.SUCCESS == vp_env.instance().get_run_by_id(result.run_id).status
