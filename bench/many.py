"""`many`: 50 projects of 4 scenes submitted at once under a global limit of 8 live video
operations (Dagster pool `video-operations`), google provider against one emulator process.

Launch model: one `vidpipe render <id>` process per project, all 50 started at the same instant
(what a script or a CI matrix does; each process executes its run in-process and records it in
the shared instance). Threads calling `render_project` in one process are not an option: Dagster
1.13's execute_in_process reconfigures `logging` per run (`logging.config.dictConfig` in
`get_yaml_python_handlers`) and concurrent runs in one process deadlock on the logging locks
(reproduced; see bench/README.md). The daemon + run-queue path costs one run-worker process per
run plus one process per step with the default executor; `e2e` and `overhead` measure that cost."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time

from bench.common import (
    PYTHON,
    REPO,
    EmulatorProcess,
    InflightSampler,
    Report,
    ceil_div,
    fmt_s,
    fresh_home,
    log,
    mib,
    remove_home,
    set_pool_limit,
    summary,
    table,
)

SCENES, CLIP_S = 4, 4
LIMIT = 8
T_TEXT, T_IMAGE, T_VIDEO = 0.05, 0.05, 3.0
IMAGE_HEIGHT, VIDEO_HEIGHT = 144, 144  # keep the emulator's own CPU work small: 2 cores are shared
POLL_INITIAL_S, POLL_MAX_S = 0.05, 0.25
PROMPT = "A kite festival on a windy beach: kites rise, tangle, fall into the sea and are pulled out by a dog"


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


def run(quick: bool = False, parallel: int | None = None) -> Report:
    """`parallel`: at most this many `vidpipe render` processes at a time (a worker pool, like
    the run queue's max_concurrent_runs); None = all at once."""
    projects = 10 if quick else 50
    root = fresh_home("many")
    emu = EmulatorProcess(
        video_latency_s=T_VIDEO, latency={"text": T_TEXT, "image": T_IMAGE}, image_height=IMAGE_HEIGHT, video_height=VIDEO_HEIGHT
    )
    try:
        emu.point_sdk_here()
        os.environ.update({"VIDPIPE_POLL_INITIAL_S": str(POLL_INITIAL_S), "VIDPIPE_POLL_MAX_S": str(POLL_MAX_S)})
        import dagster as dg
        import psutil
        from sqlalchemy import select

        from bench import pipeline
        from vidpipe_core.config import get_settings
        from vidpipe_core.models import VideoClip
        from vidpipe_core.services import Services
        from vidpipe_dagster.instance import get_instance

        set_pool_limit(LIMIT)
        ids = [
            pipeline.register(
                f"{PROMPT} (project {i}, {time.time()})",
                scenes=SCENES,
                clip_duration=CLIP_S,
                provider="google",
                prefix=f"many{i:02d}",
            )
            for i in range(projects)
        ]
        env = os.environ.copy()
        finished: dict[str, tuple[float, int, str]] = {}
        peak_rss = [0]
        log(
            f"many: starting {projects} `vidpipe render` processes, "
            + (f"at most {parallel} at a time" if parallel else "all at once")
        )
        gate = threading.Semaphore(parallel or projects)
        procs: dict[str, subprocess.Popen] = {}  # type: ignore[type-arg]
        started_at: dict[str, float] = {}
        import resource

        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with InflightSampler(emu, 0.1) as sampler:
            t0, epoch0 = time.perf_counter(), time.time()

            def work(pid: str) -> None:
                with gate:
                    started_at[pid] = time.perf_counter() - t0
                    p = subprocess.Popen(
                        [PYTHON, "-m", "vidpipe_dagster.cli", "render", pid],
                        cwd=REPO,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    procs[pid] = p
                    _, err = p.communicate()
                    finished[pid] = (time.perf_counter() - t0, p.returncode, err[-800:])

            waiters = [threading.Thread(target=work, args=(pid,), daemon=True) for pid in ids]
            for w in waiters:
                w.start()
            mem_samples = []
            while any(w.is_alive() for w in waiters):
                total = 0
                for p in list(procs.values()):
                    try:
                        pp = psutil.Process(p.pid)
                        total += sum(x.memory_info().rss for x in [pp, *pp.children(recursive=True)])
                    except psutil.Error:
                        pass
                peak_rss[0] = max(peak_rss[0], total)
                mem_samples.append(total)
                time.sleep(0.25)
            wall = time.perf_counter() - t0
            t1 = time.perf_counter()
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the emulator is not waited for yet: excluded
        cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        stats = emu.stats()

        instance = get_instance(get_settings())
        services = Services.create(get_settings())
        with services.db.session() as s:
            rows = s.scalars(select(VideoClip).where(VideoClip.project_id.in_(ids))).all()
            spans = [(r.submitted_at.timestamp(), r.completed_at.timestamp()) for r in rows if r.submitted_at and r.completed_at]
        recs = []
        for pid in ids:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": pid}), limit=1)
            if runs:
                recs.append(
                    pipeline.collect(
                        pipeline.RunRecord(
                            pid, runs[0].run_id, runs[0].is_success, finished[pid][0], "cli-process", call_start=epoch0
                        ),
                        instance,
                    )
                )
    finally:
        emu.stop()
        remove_home(root)

    ok = [pid for pid, (_, code, _) in finished.items() if code == 0]
    failures = {pid: err for pid, (_, code, err) in finished.items() if code != 0}
    total_clips = projects * SCENES
    non_video = T_TEXT + (SCENES + 1) * T_IMAGE
    t_stitch = statistics.median([r.stitch_s for r in recs if r.stitch_s is not None] or [0.0])
    ideal = non_video + ceil_div(total_clips, LIMIT) * T_VIDEO + t_stitch
    first_submit = min(a for a, _ in spans) - epoch0 if spans else None
    last_done = max(b for _, b in spans) - epoch0 if spans else None
    # the sampler's clock is perf_counter; map the video phase onto it
    v0 = t0 + (first_submit or 0.0)
    v1 = t0 + (last_done or wall)
    mean_inflight_phase = sampler.mean_between(v0, v1)
    mean_inflight_all = sampler.mean_between(t0, t1)
    ledger_peak = _max_overlap(spans)
    first_step = [min(a for a, _ in r.steps.values()) - epoch0 for r in recs if r.steps]
    clip_start = [r.steps["clips"][0] - epoch0 for r in recs if "clips" in r.steps]
    op_busy = sum(b - a for a, b in spans)

    how = f"at most {parallel} processes at a time" if parallel else "all at once"
    report = Report(
        "many" if not parallel else f"many-p{parallel}",
        f"many — {projects} projects × {SCENES} scenes submitted at once ({how}), global video limit {LIMIT}",
    )
    report.setup = [
        f"One emulator process: latency text {T_TEXT} s, image {T_IMAGE} s, video {T_VIDEO} s; emulator media "
        f"{IMAGE_HEIGHT}p/{VIDEO_HEIGHT}p to keep its CPU share small (2 cores shared by everything).",
        f"Pool `video-operations` limit {LIMIT} (`set_concurrency_slots`); per-project clip concurrency = vidpipe's "
        f"default (4). Polling {POLL_INITIAL_S}/{POLL_MAX_S} s. Fresh SQLite data dir + DAGSTER_HOME shared by all.",
        f"{projects} processes `python -m vidpipe_dagster.cli render <id>` (= `vidpipe render`), "
        + (
            f"at most {parallel} running at a time (a worker pool, as the run queue's max_concurrent_runs would do); "
            if parallel
            else "all started at the same instant; "
        )
        + "projects registered beforehand (not timed). Wall = first start → last exit.",
        f"Ideal = T_text + (N+1)·T_image + ceil({total_clips}/{LIMIT})·T_video + T_stitch = {ideal:.1f} s "
        "(the video operations packed perfectly into the 8 slots).",
        "Utilisation = time-averaged emulator `inflight` (submitted, not yet delivered; sampled every 0.1 s) / 8, "
        "and slot-seconds of video operations (vidpipe ledger, submitted → saved) / (8 × phase length).",
        "One run (this benchmark is a single, long experiment).",
    ]
    phase = (last_done - first_submit) if spans else None
    rows = [
        ["projects finished / started", f"{len(ok)}/{projects}"],
        ["total wall s", f"{wall:.1f}"],
        ["ideal s (packed into 8 slots)", f"{ideal:.1f}"],
        ["ratio wall / ideal", f"{wall / ideal:.2f}"],
        ["emulator peak_inflight (must be ≤ 8)", stats.get("peak_inflight")],
        ["ledger: max overlapping operations (submitted → saved)", ledger_peak],
        ["first step started, median (min–max) s after launch", fmt_s(summary(first_step), 1)],
        ["clips step started, median (min–max) s after launch", fmt_s(summary(clip_start), 1)],
        ["first video submitted s after launch", f"{first_submit:.1f}" if first_submit is not None else "–"],
        ["last video saved s after launch", f"{last_done:.1f}" if last_done is not None else "–"],
        ["video phase s (first submit → last saved)", f"{phase:.1f}" if phase else "–"],
        ["ideal video phase s (ceil(clips/8)·T_video)", f"{ceil_div(total_clips, LIMIT) * T_VIDEO:.1f}"],
        ["utilisation in video phase (emulator inflight / 8)", f"{mean_inflight_phase / LIMIT:.0%}"],
        ["utilisation over the whole wall (emulator inflight / 8)", f"{mean_inflight_all / LIMIT:.0%}"],
        ["slot-seconds used / available in video phase (ledger)", f"{op_busy / (LIMIT * phase):.0%}" if phase else "–"],
        ["per-operation submitted → saved, median (min–max) s", fmt_s(summary([b - a for a, b in spans]), 2)],
        [
            "project wall (process start → exit), median (min–max) s",
            fmt_s(summary([finished[p][0] - started_at.get(p, 0.0) for p in ok]), 1),
        ],
        ["project done after launch (queueing included), median (min–max) s", fmt_s(summary([finished[p][0] for p in ok]), 1)],
        [
            f"CPU s of the {projects} render processes (user+sys, incl. ffmpeg), per project",
            f"{cpu_s:.0f}, {cpu_s / projects:.2f}",
        ],
        [f"peak RSS of all {projects} processes (+ children), sampled every 0.25 s, MiB", mib(peak_rss[0])],
        [
            "emulator requests (text / image / submit / poll)",
            " / ".join(str(stats["requests"].get(k, 0)) for k in ("text", "image", "video_submit", "video_poll")),
        ],
    ]
    report.tables.append(table(["metric", "value"], rows, align=["l", "r"]))
    if failures:
        report.notes.append(f"{len(failures)} project(s) failed; first error: {next(iter(failures.values()))[-400:]}")
    report.data = {
        "projects": projects,
        "parallel": parallel,
        "scenes": SCENES,
        "limit": LIMIT,
        "t_text": T_TEXT,
        "t_image": T_IMAGE,
        "t_video": T_VIDEO,
        "wall_s": wall,
        "ideal_s": ideal,
        "t_stitch_s": t_stitch,
        "emulator_stats": {k: stats.get(k) for k in ("requests", "peak_inflight", "operations", "video_encodes")},
        "ledger_peak_overlap": ledger_peak,
        "first_submit_s": first_submit,
        "last_done_s": last_done,
        "utilisation_phase": mean_inflight_phase / LIMIT,
        "utilisation_all": mean_inflight_all / LIMIT,
        "slot_seconds_used": op_busy,
        "render_cpu_s": cpu_s,
        "peak_rss_bytes": peak_rss[0],
        "failures": failures,
        "project_wall_s": {p: finished[p][0] for p in finished},
        "runs": [r.to_dict() for r in recs],
        "inflight_samples": [(round(t - t0, 2), v) for t, v in sampler.samples],
    }
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.many [--quick] [--parallel M]` (the suite runs it with all 50 at once)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.many")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--parallel", type=int, default=None, help="at most M render processes at a time")
    args = p.parse_args(argv)
    from bench.__main__ import run_one

    return run_one("many", args.quick, run=lambda quick: run(quick, args.parallel))


if __name__ == "__main__":
    sys.exit(main())
