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
ASSETS = ("storyboard", "characters", "keyframes", "clips", "narration", "final_video")
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

    # Asset lineage (the "Lineage" entry of the navigation): the six assets and their edges.
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


NEW_PROJECT = "ui-made-kite"
NEW_PROMPT = "A paper kite climbs over a windy beach. It loops above the dunes."


def _wait_run(instance, description: str, find, timeout: float = 240.0):  # type: ignore[no-untyped-def]
    """The run ``find(instance)`` returns, once it has finished (fails on timeout or on failure)."""
    import dagster as dg

    from tests.servers.deployment import wait_for

    def finished():  # type: ignore[no-untyped-def]
        run = find(instance)
        return run if run is not None and run.is_finished else None

    run = wait_for(description, finished, timeout)
    assert run.status == dg.DagsterRunStatus.SUCCESS, f"{description}: {run.status}"
    return run


def _metadata_images(page, images: dict[str, str], shots: Path) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The naturalWidth of each image (metadata label -> image alt text) in the metadata table: shown
    inline, or behind the row's [Show Markdown] (Dagster puts markdown over 1000 characters in a
    dialog); a screenshot of each dialog goes to ``shots``."""
    widths: dict[str, int] = {}
    for label, alt in images.items():
        img = page.locator(f'img[alt="{alt}"]')
        opened = False
        if img.count() == 0:
            row = page.locator("tr", has=page.locator("td", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))).first
            row.get_by_text("[Show Markdown]").first.click()
            opened = True
        img.first.wait_for(state="visible")
        page.wait_for_function(
            'alt => { const i = document.querySelector(`img[alt="${alt}"]`); return i && i.complete; }', arg=alt
        )
        widths[label] = img.first.evaluate("i => i.naturalWidth")
        page.screenshot(path=str(shots / f"ui-new-project-{label}.png"))
        if opened:
            page.keyboard.press("Escape")
            img.first.wait_for(state="hidden")
    return widths


def test_a_project_created_from_the_launchpad_is_rendered_and_shows_its_previews(page, deployment, daemon, artifact_dir):
    """The whole UI path: the new_project job launched from its Launchpad with typed config; the
    render_new_project sensor (under the real daemon) starts an ordinary render_project run; the
    final video's partition page shows the preview and the summary, keyframes' the contact sheet."""
    assert deployment.graphql()("mutation { setNuxSeen }")["setNuxSeen"] is True
    location = deployment.location["location"]
    page.goto(f"/locations/{location}/jobs/new_project/playground")
    print(f"Launchpad: {page.url}")
    editor = page.locator(".CodeMirror").first
    editor.wait_for(state="visible")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    config = (
        "ops: {register_project: {config: {"
        f'prompt: "{NEW_PROMPT}", id: {NEW_PROJECT}, scenes: 2, clip_duration: 1, provider: animatic'
        "}}}"
    )
    page.keyboard.insert_text(config)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artifact_dir / "ui-new-project-launchpad.png"))
    launch = page.get_by_role("button", name="Launch Run").last
    launch.wait_for(state="visible")
    launch.click()  # waits until the config has been checked and the button is enabled
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"), timeout=60_000)
    created_by = re.search(r"/runs/([0-9a-f-]{36})", page.url).group(1)

    instance = deployment.instance()
    made = _wait_run(instance, "the new_project run", lambda i: i.get_run_by_id(created_by))
    assert made.job_name == "new_project" and made.tags["vidpipe/project"] == NEW_PROJECT

    import dagster as dg

    def render_run(i):  # type: ignore[no-untyped-def]
        runs = i.get_runs(filters=dg.RunsFilter(tags={"vidpipe/created_by_run": created_by}), limit=1)
        return runs[0] if runs else None

    rendered = _wait_run(instance, "the render_project run the sensor asks for", render_run)
    assert rendered.job_name == "render_project" and rendered.tags["dagster/partition"] == NEW_PROJECT

    page.goto(f"/assets/final_video?view=partitions&partition={NEW_PROJECT}")
    page.get_by_text("Materialized", exact=True).first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artifact_dir / "ui-new-project-final-video.png"), full_page=True)
    widths = _metadata_images(page, {"preview": "preview", "poster": "poster"}, artifact_dir)
    assert widths["preview"] > 0 and widths["poster"] > 0, widths
    body = page.locator("body").inner_text()
    assert "Total cost" in body and "A paper kite climbs over a windy beach" in body
    _assert_no_error(page, f"final_video partition {NEW_PROJECT}")

    page.goto(f"/assets/keyframes?view=partitions&partition={NEW_PROJECT}")
    page.get_by_text("Materialized", exact=True).first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    widths = _metadata_images(page, {"contact_sheet_image": "contact sheet"}, artifact_dir)
    assert widths["contact_sheet_image"] > 0, widths
    _assert_no_error(page, f"keyframes partition {NEW_PROJECT}")


REVIEWED = "ui-reviewed-heron"
REVIEWED_PROMPT = "A grey heron waits in the reeds. It takes off over the river at dawn."


def _launch_from_launchpad(page, location: str, job: str, edit=None) -> str:  # type: ignore[no-untyped-def]
    """Open ``job``'s Launchpad, check it opens with a filled config (the job's default) with no
    "Missing required config" error, apply ``edit`` (text -> text) to it when given, launch; the run id."""
    page.goto(f"/locations/{location}/jobs/{job}/playground")
    editor = page.locator(".CodeMirror").first
    editor.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    prefilled = editor.evaluate("e => e.CodeMirror.getValue()")
    assert prefilled.strip(), f"the {job} Launchpad opens with an empty config"
    assert "Missing required config" not in page.locator("body").inner_text(), f"{job}: default config is not valid"
    if edit is not None:
        editor.evaluate("(e, text) => e.CodeMirror.setValue(text)", edit(prefilled))
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(page.shots / f"ui-review-{job}-launchpad.png"))
    launch = page.get_by_role("button", name="Launch Run").last
    launch.wait_for(state="visible")
    launch.click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"), timeout=60_000)
    return re.search(r"/runs/([0-9a-f-]{36})", page.url).group(1)


def test_a_project_under_review_is_approved_from_a_prefilled_launchpad(page, deployment, daemon, artifact_dir):
    """Issue 23's review desk: new_project under review stops after the keyframes (a SUCCESS run, no
    clips); the keyframes page shows the contact sheet and how to approve; approve_project, launched
    from its prefilled Launchpad, starts the render that makes the final video."""
    import dagster as dg

    assert deployment.graphql()("mutation { setNuxSeen }")["setNuxSeen"] is True
    page.shots = artifact_dir  # type: ignore[attr-defined]
    location = deployment.location["location"]
    config = (
        "ops: {register_project: {config: {"
        f'prompt: "{REVIEWED_PROMPT}", id: {REVIEWED}, scenes: 2, clip_duration: 1, provider: animatic, review: keyframes'
        "}}}"
    )
    created_by = _launch_from_launchpad(page, location, "new_project", edit=lambda _: config)
    instance = deployment.instance()
    _wait_run(instance, "the new_project run", lambda i: i.get_run_by_id(created_by))

    def started_by(run_id: str, tag: str = "vidpipe/created_by_run"):  # type: ignore[no-untyped-def]
        def find(i):  # type: ignore[no-untyped-def]
            runs = i.get_runs(filters=dg.RunsFilter(tags={tag: run_id}), limit=1)
            return runs[0] if runs else None

        return find

    _wait_run(instance, "the render run that stops for review", started_by(created_by))
    clips = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("clips"), asset_partitions=[REVIEWED]), limit=1
    ).records
    assert not clips, "clips were made before approval"

    page.goto(f"/assets/keyframes?view=partitions&partition={REVIEWED}")
    page.get_by_text("Materialized", exact=True).first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    widths = _metadata_images(page, {"contact_sheet_image": "contact sheet"}, artifact_dir)
    assert widths["contact_sheet_image"] > 0, widths
    body = page.locator("body").inner_text()
    assert "approve_project" in body and REVIEWED in body, "the keyframes page does not say how to approve"
    page.screenshot(path=str(artifact_dir / "ui-review-keyframes.png"), full_page=True)
    _assert_no_error(page, f"keyframes partition {REVIEWED}")

    def for_this_project(prefilled: str) -> str:
        assert "project_id" in prefilled, prefilled
        return re.sub(r"project_id:\s*\S+", f"project_id: {REVIEWED}", prefilled)

    approved_by = _launch_from_launchpad(page, location, "approve_project", edit=for_this_project)
    _wait_run(instance, "the approve_project run", lambda i: i.get_run_by_id(approved_by))
    _wait_run(instance, "the render run the approval starts", started_by(approved_by, "vidpipe/approved_by_run"))

    page.goto(f"/assets/final_video?view=partitions&partition={REVIEWED}")
    page.get_by_text("Materialized", exact=True).first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artifact_dir / "ui-review-final-video.png"), full_page=True)
    _assert_no_error(page, f"final_video partition {REVIEWED}")
