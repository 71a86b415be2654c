"""`VIDPIPE_DAGSTER_EXECUTOR=celery` for real: a `dagster-daemon`, two `vidpipe worker` processes
(each with its own empty data dir, as on separate hosts) on a real RabbitMQ, vidpipe's and
Dagster's databases on PostgreSQL, artifacts in S3 (moto), the google provider on the emulator.
One daemon and one pair of workers serve the whole module, on a queue of its own.

Runs leave no queue on the broker: each run's rpc:// reply queue (named by its steps' events) is
gone once the run ends, and where the broker's queues can be listed (`rabbitmqctl` on this host,
or the management API at VIDPIPE_TEST_RABBITMQ_API) the list is the same after the runs as before
(so the broker should not be shared with another test session meanwhile)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import GOOGLE_ENV
from tests.helpers import latest_metadata
from tests.postgres.pg import POSTGRES_YAML, PgServer
from tests.s3server import S3Bucket, S3Server
from tests.servers.deployment import BIN, REPO, WORKSPACE, ServerProcess, start_daemon, wait_for
from vidpipe_core.config import get_settings
from vidpipe_core.errors import redact_url
from vidpipe_dagster.celery_executor import celery_app, celery_config, queue_consumers
from vidpipe_dagster.healing import OWNER_TAG, PARTITION_TAG, PID_TAG, RUN_WORKER
from vidpipe_emulator import Emulator

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BROKER = os.environ.get("VIDPIPE_TEST_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
POOL = "video-operations"
LIMIT = 2
SCENES, CLIP_S = 2, 4  # Veo's shortest clip is 4 s; the emulator encodes it at 144p, 6 fps
RUN_TIMEOUT_S = 240
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
EXECUTING = re.compile(r"Executing steps (?P<step>\w+) in celery worker")


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]  # the daemon's (and the CLI's) environment
    home: Path
    queue: str
    pg: PgServer
    vidpipe_db: str
    dagster_db: str
    bucket: S3Bucket
    emulator: Emulator
    daemon: ServerProcess
    workers: dict[str, ServerProcess]  # node name -> process
    worker_dirs: dict[str, Path]

    def instance(self) -> dg.DagsterInstance:
        saved = {k: os.environ.get(k) for k in self.env if k.startswith("VIDPIPE_PG_")}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("VIDPIPE_PG_")})
        try:
            return dg.DagsterInstance.from_config(str(self.home))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def vidpipe(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "vidpipe"), *args], env=self.env, cwd=self.root, capture_output=True, text=True, timeout=timeout
        )

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.tail(6000)}" for p in [self.daemon, *self.workers.values()])


def _start_worker(name: str, env: dict[str, str], root: Path, queue: str) -> ServerProcess:
    args = [str(BIN / "vidpipe"), "worker", "--queue", queue, "--concurrency", "2", "--name", name, "--loglevel", "INFO"]
    worker = ServerProcess(f"vidpipe worker {name}", args, env, root / f"{name}.log", cwd=root)
    wait_for(f"{name} ready", lambda: " ready." in worker.tail(), 60, alive=worker.check_alive)
    return worker


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer, s3_session: S3Server) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("celery")
    queue = f"vidpipe-test-{uuid.uuid4().hex[:10]}"
    vidpipe_db, dagster_db = pg_server.create_database("celery_vidpipe"), pg_server.create_database("celery_dagster")
    bucket = S3Bucket(server=s3_session, bucket=f"vp-{uuid.uuid4().hex[:12]}")
    s3_session.client().create_bucket(Bucket=bucket.bucket)
    home = root / "dagster_home"
    home.mkdir()
    # dagster.postgres.yaml, with the video-operations limit of the test.
    yaml_text = POSTGRES_YAML.read_text().replace("default_limit: 4", f"default_limit: {LIMIT}")
    assert f"default_limit: {LIMIT}" in yaml_text
    # The daemon launches queued runs in threads: one by one, each launch waits for a run worker
    # to start (~10 s on a loaded 2-core machine), and the 4 runs would start 30-40 s apart.
    yaml_text += (
        "\nrun_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "  config:\n    dequeue_use_threads: true\n    dequeue_num_workers: 4\n"
    )
    (home / "dagster.yaml").write_text(yaml_text)

    emulator = Emulator(image_height=144, video_height=144, video_latency_s=1.0, fps=6)
    emulator.start()
    api_key = f"sk-sentinel-{uuid.uuid4().hex[:16]}"
    base = {k: v for k, v in os.environ.items() if k not in GOOGLE_ENV and not k.startswith(("VIDPIPE_", "AWS_", "DAGSTER_"))}
    env = {
        **base,
        **pg_server.dagster_env(dagster_db),
        **s3_session.env(),
        "PYTHONUNBUFFERED": "1",
        "DAGSTER_HOME": str(home),
        "VIDPIPE_DATA_DIR": str(root / "daemon-data"),
        "VIDPIPE_DATABASE_URL": pg_server.sqlalchemy_url(vidpipe_db),
        "VIDPIPE_ARTIFACTS_URL": bucket.url,
        "VIDPIPE_DAGSTER_EXECUTOR": "celery",
        "VIDPIPE_CELERY_BROKER": BROKER,
        "VIDPIPE_CELERY_QUEUE": queue,
        "VIDPIPE_PROVIDER": "google",
        "VIDPIPE_REVIEW": "none",  # renders everything: no review gate
        "VIDPIPE_DEFAULT_SCENES": str(SCENES),
        "VIDPIPE_DEFAULT_CLIP_DURATION": str(CLIP_S),
        "VIDPIPE_UI_PREVIEWS": "false",
        "VIDPIPE_INBOX_MIN_AGE_S": "0",
        "VIDPIPE_HEARTBEAT_INTERVAL_S": "1",
        "VIDPIPE_POLL_INITIAL_S": "0.1",
        "VIDPIPE_POLL_MAX_S": "0.3",
        "VIDPIPE_POLL_TIMEOUT_S": "120",
        "VIDPIPE_RETRY_INITIAL_S": "0.01",
        "VIDPIPE_RETRY_MAX_S": "0.05",
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        "GOOGLE_API_KEY": api_key,
        "GOOGLE_VERTEX_BASE_URL": emulator.base_url,
        "GOOGLE_GEMINI_BASE_URL": emulator.base_url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    started: list[ServerProcess] = []
    try:
        daemon = start_daemon(env, root / "dagster-daemon.log")
        started.append(daemon)
        workers: dict[str, ServerProcess] = {}
        worker_dirs: dict[str, Path] = {}
        for name in ("w1", "w2"):
            worker_dirs[name] = root / f"{name}-data"
            worker_dirs[name].mkdir()
            workers[name] = _start_worker(name, {**env, "VIDPIPE_DATA_DIR": str(worker_dirs[name])}, root, queue)
            started.append(workers[name])
        cluster = Cluster(
            root, env, home, queue, pg_server, vidpipe_db, dagster_db, bucket, emulator, daemon, workers, worker_dirs
        )
        instance = cluster.instance()
        wait_for(
            "dagster-daemon heartbeats (sensor, run queue)",
            lambda: {"SENSOR", "QUEUED_RUN_COORDINATOR"} <= set(instance.get_daemon_heartbeats()),
            90,
            alive=daemon.check_alive,
        )
        yield cluster
    finally:
        for server in reversed(started):
            server.stop(grace=10)
        emulator.stop()
        _delete_queue(queue)


def _delete_queue(queue: str) -> None:
    """The module's queue is its own: remove it from the broker."""
    try:
        from kombu import Connection

        with Connection(BROKER, connect_timeout=5) as conn:
            conn.default_channel.queue_delete(queue)
    except Exception:
        pass


