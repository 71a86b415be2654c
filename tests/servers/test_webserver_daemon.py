"""vidpipe operated like a Dagster deployment: a real `dagster-webserver` and `dagster-daemon`
(subprocesses, `workspace.yaml`, the repository's `dagster.yaml` on SQLite). Projects are
listed, launched and read back through the webserver's GraphQL API; the daemon dequeues the
runs; a prompt file dropped into the inbox becomes a finished project with nothing but the
daemon involved."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest

from tests.servers.deployment import GraphQL, wait_for
from vidpipe_core import media
from vidpipe_core.storage import Layout
from vidpipe_dagster.runner import register, render

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 120
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

PARTITIONS = """
query Partitions($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      partitionDefinition { type name dimensionTypes { type dynamicPartitionsDefinitionName } }
      partitionKeysByDimension { name partitionKeys }
    }
  }
}"""

LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status tags { key value } } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""

RUN_STATUS = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status jobName tags { key value } assetSelection { path } }
    ... on Error { message }
  }
}"""

REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""

MATERIALIZATIONS = """
query Materializations($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition
        runId
        metadataEntries {
          __typename
          label
          ... on TextMetadataEntry { text }
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
          ... on PathMetadataEntry { path }
          ... on BoolMetadataEntry { boolValue }
          ... on MarkdownMetadataEntry { mdStr }
          ... on TableMetadataEntry { table { records } }
        }
      }
    }
  }
}"""

CHECK_EXECUTIONS = """
query Checks($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 20) {
    runId
    status
    evaluation { success description }
  }
}"""

DAEMON_HEALTH = """
query { instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"""

