"""Where a project stands: materializations from Dagster, scenes and costs from the database, the
files a person can open, and what to do next. Reads only.

`project_status` returns (README "vidpipe status"; scene numbers are 1-based):

- ``assets``: one row per asset, then the latest run: ``asset``, ``state`` ("materialized",
  "missing", "out of date: <why>", "stale (...)"; for the run its Dagster status or "dead"),
  ``run_id``, ``when``, and ``hint`` on a dead run.
- ``scenes``: ``scene``, ``start_frame`` / ``end_frame`` ("done", "missing", "out of date"),
  ``clip`` (a ledger status, "missing", "out of date" or "damaged"), ``duration_s``, ``cost_usd``,
  ``detail``.
- ``cost``: ``spent_usd``, ``projected_usd`` (what finishing the project would still pay),
  ``budget_usd``, ``narration`` (``on``; with it ``voice``, ``language``, ``spent_usd``, ``projected_usd``).
- ``paths``: this project's own files that exist: ``final_video`` (only the file this project
  record's materialization recorded), ``contact_sheet``, ``storyboard`` (absent when missing or
  not this project's), ``clips``, a list of ``{"scene": n, "path": ...}`` for the current clips,
  and ``characters``, a list of ``{"name": ..., "path": ...}`` for the current reference sheets.
- ``earlier_files``: where registering this project moved the files an earlier project with its
  id had left (None when there were none); they are never listed among ``paths``.
- ``next``: what to do, in order: sentences that name the command in backticks
  (`vidpipe resume ID`, `vidpipe render ID`, ...). Empty when the project is finished.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from sqlalchemy import select

from vidpipe_core.approvals import gate
from vidpipe_core.cost import Estimate, estimate
from vidpipe_core.models import ClipStatus, Keyframe, KeyframeStatus, VideoClip
from vidpipe_core.projects import earlier_files
from vidpipe_core.scenes import frame_label, scene_label, scene_list, scene_number
from vidpipe_core.services import Services
from vidpipe_core.steps import CLIPS, FINAL_VIDEO, KEYFRAMES, STAGES, STORYBOARD
from vidpipe_core.steps.inspect import Finding, find_damage
from vidpipe_core.steps.narration import lines_to_say, voice_of
from vidpipe_core.steps.state import ProjectState, ledger_costs, project_nonce, resolve_state, spent_usd
from vidpipe_core.steps.storyboard import stage_models
from vidpipe_core.storage import Layout
from vidpipe_dagster.healing import FINISHED, PARTITION_TAG, instance_liveness
from vidpipe_dagster.instance import get_instance
from vidpipe_dagster.materializations import (
    belongs_to_project,
    final_video_problem,
    latest_materialization,
    metadata_value,
)
from vidpipe_dagster.resume import ResumePlan, plan_resume

MATERIALIZED, MISSING, OUT_OF_DATE = "materialized", "missing", "out of date"
EARLIER_PROJECT = "stale (an earlier project with this id)"
RUN_ROW = "(latest run)"


def final_video(
    instance: dg.DagsterInstance, services: Services, project_id: str, nonce: str | None, *, digest: bool = False
) -> str | None:
    """The URI of the project's final video, or None: only the file that this project record's
    latest final_video materialization recorded counts, checked by its size (one stat or HEAD
    request, for `list`) or, with ``digest``, by its sha256. Never rendered, made for an earlier
    project with this id, changed since or gone: None. Every command that shows the video's path
    asks here."""
    record = latest_materialization(instance, FINAL_VIDEO, project_id)
    if record is None or not belongs_to_project(record, nonce):
        return None
    if digest:
        if final_video_problem(services, project_id, record) is not None:
            return None
    else:
        size = metadata_value(record, "size_bytes")
        if not isinstance(size, int) or services.store.size(project_id, Layout.FINAL) != size:
            return None
    return services.store.uri(project_id, Layout.FINAL)


@dataclass(frozen=True)
class RunState:
    """The partition's latest run as `status` sees it."""

    run_id: str
    live: bool  # not finished, and its process is alive
    dead: bool  # not finished, and its process is gone


