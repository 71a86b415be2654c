"""The Dagster UI in a real browser (Debian's Chromium, driven by Playwright; no browser is
downloaded): the asset lineage and the partitions view of `final_video` show a project rendered
from the CLI, without errors. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import GOOGLE_ENV
from vidpipe_dagster.runner import register, render

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`; .ci/run does)",
    ),
]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ASSETS = ("storyboard", "characters", "keyframes", "clips", "final_video")
# What the Dagster UI shows when a page or a GraphQL query breaks.
ERROR_TEXT = re.compile(
    r"unexpected (graphql )?error|something went wrong|PythonError|page not found|"
    r"could not be loaded|error loading|no assets were found|does not exist",
    re.IGNORECASE,
)
PROJECT = "ui-lantern"


@pytest.fixture(scope="module")
def rendered_project(_deployment) -> str:
    """A project rendered in-process (CLI side) on the deployment's instance, before the browser starts."""
    with pytest.MonkeyPatch.context() as mp:
        for key in GOOGLE_ENV:
            mp.delenv(key, raising=False)
        for key, value in _deployment.env.items():
            if key.startswith("VIDPIPE_") or key == "DAGSTER_HOME":
                mp.setenv(key, value)
        register(
            "A paper lantern drifts over a lake. It lands on the far shore.",
            id=PROJECT,
            scenes=2,
            clip_duration=1,
            provider="animatic",
        )
        result = render(PROJECT)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
    return PROJECT


@pytest.fixture(scope="module")
def browser(rendered_project):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, webserver, deployment):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=deployment.webserver_url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and page.errors.append(f"console error: {msg.text}"))
    page.on("response", lambda r: r.status >= 500 and page.errors.append(f"HTTP {r.status} {r.url}"))
    try:
        yield page
    finally:
        context.close()


def _assert_no_error(page, name: str) -> None:  # type: ignore[no-untyped-def]
    body = page.locator("body").inner_text()
    match = ERROR_TEXT.search(body)
    assert match is None, f"{name}: the page shows {match.group(0)!r}"
    assert not page.errors, f"{name}: {page.errors}"


def test_ui_shows_the_lineage_and_the_materialized_partition(page, deployment, rendered_project, artifact_dir):
    # A first visit opens a "Join the Dagster community" dialog over the page; this is its "Skip".
    assert deployment.graphql()("mutation { setNuxSeen }")["setNuxSeen"] is True

    # Asset lineage (the "Lineage" entry of the navigation): the five assets and their edges.
    page.goto("/asset-groups")
    for name in ASSETS:
        page.get_by_text(name, exact=True).first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artifact_dir / "ui-asset-lineage.png"))
    _assert_no_error(page, "asset lineage")

    # final_video's partitions tab lists the project and counts it as materialized.
    page.goto("/assets/final_video?view=partitions")
    page.get_by_text(PROJECT, exact=True).first.wait_for(state="visible")
    page.get_by_text(re.compile(r"Materialized \(\d+\)")).first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artifact_dir / "ui-final-video-partitions.png"))
    _assert_no_error(page, "final_video partitions")
    counts = page.get_by_text(re.compile(r"Materialized \((\d+)\)")).first.inner_text()
    assert int(re.search(r"\d+", counts).group(0)) >= 1

    # Selecting the partition shows its latest materialization's metadata.
    page.get_by_text(PROJECT, exact=True).first.click()
    page.wait_for_url(re.compile(rf"partition={PROJECT}"))
    page.get_by_text("Materialized", exact=True).first.wait_for(state="visible")  # the partition's badge
    page.get_by_text("256x144", exact=True).first.wait_for(state="visible")
    page.get_by_text(f"projects/{PROJECT}/final.mp4", exact=False).first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artifact_dir / "ui-final-video-partition.png"), full_page=True)
    _assert_no_error(page, f"final_video partition {PROJECT}")
