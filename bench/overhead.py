"""`overhead`: what Dagster adds around the four steps when the steps themselves are nearly free
(animatic provider at a tiny resolution: no network, no latency).

Three ways to render the same kind of project (N=4, 1 s clips, 72 px animatic):
- direct: the vidpipe_core steps called in sequence (make_storyboard, make_keyframes,
  make_clips, make_final), plus the work the asset bodies add on top of the steps (contact
  sheet and the asset checks), timed separately;
- in-process: `vidpipe_dagster.runner.render` (execute_in_process, recorded in the instance);
- multiprocess: `dg.execute_job(reconstructable(render_project))`, the job's default executor."""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

from bench.common import Report, fmt_s, fresh_home, log, remove_home, summary, table
from vidpipe_core.steps import STEPS  # one Dagster step per stage, the keyframes' in the clips step

N, CLIP_S, RES = 4, 1, 72
PROMPT = "A lighthouse keeper climbs the stairs, lights the lamp, watches a ship pass, and goes to sleep"


def _asset_extras(project_id: str) -> float:
    """What the asset bodies do besides calling the step: contact sheet + asset checks."""
    import json

    from vidpipe_core import media
    from vidpipe_core.checks import check_final_video, check_keyframes, check_storyboard
    from vidpipe_core.config import get_settings
    from vidpipe_core.schemas import Storyboard
    from vidpipe_core.services import Services
    from vidpipe_core.steps.state import resolve_state
    from vidpipe_core.storage import Layout

    services = Services.create(get_settings())
    t = time.perf_counter()
    state = resolve_state(services, project_id)
    board = json.loads(services.store.read_bytes(project_id, Layout.STORYBOARD))["storyboard"]
    check_storyboard(state.spec, Storyboard.model_validate(board))
    pngs = [services.store.read_bytes(project_id, f.row.path) for f in state.frames if f.row and f.row.path]
    services.store.write_bytes(project_id, Layout.CONTACT_SHEET, media.contact_sheet(pngs))
    check_keyframes(services, project_id)
    info = media.probe(services.store.path(project_id, Layout.FINAL))
    check_final_video(info, info.duration_s, state.spec.generate_audio)
    return time.perf_counter() - t


def run(quick: bool = False) -> Report:
    reps = 3 if quick else 5
    root = fresh_home("overhead")
    os.environ.update({"VIDPIPE_PROVIDER": "animatic", "VIDPIPE_ANIMATIC_RESOLUTION": str(RES)})
    for name in ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT"):
        os.environ.pop(name, None)
    try:
        from bench import pipeline
        from vidpipe_core.config import get_settings
        from vidpipe_dagster.instance import get_instance

        def new_project(tag: str) -> str:
            return pipeline.register(
                f"{PROMPT} ({tag} {time.time()})", scenes=N, clip_duration=CLIP_S, provider="animatic", prefix="ovh"
            )

        log("overhead: warm-up (one of each, not recorded)")
        pipeline.run_core_steps(new_project("warm-direct"))
        pipeline.render_in_process(new_project("warm-inproc"))
        pipeline.render_multiprocess(new_project("warm-mp"))

        direct: list[dict[str, float]] = []
        inproc: list[pipeline.RunRecord] = []
        multi: list[pipeline.RunRecord] = []
        events: dict[str, list[int]] = {"in_process": [], "multiprocess": []}
        instance = get_instance(get_settings())
        for rep in range(reps):
            pid = new_project(f"direct {rep}")
            d = pipeline.run_core_steps(pid)
            d["asset_extras"] = _asset_extras(pid)
            direct.append(d)
            r = pipeline.render_in_process(new_project(f"inproc {rep}"))
            inproc.append(r)
            events["in_process"].append(len(instance.all_logs(r.run_id)))
            m = pipeline.render_multiprocess(new_project(f"mp {rep}"))
            multi.append(m)
            events["multiprocess"].append(len(instance.all_logs(m.run_id)))
            log(
                f"overhead rep {rep + 1}/{reps}: direct {d['total']:.2f}s (+{d['asset_extras']:.2f}s extras), "
                f"in-process {r.wall_s:.2f}s, multiprocess {m.wall_s:.2f}s"
            )
    finally:
        remove_home(root)
    return _report(direct, inproc, multi, events, reps)