def asset_states(
    instance: dg.DagsterInstance,
    project_id: str,
    nonce: str | None = None,
    stale_after_s: float = 120.0,
    plan: ResumePlan | None = None,
) -> list[dict[str, Any]]:
    """Each asset's latest materialization (trusted only when it carries this project record's
    nonce; "out of date" when ``plan``, what `vidpipe resume` would do, makes it again) and the
    latest run, whose process is checked when it has not ended. Reads only."""
    latest_run = instance.get_run_records(filters=dg.RunsFilter(tags={PARTITION_TAG: project_id}), limit=1)
    reasons = plan.reasons if plan is not None else {}
    rows: list[dict[str, Any]] = []
    for name in STAGES:
        rec = latest_materialization(instance, name, project_id)
        if rec is not None:
            state = MATERIALIZED if belongs_to_project(rec, nonce) else EARLIER_PROJECT
            if state == MATERIALIZED and name in reasons:
                state = f"{OUT_OF_DATE}: {reasons[name]}"
            rows.append(
                {
                    "asset": name,
                    "state": state,
                    "run_id": rec.run_id,
                    "when": _when(rec.timestamp),
                }
            )
        else:
            rows.append({"asset": name, "state": MISSING, "run_id": None, "when": None})
    if latest_run:
        record = latest_run[0]
        run = record.dagster_run
        started = record.start_time or record.create_timestamp.timestamp()  # not started yet: when it was made
        row: dict[str, Any] = {"asset": RUN_ROW, "state": run.status.value.lower(), "run_id": run.run_id}
        row["when"] = _when(started)
        if run.status not in FINISHED:
            liveness = instance_liveness(instance, run, stale_after_s)
            if not liveness.alive:
                row["state"] = "dead"
                row["hint"] = (
                    f"run {run.run_id[:8]} is dead ({liveness.why}); `vidpipe resume {project_id}` "
                    "marks it failed and continues the project without paying again for what is finished"
                )
        rows.append(row)
    return rows


def _when(timestamp: float) -> str:
    """A time for `status` and its --json: ISO 8601 in UTC, with its offset, to the second."""
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


def _made_before(services: Services, project_id: str) -> tuple[set[int], set[int]]:
    """Frame and scene indices that have a finished keyframe or clip of any fingerprint: where the
    current one is not made, the old one is out of date (an edit, a new take, an upstream change)."""
    with services.db.session() as s:
        frames = s.scalars(
            select(Keyframe.frame_index).where(Keyframe.project_id == project_id, Keyframe.status == KeyframeStatus.DONE)
        )
        clips = s.scalars(
            select(VideoClip.scene_index).where(VideoClip.project_id == project_id, VideoClip.status == ClipStatus.DONE)
        )
        return set(frames), set(clips)


def _projection(services: Services, state: ProjectState) -> Estimate:
    """What finishing the project still pays, per stage: the storyboard call while there is none,
    the character sheets and keyframes still to make, the clips still to pay for, the narration
    lines still to say."""
    lines = lines_to_say(services, state.spec.id) if state.has_storyboard else None
    projection = estimate(
        services.settings,
        state.spec,
        stage_models(services, state.spec),
        frames=state.frames_left(),
        clips=state.clips_left_to_pay(),
        sheets=state.sheets_left(),
        lines=lines,
    )
    return projection if not state.has_storyboard else dataclasses.replace(projection, storyboard_usd=0.0)


def _narration_cost(services: Services, state: ProjectState, projection: Estimate) -> dict[str, Any]:
    """The narration stage as `status` shows it: on or off, the voice, spent and still to pay."""
    if not state.spec.narration:
        return {"on": False}
    voice, language = voice_of(state.spec, services)
    spent = ledger_costs(services, state.spec.id).narration
    return {"on": True, "voice": voice, "language": language, "spent_usd": spent, "projected_usd": projection.narration_usd}


