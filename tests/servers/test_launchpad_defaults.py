"""The Launchpads of new_project, edit_scene and retake open filled: the webserver serves each
job's example config as its default preset (what the Launchpad loads into its editor), read here
through Dagster's GraphQL API against the test webserver."""

from __future__ import annotations

import pytest
import yaml

PRESETS = """
query Presets($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline { presets { name runConfigYaml } }
  }
}
"""


@pytest.mark.parametrize(
    ("job", "op", "keys"),
    [
        ("new_project", "register_project", {"prompt"}),
        ("edit_scene", "change_scene", {"project", "scene"}),
        ("retake", "take_again", {"project", "frame", "dry_run"}),
    ],
)
def test_each_launchpad_opens_with_its_example(webserver, deployment, job, op, keys):
    gql = deployment.graphql()
    selector = {
        "repositoryLocationName": deployment.location["location"],
        "repositoryName": deployment.location["repository"],
        "pipelineName": job,
    }
    found = gql(PRESETS, selector=selector)["pipelineOrError"]
    assert found["__typename"] == "Pipeline", found
    [preset] = found["presets"]
    config = yaml.safe_load(preset["runConfigYaml"])
    assert preset["name"] == "default" and keys <= set(config["ops"][op]["config"])
