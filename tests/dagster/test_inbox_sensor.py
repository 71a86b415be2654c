"""The prompt-inbox sensor on a real SQLite Dagster instance (offline, animatic).

Ticks are driven the way the daemon drives them: the sensor is evaluated with the previous cursor,
and its dynamic-partition requests are then applied to the instance."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, OperationalError

from vidpipe_core import media
from vidpipe_core.config import get_settings
from vidpipe_core.errors import ConfigurationError
from vidpipe_core.inbox import queries
from vidpipe_core.inbox import tick as inbox_tick
from vidpipe_core.models import Project
from vidpipe_core.projects import build_spec, create_project, load_spec
from vidpipe_core.request import ProjectRequest
from vidpipe_core.storage import Layout
from vidpipe_dagster.definitions import defs
from vidpipe_dagster.partitions import projects_partitions
from vidpipe_dagster.resources import VidpipeResource
from vidpipe_dagster.sensors import InboxCursor, inbox_sensor


@pytest.fixture
def inbox(vp_env, monkeypatch) -> Path:
    monkeypatch.setenv("VIDPIPE_INBOX_MIN_AGE_S", "0")
    path = get_settings().resolved_inbox_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


def _context(instance, cursor=None):
    return dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        cursor=cursor,
        definitions=defs(),
        resources={"vidpipe": VidpipeResource()},
    )


def tick(instance, cursor=None, *, apply: bool = True) -> dg.SensorResult:
    """One evaluation; `apply` does what the daemon does with the partition requests."""
    result = inbox_sensor(_context(instance, cursor))
    assert isinstance(result, dg.SensorResult)
    if apply:
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def project_count(vp_env) -> int:
    with vp_env.services().db.session() as s:
        return s.scalar(select(func.count()).select_from(Project))


def partitions(instance) -> set[str]:
    return set(instance.get_dynamic_partitions(projects_partitions.name))


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


BOAT_YAML = """\
# a comment is fine
prompt: |
  A paper boat sails down a rainy street.
  It reaches the harbour at dawn.
