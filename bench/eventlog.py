"""`eventlog`: what the preview images cost in Dagster's event log, per render.

The assets embed their images (animated preview, poster, contact sheet, scene strip) as `data:`
URIs in markdown metadata, so every materialization stores them in the instance's event log.
For each size (a small animatic and a 1080p one, N scenes of S seconds, offline) a project is
rendered twice in fresh homes, with previews on and with `VIDPIPE_UI_PREVIEWS=false`; then every
event of the run is read back from the instance's event log storage and its serialized size
(the JSON Dagster stores in the `event_logs.event` column) summed. The images' own sizes (bytes
of the encoded image, before base64) and their budgets come from the same events; "preview s"
is the time the four images take, measured by making them again from the rendered files.
"""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path
from typing import Any

from bench.common import Report, fresh_home, log, remove_home, table

PROMPT = "A paper lantern drifts over a night market, crosses the river, snags on a willow and flies free at dawn"
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\(data:(?P<mime>image/[a-z]+);base64,(?P<data>[A-Za-z0-9+/=]+)\)")
IMAGE_KEYS = {("final_video", "preview"), ("final_video", "poster"), ("keyframes", "contact_sheet_image"), ("clips", "strip")}


def _sizes(quick: bool) -> list[tuple[str, int, int, int]]:
    """(label, short side in pixels, scenes, clip seconds)."""
    if quick:
        return [("small 256x144", 144, 2, 1), ("1080p", 1080, 2, 1)]
    return [("small 256x144", 144, 4, 2), ("1080p", 1080, 4, 2)]


def _measure_run(short_side: int, scenes: int, clip_s: int, previews_on: bool) -> dict[str, Any]:
    from dagster._serdes import serialize_value

    from bench import pipeline
    from vidpipe_core.config import get_settings
    from vidpipe_dagster.instance import get_instance
    from vidpipe_dagster.runner import render

    root = fresh_home("eventlog")
    os.environ.update(
        {
            "VIDPIPE_PROVIDER": "animatic",
            "VIDPIPE_ANIMATIC_RESOLUTION": str(short_side),
            "VIDPIPE_UI_PREVIEWS": "true" if previews_on else "false",
        }
    )
    try:
        project_id = pipeline.register(PROMPT, scenes=scenes, clip_duration=clip_s, provider="animatic", prefix="evl")
        t = time.perf_counter()
        result = render(project_id)
        wall = time.perf_counter() - t
        instance = get_instance(get_settings())
        records = instance.all_logs(result.run_id)
        sizes = [len(serialize_value(r)) for r in records]
        materializations = [
            (r, n)
            for r, n in zip(records, sizes, strict=True)
            if r.dagster_event is not None and r.dagster_event.is_step_materialization
        ]
        images: dict[str, dict[str, Any]] = {}
        for r, _n in materializations:
            mat = r.dagster_event.step_materialization_data.materialization  # type: ignore[union-attr]
            for key, value in mat.metadata.items():
                if (mat.asset_key.path[-1], key) not in IMAGE_KEYS:
                    continue
                text = str(value.value)
                match = IMAGE.match(text)
                images[key] = {
                    "asset": mat.asset_key.path[-1],
                    "md_chars": len(text),
                    "image_bytes": len(base64.b64decode(match["data"])) if match else 0,
                    "mime": match["mime"] if match else "(note)",
                    "note": text.rsplit("\n", 1)[-1][:120],
                }
        by_type: dict[str, int] = {}
        for r, n in zip(records, sizes, strict=True):
            kind = r.dagster_event.event_type_value if r.dagster_event is not None else "log message"
            by_type[kind] = by_type.get(kind, 0) + n
        preview_s = _time_previews(project_id) if previews_on else 0.0
        return {
            "project_id": project_id,
            "success": bool(result.success),
            "render_s": round(wall, 2),
            "events": len(records),
            "event_log_bytes": sum(sizes),
            "materialization_bytes": {
                r.dagster_event.asset_key.path[-1]: n  # type: ignore[union-attr]
                for r, n in materializations
            },
            "bytes_by_event_type": by_type,
            "images": images,
            "preview_s": round(preview_s, 2),
        }
    finally:
        remove_home(root)


def _time_previews(project_id: str) -> float:
    """Make the four images again from the rendered files (what the assets add to a render)."""
    from vidpipe_core import media, previews
    from vidpipe_core.config import get_settings
    from vidpipe_core.services import Services
    from vidpipe_core.steps.state import resolve_state
    from vidpipe_core.storage import Layout

    services = Services.create(get_settings())
    state = resolve_state(services, project_id)
    video = services.store.path(project_id, Layout.FINAL)
    sheet = services.store.read_bytes(project_id, Layout.CONTACT_SHEET)
    clips = [(c.index, c.row.path if c.row else None, "") for c in state.clips]
    t = time.perf_counter()
    previews.animated_preview(Path(video), services.settings.data_dir)
    previews.poster(Path(video), media.probe(video).duration_s)
    previews.sheet_image(sheet)
    previews.scene_strip(previews.stored_clips(services.store, project_id, clips))
    return time.perf_counter() - t