def _report(direct: list[dict[str, float]], inproc: list, multi: list, events: dict, reps: int) -> Report:  # type: ignore[type-arg]
    report = Report("overhead", "overhead — orchestration cost around near-free steps")
    report.setup = [
        f"Animatic provider (offline, no latency), `VIDPIPE_ANIMATIC_RESOLUTION={RES}`, N={N} scenes, {CLIP_S} s clips, "
        "clip concurrency 4; fresh SQLite VIDPIPE_DATA_DIR + DAGSTER_HOME; a new project per run.",
        "direct = the four vidpipe_core steps called in sequence in this process; 'asset extras' = what the asset "
        "bodies add around the steps (contact sheet PNG, storyboard/keyframes/final-video checks), timed apart.",
        "in-process = `render_project` (execute_in_process); multiprocess = `dg.execute_job(reconstructable(...))` "
        "(each step in a new Python process). Per-step times for Dagster = STEP_START → STEP_SUCCESS in the event log.",
        f"{reps} runs of each, interleaved, after one warm-up run of each; median (min–max).",
    ]
    d_total = summary([d["total"] for d in direct])
    d_extra = summary([d["asset_extras"] for d in direct])
    d_full = summary([d["total"] + d["asset_extras"] for d in direct])
    i_wall = summary([r.wall_s for r in inproc if r.success])
    m_wall = summary([r.wall_s for r in multi if r.success])
    rows = [
        ["direct (core steps only)", fmt_s(d_total), "–", "–", "–"],
        ["direct + asset extras", fmt_s(d_full), "–", "–", "–"],
        [
            "Dagster in-process",
            fmt_s(i_wall),
            f"{i_wall['median'] - d_full['median']:.2f}",
            f"{(i_wall['median'] - d_full['median']) / 4:.2f}",
            f"{statistics.median(events['in_process']):.0f}",
        ],
        [
            "Dagster multiprocess",
            fmt_s(m_wall),
            f"{m_wall['median'] - d_full['median']:.2f}",
            f"{(m_wall['median'] - d_full['median']) / 4:.2f}",
            f"{statistics.median(events['multiprocess']):.0f}",
        ],
    ]
    report.tables.append(
        table(
            [
                "how",
                "seconds per run, median (min–max)",
                "overhead per run s (vs direct + extras)",
                "per step s",
                "event-log entries per run",
            ],
            rows,
        )
    )

    srows = []
    for step in STEPS:
        dv = summary([d[step] for d in direct])
        iv = summary([r.step_s(step) for r in inproc if r.step_s(step) is not None])
        mv = summary([r.step_s(step) for r in multi if r.step_s(step) is not None])
        srows.append(
            [
                step,
                fmt_s(dv, 3),
                fmt_s(iv, 3),
                f"{iv['median'] - dv['median']:+.3f}",
                fmt_s(mv, 3),
                f"{mv['median'] - dv['median']:+.3f}",
            ]
        )
    srows.append(["asset extras (all steps)", fmt_s(d_extra, 3), "(inside the steps)", "", "(inside the steps)", ""])

    def outside(rs: list) -> dict[str, Any]:  # type: ignore[type-arg]
        return summary([r.wall_s - sum(r.step_s(s) or 0 for s in STEPS) for r in rs if r.success])

    io_, mo = outside(inproc), outside(multi)
    srows.append(
        ["outside steps (run setup, process start-up, between steps, teardown)", "–", fmt_s(io_, 3), "", fmt_s(mo, 3), ""]
    )
    report.tables.append(
        table(["step", "direct s", "in-process s", "Δ", "multiprocess s", "Δ"], srows, align=["l", "r", "r", "r", "r", "r"])
    )
    report.data = {
        "n": N,
        "clip_s": CLIP_S,
        "resolution": RES,
        "reps": reps,
        "direct": direct,
        "in_process": [r.to_dict() for r in inproc],
        "multiprocess": [r.to_dict() for r in multi],
        "events_per_run": events,
        "summary": {
            "direct_s": d_total,
            "direct_plus_extras_s": d_full,
            "asset_extras_s": d_extra,
            "in_process_s": i_wall,
            "multiprocess_s": m_wall,
            "outside_steps_in_process_s": io_,
            "outside_steps_multiprocess_s": mo,
        },
    }
    return report


if __name__ == "__main__":
    from bench.__main__ import run_one

    sys.exit(run_one("overhead", "--quick" in sys.argv))