def _broker_queues() -> list[str] | None:
    """Every queue on the broker's virtual host, sorted: from `rabbitmqctl` when the broker runs on
    this host (it needs root or the Erlang cookie of the rabbitmq user: `sudo -n` is tried), else
    from the management API at VIDPIPE_TEST_RABBITMQ_API (e.g. http://127.0.0.1:15672, with the
    broker's user); None when neither can list them. (AMQP itself cannot list queues.)"""
    from urllib.parse import quote

    from kombu import Connection

    conn = Connection(BROKER)
    vhost = conn.virtual_host or "/"
    names: list[str] | None = None
    if conn.hostname in {"127.0.0.1", "localhost", "::1"} and shutil.which("rabbitmqctl"):
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        cmd = [*sudo, "rabbitmqctl", "list_queues", "-q", "--no-table-headers", "-p", vhost, "name"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode == 0:
            names = proc.stdout.split()
    api = os.environ.get("VIDPIPE_TEST_RABBITMQ_API")
    if names is None and api:
        import requests

        reply = requests.get(
            f"{api.rstrip('/')}/api/queues/{quote(vhost, safe='')}", auth=(conn.userid, conn.password), timeout=10
        )
        reply.raise_for_status()
        names = [queue["name"] for queue in reply.json()]
    return sorted(names) if names is not None else None


def _queue_exists(name: str) -> bool:
    """Whether the broker has this queue (a passive declare: creates nothing)."""
    from kombu import Connection

    with Connection(BROKER, connect_timeout=5) as conn:
        channel = conn.channel()
        try:
            channel.queue_declare(queue=name, passive=True)
            return True
        except conn.channel_errors as exc:
            if getattr(exc, "code", None) == 404:
                return False
            raise


def _reply_queues(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, set[str]]:
    """Run id -> the reply queues its steps' results went to, as each worker received them."""
    out: dict[str, set[str]] = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = entry.dagster_event
            data = event.engine_event_data.metadata if event and event.engine_event_data else {}
            if "reply queue" in data:
                out.setdefault(run_id, set()).add(str(data["reply queue"].value))
    return out


def _nothing_left_on_the_broker(instance: dg.DagsterInstance, run_ids: list[str], before: list[str] | None) -> None:
    """Each run had one reply queue of its own (its run worker's), and none is left; the broker's
    queues are those it had before the runs."""
    replies = _reply_queues(instance, run_ids)
    assert set(replies) == set(run_ids) and all(len(names) == 1 and "" not in names for names in replies.values()), replies
    left = sorted(name for names in replies.values() for name in names if _queue_exists(name))
    assert not left, f"reply queues left on the broker: {left}"
    if before is None:
        warnings.warn("the broker's queues cannot be listed here (no rabbitmqctl, no VIDPIPE_TEST_RABBITMQ_API)", stacklevel=2)
        return
    after = _broker_queues()
    assert after == before, f"queues before the runs: {before}; after: {after}"


def _runs(instance: dg.DagsterInstance, project_ids: list[str]) -> list[dg.DagsterRun]:
    return [r for p in project_ids for r in instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: p}))]


