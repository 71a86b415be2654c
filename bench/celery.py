"""`celery`: projects queued through the daemon's run queue, run by the Celery executor on two
`vidpipe worker` processes, against the in-process default — side by side in one run.

    python -m bench.celery [--projects 12] [--scenes 4] [--limit 4] [--runs-at-once 4]
                           [--video-latency 3] [--concurrency 2] [--modes in_process,celery]

Each mode gets a deployment of its own, built from real parts: PostgreSQL for both databases
(two fresh databases, dropped afterwards), artifacts in S3 (moto's server, a fresh bucket), the
google provider against the wire emulator (scaled video latency), a `dagster-daemon` whose inbox
sensor registers the dropped prompt files and whose run queue launches the runs (at most
`--runs-at-once`), and for `celery` two `vidpipe worker` processes on RabbitMQ, each with its own
empty data dir, on a queue of their own. The `video-operations` pool limit is `--limit`.

Figures per mode: wall time and its ratio to the ideal (what the limit allows), slot use in the
video phase (ledger: sum of operation durations / (limit × phase span)), CPU seconds and peak
RSS per project (every process of the deployment: daemon, code server, run workers, Celery
workers and their children; not PostgreSQL, RabbitMQ, moto or the emulator), the Celery
overhead per step (event log: "Submitting celery task" → STEP_START), the step hand-over gap
of both modes (previous STEP_SUCCESS → next STEP_START), peak in-flight operations at the
emulator (must equal the limit) and paid submissions per scene (must be 1).

Nothing here asserts: the benchmark prints and records (bench/README.md, section 10)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import PYTHON, REPO, EmulatorProcess, Report, ceil_div, fmt_s, log, mib, summary, table

BIN = Path(PYTHON).parent
PG_ADMIN_DSN = os.environ.get("VIDPIPE_BENCH_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
T_TEXT, T_IMAGE = 0.05, 0.05
CLIP_S = 4
IMAGE_HEIGHT = VIDEO_HEIGHT = 144  # the emulator's own CPU work stays small: 2 cores are shared
POLL_INITIAL_S, POLL_MAX_S = 0.05, 0.25
RUN_TIMEOUT_S = 3600
PROMPT = "Paper boats race down a rain gutter: they spin, capsize, are rescued by a cat and reach the harbour"


@dataclass
class Params:
    projects: int = 50
    scenes: int = 4
    limit: int = 4
    runs_at_once: int = 4
    video_latency_s: float = 3.0
    concurrency: int = 2
    workers: int = 2
    modes: tuple[str, ...] = ("in_process", "celery")
    dequeue_threads: int = 0  # 0: the daemon launches queued runs one at a time (Dagster's default)


# ------------------------------------------------------------------------------------------
# Services the bench starts: moto S3, PostgreSQL databases, processes in their own group
# ------------------------------------------------------------------------------------------


class S3:
    """moto's S3 server (started by tests/s3server.py, as for the tests) and a bucket per mode."""

    def __init__(self) -> None:
        from tests.s3server import moto_server

        self._running = contextlib.ExitStack()
        self.server = self._running.enter_context(moto_server("bench"))

    def env(self) -> dict[str, str]:
        return self.server.env()

    def client(self) -> Any:
        return self.server.client()

    def bucket(self) -> str:
        name = f"vidpipe-bench-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def count(self, bucket: str, suffix: str) -> int:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sum(1 for page in pages for obj in page.get("Contents", []) if obj["Key"].endswith(suffix))

    def stop(self) -> None:
        self._running.close()


def _pg(sql: str) -> None:
    import psycopg2  # type: ignore[import-untyped]

    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _drop_db(name: str) -> None:
    try:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:  # the bench's result matters more than its cleanup
        log(f"could not drop database {name}: {exc}")


