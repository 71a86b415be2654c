"""`healing`: what self-repair costs and how fast it acts.

- stop latency: seconds from SIGTERM to the exit of a `vidpipe render` process, (a) while it
  waits for a video-operations slot held by a live run of another host, (b) while it polls Veo
  operations with the default poll settings (10 s between polls at most), (c) while ffmpeg
  renders 1080p animatic clips;
- heal delay: a second project's render (2 scenes, pool limit 2) after a render holding both
  slots was killed with SIGKILL, against the same render with free slots: the difference is the
  time spent noticing the dead holder;
- verification: sha256 of stored bytes before reuse (MiB/s on this machine, and for a 16-scene
  project of 8 s 1080p clips)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import PYTHON, EmulatorProcess, Report, fmt_s, fresh_home, log, remove_home, set_pool_limit, summary, table

VIDPIPE = str(Path(PYTHON).parent / "vidpipe")


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [VIDPIPE, *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 300) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if needle in line:
            return
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"never saw {needle!r} (exit {proc.poll()})")


def _stop_after(proc: subprocess.Popen) -> float:
    t = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    return time.perf_counter() - t


def _new(prompt: str, *args: str) -> str:
    out = subprocess.run([VIDPIPE, "new", prompt, *args], env=dict(os.environ), capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def _foreign_holder(slots: int) -> None:
    import dagster as dg

    from vidpipe_core.config import get_settings
    from vidpipe_dagster.healing import HEARTBEAT_TAG, HOST_TAG, PID_TAG
    from vidpipe_dagster.instance import get_instance

    instance = get_instance(get_settings())
    run_id = str(uuid.uuid4())
    instance.add_run(
        dg.DagsterRun(
            job_name="render_project",
            run_id=run_id,
            status=dg.DagsterRunStatus.STARTED,
            tags={PID_TAG: "1", HOST_TAG: "bench-elsewhere", HEARTBEAT_TAG: f"{time.time() + 3600:.0f}"},
        )
    )
    for i in range(slots):
        instance.event_log_storage.claim_concurrency_slot("video-operations", run_id, f"clips[scene-{i}]")


def _google_env(emu: EmulatorProcess) -> None:
    emu.point_sdk_here()
    os.environ["VIDPIPE_PROVIDER"] = "google"


def _stop_times(reps: int, prompt: str, args: tuple[str, ...], needle: str, settle_s: float) -> dict[str, Any]:
    """SIGTERM `reps` renders once each prints `needle` (and `settle_s` later); seconds to exit."""
    times = []
    for i in range(reps):
        proc = _spawn("render", _new(prompt.format(i), *args))
        _wait_for_line(proc, needle)
        time.sleep(settle_s)
        times.append(_stop_after(proc))
    return summary(times)


def stop_latencies(reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with EmulatorProcess(video_latency_s=600, latency={}, image_height=144, video_height=144) as emu:
        root = fresh_home("healing-stop")
        try:
            _google_env(emu)
            set_pool_limit(1)
            _foreign_holder(1)
            out["waiting for a slot"] = _stop_times(
                reps,
                "A kite number {} tugs at its string",
                ("--scenes", "1", "--clip-duration", "4"),
                "for a video-operations slot",
                0.0,
            )
        finally:
            remove_home(root)
        root = fresh_home("healing-poll")
        try:
            _google_env(emu)
            # Polls come at 0, 5 and 15 s by default: 6 s after the first is inside a 10 s wait.
            out["polling Veo (default poll settings)"] = _stop_times(
                reps,
                "A swan number {} glides under a bridge",
                ("--scenes", "2", "--clip-duration", "4"),
                "video operation running",
                6.0,
            )
        finally:
            remove_home(root)
    root = fresh_home("healing-ffmpeg")
    try:
        os.environ.update({"VIDPIPE_PROVIDER": "animatic", "VIDPIPE_ANIMATIC_RESOLUTION": "1080"})
        out["ffmpeg rendering 1080p clips"] = _stop_times(
            reps,
            "A river number {} winds through hills",
            ("--scenes", "2", "--clip-duration", "8"),
            "rendering 8s animatic clip",
            1.0,
        )
    finally:
        os.environ.pop("VIDPIPE_ANIMATIC_RESOLUTION", None)
        remove_home(root)
    return out


def heal_delay(reps: int) -> dict[str, Any]:
    control, healed = [], []
    with EmulatorProcess(video_latency_s=1.0, latency={}, image_height=144, video_height=144) as emu:
        for i in range(reps):
            root = fresh_home("healing-heal")
            try:
                _google_env(emu)
                set_pool_limit(2)
                other = _new(f"A ferry number {i} crosses the bay", "--scenes", "2", "--clip-duration", "4")
                emu.configure(video_latency_s=1.0)
                t = time.perf_counter()
                subprocess.run([VIDPIPE, "render", other], env=dict(os.environ), capture_output=True, check=True)
                control.append(time.perf_counter() - t)

                dead = _new(f"A lighthouse number {i} at night", "--scenes", "2", "--clip-duration", "4")
                emu.configure(video_latency_s=600)
                proc = _spawn("render", dead)
                _wait_for_line(proc, "video operation running")
                time.sleep(0.5)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                again = _new(f"A second ferry number {i} crosses the bay", "--scenes", "2", "--clip-duration", "4")
                emu.configure(video_latency_s=1.0)
                t = time.perf_counter()
                subprocess.run([VIDPIPE, "render", again], env=dict(os.environ), capture_output=True, check=True)
                healed.append(time.perf_counter() - t)
            finally:
                remove_home(root)
    return {"free slots": summary(control), "after a kill -9 holding every slot": summary(healed)}


def sha_throughput() -> dict[str, float]:
    data = os.urandom(64 * 2**20)
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        runs.append(time.perf_counter() - t)
    mib_s = 64 / min(runs)
    return {"mib_per_s": mib_s}


def run(quick: bool = False) -> Report:
    reps = 2 if quick else 5
    log("healing: stop latencies")
    stops = stop_latencies(reps)
    log("healing: heal delay")
    heal = heal_delay(2 if quick else 3)
    sha = sha_throughput()
    clip_mib = 16 * 8 * 6.0 / 8 * 1.0  # a 1080p animatic clip is ~6 Mbit/s: 16 clips of 8 s
    report = Report("healing", "Self-repair: stop latency, heal delay, verification cost")
    report.setup = [
        f"stop latency: {reps} renders per row, SIGTERM to the process, time until it exits (median (min–max), s)",
        "heal delay: `vidpipe render` of a 2-scene Veo project (1 s operations, pool limit 2) with free slots, and "
        "after a render holding both slots was killed with SIGKILL (nobody ran resume)",
        "verification: hashlib.sha256 over 64 MiB, best of 5",
    ]
    report.tables.append(table(["SIGTERM while", "to exit (s)"], [(k, fmt_s(v)) for k, v in stops.items()]))
    delta = (heal["after a kill -9 holding every slot"]["median"] or 0) - (heal["free slots"]["median"] or 0)
    report.tables.append(
        table(
            ["second project's render", "wall (s)"],
            [(k, fmt_s(v)) for k, v in heal.items()] + [("difference of medians", f"{delta:.2f}")],
        )
    )
    report.tables.append(
        table(
            ["verification", "figure"],
            [
                ("sha256 (MiB/s)", f"{sha['mib_per_s']:.0f}"),
                (f"a 16-scene project of 8 s 1080p clips (~{clip_mib:.0f} MiB)", f"{clip_mib / sha['mib_per_s']:.2f} s"),
            ],
        )
    )
    report.data = {"stop_s": stops, "heal_s": heal, "sha256": sha}
    return report


if __name__ == "__main__":
    import sys

    from bench.__main__ import run_one

    sys.exit(run_one("healing", "--quick" in sys.argv, run))
