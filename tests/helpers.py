"""Small helpers shared by tests: image comparison, reading Dagster metadata, test clips."""

from __future__ import annotations

import io

import dagster as dg
import numpy as np
from PIL import Image


def mean_abs_diff(a: Image.Image, b: Image.Image, size: tuple[int, int] = (64, 36)) -> float:
    """Mean absolute pixel difference (0-255) of two images scaled to a common small size."""
    x = np.asarray(a.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float32)
    y = np.asarray(b.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float32)
    return float(np.abs(x - y).mean())


def png(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    assert records, f"{asset}[{partition}] was never materialized"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def check_results(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    out = {}
    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        data = rec.dagster_event.event_specific_data
        out[data.check_name] = data.passed
    return out


# Media -------------------------------------------------------------------------------------------------


def sweep_clip(path: Path, seconds: float, seed: int, *, size: tuple[int, int] = (256, 144), fps: int = 12) -> Path:
    """A clip as vidpipe encodes them (a keyframe a second) whose every frame differs (testsrc2) and
    whose audio never repeats (a frequency sweep, a different one per seed), so that a frame or a
    sample out of place shows."""
    import ffmpeg

    from vidpipe_core import media

    video = ffmpeg.input(f"testsrc2=size={size[0]}x{size[1]}:rate={fps}:duration={seconds}", f="lavfi").video
    audio = ffmpeg.input(f"aevalsrc=0.3*sin(2*PI*({150 * seed}+300*t)*t):d={seconds}:s=48000", f="lavfi").audio
    kwargs = {**media.video_out_kwargs(fps), **media.audio_out_kwargs(), "frames:v": round(seconds * fps), "f": "mp4"}
    media.run_ffmpeg(
        ffmpeg.output(video.filter("format", "yuv420p"), audio, str(path), t=seconds, **kwargs).get_args(), what="clip"
    )
    return path


# Subprocesses of the real `vidpipe` command -------------------------------------------------------

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

VIDPIPE = str(Path(sys.executable).parent / "vidpipe")


def spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    """`vidpipe ARGS` in its own session (so a test can signal the whole group), output piped."""
    return subprocess.Popen(
        [VIDPIPE, *args],
        env=env or dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(predicate, timeout: float = 60.0, what: str = "condition", interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Output:
    """Collects a process's stdout and stderr lines from threads, so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(stream,), daemon=True) for stream in (proc.stdout, proc.stderr)
        ]
        for t in self._threads:
            t.start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def close(self) -> str:
        for t in self._threads:
            t.join(timeout=10)
        return self.text()


def finish_operations(emu) -> int:  # type: ignore[no-untyped-def]
    """Let every video operation still pending on the emulator answer done at its next poll.

    A test that kills a render mid-poll submits with a long latency (30-60 s) so the kill surely
    lands while polling; once the kill has happened the wait has served its purpose, and the
    resume need not sit it out. Returns how many operations were finished (at least one: a call
    that finishes nothing skips no wait and points at a changed test)."""
    finished = emu.finish_operations()
    assert finished > 0, "no pending video operation to finish"
    return int(finished)