def _wait_runs_ended(cluster: Cluster, project_ids: list[str], timeout: float = RUN_TIMEOUT_S) -> list[dg.DagsterRun]:
    instance = cluster.instance()

    def ended() -> list[dg.DagsterRun] | None:
        for proc in [cluster.daemon, *cluster.workers.values()]:
            proc.check_alive()
        runs = _runs(instance, project_ids)
        done = {r.tags[PARTITION_TAG] for r in runs if r.status in TERMINAL}
        return runs if done == set(project_ids) else None

    try:
        return wait_for(f"runs of {project_ids} to end", ended, timeout, interval=1.0)
    except (TimeoutError, RuntimeError) as exc:
        raise AssertionError(f"{exc}\n{cluster.logs()}") from None


def _executions(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str, bool]]:
    """(step, celery worker, redelivered) of each 'Executing steps ... in celery worker' event."""
    out = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        match = EXECUTING.search(event.message or "") if event else None
        if event is None or match is None:
            continue
        data = event.engine_event_data.metadata if event.engine_event_data else {}
        worker = getattr(data.get("Celery worker"), "value", "")
        redelivered = getattr(data.get("redelivered"), "value", "") == "True"
        out.append((match["step"], str(worker).split("@", 1)[0], redelivered))
    return out


def _check_video(cluster: Cluster, project_id: str, seconds: float) -> None:
    import av

    data = cluster.bucket.get(f"vidpipe/projects/{project_id}/final.mp4")
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert container.duration is not None and abs(container.duration / 1e6 - seconds) <= 0.3
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= 6 * seconds - 2


def _slots(instance: dg.DagsterInstance) -> tuple[list[str], list[str]]:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return [s.run_id for s in info.claimed_slots], [p.run_id for p in info.pending_steps]


def _no_broker_secret_stored(cluster: Cluster) -> None:
    password = re.match(r"\w+://[^:/@]*:([^@]*)@", BROKER)
    needles = ["amqp://", BROKER] + ([password.group(0)] if password else [])
    for db in (cluster.vidpipe_db, cluster.dagster_db):
        for table, text in cluster.pg.dump_text(db).items():
            for needle in needles:
                assert needle not in text, f"{needle!r} stored in {db}.{table}"
    for path in [*cluster.home.rglob("*"), *(p for d in cluster.worker_dirs.values() for p in d.rglob("*"))]:
        if path.is_file() and path.stat().st_size < 5_000_000:
            text = path.read_bytes().decode("utf-8", "replace")
            assert "amqp://" not in text, f"broker URL written to {path}"


