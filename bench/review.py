"""`review`: what a person under review waits for (issue 23), N scenes with the google provider
against the wire emulator at e2e's latencies and K parallel video operations:

- **new → awaiting approval**: register a project under review and render it; the run makes the
  storyboard, the character sheets and the keyframes, then the gate stops it before the clips.
  Floor: T_storyboard + (N+1)·T_image (+ the sheets' calls);
- **approve → video**: record the approval (`approvals.record_approval`, what `vidpipe approve`
  and the `approve_project` job do) and render the rest. Floor: ceil(N/K)·T_video + T_stitch.

Their sum against e2e's floor for the same N and K says what the stop for review costs besides
the person's own time (a second run's start-up, the reading of the ledger, the approval row)."""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.common import EmulatorProcess, Report, ceil_div, fmt_s, fresh_home, log, remove_home, set_pool_limit, summary, table
from bench.e2e import (
    CLIP_S,
    IMAGE_HEIGHT,
    POLL_INITIAL_S,
    POLL_MAX_S,
    PROMPT,
    T_IMAGE,
    T_TEXT,
    T_VIDEO,
    VIDEO_HEIGHT,
    _set_polling,
)

T_STITCH = 0.1  # e2e's nominal stitch of N 4 s clips (a stream copy)


def _submissions(emu: EmulatorProcess) -> int:
    """Veo submissions the emulator has taken so far (every prompt)."""
    return sum(int(v) for v in emu.stats()["submissions_by_prompt"].values())


def run(quick: bool = False, n: int = 8, k: int = 4, reps: int | None = None) -> Report:
    reps = reps or (1 if quick else 3)
    n = 4 if quick else n
    root = fresh_home("review")
    emu = EmulatorProcess(
        video_latency_s=T_VIDEO, latency={"text": T_TEXT, "image": T_IMAGE}, image_height=IMAGE_HEIGHT, video_height=VIDEO_HEIGHT
    )
    rows: list[dict[str, Any]] = []
    try:
        emu.point_sdk_here()
        _set_polling(POLL_INITIAL_S, POLL_MAX_S)
        set_pool_limit(k)
        from bench import pipeline
        from vidpipe_core.approvals import record_approval
        from vidpipe_core.services import Services

        log("review: warm-up (imports, first SDK client), not recorded")
        pipeline.render_in_process(
            pipeline.register(f"{PROMPT} warm-up", scenes=2, clip_duration=CLIP_S, provider="google", prefix="warm"), k
        )
        services = Services.create()
        for rep in range(reps):
            before = _submissions(emu)
            t0 = time.perf_counter()
            pid = pipeline.register(
                f"{PROMPT} (review {rep} {time.time()})",
                scenes=n,
                clip_duration=CLIP_S,
                provider="google",
                prefix=f"review{n}",
                review="keyframes",
            )
            held = pipeline.render_in_process(pid, k)
            t1 = time.perf_counter()
            paid_before_approval = _submissions(emu) - before
            approval = record_approval(services, pid, kind="approve", source="api")
            done = pipeline.render_in_process(pid, k)
            t2 = time.perf_counter()
            paid = _submissions(emu) - before
            rows.append(
                {
                    "awaiting_s": t1 - t0,
                    "approve_to_video_s": t2 - t1,
                    "held_success": held.success,
                    "done_success": done.success,
                    "submissions_before_approval": paid_before_approval,
                    "submissions": paid,
                    "approval_recorded": approval.recorded,
                }
            )
            log(f"review: N={n} K={k}: awaiting {t1 - t0:.2f}s, approve→video {t2 - t1:.2f}s, {paid} Veo submissions")
    finally:
        emu.stop()
        remove_home(root)
    return _report(rows, n, k, reps, quick)


def _report(rows: list[dict[str, Any]], n: int, k: int, reps: int, quick: bool) -> Report:
    floor_wait = T_TEXT + (n + 1) * T_IMAGE
    floor_approve = ceil_div(n, k) * T_VIDEO + T_STITCH
    wait = summary([r["awaiting_s"] for r in rows])
    approve = summary([r["approve_to_video_s"] for r in rows])
    total = summary([r["awaiting_s"] + r["approve_to_video_s"] for r in rows])
    ok = all(r["held_success"] and r["done_success"] and r["submissions_before_approval"] == 0 for r in rows)
    return Report(
        name="review",
        title="Review: new → awaiting approval, approve → video",
        setup=[
            f"N={n} scenes of {CLIP_S} s, K={k} video operations at once, {reps} run(s); google provider against the "
            f"emulator (T_text={T_TEXT} s, T_image={T_IMAGE} s, T_video={T_VIDEO} s), as `bench e2e`; in-process runs",
            "awaiting: `runner.register(..., review='keyframes')` + `runner.render` until the gate holds the clips; "
            "approve: `approvals.record_approval` + `runner.render` of the rest (what `vidpipe approve` does)",
        ],
        tables=[
            table(
                ["phase", "median (min–max)", "floor", "ratio"],
                [
                    ["new → awaiting approval", fmt_s(wait), f"{floor_wait:.2f} s", f"{wait['median'] / floor_wait:.2f}"],
                    ["approve → video", fmt_s(approve), f"{floor_approve:.2f} s", f"{approve['median'] / floor_approve:.2f}"],
                    [
                        "both",
                        fmt_s(total),
                        f"{floor_wait + floor_approve:.2f} s",
                        f"{total['median'] / (floor_wait + floor_approve):.2f}",
                    ],
                ],
            )
        ],
        notes=[
            f"every run held before the clips with 0 Veo submissions, then made its video: {ok} "
            f"(Veo submissions per run: {sorted({r['submissions'] for r in rows})})"
        ],
        data={"rows": rows, "n": n, "k": k, "floor_wait_s": floor_wait, "floor_approve_s": floor_approve},
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.review")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    from bench.__main__ import run_one

    return run_one("review", args.quick)


if __name__ == "__main__":
    sys.exit(main())
