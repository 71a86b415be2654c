"""The README's CI recipe: run verbatim by `bash -e` in a clean environment (`env -i`, only PATH and
HOME) on a fresh `git clone` of the committed HEAD, from the install to the MP4; and the runs it
must refuse before any step does anything: no DAGSTER_HOME (the reported failure), another empty
instance, a project never registered."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from vidpipe_core.config import get_settings
from vidpipe_core.models import Keyframe, Project, Scene, VideoClip
from vidpipe_core.services import Services

REPO = Path(__file__).resolve().parents[2]
PROJECT = "launch-video"
#: What the recipe's `vidpipe new` asks for: 2 scenes of 4 s.
SCENES, CLIP_S = 2, 4
CLEAN_PATH = "/usr/bin:/bin"


def runnable_block(name: str) -> str:
    """The fenced block that follows ``<!-- runnable: NAME -->`` in README.md, verbatim."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"^<!-- runnable: {re.escape(name)} -->\n```\w*\n(.*?)^```$", text, flags=re.S | re.M)
    assert match, f"README.md has no block marked <!-- runnable: {name} -->"
    return match.group(1)


def readme_recipe() -> str:
    return runnable_block("ci-recipe")


def readme_command(start: str) -> str:
    """The recipe's command that starts with ``start`` (continuation lines joined)."""
    commands = [line for line in readme_recipe().replace("\\\n", "").splitlines() if line.strip()]
    [command] = [c for c in commands if c.startswith(start)]
    return command


def documented_refusal_line() -> str:
    """The refusal docs/automation.md shows (the CI section's plain block), for its example folder /ci."""
    text = (REPO / "docs" / "automation.md").read_text()
    start = text.index("## CI with the Dagster CLI\n")
    section = text[start : text.index("\n## ", start + 1)]
    [block] = [body for lang, body in re.findall(r"^```(\w*)\n(.*?)^```$", section, flags=re.S | re.M) if not lang]
    return block.strip()


def readme_commands() -> tuple[str, str, str]:
    """The recipe's `export`, `vidpipe new` and `dagster job execute` commands."""
    return (
        readme_command("export DAGSTER_HOME="),
        readme_command(".venv/bin/vidpipe new "),
        readme_command(".venv/bin/dagster job execute "),
    )


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory as after the recipe's install line, without installing: `.venv` is this
    test's environment. No DAGSTER_HOME, no VIDPIPE_DATA_DIR, no .vidpipe yet."""
    work = tmp_path / "clone"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("VIDPIPE_DATA_DIR", raising=False)
    monkeypatch.setenv("VIDPIPE_PROVIDER", "animatic")
    monkeypatch.chdir(work)
    return work


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


def _services(work: Path) -> Services:
    return Services.create(get_settings(data_dir=work / ".vidpipe"))


