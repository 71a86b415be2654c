"""A fault campaign: a Gemini + Veo project (the real SDK against the wire emulator) is rendered
by `vidpipe` processes killed with SIGKILL at random points across all stages, with random
damage to its stored files in between, and finished by `vidpipe resume --repair`.

Invariants at the end:
- every scene-take (a clip request: prompt + start and end frame) was submitted and paid once;
- the final video is valid (streams, duration, decodable first and last frames);
- no slot of the video-operations pool is held and no run is left STARTED;
- nothing was written outside the data directory (the processes' TMPDIR and HOME stay empty),
  and no scratch folder or half-written file is left.

A kill is delivered only when no video submission is between the provider's answer and the
ledger commit (the process group is stopped, and the emulator's accepted submissions are compared
with the ledger's): that window, milliseconds wide, is the one place where no client can avoid
paying twice, since Veo has no idempotency key (see docs/concepts.md, "Resume and repair")."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from tests.helpers import VIDPIPE, spawn
from vidpipe_core import media
from vidpipe_core.models import VideoClip
from vidpipe_core.steps.edit import edit_scene
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.storage import Layout, sha256_file
from vidpipe_dagster.healing import ACTIVE
from vidpipe_dagster.runner import register

ROUNDS = 14
MIN_KILLS = 10
SEED = 20261130
SCENES, CLIP_S = 3, 4


def _accepted_submissions(emu) -> list:  # type: ignore[no-untyped-def]
    return [r for r in emu.records("video_submit") if r.status == 200]


def _committed_submissions(services, project: str) -> int:  # type: ignore[no-untyped-def]
    with services.db.session() as s:
        return int(s.scalar(select(func.coalesce(func.sum(VideoClip.attempts), 0)).where(VideoClip.project_id == project)))


def _kill_outside_the_submit_window(proc: subprocess.Popen, emu, services, project: str) -> bool:  # type: ignore[no-untyped-def]
    """SIGKILL the process group at a moment when every accepted submission is in the ledger."""
    for _ in range(100):
        try:
            os.killpg(proc.pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        time.sleep(0.15)  # the emulator finishes what was already sent
        if len(_accepted_submissions(emu)) == _committed_submissions(services, project):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("never found a moment outside the submit window")


def _last_step(instance: dg.DagsterInstance, project: str) -> str:
    """The step the latest run of the project had started last (where a kill landed)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": project}), limit=1)
    if not runs:
        return "start-up"
    started = instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START)
    return started[-1].step_key if started else "start-up"


def _damage(rng: random.Random, folder: Path) -> str | None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".partial"))
    if not files:
        return None
    path = rng.choice(files)
    how = rng.choice(["truncate", "overwrite", "delete"])
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: rng.randint(0, max(0, path.stat().st_size - 1))])
    elif how == "overwrite":
        data = bytearray(path.read_bytes())
        data[: min(len(data), 256)] = os.urandom(min(len(data), 256))
        path.write_bytes(bytes(data))
    else:
        path.unlink()
    return f"{how} {path.relative_to(folder)}"


@pytest.mark.slow
def test_random_kills_and_damage_never_pay_twice_and_end_in_a_valid_video(gp, tmp_path):
    vp_env, g = gp
    emu = g.emulator
    emu.configure(video_latency_s=4.0, latency={"text": 0.8, "image": 0.6})
    rng = random.Random(SEED)
    services = vp_env.services()
    project = register(
        "A paper boat rides a rain gutter to the harbour", id="campaign", scenes=SCENES, clip_duration=CLIP_S, max_cost_usd=1000.0
    ).id
    folder = vp_env.data_dir / "artifacts" / "projects" / project
    outside = {"TMPDIR": tmp_path / "tmpdir", "HOME": tmp_path / "home"}
    for path in outside.values():
        path.mkdir()
    env = {**os.environ, **{k: str(v) for k, v in outside.items()}}

    log: list[str] = []
    kills = 0
    for i in range(ROUNDS):
        # New work for this round: an edit (a new clip, or through continuity new frames and clips), damage, or both.
        change = "none"
        if i > 0 and resolve_state(services, project).has_storyboard:
            action = rng.choice(["motion", "end frame", "damage", "damage"])
            scene = rng.randrange(SCENES)
            if action == "motion":
                edit_scene(services, project, scene, motion_prompt=f"Slow drift, take {i}")
            elif action == "end frame":
                edit_scene(services, project, scene, end_frame_prompt=f"The boat under a bridge, version {i}")
            change = f"edit {action} of scene {scene + 1}" if action != "damage" else f"damage: {_damage(rng, folder)}"
        command = ["render", project] if i == 0 else ["resume", project, "--repair"]
        proc = spawn(*command, env=env)
        if i == 0:  # the first kill lands in the storyboard call (a sync request: it is paid again)
            while emu.request_count("text") == 0 and proc.poll() is None:
                time.sleep(0.02)
        else:
            deadline = time.monotonic() + rng.uniform(2.5, 7.0)  # ~2.5 s of it is the process starting
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
        killed = proc.poll() is None and _kill_outside_the_submit_window(proc, emu, services, project)
        stage = _last_step(vp_env.instance(), project) if killed else "-"
        if not killed:
            proc.wait()
        kills += killed
        damage = _damage(rng, folder) if rng.random() < 0.5 else None
        log.append(
            f"{i}: {change}; {' '.join(command)} -> {'killed' if killed else f'exit {proc.returncode}'} "
            f"(in {stage}); then damage: {damage or 'none'}"
        )

    final = subprocess.run([VIDPIPE, "resume", project, "--repair"], env=env, capture_output=True, text=True, timeout=300)
    schedule = "\n".join(log)
    assert final.returncode == 0, f"{schedule}\n{final.stderr}"
    assert kills >= MIN_KILLS, schedule

    # One paid submission per scene-take.
    takes = Counter((r.prompt, tuple(r.image_sha256)) for r in _accepted_submissions(emu))
    assert takes and max(takes.values()) == 1, f"{schedule}\n{takes}"
    # The final video.
    path = Path(services.store.path(project, Layout.FINAL))
    info = media.probe(path)
    assert info.has_video and info.has_audio and abs(info.duration_s - SCENES * CLIP_S) <= 0.25, schedule
    assert media.read_frame(path, "first").size == media.read_frame(path, "last").size == (info.width, info.height)
    # Every reused byte matches the ledger.
    state = resolve_state(services, project)
    for row in [f.row for f in state.frames] + [c.row for c in state.clips]:
        assert row is not None and row.sha256 == sha256_file(services.store.path(project, row.path)), schedule
    # Nothing held, nothing left running, nothing outside the data directory, nothing half-made.
    instance = vp_env.instance()
    info_pool = instance.event_log_storage.get_concurrency_info("video-operations")
    assert not info_pool.claimed_slots and not info_pool.pending_steps, schedule
    assert not instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE)), schedule
    for name, where in outside.items():
        assert not list(where.rglob("*")), f"{name}: {list(where.rglob('*'))}"
    assert not list((vp_env.data_dir / "tmp").glob("*")), schedule
    assert not list(folder.rglob("*.partial")), schedule
    print(schedule)