def run(quick: bool = False) -> Report:
    from vidpipe_core import previews

    report = Report(
        name="eventlog",
        title="Event-log bytes per render, with and without preview images (`eventlog`)",
        setup=[
            "offline animatic, 16:9, audio; a fresh VIDPIPE_DATA_DIR and DAGSTER_HOME (SQLite) per render",
            "event-log bytes: every event of the run read back with `instance.all_logs(run_id)`, each "
            "`serialize_value(EventLogEntry)` (what the event log stores) summed",
            f"budgets (bytes of the encoded image): preview {previews.PREVIEW_BUDGET:,}, poster {previews.POSTER_BUDGET:,}, "
            f"contact sheet {previews.SHEET_BUDGET:,}, strip {previews.STRIP_BUDGET:,}; base64 adds a third",
            f"animated preview format on this ffmpeg: {previews.animated_format()}",
        ],
    )
    rows, image_rows, data = [], [], []
    for label, short_side, scenes, clip_s in _sizes(quick):
        pair = {}
        for on in (False, True):
            log(f"eventlog: {label}, {scenes} scenes x {clip_s} s, previews {'on' if on else 'off'}")
            pair[on] = _measure_run(short_side, scenes, clip_s, on)
            data.append({"size": label, "scenes": scenes, "clip_s": clip_s, "previews": on, **pair[on]})
        off, on_ = pair[False], pair[True]
        rows.append(
            [
                label,
                f"{scenes} x {clip_s} s",
                off["events"],
                f"{off['event_log_bytes'] / 1000:.1f}",
                f"{on_['event_log_bytes'] / 1000:.1f}",
                f"+{(on_['event_log_bytes'] - off['event_log_bytes']) / 1000:.1f}",
                f"{on_['materialization_bytes'].get('final_video', 0) / 1000:.1f}",
                f"{on_['render_s']:.1f} / {off['render_s']:.1f}",
                f"{on_['preview_s']:.2f}",
            ]
        )
        for key, img in on_["images"].items():
            budget = {
                "preview": previews.PREVIEW_BUDGET,
                "poster": previews.POSTER_BUDGET,
                "contact_sheet_image": previews.SHEET_BUDGET,
                "strip": previews.STRIP_BUDGET,
            }[key]
            image_rows.append(
                [
                    label,
                    f"{img['asset']}.{key}",
                    img["mime"],
                    f"{img['image_bytes']:,}",
                    f"{budget:,}",
                    f"{img['md_chars']:,}",
                    img["note"],
                ]
            )
    report.tables.append(
        table(
            [
                "size",
                "scenes",
                "events",
                "event log KB, previews off",
                "previews on",
                "difference",
                "final_video materialization KB",
                "render s (on / off)",
                "preview s",
            ],
            rows,
        )
    )
    report.tables.append(table(["size", "image", "type", "bytes", "budget", "markdown chars", "how"], image_rows))
    report.data = {"runs": data}
    for run_on in (d for d in data if d["previews"]):
        run_off = next(d for d in data if d["size"] == run_on["size"] and not d["previews"])
        md = sum(i["md_chars"] for i in run_on["images"].values())
        raw = sum(i["image_bytes"] for i in run_on["images"].values())
        added = run_on["event_log_bytes"] - run_off["event_log_bytes"]
        per_type = run_on["bytes_by_event_type"]
        report.notes.append(
            f"{run_on['size']}: the four images are {raw / 1000:.0f} KB ({md / 1000:.0f} KB as markdown with base64); "
            f"the event log grows by {added / 1000:.0f} KB = {added / max(md, 1):.2f}x the markdown, to "
            f"{run_on['event_log_bytes'] / 1000:.0f} KB per render; the metadata is stored once, in the "
            f"ASSET_MATERIALIZATION events ({per_type.get('ASSET_MATERIALIZATION', 0) / 1000:.0f} KB; STEP_OUTPUT "
            f"{per_type.get('STEP_OUTPUT', 0) / 1000:.0f} KB: the outputs carry no metadata)"
        )
    return report


if __name__ == "__main__":
    import argparse

    from bench.__main__ import run_one

    p = argparse.ArgumentParser(prog="python -m bench.eventlog")
    p.add_argument("--quick", action="store_true")
    raise SystemExit(run_one("eventlog", p.parse_args().quick, run))