id: paper-boat
style: watercolour
aspect_ratio: 9:16            # unquoted: YAML 1.1 would read this as the number 556
clip_duration: 2
scenes: 3
max_cost_usd: 1.5
provider: animatic
generate_audio: false
negative_prompt: no text
seed: 7
fast: true
safety_policy: skip
crossfade: 0.25
"""


def test_valid_yaml_json_and_txt_are_registered_and_requested(vp_env, inbox):
    (inbox / "boat.yaml").write_text(BOAT_YAML)
    (inbox / "kite.json").write_text(
        json.dumps({"prompt": "Two friends fly a kite over the dunes.", "id": "kite", "scenes": 2, "clip_provider": "animatic"})
    )
    (inbox / "lighthouse.txt").write_text("A lighthouse keeper climbs the stairs.\n")
    instance = vp_env.instance()

    result = tick(instance)

    by_partition = {r.partition_key: r for r in result.run_requests}
    assert set(by_partition) == {"paper-boat", "kite", "a-lighthouse-keeper-climbs"}
    assert len({r.run_key for r in result.run_requests}) == 3
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [list(by_partition)]
    assert partitions(instance) == set(by_partition)
    assert by_partition["kite"].tags["vidpipe/inbox_file"] == "accepted/kite--kite.json"

    services = vp_env.services()
    boat = load_spec(services, "paper-boat")
    assert boat.prompt == "A paper boat sails down a rainy street.\nIt reaches the harbour at dawn."
    assert (boat.style, boat.aspect_ratio, boat.clip_duration, boat.scenes) == ("watercolour", "9:16", 2, 3)
    assert (boat.max_cost_usd, boat.generate_audio, boat.negative_prompt, boat.seed, boat.fast) == (
        1.5,
        False,
        "no text",
        7,
        True,
    )
    assert (boat.safety_policy, boat.crossfade) == ("skip", 0.25)
    assert boat.providers.model_dump() == {"storyboard": "animatic", "keyframes": "animatic", "clips": "animatic"}
    kite = load_spec(services, "kite")
    assert (kite.scenes, kite.aspect_ratio, kite.clip_duration) == (2, "16:9", 1)  # settings' defaults
    txt = load_spec(services, "a-lighthouse-keeper-climbs")
    assert txt.prompt == "A lighthouse keeper climbs the stairs."

    # Each file moved to accepted/<id>--<name>, and the project's source points at it.
    assert listing(inbox / "accepted") == [
        "a-lighthouse-keeper-climbs--lighthouse.txt",
        "kite--kite.json",
        "paper-boat--boat.yaml",
    ]
    assert [p for p in listing(inbox) if p not in ("accepted", "rejected")] == []
    assert listing(inbox / "rejected") == []
    with services.db.session() as s:
        source = s.get(Project, "paper-boat").source
    assert source.startswith("inbox:accepted/paper-boat--boat.yaml;sha256=")
    assert (inbox / queries.source_file(source)).read_text() == BOAT_YAML


def test_next_tick_reevaluation_and_identical_redrop_are_harmless(vp_env, inbox):
    instance = vp_env.instance()
    (inbox / "boat.yaml").write_text(BOAT_YAML)
    (inbox / "fox.txt").write_text("A fox runs through the snow.")
    first = tick(instance)
    assert sorted(r.partition_key for r in first.run_requests) == ["a-fox-runs", "paper-boat"]

    # The next tick with the returned cursor: nothing to do.
    second = tick(instance, first.cursor)
    assert not second.run_requests and second.skip_reason is not None
    # Evaluating again with the first tick's (absent) cursor: the partition exists, nothing to ask.
    assert not tick(instance, None).run_requests

    # The same request dropped again, under the same name and as JSON under another name.
    (inbox / "boat.yaml").write_text(BOAT_YAML)
    (inbox / "copy.json").write_text(
        json.dumps(
            {
                "prompt": "A paper boat sails down a rainy street.\nIt reaches the harbour at dawn.",
                "id": "paper-boat",
                "style": "watercolour",
                "aspect_ratio": "9:16",
                "clip_duration": 2,
                "scenes": 3,
                "max_cost_usd": 1.5,
                "provider": "animatic",
                "generate_audio": False,
                "negative_prompt": "no text",
                "seed": 7,
                "fast": True,
                "safety_policy": "skip",
                "crossfade": 0.25,
            }
        )
    )
    (inbox / "fox-again.txt").write_text("  A fox runs through the snow.\n")  # a generated id is found too
    third = tick(instance, second.cursor)
    assert not third.run_requests
    assert project_count(vp_env) == 2
    assert listing(inbox / "accepted") == [
        "a-fox-runs--fox-again.txt",
        "a-fox-runs--fox.txt",
        "paper-boat--boat-2.yaml",
        "paper-boat--boat.yaml",
        "paper-boat--copy.json",
    ]
    assert listing(inbox / "rejected") == []


INVALID = {
    # file name: (content, text the .error.txt must contain)
    "broken.yaml": ("prompt: [unclosed\n", "file: is not valid YAML"),
    "broken.json": ('{"prompt": "x",}', "file: is not valid JSON: Expecting property name enclosed in double quotes at line 1"),
    "unknown.yaml": ("prompt: a fox\nscene_count: 3\n", "scene_count: is not a known field"),
    "typo.json": ('{"prompt": "a fox", "aspect": "16:9"}', "aspect: is not a known field; did you mean 'aspect_ratio'?"),
    "bad-id.yaml": ("prompt: a fox\nid: ../../etc\n", "id: '../../etc' is not a valid project id (allowed: 1-63 characters"),
    "taken.yaml": ("prompt: a second fox\nid: taken\n", "id: 'taken' is already taken by another project"),
    "empty-prompt.yaml": ("prompt: '   '\n", "prompt: is empty; describe the video you want"),
    "no-prompt.yaml": ("style: noir\n", "prompt: is missing; every inbox file needs a prompt"),
    "empty.txt": ("", "prompt: is empty"),
    "ratio.yaml": ("prompt: a fox\naspect_ratio: 4:3\n", "aspect_ratio: '4:3' is not supported (allowed: 16:9, 9:16)"),
    "scenes.json": ('{"prompt": "a fox", "scenes": "three"}', "scenes: 'three' is not a whole number"),
    "zero-scenes.yaml": ("prompt: a fox\nscenes: 0\n", "scenes: 0 is out of range (allowed: 1-24)"),
    "duration.yaml": ("prompt: a fox\nclip_duration: 30\n", "clip_duration: 30 seconds is not accepted by the animatic"),
    "nan.json": ('{"prompt": "a fox", "max_cost_usd": NaN}', "max_cost_usd: nan is not a finite number"),
    "list.yaml": ("- prompt: a fox\n", "file: must be a mapping of fields"),
    "provider.yaml": (
        "prompt: a fox\nprovider: openai\n",
        "provider: unknown provider 'openai' (allowed: auto, animatic, google)",
    ),
    "notes.md": ("prompt: a fox\n", "name: '.md' is not a prompt file type (allowed: .yaml, .yml, .json, .txt)"),
    "huge.txt": ("a fox " * 12_000, "file: is 72000 bytes; shorten it (allowed: at most 65536 bytes)"),
}


def test_invalid_files_are_rejected_once_with_a_readable_reason(vp_env, inbox, capfd):
    services = vp_env.services()
    create_project(services, build_spec(services.settings, ProjectRequest(prompt="the first fox", id="taken")), "cli")
    for name, (content, _) in INVALID.items():
        (inbox / name).write_text(content)
    (inbox / "latin1.txt").write_bytes("Un caf\xe9 sur la plage".encode("latin-1"))
    (inbox / "nul.txt").write_bytes(b"a fox\x00")
    os.mkdir(inbox / "a-folder-is-ignored")
    bad_name = os.fsdecode(b"caf\xe9.txt")
    (inbox / bad_name).write_text("a fox")
    (inbox / "line\nbreak.txt").write_text("a fox")
    instance = vp_env.instance()

    result = tick(instance)

    assert not result.run_requests and not result.dynamic_partitions_requests
    assert project_count(vp_env) == 1 and partitions(instance) == set()
    rejected = inbox / "rejected"
    expected = {
        **{n: text for n, (_, text) in INVALID.items()},
        "latin1.txt": "file: is not UTF-8 text (byte 0xe9 at offset 6); save it as UTF-8",
        "nul.txt": "file: contains NUL characters",
        bad_name: "name: 'caf\\xe9.txt' is not valid UTF-8; rename the file",
        "line\nbreak.txt": "contains control characters",
    }
    for name, text in expected.items():
        assert (rejected / name).exists(), name
        note = (rejected / f"{name}.error.txt").read_text()
        assert text in note, f"{name}: {note}"
        assert "drop it into" in note and "not retried" in note
    assert listing(inbox) == ["a-folder-is-ignored", "accepted", "rejected"]
    assert "typo.json: rejected - aspect: is not a known field" in capfd.readouterr().err

    # The next tick (even with a lost cursor) does not look at them again.
    before = {p.name: p.stat().st_mtime_ns for p in rejected.iterdir()}
    later = tick(instance, result.cursor)
    again = tick(instance, None)
    assert not later.run_requests and not again.run_requests
    assert {p.name: p.stat().st_mtime_ns for p in rejected.iterdir()} == before
    assert "rejected -" not in capfd.readouterr().err


def test_links_to_files_outside_are_rejected_and_their_targets_untouched(vp_env, inbox, tmp_path):
    target = tmp_path / "secret.yaml"
    target.write_text("prompt: the content of a file outside the inbox\n")
    stamp = target.stat().st_mtime_ns
    (inbox / "link.yaml").symlink_to(target)
    (inbox / "dirlink.yaml").symlink_to(tmp_path)
    os.link(target, inbox / "hardlink.yaml")
    os.mkfifo(inbox / "fifo.txt")  # reading it would block the sensor forever

    result = tick(vp_env.instance())

    assert not result.run_requests and project_count(vp_env) == 0
    moved = inbox / "rejected" / "link.yaml"
    assert moved.is_symlink() and os.readlink(moved) == str(target)
    assert "file: is a symbolic link" in (inbox / "rejected" / "link.yaml.error.txt").read_text()
    assert (inbox / "rejected" / "dirlink.yaml").is_symlink()
    assert "file: has 2 hard links" in (inbox / "rejected" / "hardlink.yaml.error.txt").read_text()
    assert "file: is not a regular file" in (inbox / "rejected" / "fifo.txt.error.txt").read_text()
    assert target.read_text() == "prompt: the content of a file outside the inbox\n"
    assert target.stat().st_mtime_ns == stamp


def test_files_being_written_are_left_for_a_later_tick(vp_env, inbox, monkeypatch):
    monkeypatch.setenv("VIDPIPE_INBOX_MIN_AGE_S", "5")
    instance = vp_env.instance()
    (inbox / ".boat.yaml.tmp").write_text("prompt: half")  # the documented convention
    (inbox / "boat.yaml.partial").write_text("prompt: half")
    (inbox / "fresh.yaml").write_text("prompt: A fox runs through the snow.\nid: fox\n")

    first = tick(instance)
    assert not first.run_requests and first.skip_reason.skip_message.startswith("inbox: 1 still being written")
    assert listing(inbox / "rejected") == [] and project_count(vp_env) == 0

    os.replace(inbox / ".boat.yaml.tmp", inbox / "boat.yaml")  # ... then rename when complete
    old = time.time() - 60
    for name in ("boat.yaml", "fresh.yaml"):
        os.utime(inbox / name, (old, old))
    (inbox / "boat.yaml").write_text("prompt: A boat, complete now.\nid: boat\n")
    os.utime(inbox / "boat.yaml", (old, old))
    second = tick(instance, first.cursor)
    assert sorted(r.partition_key for r in second.run_requests) == ["boat", "fox"]
    assert listing(inbox) == ["accepted", "boat.yaml.partial", "rejected"]


def test_crash_after_the_row_is_written_is_finished_by_the_next_tick(vp_env, inbox, monkeypatch):
    instance = vp_env.instance()
    (inbox / "first.txt").write_text("A first prompt sets the cursor.")
    cursor = tick(instance).cursor
    (inbox / "boat.yaml").write_text(BOAT_YAML)

    real_create = inbox_tick.create_project

    def create_then_crash(*args, **kwargs):
        real_create(*args, **kwargs)
        raise KeyboardInterrupt("daemon killed after the row was committed")

    monkeypatch.setattr(inbox_tick, "create_project", create_then_crash)
    with pytest.raises(KeyboardInterrupt):
        tick(instance, cursor)
    monkeypatch.setattr(inbox_tick, "create_project", real_create)
    assert project_count(vp_env) == 2 and "paper-boat" not in partitions(instance)
    assert (inbox / "boat.yaml").exists()

    recovered = tick(instance, cursor)  # the cursor of the last tick that completed
    assert [r.partition_key for r in recovered.run_requests] == ["paper-boat"]
    assert "paper-boat" in partitions(instance)
    assert project_count(vp_env) == 2
    assert listing(inbox / "accepted") == ["a-first-prompt-sets--first.txt", "paper-boat--boat.yaml"]
    assert not tick(instance, recovered.cursor).run_requests


def test_a_result_the_daemon_never_stored_is_emitted_again(vp_env, inbox):
    instance = vp_env.instance()
    (inbox / "first.txt").write_text("A first prompt sets the cursor.")
    cursor = tick(instance).cursor
    (inbox / "boat.yaml").write_text(BOAT_YAML)

    lost = tick(instance, cursor, apply=False)  # rows written, files moved, result dropped
    assert InboxCursor.parse(lost.cursor).since > InboxCursor.parse(cursor).since
    retried = tick(instance, cursor)
    assert [(r.partition_key, r.run_key) for r in retried.run_requests] == [
        (r.partition_key, r.run_key) for r in lost.run_requests
    ]
    assert retried.dynamic_partitions_requests == lost.dynamic_partitions_requests
    assert project_count(vp_env) == 2 and "paper-boat" in partitions(instance)
    assert not tick(instance, retried.cursor).run_requests


def test_a_file_that_cannot_be_moved_is_reported_once_and_left_alone(vp_env, inbox, monkeypatch, capfd):
    (inbox / "ratio.yaml").write_text("prompt: a fox\naspect_ratio: 4:3\n")
    real_reject = inbox_tick.reject_file

    def read_only_inbox(path, folder, reason):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(inbox_tick, "reject_file", read_only_inbox)
    instance = vp_env.instance()
    first = tick(instance)
    assert "ratio.yaml: could not be processed ([Errno 13] Permission denied" in capfd.readouterr().err
    assert len(InboxCursor.parse(first.cursor).stuck) == 1
    second = tick(instance, first.cursor)
    assert "ratio.yaml" not in capfd.readouterr().err and (inbox / "ratio.yaml").exists()

    monkeypatch.setattr(inbox_tick, "reject_file", real_reject)
    (inbox / "ratio.yaml").write_text("prompt: a fox\naspect_ratio: 4:3  # changed, so looked at again\n")
    third = tick(instance, second.cursor)
    assert (inbox / "rejected" / "ratio.yaml.error.txt").exists()
    assert InboxCursor.parse(third.cursor).stuck == []


def test_a_thousand_files_are_registered_within_three_ticks(vp_env, inbox):
    for i in range(1000):
        (inbox / f"p{i:04d}.yaml").write_text(f"prompt: Scene {i} of a large batch\nid: batch-{i:04d}\nscenes: 1\n")
    instance = vp_env.instance()
    cursor, requested, ticks = None, [], 0
    while ticks < 3:
        result = tick(instance, cursor)
        cursor, ticks = result.cursor, ticks + 1
        if not result.run_requests:
            break
        requested += [r.partition_key for r in result.run_requests]
    assert len(requested) == len(set(requested)) == 1000
    assert partitions(instance) == {f"batch-{i:04d}" for i in range(1000)}
    assert project_count(vp_env) == 1000
    assert listing(inbox) == ["accepted", "rejected"]


def test_dropped_file_is_rendered_by_the_requested_run(vp_env, inbox):
    (inbox / "snail.yaml").write_text("prompt: A snail races a leaf. The leaf wins.\nid: snail\nscenes: 2\nclip_duration: 1\n")
    instance = vp_env.instance()

    data = inbox_sensor.evaluate_tick(_context(instance))  # what the code server runs for the daemon
    for request in data.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    [request] = data.run_requests
    assert request.partition_key == "snail"

    result = (
        defs()
        .resolve_job_def("render_project")
        .execute_in_process(partition_key=request.partition_key, instance=instance, tags=request.tags)
    )
    assert result.success
    info = media.probe(vp_env.services().store.path("snail", Layout.FINAL))
    assert info.has_video and abs(info.duration_s - 2.0) <= 0.25


@pytest.mark.parametrize("folder", ["accepted", "rejected"])
def test_a_linked_folder_fails_the_tick_and_nothing_is_moved(vp_env, inbox, tmp_path, folder, capfd):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not the inbox's")
    (inbox / folder).symlink_to(elsewhere)
    (inbox / "good.yaml").write_text("prompt: A fox runs through the snow.\nid: fox\n")
    (inbox / "bad.yaml").write_text("prompt: a fox\naspect_ratio: 4:3\n")
    instance = vp_env.instance()

    with pytest.raises(ConfigurationError) as err:
        tick(instance)

    assert f"inbox: {inbox / folder} is a symbolic link (to {elsewhere})" in str(err.value)
    assert f"Replace it with a folder (rm '{inbox / folder}' && mkdir '{inbox / folder}')" in str(err.value)
    assert str(err.value) in capfd.readouterr().err
    assert listing(elsewhere) == ["keep.txt"] and (elsewhere / "keep.txt").read_text() == "not the inbox's"
    assert [n for n in listing(inbox) if n.endswith(".yaml")] == ["bad.yaml", "good.yaml"]
    assert all(listing(inbox / sub) == [] for sub in ("accepted", "rejected") if sub != folder and (inbox / sub).exists())
    assert project_count(vp_env) == 0 and partitions(instance) == set()

    (inbox / folder).unlink()  # the operator's fix
    result = tick(instance)
    assert [r.partition_key for r in result.run_requests] == ["fox"]
    assert listing(inbox / "rejected") == ["bad.yaml", "bad.yaml.error.txt"]


def test_links_placed_in_rejected_are_never_written_through(vp_env, inbox, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    stamp = outside.stat().st_mtime_ns
    rejected = inbox / "rejected"
    rejected.mkdir()
    links = [".bad.yaml.error.txt.tmp", "worse.yaml.error.txt", "worst.yaml"]
    for name in links:
        (rejected / name).symlink_to(outside)
    for name in ("bad.yaml", "worse.yaml", "worst.yaml"):
        (inbox / name).write_text("prompt: a fox\naspect_ratio: 4:3\n")
    (inbox / "good.yaml").write_text("prompt: A fox runs through the snow.\nid: fox\n")

    result = tick(vp_env.instance())

    assert [r.partition_key for r in result.run_requests] == ["fox"]
    assert outside.read_text() == "precious" and outside.stat().st_mtime_ns == stamp
    assert all((rejected / name).is_symlink() and os.readlink(rejected / name) == str(outside) for name in links)
    for name in ("bad.yaml", "worse-2.yaml", "worst-2.yaml"):
        note = rejected / f"{name}.error.txt"
        assert note.is_file() and not note.is_symlink(), name
        assert "aspect_ratio: '4:3' is not supported" in note.read_text()
        assert (rejected / name).is_file() and not (rejected / name).is_symlink()
    assert not [p for p in listing(rejected) if p.endswith(".tmp") and p not in links]


LAUGHS = (
    "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10))
    + "prompt: *l9\n"
)

HOSTILE = {
    # file name: (content, text the .error.txt must contain)
    "nul.json": ('{"prompt": "x \\u0000 y"}', "prompt: contains a control character (U+0000 at position 3); remove it"),
    "nul.yaml": ('prompt: "x \\0 y"\n', "prompt: contains a control character (U+0000 at position 3)"),
    "ansi.yaml": ('prompt: a fox\nstyle: "\\e[2J\\e[31mred"\n', "style: contains a control character (U+001B at position 1)"),
    "surrogate.json": ('{"prompt": "a \\udcff fox"}', "prompt: is not valid UTF-8 (byte 0xff at position 3)"),
    "invisible.txt": ("\u200b\u200c\u200d\u2060\ufeff\n", "prompt: has no visible characters"),
    "twice.yaml": ("prompt: a fox\nprompt: a wolf\n", "file: field 'prompt' appears twice (line 2); keep one"),
    "twice.json": ('{"prompt": "a fox", "prompt": "a wolf"}', "file: field 'prompt' appears twice; keep one"),
    "laughs.yaml": (LAUGHS, "prompt: is a list, not a single value"),
    "merge.yaml": ("a: &a {prompt: x}\nb: {<<: *a}\n", "file: uses a YAML merge key (<<) at line 2"),
    "seed.json": ('{"prompt": "a fox", "seed": -1}', "seed: -1 is out of range (allowed: 0-4294967295"),
    "budget.yaml": ("prompt: a fox\nmax_cost_usd: .inf\n", "max_cost_usd: inf is not a finite number"),
    "negative.yaml": ("prompt: a fox\nnegative_prompt: " + "n" * 1001 + "\n", "negative_prompt: is 1001 characters long"),
}


@pytest.mark.timeout(120)
def test_hostile_files_are_rejected_and_a_good_file_behind_them_is_registered(vp_env, inbox):
    old = time.time() - 60
    for name, (content, _) in HOSTILE.items():
        (inbox / name).write_text(content, encoding="utf-8")
        os.utime(inbox / name, (old, old))
    (inbox / "zz-good.yaml").write_text("prompt: A fox runs through the snow.\nid: fox\n")  # evaluated last
    instance = vp_env.instance()

    result = tick(instance)

    assert [r.partition_key for r in result.run_requests] == ["fox"]
    assert project_count(vp_env) == 1 and partitions(instance) == {"fox"}
    for name, (_, text) in HOSTILE.items():
        note = (inbox / "rejected" / f"{name}.error.txt").read_text()
        assert text in note, f"{name}: {note}"
    assert listing(inbox) == ["accepted", "rejected"]


class _DriverError(Exception):
    pass


def test_a_database_refusal_rejects_that_file_only(vp_env, inbox, monkeypatch, capfd):
    real_create = inbox_tick.create_project

    def fussy_database(services, spec, source):
        if "long" in spec.prompt:
            raise DataError(
                "INSERT INTO projects ... (%(prompt)s)",
                {"prompt": "the-parameters"},
                _DriverError("value too long for type character varying(255)\nLINE 1: INSERT ..."),
            )
        if "nul" in spec.prompt:
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return real_create(services, spec, source)

    monkeypatch.setattr(inbox_tick, "create_project", fussy_database)
    old = time.time() - 60
    for name, prompt in (("long.txt", "a long one"), ("nul.txt", "a nul one")):
        (inbox / name).write_text(prompt)
        os.utime(inbox / name, (old, old))
    (inbox / "good.txt").write_text("A fox runs through the snow.")

    result = tick(vp_env.instance())

    assert [r.partition_key for r in result.run_requests] == ["a-fox-runs"]
    long_note = (inbox / "rejected" / "long.txt.error.txt").read_text()
    assert "file: the database refused it (_DriverError: value too long for type character varying(255));" in long_note
    assert "the-parameters" not in long_note and "INSERT" not in long_note
    assert (
        "file: the database refused it (ValueError: A string literal cannot contain NUL"
        in (inbox / "rejected" / "nul.txt.error.txt").read_text()
    )
    assert "long.txt: rejected - file: the database refused it" in capfd.readouterr().err
    assert project_count(vp_env) == 1


def test_an_unreachable_database_leaves_the_files_for_the_next_tick(vp_env, inbox, monkeypatch, capfd):
    real_create = inbox_tick.create_project

    def database_down(services, spec, source):
        raise OperationalError("INSERT ...", {}, _DriverError("connection to server failed: Connection refused"))

    monkeypatch.setattr(inbox_tick, "create_project", database_down)
    for name in ("a.txt", "b.txt", "c.txt"):
        (inbox / name).write_text(f"A fox called {name[0]} runs through the snow.")
    instance = vp_env.instance()

    first = tick(instance)

    assert not first.run_requests
    assert "3 left for the next tick (the database could not be reached)" in first.skip_reason.skip_message
    err = capfd.readouterr().err
    assert err.count("the database is unavailable (_DriverError: connection to server failed") == 1
    assert "3 file(s) stay in the inbox for the next tick" in err
    assert listing(inbox) == ["a.txt", "accepted", "b.txt", "c.txt", "rejected"] and listing(inbox / "rejected") == []

    monkeypatch.setattr(inbox_tick, "create_project", real_create)  # the database is back
    second = tick(instance, first.cursor)
    assert len(second.run_requests) == 3 and project_count(vp_env) == 3


def test_names_with_control_characters_are_escaped_in_every_log_line_and_note(vp_env, inbox, capfd):
    for name in ("line\nbreak.txt", "red\x1b[31m.txt", "bell\a.txt"):
        (inbox / name).write_text("A fox runs through the snow.")

    tick(vp_env.instance())

    err = capfd.readouterr().err
    for raw, shown in (("line\nbreak", "line\\nbreak"), ("red\x1b[31m", "red\\x1b[31m"), ("bell\a", "bell\\x07")):
        assert raw not in err
        [line] = [line for line in err.splitlines() if f"{shown}.txt: rejected" in line]
        assert f"(moved to rejected/{shown}.txt, reason in {shown}.txt.error.txt)" in line
        note = (inbox / "rejected" / f"{raw}.txt.error.txt").read_text()
        assert raw not in note and shown in note


def test_format_characters_in_a_file_or_its_name_are_refused_and_emoji_are_not(vp_env, inbox, capfd):
    """U+202E in a file's text or in its NAME ("photo\u202egpj.txt" shows as "phototxt.jpg") is
    refused naming the character; the name is printed escaped, never as it would display. A prompt
    and a name with emoji joined by ZERO WIDTH JOINERs are registered."""
    rlo, family = "\u202e", "👩\u200d👩\u200d👧"
    (inbox / "bidi.json").write_text(json.dumps({"prompt": f"a fox {rlo}xof a"}, ensure_ascii=False), encoding="utf-8")
    (inbox / "style.yaml").write_text("prompt: a fox\nstyle: ink\u2066wash\n", encoding="utf-8")
    (inbox / "zwsp.yaml").write_text("prompt: a fox\nid: f\u200box\n", encoding="utf-8")
    (inbox / f"photo{rlo}lmay.txt").write_text("a fox in the snow", encoding="utf-8")
    (inbox / f"family {family}.txt").write_text(f"a family {family} at the beach", encoding="utf-8")
    instance = vp_env.instance()

    result = tick(instance)

    assert [r.partition_key for r in result.run_requests] == ["a-family-at-the-beach"]
    assert load_spec(vp_env.services(), "a-family-at-the-beach").prompt == f"a family {family} at the beach"
    assert listing(inbox / "accepted") == [f"a-family-at-the-beach--family {family}.txt"]
    rejected = inbox / "rejected"
    expected = {
        "bidi.json": "prompt: contains an invisible format character (U+202E RIGHT-TO-LEFT OVERRIDE at position 7)",
        "style.yaml": "style: contains an invisible format character (U+2066 LEFT-TO-RIGHT ISOLATE at position 4)",
        "zwsp.yaml": "id: contains an invisible format character (U+200B ZERO WIDTH SPACE at position 2)",
        f"photo{rlo}lmay.txt": "name: 'photo\\u202elmay.txt' contains an invisible format character "
        "(U+202E RIGHT-TO-LEFT OVERRIDE at position 6) that hides or reorders text; rename the file",
    }
    for name, text in expected.items():
        note = (rejected / f"{name}.error.txt").read_text(encoding="utf-8")
        assert text in note, f"{name}: {note}"
        assert rlo not in note
    err = capfd.readouterr().err
    assert "photo\\u202elmay.txt: rejected - name:" in err and rlo not in err
    assert project_count(vp_env) == 1