class Proc:
    """A long-running command in its own process group, output to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logfile: Path) -> None:
        self.name, self.logfile = name, logfile
        self._out = open(logfile, "wb")
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        return self.logfile.read_bytes().decode("utf-8", "replace")[-n:]

    def stop(self, grace: float = 20.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(grace if sig == signal.SIGTERM else 10)
                if sig == signal.SIGTERM:
                    # children (code server, run workers, pool processes) may outlive the leader
                    try:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                break
            except subprocess.TimeoutExpired:
                continue
        self._out.close()


def _ready(worker: Proc) -> bool:
    """Celery prints `<node> ready.` once it consumes from its queue."""
    return " ready." in worker.tail(100000)


def _wait(what: str, probe: Callable[[], Any], timeout: float, alive: Sequence[Proc] = ()) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in alive:
            p.alive()
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


# ------------------------------------------------------------------------------------------
# CPU and memory of the deployment's processes
# ------------------------------------------------------------------------------------------


class TreeSampler:
    """Every `every` s: each process under the given roots (daemon, workers), its own CPU time
    (user + system; children's are not added, they are sampled themselves) and RSS. CPU of a
    process is its last sample, so a process that lives less than `every` may be missed (at
    144p only ffmpeg's short stitches; they are small)."""

    def __init__(self, roots: list[int], every: float = 0.5) -> None:
        self.roots, self.every = roots, every
        self.cpu: dict[int, float] = {}
        self.cpu_at_mark: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self.cmd: dict[int, str] = {}
        self.peak_rss: dict[int, int] = {}
        self.peak_total_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-tree")

    def _procs(self) -> list[Any]:
        import psutil

        out = []
        for root in self.roots:
            try:
                p = psutil.Process(root)
                out += [p, *p.children(recursive=True)]
            except psutil.Error:
                pass
        return out

    def sample(self) -> None:
        import psutil

        total = 0
        for p in self._procs():
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    rss = p.memory_info().rss
                    if p.pid not in self.kind:
                        cmd = " ".join(p.cmdline())
                        self.cmd[p.pid] = cmd[:200]
                        self.kind[p.pid] = (
                            "run worker"  # the code server spawns one per run (multiprocessing spawn)
                            if "execute_run" in cmd or "multiprocessing.spawn" in cmd
                            else "code server"
                            if "grpc" in cmd
                            else "ffmpeg"
                            if "ffmpeg" in cmd
                            else "log tailers"
                            if "tail -F" in cmd or "watch_orphans" in cmd
                            else "celery worker"
                            if " worker" in cmd
                            else "daemon"
                        )
            except psutil.Error:
                continue
            self.cpu[p.pid] = t.user + t.system
            self.peak_rss[p.pid] = max(self.peak_rss.get(p.pid, 0), rss)
            total += rss
        self.peak_total_rss = max(self.peak_total_rss, total)

    def mark(self) -> None:
        """CPU spent before this point (start-up of daemon and workers) is not counted."""
        self.sample()
        self.cpu_at_mark = dict(self.cpu)
        self.peak_total_rss = 0

    def cpu_since_mark(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for pid, cpu in self.cpu.items():
            out[self.kind.get(pid, "?")] += cpu - self.cpu_at_mark.get(pid, 0.0)
        return dict(out)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# ------------------------------------------------------------------------------------------
# One mode
# ------------------------------------------------------------------------------------------


@dataclass
class RunFacts:
    project_id: str
    run_id: str
    status: str
    enqueued: float | None = None
    started: float | None = None
    ended: float | None = None
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)
    submitted: dict[str, float] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    stitch_s: float | None = None
    run_worker_pid: str | None = None


def _run_facts(instance: Any, run: Any) -> RunFacts:
    from dagster import DagsterEventType

    facts = RunFacts(
        run.tags.get("dagster/partition", "?"), run.run_id, run.status.value, run_worker_pid=run.tags.get("vidpipe/pid")
    )
    starts: dict[str, float] = {}
    stitch_from = None
    for entry in instance.all_logs(run.run_id):
        ev, ts, msg = entry.dagster_event, entry.timestamp, entry.user_message or ""
        kind = ev.event_type_value if ev is not None else None
        if kind == DagsterEventType.RUN_ENQUEUED.value:
            facts.enqueued = ts
        elif kind == DagsterEventType.RUN_START.value:
            facts.started = ts
        elif kind in (
            DagsterEventType.RUN_SUCCESS.value,
            DagsterEventType.RUN_FAILURE.value,
            DagsterEventType.RUN_CANCELED.value,
        ):
            facts.ended = ts
        elif kind == "STEP_START" and entry.step_key:
            starts[entry.step_key] = ts
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in starts:
            facts.steps[entry.step_key] = (starts[entry.step_key], ts)
        elif kind == "ENGINE_EVENT":
            md = ev.engine_event_data.metadata if ev is not None and ev.engine_event_data else {}
            if msg.startswith("Submitting celery task") and entry.step_key:
                facts.submitted.setdefault(entry.step_key, ts)
            elif "Celery worker" in md:
                host = md["Celery worker"]
                step = entry.step_key or str(getattr(md.get("step_keys"), "value", md.get("step_keys")))
                facts.hosts[step] = str(getattr(host, "value", host))
        elif kind is None and msg.startswith("[final_video] stitching"):
            stitch_from = ts
        elif kind is None and msg.startswith("[final_video] final video written") and stitch_from is not None:
            facts.stitch_s = ts - stitch_from
    return facts


def _write_instance_yaml(home: Path, runs_at_once: int, limit: int, dequeue_threads: int = 0) -> None:
    text = (REPO / "dagster.postgres.yaml").read_text()
    for key, value in (("max_concurrent_runs", runs_at_once), ("default_limit", limit)):
        if f"{key}: 4" not in text:
            raise RuntimeError(f"dagster.postgres.yaml no longer sets `{key}: 4`; adapt bench/celery.py")
        text = text.replace(f"{key}: 4", f"{key}: {value}")
    if dequeue_threads:  # docs/deployment.md, "Several machines": start several run workers at once
        text += (
            "\nrun_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
            f"  config: {{dequeue_use_threads: true, dequeue_num_workers: {dequeue_threads}}}\n"
        )
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(text)


def _base_env(emu: EmulatorProcess, s3: S3) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDPIPE_", "GOOGLE_", "AWS_"))}
    saved = dict(os.environ)
    try:
        emu.point_sdk_here()  # sets GOOGLE_* / NO_PROXY in os.environ
        env.update({k: v for k, v in os.environ.items() if k.startswith("GOOGLE_") or k.lower() == "no_proxy"})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    env.update(s3.env())
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_mode(mode: str, prm: Params, s3: S3, workdir: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    db_app, db_dagster = f"vpbench_{tag}", f"vpbench_{tag}_dagster"
    root = workdir / mode
    home = root / "dagster"
    _write_instance_yaml(home, prm.runs_at_once, prm.limit, prm.dequeue_threads)
    for db in (db_app, db_dagster):
        _pg(f'CREATE DATABASE "{db}"')
    bucket = s3.bucket()
    procs: list[Proc] = []
    try:
        with EmulatorProcess(
            video_latency_s=prm.video_latency_s,
            latency={"text": T_TEXT, "image": T_IMAGE},
            image_height=IMAGE_HEIGHT,
            video_height=VIDEO_HEIGHT,
        ) as emu:
            env = _base_env(emu, s3)
            env.update(
                {
                    "VIDPIPE_DATA_DIR": str(root / "data"),
                    "DAGSTER_HOME": str(home),
                    "VIDPIPE_DATABASE_URL": PG_URL.format(db=db_app),
                    "VIDPIPE_PG_HOST": "127.0.0.1",
                    "VIDPIPE_PG_PORT": "5432",
                    "VIDPIPE_PG_USER": "postgres",
                    "VIDPIPE_PG_PASSWORD": "",
                    "VIDPIPE_PG_DAGSTER_DB": db_dagster,
                    "VIDPIPE_ARTIFACTS_URL": f"s3://{bucket}/vidpipe",
                    "VIDPIPE_PROVIDER": "google",
                    "VIDPIPE_REVIEW": "none",  # renders everything: no review gate
                    "VIDPIPE_POLL_INITIAL_S": str(POLL_INITIAL_S),
                    "VIDPIPE_POLL_MAX_S": str(POLL_MAX_S),
                    "VIDPIPE_INBOX_MIN_AGE_S": "0",
                    "VIDPIPE_DAGSTER_EXECUTOR": mode,
                    "VIDPIPE_CELERY_QUEUE": f"vidpipe-bench-{tag}",
                }
            )
            # This process reads the same instance and databases afterwards.
            os.environ.clear()
            os.environ.update(env)
            from vidpipe_core.config import get_settings
            from vidpipe_dagster.instance import get_instance

            settings = get_settings()
            instance = get_instance(settings)
            instance.event_log_storage.set_concurrency_slots(settings.video_pool, prm.limit)
            from vidpipe_core.services import Services

            Services.create(settings)  # migrations once, before anything is timed

            logs = root / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            workers: list[Proc] = []
            if mode == "celery":
                for i in range(prm.workers):
                    wenv = dict(env, VIDPIPE_DATA_DIR=str(root / f"worker{i + 1}-data"))  # empty, its own
                    workers.append(
                        Proc(
                            f"vidpipe worker {i + 1}",
                            [
                                str(BIN / "vidpipe"),
                                "worker",
                                "--queue",
                                env["VIDPIPE_CELERY_QUEUE"],
                                "--concurrency",
                                str(prm.concurrency),
                                "--name",
                                f"bench{i + 1}-{tag}",
                            ],
                            wenv,
                            logs / f"worker{i + 1}.log",
                        )
                    )
                procs += workers
                for w in workers:
                    _wait(f"{w.name} ready", partial(_ready, w), 180, alive=[w])
            daemon = Proc(
                "dagster-daemon",
                [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
                env,
                logs / "daemon.log",
            )
            procs.append(daemon)
            _wait(
                "daemon heartbeats (sensor, run queue)",
                lambda: {"SENSOR", "QUEUED_RUN_COORDINATOR"} <= set(instance.get_daemon_heartbeats()),
                180,
                alive=[daemon],
            )
            log(f"celery bench [{mode}]: deployment up (workers: {len(workers)}); dropping {prm.projects} prompt files")

            import dagster as dg

            ids = [f"cb{tag[:4]}-{i:03d}" for i in range(prm.projects)]
            inbox = settings.resolved_inbox_dir
            inbox.mkdir(parents=True, exist_ok=True)
            with TreeSampler([daemon.pid, *[w.pid for w in workers]]) as sampler:
                sampler.mark()
                t0 = time.time()
                for i, pid in enumerate(ids):
                    staged = inbox / f".{pid}.yaml.tmp"
                    body = {"id": pid, "prompt": f"{PROMPT} (race {i}, {tag})", "scenes": prm.scenes, "clip_duration": CLIP_S}
                    staged.write_text(json.dumps(body))
                    staged.rename(inbox / f"{pid}.json")

                def finished() -> Sequence[Any] | None:
                    runs = instance.get_runs(filters=dg.RunsFilter(tags={"vidpipe/origin": "inbox"}))
                    done = [r for r in runs if r.is_finished]
                    return runs if len(runs) >= len(ids) and len(done) == len(runs) else None

                runs = _wait("every run to finish", finished, RUN_TIMEOUT_S, alive=procs)
                t_end = time.time()
                sampler.sample()
            stats = emu.stats()
            facts = [_run_facts(instance, r) for r in runs]
            from sqlalchemy import select

            from vidpipe_core.models import VideoClip

            with Services.create(settings).db.session() as s:
                rows = s.scalars(select(VideoClip).where(VideoClip.project_id.in_(ids))).all()
                scenes_with_clip = len({(r.project_id, r.scene_index) for r in rows if r.path})
                ledger_rows = len(rows)
                spans = [
                    (r.submitted_at.timestamp(), r.completed_at.timestamp()) for r in rows if r.submitted_at and r.completed_at
                ]
            slots_held = len(instance.event_log_storage.get_concurrency_info(settings.video_pool).claimed_slots)
            finals = s3.count(bucket, "final.mp4")
            worker_data_files = (
                sum(1 for w in range(prm.workers) for p in (root / f"worker{w + 1}-data").rglob("*") if p.is_file())
                if mode == "celery"
                else None
            )
    finally:
        for p in reversed(procs):
            p.stop()
        for db in (db_app, db_dagster):
            _drop_db(db)
    return {
        "mode": mode,
        "t0": t0,
        "t_end": t_end,
        "facts": facts,
        "spans": spans,
        "stats": stats,
        "scenes_with_clip": scenes_with_clip,
        "ledger_rows": ledger_rows,
        "cpu": sampler.cpu_since_mark(),
        "peak_total_rss": sampler.peak_total_rss,
        "peak_rss_by_kind": {
            k: max((v for pid, v in sampler.peak_rss.items() if sampler.kind.get(pid) == k), default=0)
            for k in set(sampler.kind.values())
        },
        "run_worker_peaks": [v for pid, v in sampler.peak_rss.items() if sampler.kind.get(pid) == "run worker"],
        "slots_held_after": slots_held,
        "finals_in_bucket": finals,
        "worker_data_files": worker_data_files,
        "logs": str(root / "logs"),
        "processes": {pid: (sampler.kind.get(pid), sampler.cmd.get(pid), round(cpu, 2)) for pid, cpu in sampler.cpu.items()},
    }


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------


def figures(res: dict[str, Any], prm: Params) -> dict[str, Any]:
    facts: list[RunFacts] = res["facts"]
    spans = res["spans"]
    ok = [f for f in facts if f.status == "SUCCESS"]
    enq = [f.enqueued for f in facts if f.enqueued]
    ends = [f.ended for f in facts if f.ended]
    first_enqueued = min(enq) if enq else res["t0"]
    last_end = max(ends) if ends else res["t_end"]
    stitch = statistics.median([f.stitch_s for f in facts if f.stitch_s is not None] or [0.0])
    video_ideal = ceil_div(prm.projects * prm.scenes, prm.limit) * prm.video_latency_s
    ideal = T_TEXT + (prm.scenes + 1) * T_IMAGE + video_ideal + stitch
    wall = last_end - first_enqueued
    phase = (max(b for _, b in spans) - min(a for a, _ in spans)) if spans else None
    busy = sum(b - a for a, b in spans)
    overhead = [f.steps[k][0] - t for f in facts for k, t in f.submitted.items() if k in f.steps]
    handover = []
    for f in facts:
        order = sorted(f.steps.values())
        handover += [nxt[0] - prev[1] for prev, nxt in zip(order, order[1:], strict=False)]
    hosts = Counter(h.split("@")[0] for f in facts for h in f.hosts.values())
    cpu_total = sum(res["cpu"].values())
    return {
        "mode": res["mode"],
        "ok": len(ok),
        "runs": len(facts),
        "wall_s": wall,
        "wall_from_drop_s": last_end - res["t0"],
        "ideal_s": ideal,
        "video_ideal_s": video_ideal,
        "ratio": wall / ideal,
        "phase_s": phase,
        "slot_use": busy / (prm.limit * phase) if phase else None,
        "op_s": summary([b - a for a, b in spans]),
        "queue_to_start_s": summary([f.started - f.enqueued for f in facts if f.started and f.enqueued]),
        "run_s": summary([f.ended - f.started for f in facts if f.ended and f.started]),
        "overhead_s": summary(overhead),
        "handover_s": summary(handover),
        "hosts": dict(hosts),
        "cpu_s": res["cpu"],
        "cpu_per_project_s": cpu_total / prm.projects,
        "peak_total_rss": res["peak_total_rss"],
        "peak_rss_per_project": res["peak_total_rss"] / prm.projects,
        "run_worker_rss": summary(res["run_worker_peaks"]),
        "peak_rss_by_kind": res["peak_rss_by_kind"],
        "peak_inflight": res["stats"].get("peak_inflight"),
        "video_submits": res["stats"]["requests"].get("video_submit"),
        "scenes_with_clip": res["scenes_with_clip"],
        "ledger_rows": res["ledger_rows"],
        # every scene needs one submission: as many submissions as scenes = each scene paid once
        "paid_per_scene": res["stats"]["requests"].get("video_submit", 0) / max(1, prm.projects * prm.scenes),
        "slots_held_after": res["slots_held_after"],
        "finals_in_bucket": res["finals_in_bucket"],
        "worker_data_files": res["worker_data_files"],
        "run_worker_pids": len({f.run_worker_pid for f in facts if f.run_worker_pid}),
        "stitch_s": stitch,
    }


def _mark(ok: bool) -> str:
    return "" if ok else " ✗"


def run(quick: bool = False, prm: Params | None = None) -> Report:
    prm = prm or Params(projects=4 if quick else 50)
    workdir = Path(tempfile.mkdtemp(prefix="vidpipe-bench-celery-"))
    s3 = S3()
    saved_env = dict(os.environ)
    results = []
    try:
        for mode in prm.modes:
            log(f"celery bench: {mode}, {prm.projects} projects × {prm.scenes} scenes")
            results.append(run_mode(mode, prm, s3, workdir))
            log(f"celery bench: {mode} done")
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        s3.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    figs = [figures(r, prm) for r in results]

    report = Report(
        "celery",
        f"celery — {prm.projects} projects × {prm.scenes} scenes through the daemon's run queue: "
        f"Celery executor on {prm.workers} workers vs in-process, video limit {prm.limit}",
    )
    report.setup = [
        f"Per mode a fresh deployment: PostgreSQL for both databases (two new databases, dropped afterwards), artifacts in "
        f"S3 (moto server, new bucket), google provider on the wire emulator (text {T_TEXT} s, image {T_IMAGE} s, video "
        f"{prm.video_latency_s} s per operation, {IMAGE_HEIGHT}p media), polling {POLL_INITIAL_S}/{POLL_MAX_S} s.",
        f"{prm.projects} prompt files ({prm.scenes} scenes of {CLIP_S} s) dropped into the inbox at once; the daemon's "
        f"inbox sensor registers them and requests the runs; its run queue starts at most {prm.runs_at_once} at a time "
        f"(`max_concurrent_runs`)"
        + (f", launching them in {prm.dequeue_threads} threads" if prm.dequeue_threads else ", launching them one at a time")
        + f"; pool `video-operations` limit {prm.limit}.",
        f"celery: {prm.workers} `vidpipe worker --concurrency {prm.concurrency}` processes on RabbitMQ (queue of their own), "
        "each with its own empty data dir; in_process: the default executor in each run worker.",
        f"Wall = first run enqueued → last run ended (the inbox sensor's wait before that is shown apart). Ideal = T_text + "
        f"(N+1)·T_image + ceil(projects·scenes/limit)·T_video + T_stitch: the video operations packed perfectly into "
        f"the {prm.limit} slots.",
        "Slot use = Σ(operation submitted → saved, ledger) / (limit × (first submit → last saved)).",
        "CPU = user+sys of every process of the deployment (daemon, code server, run workers, Celery workers, children), "
        "sampled every 0.5 s, start-up excluded; PostgreSQL, RabbitMQ, moto and the emulator are not counted. Peak RSS = "
        "largest sum over those processes at one sample.",
        "Celery overhead per step = event log 'Submitting celery task' → STEP_START; hand-over = previous step's "
        "STEP_SUCCESS → next STEP_START (both modes). One run per mode (a single long experiment).",
    ]
    cols = ["executor", "runs ok", "wall s", "ideal s", "wall / ideal", "video phase s", "slot use, video phase"]
    rows = [
        [
            f["mode"],
            f"{f['ok']}/{prm.projects}",
            f"{f['wall_s']:.1f}",
            f"{f['ideal_s']:.1f}",
            f"{f['ratio']:.2f}×",
            f"{f['phase_s']:.1f}" if f["phase_s"] else "–",
            f"{f['slot_use']:.0%}" if f["slot_use"] is not None else "–",
        ]
        for f in figs
    ]
    report.tables.append(table(cols, rows))
    cols = ["executor", "CPU s / project", "peak RSS MiB (all) / per project", "run worker peak RSS MiB, median"]
    rows = [
        [
            f["mode"],
            f"{f['cpu_per_project_s']:.1f}",
            f"{mib(f['peak_total_rss'])} / {mib(f['peak_rss_per_project'])}",
            mib(f["run_worker_rss"]["median"]),
        ]
        for f in figs
    ]
    report.tables.append(table(cols, rows))
    cols = [
        "executor",
        "enqueued → run start s",
        "run s",
        "Celery submit → step start s",
        "step hand-over s",
        "video op s",
    ]
    rows = [
        [
            f["mode"],
            fmt_s(f["queue_to_start_s"], 1),
            fmt_s(f["run_s"], 1),
            fmt_s(f["overhead_s"], 2) if f["overhead_s"]["n"] else "–",
            fmt_s(f["handover_s"], 2),
            fmt_s(f["op_s"], 2),
        ]
        for f in figs
    ]
    report.tables.append(table(cols, rows))
    cols = [
        "executor",
        "peak in-flight (= limit)",
        "video submissions / scenes (= 1)",
        "scenes with a clip",
        "slots held after",
        "final.mp4 in bucket",
        "steps per worker",
    ]
    rows = [
        [
            f["mode"],
            f"{f['peak_inflight']}{_mark(f['peak_inflight'] == prm.limit)}",
            f"{f['video_submits']} / {prm.projects * prm.scenes} = {f['paid_per_scene']:.2f}{_mark(f['paid_per_scene'] == 1)}",
            f"{f['scenes_with_clip']}/{prm.projects * prm.scenes}",
            f["slots_held_after"],
            f"{f['finals_in_bucket']}/{prm.projects}",
            ", ".join(f"{k}: {v}" for k, v in sorted(f["hosts"].items())) or "–",
        ]
        for f in figs
    ]
    report.tables.append(table(cols, rows))
    for f in figs:
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in sorted(f["cpu_s"].items()))
        report.notes.append(
            f"{f['mode']}: CPU s by process kind: {cpu}; inbox drop → last run ended {f['wall_from_drop_s']:.1f} s; "
            f"median stitch {f['stitch_s']:.2f} s"
            + (f"; files left in the workers' data dirs: {f['worker_data_files']}" if f["worker_data_files"] is not None else "")
        )
    report.data = {
        "params": prm.__dict__,
        "figures": figs,
        "raw": [{k: v for k, v in r.items() if k != "facts"} | {"facts": [x.__dict__ for x in r["facts"]]} for r in results],
    }
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.celery", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="4 projects (a smoke run, not for the record)")
    p.add_argument("--projects", type=int, default=None, help="projects dropped at once (default 50; --quick 4)")
    p.add_argument("--scenes", type=int, default=4)
    p.add_argument("--limit", type=int, default=4, help="video-operations pool limit")
    p.add_argument("--runs-at-once", type=int, default=4, help="the run queue's max_concurrent_runs")
    p.add_argument("--video-latency", type=float, default=3.0, help="seconds per video operation at the emulator")
    p.add_argument("--concurrency", type=int, default=2, help="steps at once per Celery worker")
    p.add_argument("--dequeue-threads", type=int, default=0, help="the daemon launches runs in N threads (0: one at a time)")
    p.add_argument("--modes", default="in_process,celery", help="comma-separated: in_process, celery")
    args = p.parse_args(argv)
    prm = Params(
        projects=args.projects or (4 if args.quick else 50),
        scenes=args.scenes,
        limit=args.limit,
        runs_at_once=args.runs_at_once,
        video_latency_s=args.video_latency,
        concurrency=args.concurrency,
        modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),
        dequeue_threads=args.dequeue_threads,
    )
    from bench.__main__ import run_one

    return run_one("celery", args.quick, run=lambda quick: run(quick, prm))


if __name__ == "__main__":
    sys.exit(main())