def test_four_inbox_projects_run_on_two_workers_within_the_limit(cluster: Cluster):
    cluster.emulator.reset()
    cluster.emulator.configure(video_latency_s=1.0)
    queues_before = _broker_queues()
    inbox = cluster.root / "daemon-data" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    subjects = ["a lighthouse at dusk", "a fox in the snow", "a paper boat on a canal", "a kite over dunes"]
    ids = [f"celery-{i + 1}" for i in range(len(subjects))]
    for project_id, subject in zip(ids, subjects, strict=True):
        tmp = inbox / f"{project_id}.json.tmp"
        tmp.write_text(json.dumps({"prompt": f"{subject}, slowly, in two shots", "id": project_id}))
        tmp.rename(inbox / f"{project_id}.json")

    runs = _wait_runs_ended(cluster, ids)
    instance = cluster.instance()
    failed = {r.tags[PARTITION_TAG]: r.status.value for r in runs if r.status != dg.DagsterRunStatus.SUCCESS}
    assert not failed, f"{failed}\n{cluster.logs()}"
    assert len(runs) == len(ids)

    for project_id in ids:
        _check_video(cluster, project_id, SCENES * CLIP_S)
    # Steps ran on both workers, and every step of every run ran on a worker.
    executions = [e for r in runs for e in _executions(instance, r.run_id)]
    assert {w for _, w, _ in executions} == {"w1", "w2"}, executions
    assert sorted(s for s, _, _ in executions) == sorted(
        ["storyboard", "characters", "clips", "narration", "final_video"] * len(ids)  # the keyframes: in the clips step
    )
    # The video-operations limit held across both workers: reached, never passed.
    stats = cluster.emulator.stats()
    assert stats["peak_inflight"] == LIMIT, stats
    paid = cluster.emulator.submissions_by_prompt
    assert len(paid) == SCENES * len(ids) and set(paid.values()) == {1}, paid
    assert _slots(instance) == ([], [])
    # Each run was owned by its own run worker (not one pid for every run of the code server).
    owners = {r.tags.get(PID_TAG) for r in runs}
    assert all(r.tags.get(OWNER_TAG) == RUN_WORKER for r in runs) and len(owners) == len(ids) and None not in owners
    # No hidden local state: the workers' data dirs hold no artifact; no broker secret anywhere.
    kept = [p for d in cluster.worker_dirs.values() for p in d.rglob("*") if p.is_file()]
    assert not kept, kept  # scratch only, emptied after each step
    _no_broker_secret_stored(cluster)
    assert all(
        cluster.pg.query(cluster.vidpipe_db, "SELECT lock_holder IS NULL FROM projects WHERE id = %s", (p,))[0][0] for p in ids
    )
    _nothing_left_on_the_broker(instance, [r.run_id for r in runs], queues_before)


