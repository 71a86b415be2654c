"""The small parts that make vidpipe repair itself: cancellable waits and ffmpeg, scratch folders
and half-written files of dead processes, digests checked against the ledger, run liveness."""

from __future__ import annotations

import subprocess
import threading
import time

import dagster as dg
import psutil
import pytest

from vidpipe_core import media
from vidpipe_core.cancel import NEVER, CancelToken, Interrupted
from vidpipe_core.integrity import digest_problem
from vidpipe_core.scenes import frame_label, scene_label
from vidpipe_core.scratch import clean_stale_scratch, owner_tag, scratch_dir
from vidpipe_core.storage import ArtifactStore
from vidpipe_dagster.healing import HEARTBEAT_TAG, HOST_TAG, PID_STARTED_TAG, PID_TAG, owner_tags, run_liveness


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_cancelled_token_ends_sleeps_and_waits_of_its_children():
    parent = CancelToken()
    child = CancelToken(parent=parent)
    threading.Timer(0.2, parent.cancel, args=("SIGTERM",)).start()
    started = time.monotonic()
    with pytest.raises(Interrupted, match="SIGTERM"):
        child.sleep(60)
    assert time.monotonic() - started < 30  # ended by the cancel, not by the 60 s
    assert child.cancelled and child.reason == "SIGTERM"


def test_the_shared_default_token_is_never_cancelled():
    NEVER.cancel("nobody may cancel this")
    assert not NEVER.cancelled
    NEVER.sleep(0.01)  # still just a sleep


def test_ffmpeg_is_killed_when_its_token_is_cancelled(tmp_path):
    token = CancelToken()
    args = [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25:duration=600",
        "-c:v",
        "libx264",
        "-preset",
        "veryslow",
        str(tmp_path / "long.mp4"),
    ]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            media.run_ffmpeg(args, what="a long encode", cancel=token)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.0)
    token.cancel("stop")
    worker.join(timeout=30)
    assert not worker.is_alive() and len(errors) == 1 and isinstance(errors[0], Interrupted)
    target = str(tmp_path / "long.mp4")
    assert not [p for p in psutil.process_iter(["cmdline"]) if target in (p.info["cmdline"] or [])]  # no ffmpeg left


def test_scratch_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    root = tmp_path / "tmp"
    root.mkdir()
    dead = root / f"vidpipe-clip@{owner_tag(_dead_pid())}@x1"
    other_host = root / "vidpipe-clip@1@some-other-host@x2"
    for folder in (dead, other_host):
        folder.mkdir()
        (folder / "start.png").write_bytes(b"x")
    with scratch_dir(tmp_path, "vidpipe-stitch") as mine:
        assert mine.parent == root and mine.is_dir()
        removed = clean_stale_scratch(tmp_path)
        assert removed == [dead.name]
        assert mine.is_dir() and other_host.is_dir() and not dead.exists()
    assert not mine.exists()


def test_half_written_files_of_dead_writers_are_removed(tmp_path):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    store.write_bytes("p1", "clips/scene_000_abc.mp4", b"done")
    folder = tmp_path / "artifacts/projects/p1/clips"
    dead = folder / f"scene_001_abc.mp4.{owner_tag(_dead_pid())}@0123abcd.partial"
    live = folder / f"scene_002_abc.mp4.{owner_tag()}@0123abcd.partial"
    foreign = folder / "scene_003_abc.mp4.77@elsewhere@0123abcd.partial"
    for path in (dead, live, foreign):
        path.write_bytes(b"half")
    assert store.clean_partials("p1") == [f"clips/{dead.name}"]
    assert live.exists() and foreign.exists() and (folder / "scene_000_abc.mp4").read_bytes() == b"done"


def test_digest_problems_say_what_is_wrong():
    import hashlib

    data = b"clip bytes"
    sha = hashlib.sha256(data).hexdigest()
    assert digest_problem(data, sha) is None
    assert digest_problem(None, sha) == "the file is missing"
    assert digest_problem(b"", sha) == "the file is empty"
    problem = digest_problem(data[:4], sha)
    assert problem is not None and "4 bytes" in problem and sha[:12] in problem


def test_people_read_scenes_and_frames_from_one():
    assert scene_label(0) == "scene 1"
    assert [frame_label(k, 3) for k in range(4)] == [
        "the start frame of scene 1",
        "the frame between scenes 1 and 2",
        "the frame between scenes 2 and 3",
        "the end frame of scene 3",
    ]


def _run(tags: dict[str, str]) -> dg.DagsterRun:
    return dg.DagsterRun(job_name="render_project", run_id="r1", status=dg.DagsterRunStatus.STARTED, tags=tags)


def test_run_liveness_same_host_by_process_other_host_by_heartbeat():
    now = time.time()
    assert run_liveness(_run(owner_tags()), 120).alive
    mine = owner_tags()
    assert not run_liveness(_run({**mine, PID_TAG: str(_dead_pid())}), 120).alive
    recycled = run_liveness(_run({**mine, PID_STARTED_TAG: f"{float(mine[PID_STARTED_TAG]) - 3600:.3f}"}), 120)
    assert not recycled.alive  # the pid lives on, but it is a newer process
    far = {PID_TAG: "7", HOST_TAG: "elsewhere", HEARTBEAT_TAG: f"{now - 30:.3f}"}
    assert run_liveness(_run(far), 120, now=now).alive
    stale = run_liveness(_run({**far, HEARTBEAT_TAG: f"{now - 500:.3f}"}), 120, now=now)
    assert not stale.alive and "heartbeat 500 s old (dead after 120 s)" in stale.why
    silent = {PID_TAG: "7", HOST_TAG: "elsewhere"}
    assert not run_liveness(_run(silent), 120, started_at=now - 500, now=now).alive
    assert run_liveness(_run({}), 120).alive  # no vidpipe step yet: Dagster's run monitoring decides
