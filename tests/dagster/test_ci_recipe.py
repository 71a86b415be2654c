"""The README's CI recipe, run as written by bash on a fresh data directory, and the runs it must
refuse before any step does anything: no DAGSTER_HOME (the reported failure), another empty
instance, a project never registered."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from vidpipe_core import media
from vidpipe_core.config import get_settings
from vidpipe_core.models import Keyframe, Project, Scene, VideoClip
from vidpipe_core.services import Services
from vidpipe_core.storage import Layout

REPO = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)
PROJECT = "launch-video"
PROMPT = "A paper boat sails down a rainy street. It rides a tiny waterfall into a canal."


def _ci_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("### CI recipe\n")
    return text[start : text.index("\n### ", start + 1)]


def _blocks() -> list[tuple[str, str]]:
    """(language, text) of each fenced block in the README's "CI recipe" section."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", _ci_section(), flags=re.S | re.M)


def readme_recipe() -> str:
    """The recipe's ```sh block, verbatim."""
    [block] = [text for lang, text in _blocks() if lang == "sh"]
    return block


def readme_commands() -> list[str]:
    """The recipe's commands, continuation lines joined: [export, vidpipe new, dagster job execute]."""
    return [line for line in readme_recipe().replace("\\\n", "").splitlines() if line.strip()]


def readme_refusal_line() -> str:
    """The refusal the README shows, for its example data directory /ci."""
    [block] = [text for lang, text in _blocks() if not lang]
    return block.strip()


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory as on a fresh clone (prompts/launch.txt, no .vidpipe yet): no
    DAGSTER_HOME, no VIDPIPE_DATA_DIR, the small animatic settings of `vp_env`."""
    work = tmp_path / "clone"
    (work / "prompts").mkdir(parents=True)
    (work / "prompts" / "launch.txt").write_text(PROMPT + "\n")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for key, value in {
        "VIDPIPE_PROVIDER": "animatic",
        "VIDPIPE_ANIMATIC_RESOLUTION": "144",
        "VIDPIPE_FPS": "12",
        "VIDPIPE_DEFAULT_CLIP_DURATION": "1",
        "VIDPIPE_DEFAULT_SCENES": "2",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", BIN + os.pathsep + os.environ.get("PATH", ""))
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


def test_readme_ci_recipe_renders_on_a_fresh_data_directory(clone, monkeypatch):
    proc = _bash(readme_recipe(), clone)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    services = _services(clone)
    info = media.probe(services.store.path(PROJECT, Layout.FINAL))
    assert info.has_video and (info.width, info.height) == (256, 144) and round(info.fps) == 12
    assert abs(info.duration_s - 2.0) <= 0.25
    # The run went into vidpipe's own instance, where `vidpipe status` and the UI look.
    monkeypatch.setenv("DAGSTER_HOME", str(clone / ".vidpipe" / "dagster"))
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": PROJECT}))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_latest_materialization_event(dg.AssetKey("final_video")) is not None


def test_readme_refusal_is_what_the_recipe_without_dagster_home_prints(clone):
    """The reported failure: the recipe without its `export`. The run stops in its first step,
    before the storyboard is planned, with the line the README shows."""
    export, new, execute = readme_commands()
    assert export.startswith("export DAGSTER_HOME=")
    assert _bash(new, clone).returncode == 0
    services = _services(clone)
    before = _project_files(services)

    proc = _bash(execute, clone)
    assert proc.returncode != 0
    home = clone.resolve() / ".vidpipe" / "dagster"
    assert readme_refusal_line().replace("/ci/.vidpipe/dagster", str(home)) in proc.stdout + proc.stderr
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

    from vidpipe_dagster.definitions import render_project_in_process

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