def _project_files(services: Services) -> list[str]:
    root = Path(services.store.project_root(PROJECT))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _nothing_done(services: Services) -> None:
    """No file under the project's folder, no storyboard, scene, keyframe or clip row, no lock."""
    assert _project_files(services) == []
    with services.db.session() as s:
        project = s.get(Project, PROJECT)
        assert project is None or (project.storyboard is None and project.lock_holder is None)
        for model in (Scene, Keyframe, VideoClip):
            assert s.scalar(select(func.count()).select_from(model)) == 0, model.__tablename__


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_readme_ci_recipe_runs_verbatim_in_a_clean_environment_on_a_fresh_clone(tmp_path):
    """What a user pastes into a new shell: the block as it stands in the committed README, on a
    clone of the committed HEAD, with nothing of this session's environment (pip's configuration
    comes from HOME and /etc, as for a user; its cache in HOME is reused)."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip(f"{REPO} is not a git checkout: {head.stderr.strip()}")
    work = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(work)], check=True, timeout=120)
    subprocess.run(["git", "-C", str(work), "checkout", "--quiet", "--detach", head.stdout.strip()], check=True, timeout=120)
    clean = [f"PATH={CLEAN_PATH}", f"HOME={Path.home()}"]
    python = subprocess.run(["env", "-i", *clean, "python3", "--version"], capture_output=True, text=True)
    version = re.search(r"(\d+)\.(\d+)", python.stdout)
    if not version or (int(version[1]), int(version[2])) < (3, 11):
        pytest.skip(f"python3 on PATH={CLEAN_PATH} is {python.stdout.strip() or 'missing'}; the recipe needs 3.11+")
    recipe = (work / "README.md").read_text().split("<!-- runnable: ci-recipe -->\n", 1)[1]
    assert recipe.startswith("```sh\n" + readme_recipe()), "the clone's README differs from the working tree's: commit it"
    try:
        proc = subprocess.run(
            ["env", "-i", *clean, "bash", "-e", "-c", readme_recipe()],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=1100,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        final = work / ".vidpipe" / "artifacts" / "projects" / PROJECT / "final.mp4"
        assert str(final.relative_to(work)) in proc.stdout  # the recipe's last line shows it
        _check_mp4(final, seconds=SCENES * CLIP_S)
        # The run went into vidpipe's own instance, where `vidpipe status` and the UI look.
        with dg.DagsterInstance.from_config(str(work / ".vidpipe" / "dagster")) as instance:
            [run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": PROJECT}))
            assert run.status == dg.DagsterRunStatus.SUCCESS
    finally:
        shutil.rmtree(work / ".venv", ignore_errors=True)  # ~0.5 GB; pytest keeps the last 3 temp dirs


def _check_mp4(path: Path, seconds: float) -> None:
    """A valid MP4: an H.264 video stream of the animatic's default size, the recipe's duration,
    every frame decodes."""
    import av

    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov,mp4")
        video = container.streams.video[0]
        assert video.codec_context.name == "h264" and (video.width, video.height) == (1280, 720)
        assert container.duration is not None and abs(container.duration / 1e6 - seconds) <= 0.3
        fps = float(video.average_rate or 0)
        frames = sum(1 for _ in container.decode(video=0))
    assert fps > 0 and abs(frames - fps * seconds) <= 2, (frames, fps)


def test_documented_refusal_is_what_the_recipe_without_dagster_home_prints(clone):
    """The reported failure: the recipe without its `export`. The run stops in its first step,
    before the storyboard is planned, with the line docs/automation.md shows."""
    export, new, execute = readme_commands()
    assert export.startswith("export DAGSTER_HOME=")
    assert _bash(new, clone).returncode == 0
    services = _services(clone)
    before = _project_files(services)

    proc = _bash(execute, clone)
    assert proc.returncode != 0
    home = clone.resolve() / ".vidpipe" / "dagster"
    assert documented_refusal_line().replace("/ci/.vidpipe/dagster", str(home)) in proc.stdout + proc.stderr
    assert _project_files(services) == before
    _nothing_done(services)


def test_another_empty_instance_is_refused_naming_both(clone, tmp_path):
    export, new, execute = readme_commands()
    assert _bash(f"{export}\n{new}", clone).returncode == 0
    other = tmp_path / "other-home"
    other.mkdir()

    proc = _bash(execute, clone, DAGSTER_HOME=str(other))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    home = clone.resolve() / ".vidpipe" / "dagster"
    assert f"not a partition of this run's Dagster instance, DAGSTER_HOME={other};" in out
    assert f"vidpipe uses DAGSTER_HOME when set, else {home}:" in out
    assert f"`export DAGSTER_HOME={home}`" in out and f"`vidpipe render {PROJECT}`" in out
    _nothing_done(_services(clone))


def test_a_project_never_registered_is_refused(clone):
    export, new, execute = readme_commands()
    assert _bash(f"{export}\n{new.replace(PROJECT, 'another-video')}", clone).returncode == 0  # not this one

    proc = _bash(f"{export}\n{execute}", clone)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"nothing done for project {PROJECT!r}: vidpipe's database (sqlite:///" in out
    assert f'create it with `vidpipe new "<prompt>" --id {PROJECT}`' in out
    services = _services(clone)
    _nothing_done(services)
    with services.db.session() as s:
        assert s.get(Project, PROJECT) is None and s.get(Project, "another-video") is not None


def _run_as_launched(vp_env, tags: dict[str, str]):  # type: ignore[no-untyped-def]
    """What a run from the UI or the daemon executes: a run created with these tags, then executed."""
    from dagster._core.execution.api import execute_run

    from vidpipe_dagster.jobs import render_project_in_process

    instance = vp_env.instance()
    run = instance.create_run_for_job(job_def=render_project_in_process(), tags=tags)
    result = execute_run(dg.reconstructable(render_project_in_process), run, instance, raise_on_error=False)
    starts = [e.step_key for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)]
    return result, starts


@pytest.mark.parametrize(
    ("tags", "error_class", "message"),
    [
        ({"dagster/partition": "ghost"}, "ConfigurationError", "nothing done for project 'ghost': vidpipe's database"),
        ({}, "InvalidInput", "partition: this run names no project; add --tags"),
    ],
    ids=["unregistered", "no-partition"],
)
def test_a_launched_run_without_a_known_project_fails_in_its_first_step(vp_env, tags, error_class, message):
    """The refusal is a structured failure of the storyboard step (what `vidpipe` and the UI
    show); no other step started and no project folder was made."""
    from vidpipe_dagster.runner import failures

    result, starts = _run_as_launched(vp_env, tags)
    assert not result.success
    [failure] = failures(result)
    assert (failure.step, failure.error_class) == ("storyboard", error_class)
    assert failure.message.startswith(message)
    assert starts == ["storyboard"]
    assert not (Path(vp_env.services().store.root) / "projects").exists()


@pytest.mark.timeout(600)
def test_the_recipe_makes_a_video_with_the_google_provider(clone, google_env, monkeypatch):
    """The recipe's `vidpipe new` and `dagster job execute`, as written, with Google credentials in
    the environment (the SDK against the wire emulator): its `--review none` lets the run pay for
    the clips unattended, so it ends with the video (without it the run would stop at the review
    gate with no final.mp4)."""
    monkeypatch.delenv("VIDPIPE_PROVIDER")  # auto: google, as for a user with credentials
    for key, value in {"POLL_INITIAL_S": "0.05", "POLL_MAX_S": "0.2", "RETRY_INITIAL_S": "0.01"}.items():
        monkeypatch.setenv(f"VIDPIPE_{key}", value)
    export, new, execute = readme_commands()
    assert "--review none" in new
    proc = _bash(f"{export}\n{new}\n{execute}", clone)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert google_env.emulator.stats()["requests"]["video_submit"] == SCENES
    final = clone / ".vidpipe" / "artifacts" / "projects" / PROJECT / "final.mp4"
    import av

    with av.open(str(final)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264" and container.streams.audio
        assert container.duration is not None and abs(container.duration / 1e6 - SCENES * CLIP_S) <= 0.3
        assert sum(1 for _ in container.decode(video=0)) > SCENES * CLIP_S * 10