def scene_rows(
    services: Services, state: ProjectState, damaged: list[Finding] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    spec, project_id = state.spec, state.spec.id
    damage = {f.index: f for f in (find_damage(services, state) if damaged is None else damaged) if f.stage == CLIPS}
    made_frames, made_clips = _made_before(services, project_id)

    def frame(k: int) -> str:
        f = state.frames[k]
        return "done" if f.done else (OUT_OF_DATE if k in made_frames else MISSING)

    rows = []
    for c in state.clips:
        clip = c.row
        detail = ""
        if clip is not None and clip.status == ClipStatus.REJECTED:
            detail = "safety: " + "; ".join(clip.safety_reasons or [])
            if spec.safety_policy == "skip":
                detail = "skipped in final video - " + detail
        elif clip is not None and clip.status == ClipStatus.FAILED:
            detail = clip.error or ""
        elif clip is not None and clip.status == ClipStatus.SUBMITTED:
            detail = f"operation {clip.operation_name}"
        elif clip is None and c.index in made_clips:
            detail = "its prompt, keyframes or take changed since its clip was made"
        if c.index in damage:
            detail = f"damaged: {damage[c.index].problem}; {damage[c.index].repair}"
        if c.index in damage:
            clip_state = "damaged"
        elif clip is not None:
            clip_state = clip.status.value
        else:
            clip_state = OUT_OF_DATE if c.index in made_clips else MISSING
        rows.append(
            {
                "scene": scene_number(c.index),
                "start_frame": frame(c.index),
                "end_frame": frame(c.index + 1),
                "clip": clip_state,
                "duration_s": clip.duration_s if clip is not None else None,
                "cost_usd": clip.cost_usd if clip is not None else 0.0,
                "detail": detail,
            }
        )
    projection = _projection(services, state)
    cost = {
        "spent_usd": spent_usd(services, project_id),
        "projected_usd": projection.total_usd,
        "budget_usd": spec.max_cost_usd,
        "narration": _narration_cost(services, state, projection),
    }
    return rows, cost


def artifact_paths(
    instance: dg.DagsterInstance, services: Services, state: ProjectState, nonce: str | None, damaged: list[Finding]
) -> dict[str, Any]:
    """Where to look, as URIs of the artifact store: only this project's own files that exist. The
    final video when it is the file this project record's materialization recorded (`final_video`),
    the contact sheet when this record's keyframes made it, storyboard.json when it is the stored
    plan, and the clips and reference sheets of the ledger rows in use."""
    store, project_id = services.store, state.spec.id
    paths: dict[str, Any] = {}
    final = final_video(instance, services, project_id, nonce, digest=True)
    if final is not None:
        paths["final_video"] = final
    frames = latest_materialization(instance, KEYFRAMES, project_id)
    if frames is not None and belongs_to_project(frames, nonce) and store.exists(project_id, Layout.CONTACT_SHEET):
        paths["contact_sheet"] = store.uri(project_id, Layout.CONTACT_SHEET)
    plan_ok = state.has_storyboard and not any(f.stage == STORYBOARD for f in damaged)
    if plan_ok and store.exists(project_id, Layout.STORYBOARD):
        paths["storyboard"] = store.uri(project_id, Layout.STORYBOARD)
    paths["clips"] = [
        {"scene": scene_number(c.index), "path": store.uri(project_id, c.row.path)}
        for c in state.clips
        if c.done and c.row is not None and c.row.path and store.exists(project_id, c.row.path)
    ]
    paths["characters"] = [
        {"name": c.name, "path": store.uri(project_id, c.row.path)}
        for c in state.sheets
        if c.done and c.row is not None and c.row.path and store.exists(project_id, c.row.path)
    ]
    return paths


def _latest_run(assets: list[dict[str, Any]]) -> RunState | None:
    row = next((r for r in assets if r["asset"] == RUN_ROW), None)
    if row is None:
        return None
    dead = row["state"] == "dead"
    finished = row["state"] in {status.value.lower() for status in FINISHED}
    return RunState(row["run_id"], live=not finished and not dead, dead=dead)


def _listed(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _what_resume_makes(state: ProjectState, plan: ResumePlan, refused: list[int], *, final: bool = True) -> str:
    """What `vidpipe resume` would do, for people: "repairs the clip of scene 3 (...) and makes the
    end frame of scene 2, the clip of scene 2 and the final video" ("" when nothing). Scenes the
    safety filter ``refused`` for good are not made, and then neither is the final video (nor
    without ``final``: nothing left to stitch)."""
    n = len(state.scenes)
    made: list[str] = []
    if STORYBOARD in plan.assets and not state.has_storyboard:
        made.append(
            f"the storyboard, its characters' reference sheets, {state.spec.scenes + 1} keyframes, {state.spec.scenes} clips"
        )
    sheets = [repr(c.name) for c in state.sheets_to_make()]
    if sheets:
        made.append(f"the reference sheet{'s' if len(sheets) > 1 else ''} of {', '.join(sheets)}")
    frames = [frame_label(f.index, n) for f in state.frames_to_make()]
    if frames:
        made.append(", ".join(frames) if len(frames) <= 3 else f"{len(frames)} keyframes from {frames[0]} on")
    clips = [c.index for c in state.clips_to_finish() if c.index not in refused]
    if clips:
        made.append(f"the clip{'s' if len(clips) > 1 else ''} of {scene_list(clips)}")
    if FINAL_VIDEO in plan.assets and final and not refused:
        made.append("the final video")
    repairs = [f"{d.what} ({d.repair})" for d in plan.damaged]
    verbs = ([f"repairs {_listed(repairs)}"] if repairs else []) + ([f"makes {_listed(made)}"] if made else [])
    return " and ".join(verbs)


def _refused_steps(project_id: str, state: ProjectState, refused: list[int], retries: int) -> list[str]:
    """For each scene the safety filter refused for good: why `vidpipe resume` fails the same way,
    and what to change."""
    policy = state.spec.safety_policy
    why = (
        "under the `fail` safety policy it is not submitted again"
        if policy == "fail"
        else f"under the `retry` safety policy its {retries} rephrased retries (VIDPIPE_SAFETY_RETRIES) are used up"
    )
    steps = []
    for index in refused:
        edit = f'vidpipe edit {project_id} --scene {scene_number(index)} --motion "..."'
        steps.append(
            f"the safety filter refused {scene_label(index)} and {why}, so `vidpipe resume {project_id}` fails the "
            f"same way until something changes: change the scene's prompt (`{edit}`; a new clip is paid for) "
            f"or leave it out of the video "
            f"(`vidpipe edit {project_id} --safety-policy skip`), then `vidpipe resume {project_id}`"
        )
    return steps


def _budget_step(project_id: str, cost: dict[str, Any], rendered: bool) -> str | None:
    """When what is spent plus what finishing would still pay exceeds the budget, every run stops at
    the budget guard: say by how much, and what to change (None when it fits)."""
    need = cost["spent_usd"] + cost["projected_usd"]
    if need <= cost["budget_usd"] + 1e-9:
        return None
    at_least = math.ceil(need * 100 - 1e-6) / 100
    then = f"vidpipe resume {project_id}" if rendered else f"vidpipe render {project_id}"
    return (
        f"the ${cost['budget_usd']:.2f} budget cannot finish this project (${cost['spent_usd']:.2f} spent, "
        f"${cost['projected_usd']:.2f} still to pay), so a run stops before paying: raise the budget to at least "
        f"${at_least:.2f} (`vidpipe edit {project_id} --max-cost {at_least:.2f}`), then `{then}`; or register a "
        'smaller project: fewer or shorter scenes, or the free animatic provider (`vidpipe new "<prompt>" --scenes N '
        "--clip-duration S`, `--provider animatic`)"
    )


def next_steps(
    project_id: str,
    state: ProjectState,
    assets: list[dict[str, Any]],
    plan: ResumePlan,
    cost: dict[str, Any],
    run: RunState | None,
    retries: int = 2,
) -> list[str]:
    """What to do next, in order, each a sentence with the command in backticks: wait for a live
    run; resume after a dead run or when something is missing or out of date (what it makes and
    what that costs); render a project never rendered; and, where a run would only fail the same
    way, what to change instead: the budget, or a scene the safety filter refused for good (under
    the `fail` policy, or `retry` with its ``retries`` used up). Nothing when the project is
    finished."""
    if run is not None and run.live:
        return [f"run {run.run_id[:8]} is rendering this project; `vidpipe status {project_id}` shows how far it got"]
    steps: list[str] = []
    resume, render = f"vidpipe resume {project_id}", f"vidpipe render {project_id}"
    if run is not None and run.dead:
        steps += [r["hint"] for r in assets if r.get("hint")]
    money = (
        f"projected cost ${cost['projected_usd']:.2f} (spent ${cost['spent_usd']:.2f} of the ${cost['budget_usd']:.2f} budget)"
    )
    rendered = any(r["state"] not in (MISSING, EARLIER_PROJECT) for r in assets if r["asset"] != RUN_ROW)
    rendered = rendered or (run is not None and run.dead)
    refused = [c.index for c in state.clips if c.refused(state.spec.safety_policy, retries)]
    # Under `skip` with every scene refused there is nothing to stitch: resume would fail the same way.
    all_skipped = bool(state.clips) and all(c.skipped(state.spec.safety_policy) for c in state.clips)
    budget = _budget_step(project_id, cost, rendered) if plan.assets else None
    if budget is not None:
        steps.append(budget)
    elif plan.assets and not rendered:
        steps.append(f"never rendered: `{render}` makes it; {money}")
    elif plan.assets:
        made = _what_resume_makes(state, plan, refused, final=not all_skipped)
        if made:
            unfinished = " (not the final video: see below)" if refused or all_skipped else ""
            steps.append(f"`{resume}` {made}{unfinished}; {money}")
        if plan.repair_cost_usd:
            steps.append(
                f"damaged files without a free copy fail their stage; `{resume} --repair` pays up to "
                f"${plan.repair_cost_usd:.2f} to regenerate them"
            )
    steps += _refused_steps(project_id, state, refused, retries)
    if all_skipped and plan.assets:
        steps.append(
            f"the safety filter refused every scene and the `skip` safety policy leaves them all out, so there is "
            f"nothing to stitch and `{resume}` fails the same way: change the scenes' prompts "
            f'(`vidpipe edit {project_id} --scene 1 --motion "..."`, and so on; new clips are paid for), then `{resume}`'
        )
    return steps


def project_status(services: Services, project_id: str) -> dict[str, Any]:
    state = resolve_state(services, project_id)
    damaged = find_damage(services, state)
    instance = get_instance(services.settings)
    plan = plan_resume(instance, services, project_id, state=state, damaged=damaged)
    scenes, cost = scene_rows(services, state, damaged)
    nonce = project_nonce(services, project_id)
    assets = asset_states(instance, project_id, nonce, services.settings.heartbeat_stale_s, plan=plan)
    run = _latest_run(assets)
    review = gate(services, state)
    steps = next_steps(project_id, state, assets, plan, cost, run, services.settings.safety_retries)
    return {
        "review": review.document(),
        "assets": assets,
        "scenes": scenes,
        "cost": cost,
        "paths": artifact_paths(instance, services, state, nonce, damaged),
        "earlier_files": earlier_files(services, project_id),
        "next": ([review.message] if review.closed and not (run is not None and run.live) else []) + steps,
    }