def test_a_worker_killed_during_clips_loses_no_paid_scene(cluster: Cluster):
    cluster.emulator.reset()
    cluster.emulator.configure(video_latency_s=4.0)  # the clips step is surely mid-wait when killed
    project_id = "celery-killed"
    created = cluster.vidpipe("new", "a heron takes off from a misty lake", "--id", project_id)
    assert created.returncode == 0, created.stderr
    launch = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "launch",
            "-w",
            str(WORKSPACE),
            "-j",
            "render_project",
            "--tags",
            json.dumps({PARTITION_TAG: project_id}),
        ],
        env=cluster.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert launch.returncode == 0, launch.stderr
    instance = cluster.instance()

    def clips_worker() -> str | None:
        runs = _runs(instance, [project_id])
        if not runs:
            return None
        submitted = cluster.pg.query(
            cluster.vidpipe_db,
            "SELECT count(*) FROM video_clips WHERE project_id = %s AND status = 'submitted'",
            (project_id,),
        )[0][0]
        workers = [w for step, w, _ in _executions(instance, runs[0].run_id) if step == "clips"]
        # Every scene recorded as submitted (paid, in the ledger): an operation the provider
        # accepted a moment before the kill but the ledger never heard of cannot be re-attached.
        return workers[0] if workers and submitted == SCENES else None

    try:
        victim = wait_for("the clips step to submit its operations", clips_worker, RUN_TIMEOUT_S, interval=0.2)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{cluster.logs()}") from None
    os.killpg(cluster.workers[victim].pid, signal.SIGKILL)
    cluster.workers[victim].proc.wait(10)
    survivors = {n: w for n, w in cluster.workers.items() if n != victim}
    killed = cluster.workers
    cluster.workers = survivors  # _wait_runs_ended checks that the rest are alive
    try:
        (run,) = _wait_runs_ended(cluster, [project_id])
    finally:
        cluster.workers = killed
    instance = cluster.instance()
    executions = _executions(instance, run.run_id)
    if run.status == dg.DagsterRunStatus.SUCCESS:
        # The step went back to the queue and the other worker finished it.
        clips = [(w, again) for step, w, again in executions if step == "clips"]
        assert clips[0][0] == victim and clips[-1][0] != victim and clips[-1][1], executions
        # ... where it re-attached to both operations the killed worker had paid for.
        assert latest_metadata(instance, "clips", project_id).get("reattached") == SCENES
    else:  # the run failed instead: `vidpipe resume` finishes it, paying nothing twice
        resumed = cluster.vidpipe("resume", project_id, timeout=RUN_TIMEOUT_S)
        assert resumed.returncode == 0, resumed.stderr
    _check_video(cluster, project_id, SCENES * CLIP_S)
    paid = cluster.emulator.submissions_by_prompt
    assert len(paid) == SCENES and set(paid.values()) == {1}, paid
    assert _slots(instance) == ([], [])
    lock = cluster.pg.query(cluster.vidpipe_db, "SELECT lock_holder FROM projects WHERE id = %s", (project_id,))
    assert lock == [(None,)]
    _no_broker_secret_stored(cluster)
    # The redelivered step answered on the run's reply queue too, and that queue is gone.
    replies = _reply_queues(instance, [run.run_id])
    assert replies and not [name for name in replies[run.run_id] if _queue_exists(name)], replies


def test_dagster_job_execute_fails_fast_when_no_worker_takes_the_queue(cluster: Cluster):
    """`dagster job execute` with the celery executor is the run worker: with no worker on its queue
    it fails after VIDPIPE_CELERY_WORKER_WAIT_S, in one line that says what to do, instead of
    waiting forever. Nothing is sent, written or paid."""
    from kombu import Connection

    settings = get_settings(celery_broker=BROKER)
    app = celery_app(settings, cluster.queue)
    alive = sum(worker.proc.poll() is None for worker in cluster.workers.values())  # one was killed above
    assert alive and queue_consumers(app, cluster.queue) == alive
    assert queue_consumers(app, f"{cluster.queue}-never-declared") == 0
    project_id = "celery-no-worker"
    created = cluster.vidpipe("new", "a lantern floats over a pond", "--id", project_id)
    assert created.returncode == 0, created.stderr
    idle = f"{cluster.queue}-idle"  # declared as a worker declares it, then left without consumers
    [declared] = celery_config(settings, idle)["task_queues"]
    with Connection(BROKER, connect_timeout=5) as conn:
        declared(conn.default_channel).declare()
    try:
        proc = subprocess.run(
            [str(BIN / "dagster"), "job", "execute", "-m", "vidpipe_dagster.definitions", "-j", "render_project"]
            + ["--tags", json.dumps({PARTITION_TAG: project_id})],
            env={**cluster.env, "VIDPIPE_CELERY_QUEUE": idle, "VIDPIPE_CELERY_WORKER_WAIT_S": "2"},
            cwd=cluster.root,
            capture_output=True,
            text=True,
            timeout=180,
        )
        with Connection(BROKER, connect_timeout=5) as conn:
            _, messages, consumers = conn.default_channel.queue_declare(queue=idle, passive=True)
    finally:
        with Connection(BROKER, connect_timeout=5) as conn:
            conn.default_channel.queue_delete(idle)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    expected = (
        f"ConfigurationError: no `vidpipe worker` takes steps from queue '{idle}' on the broker {redact_url(BROKER)} "
        f"(waited 2 s, VIDPIPE_CELERY_WORKER_WAIT_S); start one on any host (`vidpipe worker --queue {idle}`"
    )
    assert expected in out, out[-3000:]
    assert f":{Connection(BROKER).password}@" not in out
    assert (messages, consumers) == (0, 0)  # no step was sent
    assert cluster.pg.query(cluster.vidpipe_db, "SELECT storyboard IS NULL FROM projects WHERE id = %s", (project_id,)) == [
        (True,)
    ]
    assert not [key for key in cluster.bucket.keys() if f"/projects/{project_id}/" in key]