SENSOR = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { name minIntervalSeconds sensorState { status } }
    ... on Error { message }
  }
}"""


def _metadata(entry_list: list[dict]) -> dict:
    out = {}
    for e in entry_list:
        value = next((e[k] for k in ("text", "intValue", "floatValue", "path", "boolValue", "mdStr", "table") if k in e), None)
        out[e["label"]] = value
    return out


def _materialization(gql: GraphQL, asset: str, partition: str) -> dict:
    data = gql(MATERIALIZATIONS, assetKey={"path": [asset]}, partitions=[partition])["assetOrError"]
    assert data["__typename"] == "Asset", data
    mats = data["assetMaterializations"]
    assert mats, f"{asset}[{partition}] has no materialization"
    assert mats[0]["partition"] == partition
    return {"run_id": mats[0]["runId"], **_metadata(mats[0]["metadataEntries"])}


def _wait_for_run(gql: GraphQL, run_id: str, timeout: float = RUN_TIMEOUT_S) -> dict:
    seen: list[str] = []

    def finished() -> dict | None:
        run = gql(RUN_STATUS, runId=run_id)["runOrError"]
        assert run["__typename"] == "Run", run
        if not seen or seen[-1] != run["status"]:
            seen.append(run["status"])
        return run if run["status"] in TERMINAL else None

    run = wait_for(f"run {run_id} to finish", finished, timeout)
    run["statuses_seen"] = seen
    return run


def test_graphql_lists_launches_and_reads_back_a_partition(webserver, daemon, deployment):
    gql = deployment.graphql()
    # Registered from the CLI side (this process): both become partitions the webserver lists.
    for pid, prompt in (
        ("gql-harbour", "Boats leave the harbour at dawn. Gulls follow the last boat."),
        ("gql-orchard", "Apples ripen in an orchard. A girl picks one."),
    ):
        register(prompt, id=pid, scenes=2, clip_duration=1, provider="animatic")

    node = gql(PARTITIONS, assetKey={"path": ["final_video"]})["assetNodeOrError"]
    assert node["__typename"] == "AssetNode", node
    assert node["partitionDefinition"]["type"] == "DYNAMIC"
    assert node["partitionDefinition"]["dimensionTypes"][0]["dynamicPartitionsDefinitionName"] == "projects"
    keys = node["partitionKeysByDimension"][0]["partitionKeys"]
    assert {"gql-harbour", "gql-orchard"} <= set(keys)

    health = {d["daemonType"]: d["healthy"] for d in gql(DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]}
    assert health.get("QUEUED_RUN_COORDINATOR") and health.get("SENSOR"), health
    sensor = gql(
        SENSOR,
        selector={
            "repositoryLocationName": deployment.location["location"],
            "repositoryName": deployment.location["repository"],
            "sensorName": "inbox_sensor",
        },
    )["sensorOrError"]
    assert sensor["__typename"] == "Sensor", sensor
    assert sensor["sensorState"]["status"] == "RUNNING", "the inbox sensor must be on without anyone starting it"

    # Launch like the UI's Materialize button: a render_project run tagged with the partition.
    params = {
        "selector": {
            "repositoryLocationName": deployment.location["location"],
            "repositoryName": deployment.location["repository"],
            "jobName": "render_project",
        },
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "gql-harbour"}]},
    }
    launched = gql(LAUNCH_RUN, executionParams=params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    # dagster.yaml's `concurrency.runs` means a queued run coordinator: the daemon starts it.
    assert launched["run"]["status"] == "QUEUED"

    run = _wait_for_run(gql, run_id)
    assert run["status"] == "SUCCESS", f"run {run_id} ended {run['status']} (statuses seen: {run['statuses_seen']})"
    assert {"key": "dagster/partition", "value": "gql-harbour"} in run["tags"]

    storyboard = _materialization(gql, "storyboard", "gql-harbour")
    assert storyboard["run_id"] == run_id and storyboard["scene_count"] == 2
    assert storyboard["provider"] == "animatic"
    final = _materialization(gql, "final_video", "gql-harbour")
    assert final["run_id"] == run_id
    assert final["resolution"] == "256x144" and final["video_codec"] == "h264"
    assert final["scenes_in_video"] == 2 and abs(final["duration_s"] - 2.0) <= 0.25
    # What the UI renders, as the webserver serves it: the scene table (numbered from 1) and the images.
    assert [json.loads(r)["scene"] for r in final["scenes"]["records"]] == [1, 2]
    assert final["preview"].startswith("![preview](data:image/") and "Total cost" in final["summary"]
    assert final["path"].endswith("projects/gql-harbour/final.mp4")
    info = media.probe(final["path"])
    assert info.has_video and (info.width, info.height) == (256, 144)

    checks = gql(CHECK_EXECUTIONS, assetKey={"path": ["final_video"]}, checkName="final_video_valid")["assetCheckExecutions"]
    mine = [c for c in checks if c["runId"] == run_id]
    assert mine and mine[0]["status"] == "SUCCEEDED" and mine[0]["evaluation"]["success"], checks

    # A partial re-run (what `vidpipe stitch`, `regenerate` and `resume` start) is a run of the
    # code location's render_project job with an asset selection, so the UI can re-execute it.
    partial = render("gql-harbour", assets=["final_video"])
    assert partial.success
    parent = gql(RUN_STATUS, runId=partial.run_id)["runOrError"]
    assert parent["jobName"] == "render_project" and parent["assetSelection"] == [{"path": ["final_video"]}], parent
    relaunched = gql(REEXECUTE, params={"parentRunId": partial.run_id, "strategy": "ALL_STEPS"})["launchPipelineReexecution"]
    assert relaunched["__typename"] == "LaunchRunSuccess", relaunched
    rerun = _wait_for_run(gql, relaunched["run"]["runId"])
    assert rerun["status"] == "SUCCESS", f"re-execution ended {rerun['status']} (statuses seen: {rerun['statuses_seen']})"
    assert rerun["jobName"] == "render_project" and rerun["assetSelection"] == [{"path": ["final_video"]}]
    assert _materialization(gql, "final_video", "gql-harbour")["run_id"] == rerun["runId"]
    assert _materialization(gql, "storyboard", "gql-harbour")["run_id"] == run_id  # not re-run

    # The other partition was never launched.
    data = gql(MATERIALIZATIONS, assetKey={"path": ["final_video"]}, partitions=["gql-orchard"])["assetOrError"]
    assert data["assetMaterializations"] == []


def test_inbox_files_become_finished_projects_with_only_the_daemon(daemon, deployment):
    """No webserver and no CLI: the daemon's inbox sensor registers the projects and requests runs,
    the daemon's run queue launches them, and the videos end up in the artifact store. A plain-text
    prompt (id generated from the prompt) and a YAML file (explicit id and settings)."""
    instance = deployment.instance()
    deployment.inbox.mkdir(parents=True, exist_ok=True)
    files = {
        "rowing.txt": "Two rowers race across a misty lake. The winner raises an oar.",
        "lantern.yaml": "id: inbox-lantern\nprompt: A paper lantern floats over a lake. It lands on the far shore.\n"
        "scenes: 2\nclip_duration: 1\nprovider: animatic\n",
    }
    for name, text in files.items():  # written elsewhere, renamed in: appears complete, like a good producer
        staged = deployment.root / name
        staged.write_text(text)
        staged.rename(deployment.inbox / name)
    t0 = time.monotonic()

    def finished_runs() -> dict[str, dg.DagsterRun] | None:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"vidpipe/origin": "inbox"}))
        by_file = {}
        for run in runs:
            source = run.tags.get("vidpipe/inbox_file", "")
            for name in files:
                if source.endswith(f"--{name}") and run.is_finished:
                    by_file[name] = run
        return by_file if len(by_file) == len(files) else None

    try:
        runs = wait_for("finished runs for both inbox files", finished_runs, 150, interval=1.0)
    except TimeoutError:
        left = sorted(p.name for p in deployment.inbox.iterdir())
        raise AssertionError(
            f"inbox files did not become finished runs; inbox now holds {left}; sensor ticks: {_sensor_ticks(instance)}"
        ) from None
    elapsed = time.monotonic() - t0

    from vidpipe_core.projects import load_spec
    from vidpipe_core.services import Services

    services = Services.create()
    for name, run in runs.items():
        project_id = run.tags["dagster/partition"]
        assert run.status == dg.DagsterRunStatus.SUCCESS, f"{name}: run {run.run_id} of {project_id} ended {run.status}"
        assert instance.has_dynamic_partition("projects", project_id)
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("final_video"), asset_partitions=[project_id]), limit=1
        ).records
        assert records and records[0].run_id == run.run_id
        spec = load_spec(services, project_id)
        info = media.probe(services.store.path(project_id, Layout.FINAL))
        assert info.has_video and abs(info.duration_s - spec.scenes * spec.clip_duration) <= 0.25, (name, info)
        assert (deployment.inbox / "accepted" / f"{project_id}--{name}").is_file()
    assert runs["lantern.yaml"].tags["dagster/partition"] == "inbox-lantern"
    assert not [p for p in deployment.inbox.iterdir() if p.is_file()], "files left unprocessed in the inbox"
    print(f"inbox files -> finished projects in {elapsed:.1f}s")


def _sensor_ticks(instance: dg.DagsterInstance) -> list[str]:
    out = []
    for state in instance.all_instigator_state(instigator_type=dg.InstigatorType.SENSOR):
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=5):
            out.append(f"{state.instigator_name}: {tick.status.value} {tick.error.message if tick.error else ''}".strip())
    return out


def test_dagster_job_launch_queues_projects_for_the_daemon(daemon, deployment):
    """Many projects: `dagster job launch` only enqueues (the recipe of docs/automation.md); the daemon's run
    queue starts them, at most `max_concurrent_runs` at a time, each in its own run worker."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from tests.servers.deployment import REPO
    from vidpipe_core.services import Services

    instance = deployment.instance()
    ids = [f"queued-{i}" for i in range(2)]
    for pid in ids:
        register(
            f"Kites number {pid} rise over the dunes. They land at dusk.", id=pid, scenes=2, clip_duration=1, provider="animatic"
        )
    dagster = str(Path(sys.executable).parent / "dagster")
    for pid in ids:
        proc = subprocess.run(
            [
                dagster,
                "job",
                "launch",
                "-w",
                str(REPO / "workspace.yaml"),
                "-j",
                "render_project",
                "--tags",
                json.dumps({"dagster/partition": pid}),
            ],
            cwd=REPO,
            env=deployment.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    def finished() -> list[dg.DagsterRun] | None:
        runs = [r for pid in ids for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": pid}))]
        return runs if len(runs) == len(ids) and all(r.is_finished for r in runs) else None

    runs = wait_for("the launched runs to finish", finished, RUN_TIMEOUT_S, interval=1.0)
    for run in runs:
        assert run.status == dg.DagsterRunStatus.SUCCESS, run
        queued = [
            e
            for e in instance.all_logs(run.run_id)
            if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_ENQUEUED
        ]
        assert queued, f"run {run.run_id} was not queued"
        pid = run.tags["dagster/partition"]
        info = media.probe(Services.create().store.path(pid, Layout.FINAL))
        assert info.has_video and abs(info.duration_s - 2.0) <= 0.25
