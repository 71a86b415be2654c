"""Driving vidpipe from another program, over Dagster's GraphQL API (docs/python-client.md).

Dagster's own Python client (`dagster_graphql.DagsterGraphQLClient`) starts jobs and reads a run's
status; everything it submits here goes through it. What it has no public call for, this module asks
the webserver's GraphQL endpoint itself, in four documented reads: the run a `new_project` or
`approve_project` run started (the render run carries the tag ``vidpipe/created_by_run`` or
``vidpipe/approved_by_run``), the
project a `new_project` run registered (its tag ``vidpipe/project``), why a run failed (the message
a person would read in the UI: "2 problems: …"), and a project's final video (path, cost) from its
latest `final_video` materialization. A caller never writes a GraphQL query.

    client = VidpipeClient("127.0.0.1", 3000)
    made = client.new_project("A paper boat on a pond at dawn", review="keyframes")
    render = client.started_by(made)               # the render_project run the sensor started
    client.wait(render)                            # SUCCESS: awaiting approval (keyframes made)
    approval = client.approve(client.project_of(made))
    client.wait(client.started_by(approval))
    video = client.final_video(client.project_of(made))   # FinalVideo(path=..., cost_usd=...)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from vidpipe_core.steps import FINAL_VIDEO
from vidpipe_dagster.create import PROJECT_TAG
from vidpipe_dagster.instance import NEW_PROJECT_JOB
from vidpipe_dagster.materializations import SUPERSEDED_KEY
from vidpipe_dagster.review import APPROVE_OP, APPROVE_PROJECT_JOB, APPROVED_BY_TAG, CREATED_BY_TAG

ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

_RUN = """query Run($runId: ID!) { runOrError(runId: $runId) {
  __typename ... on Run { status tags { key value } } ... on PythonError { message } } }"""
_STARTED_BY = """query StartedBy($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}, limit: 5) {
  __typename ... on Runs { results { runId jobName } } ... on PythonError { message } } }"""
_FAILURE = """query Failure($runId: ID!) { logsForRun(runId: $runId) {
  __typename ... on EventConnection { events { __typename
    ... on ExecutionStepFailureEvent { failureMetadata { description } error { message } }
    ... on RunFailureEvent { message } } } ... on PythonError { message } } }"""
_FINAL = """query Final($key: AssetKeyInput!, $partition: String!) { assetOrError(assetKey: $key) {
  __typename ... on Asset { assetMaterializations(partitions: [$partition], limit: 1) { runId metadataEntries {
    label __typename ... on PathMetadataEntry { path } ... on FloatMetadataEntry { floatValue }
    ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue } } } } } }"""


class VidpipeClientError(Exception):
    """The webserver refused a query, or a run did not end as asked."""


@dataclass(frozen=True)
class FinalVideo:
    project_id: str
    path: str  # where the deployment stored final.mp4 (a local path or an s3:// URI)
    cost_usd: float  # what the whole project cost (the ledger)
    run_id: str  # the render run that made it


class VidpipeClient:
    """vidpipe's jobs through Dagster's GraphQL client; the host and port of `dagster-webserver`."""

    def __init__(self, hostname: str = "127.0.0.1", port_number: int = 3000, *, timeout: float = 60.0) -> None:
        self.dagster = DagsterGraphQLClient(hostname, port_number=port_number, timeout=int(timeout))
        self._url = f"http://{hostname}:{port_number}/graphql"
        self._timeout = timeout

    # -- what Dagster's client does (public calls only) ------------------------------------------
    def new_project(self, prompt: str, **fields: Any) -> str:
        """Start a `new_project` run with the fields of `vidpipe new` (``scenes=3``, ``review="none"``…);
        returns its run id. A bad field fails that run: read why with `failure`."""
        config = {"prompt": prompt, **fields}
        return self.dagster.submit_job_execution(NEW_PROJECT_JOB, run_config={"ops": {"register_project": {"config": config}}})

    def approve(self, project_id: str, max_cost_usd: float | None = None) -> str:
        """Start an `approve_project` run (what `vidpipe approve` does); returns its run id."""
        config: dict[str, Any] = {"project_id": project_id}
        if max_cost_usd is not None:
            config["max_cost_usd"] = max_cost_usd
        return self.dagster.submit_job_execution(APPROVE_PROJECT_JOB, run_config={"ops": {APPROVE_OP: {"config": config}}})

    def status(self, run_id: str) -> DagsterRunStatus:
        return self.dagster.get_run_status(run_id)

    def wait(self, run_id: str, timeout: float = 600.0, interval: float = 1.0) -> DagsterRunStatus:
        """The run's status once it ended (SUCCESS, FAILURE or CANCELED); VidpipeClientError after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(run_id)
            if status in ENDED:
                return status
            if time.monotonic() > deadline:
                raise VidpipeClientError(f"run {run_id} is still {status.value} after {timeout:.0f} s")
            time.sleep(interval)

    # -- what it has no public call for ---------------------------------------------------------
    def project_of(self, run_id: str) -> str | None:
        """The project a `new_project` run registered or found (None before it did, or if it failed)."""
        return self._tags(run_id).get(PROJECT_TAG)

    def started_by(self, run_id: str, timeout: float = 120.0, interval: float = 1.0) -> str:
        """The render_project run that a `new_project` or `approve_project` run started (its sensor
        starts it a few seconds after the run succeeded). Waits up to ``timeout`` seconds; fails at
        once, with the run's own failure, when the run failed."""
        deadline = time.monotonic() + timeout
        while True:
            for tag in (CREATED_BY_TAG, APPROVED_BY_TAG):
                found = self._query(_STARTED_BY, tags=[{"key": tag, "value": run_id}])["runsOrError"]
                if found["__typename"] != "Runs":
                    raise VidpipeClientError(found.get("message", str(found)))
                if found["results"]:
                    return str(found["results"][0]["runId"])
            status = self.status(run_id)
            if status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
                raise VidpipeClientError(f"run {run_id} {status.value.lower()}: {self.failure(run_id) or 'no message'}")
            if time.monotonic() > deadline:
                raise VidpipeClientError(f"no render run was started by {run_id} within {timeout:.0f} s (status {status.value})")
            time.sleep(interval)

    def failure(self, run_id: str) -> str | None:
        """Why the run failed, as a person reads it in the UI (a bad spec: "N problems: …"); None
        when nothing failed."""
        logs = self._query(_FAILURE, runId=run_id)["logsForRun"]
        if logs["__typename"] != "EventConnection":
            raise VidpipeClientError(logs.get("message", str(logs)))
        for event in logs["events"]:
            if event["__typename"] == "ExecutionStepFailureEvent":
                described = (event.get("failureMetadata") or {}).get("description")
                return str(described or (event.get("error") or {}).get("message") or "")
        for event in logs["events"]:
            if event["__typename"] == "RunFailureEvent":
                return str(event["message"])
        return None

    def final_video(self, project_id: str) -> FinalVideo | None:
        """The project's final video from its latest `final_video` materialization; None when it has
        none (or the latest is an earlier project's with the same id)."""
        found = self._query(_FINAL, key={"path": [FINAL_VIDEO]}, partition=project_id)["assetOrError"]
        if found["__typename"] != "Asset" or not found["assetMaterializations"]:
            return None
        latest = found["assetMaterializations"][0]
        entries = {e["label"]: e for e in latest["metadataEntries"]}
        if SUPERSEDED_KEY in entries or "path" not in entries:
            return None
        cost = entries.get("total_cost_usd", {})
        return FinalVideo(
            project_id=project_id,
            path=str(entries["path"]["path"]),
            cost_usd=float(cost.get("floatValue") or cost.get("intValue") or 0.0),
            run_id=str(latest["runId"]),
        )

    def _tags(self, run_id: str) -> dict[str, str]:
        run = self._query(_RUN, runId=run_id)["runOrError"]
        if run["__typename"] != "Run":
            raise VidpipeClientError(run.get("message", f"no run {run_id}"))
        return {t["key"]: t["value"] for t in run["tags"]}

    def _query(self, query: str, **variables: Any) -> dict[str, Any]:
        try:
            response = requests.post(self._url, json={"query": query, "variables": variables}, timeout=self._timeout)
        except requests.RequestException as exc:
            raise VidpipeClientError(f"the Dagster webserver at {self._url} did not answer: {exc}") from None
        if response.status_code >= 400:
            raise VidpipeClientError(f"the Dagster webserver answered HTTP {response.status_code}: {response.text[:500]}")
        body = response.json()
        if body.get("errors"):
            raise VidpipeClientError(f"the Dagster webserver refused the query: {body['errors'][0].get('message')}")
        return dict(body["data"])
