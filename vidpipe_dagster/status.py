"""Where a project stands: materializations from Dagster, scenes and costs from the database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from vidpipe_core.cost import image_cost, video_cost
from vidpipe_core.models import ClipStatus
from vidpipe_core.providers import clip_provider, keyframe_provider
from vidpipe_core.services import Services
from vidpipe_core.steps import STAGES
from vidpipe_core.steps.inspect import find_damage
from vidpipe_core.steps.keyframes import spent_usd
from vidpipe_core.steps.state import project_nonce, resolve_state
from vidpipe_dagster.instance import get_instance


def latest_materialization(instance: dg.DagsterInstance, name: str, project_id: str) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[project_id]), limit=1
    ).records
    return records[0] if records else None


def metadata_value(record: dg.EventLogRecord, key: str) -> object:
    materialization = record.asset_materialization
    entry = materialization.metadata.get(key) if materialization else None
    return entry.value if entry is not None else None


def belongs_to_project(record: dg.EventLogRecord, nonce: str | None) -> bool:
    """A materialization is trusted only for the project record that made it (its nonce); projects
    registered before nonces existed (None) trust every materialization of their partition."""
    from vidpipe_dagster.assets import NONCE_KEY

    return nonce is None or metadata_value(record, NONCE_KEY) == nonce


def asset_states(
    instance: dg.DagsterInstance, project_id: str, nonce: str | None = None, stale_after_s: float = 120.0
) -> list[dict[str, Any]]:
    """Each asset's latest materialization (trusted only when it carries this project record's
    nonce) and the latest run, whose process is checked when it has not ended. Reads only."""
    from vidpipe_dagster.healing import FINISHED, instance_liveness

    latest_run = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": project_id}), limit=1)
    rows: list[dict[str, Any]] = []
    for name in STAGES:
        rec = latest_materialization(instance, name, project_id)
        if rec is not None:
            ours = belongs_to_project(rec, nonce)
            rows.append(
                {
                    "asset": name,
                    "state": "materialized" if ours else "stale (an earlier project with this id)",
                    "run_id": rec.run_id[:8],
                    "when": datetime.fromtimestamp(rec.timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"),
                }
            )
        else:
            rows.append({"asset": name, "state": "missing", "run_id": None, "when": None})
    if latest_run:
        run = latest_run[0]
        row: dict[str, Any] = {"asset": "(latest run)", "state": run.status.value.lower(), "run_id": run.run_id[:8], "when": None}
        if run.status not in FINISHED:
            liveness = instance_liveness(instance, run, stale_after_s)
            if not liveness.alive:
                row["state"] = "dead"
                row["hint"] = (
                    f"run {run.run_id[:8]} is dead ({liveness.why}); `vidpipe resume {project_id}` "
                    "marks it failed and finishes the project without paying again"
                )
        rows.append(row)
    return rows


def scene_rows(services: Services, project_id: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
    state = resolve_state(services, project_id)
    spec = state.spec
    damage = {f.index: f for f in find_damage(services, state) if f.stage == "clips"}
    rows = []
    for c in state.clips:
        start, end = state.frames[c.index], state.frames[c.index + 1]
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
        if c.index in damage:
            detail = f"damaged: {damage[c.index].problem}; {damage[c.index].repair}"
        rows.append(
            {
                "index": c.index,
                "start_frame": "done" if start.done else "missing",
                "end_frame": "done" if end.done else "missing",
                "clip": "damaged" if c.index in damage else (clip.status.value if clip is not None else "missing"),
                "duration_s": clip.duration_s if clip is not None else None,
                "cost_usd": clip.cost_usd if clip is not None else 0.0,
                "detail": detail,
            }
        )
    frames_left, clips_left = state.frames_left(), state.clips_left_to_pay()
    s = services.settings
    projected = image_cost(s, keyframe_provider(spec.providers.keyframes, s).model_for(spec), frames_left) + video_cost(
        s, clip_provider(spec.providers.clips, s).model_for(spec), clips_left * spec.clip_duration, spec.generate_audio
    )
    cost = {"spent_usd": spent_usd(services, project_id), "projected_usd": projected, "budget_usd": spec.max_cost_usd}
    return rows, cost


def project_status(services: Services, project_id: str) -> dict[str, Any]:
    scenes, cost = scene_rows(services, project_id)
    assets = asset_states(
        get_instance(services.settings), project_id, project_nonce(services, project_id), services.settings.heartbeat_stale_s
    )
    return {"assets": assets, "scenes": scenes, "cost": cost}
