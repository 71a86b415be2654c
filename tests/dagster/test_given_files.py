"""A person's own files: a character image that becomes the character's reference sheet as given
(copied into the project, its sha256 recorded, not paid for, sent with every keyframe request that
shows the character), a music track copied at `new`, and every bad file refused at `new` by the
command line, the inbox and the `new_project` job in the same words, with nothing written. The real
google-genai SDK against the wire emulator, the real Dagster assets and jobs."""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import wave
from pathlib import Path

import av
import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from vidpipe_core.config import get_settings
from vidpipe_core.cost import estimate
from vidpipe_core.errors import ConfigurationError, InvalidInput
from vidpipe_core.inbox.parse import parse_inbox_file
from vidpipe_core.inbox.tick import process_inbox
from vidpipe_core.models import CharacterSheetRow, Project
from vidpipe_core.projects import list_projects, load_spec
from vidpipe_core.services import Services
from vidpipe_core.steps.inspect import find_damage
from vidpipe_core.steps.state import frame_characters, resolve_state, stored_document
from vidpipe_core.steps.storyboard import stage_models
from vidpipe_core.userfiles import music_file
from vidpipe_dagster.cli import app
from vidpipe_dagster.partitions import projects_partitions
from vidpipe_dagster.runner import failure_message, register, render
from vidpipe_dagster.status import project_status

UP_TO_KEYFRAMES = ["storyboard", "characters", "keyframes"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _image(path: Path, size: tuple[int, int], color: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    path.write_bytes(out.getvalue())
    return out.getvalue()


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_a_given_image_is_the_characters_sheet_in_every_keyframe_request_and_costs_nothing(gp, tmp_path):
    vp_env, g = gp
    emu = g.emulator
    mara = _image(tmp_path / "mara.jpg", (320, 400), (200, 40, 40), "JPEG")
    before = _tree(tmp_path)
    spec = register(
        "Mara and Tom walk through a rainy market",
        id="given-mara",
        scenes=2,
        clip_duration=4,
        characters=[{"name": "Mara", "appearance": "tall, red coat", "image": "mara.jpg"}, {"name": "Tom"}],
    )
    # Copied at `new`, into the project folder only, with its digest; nothing paid yet.
    services = vp_env.services()
    [given_mara, given_tom] = spec.characters
    assert given_tom.image is None and given_mara.appearance == "tall, red coat"
    assert given_mara.image is not None and given_mara.image.sha256 == _sha(mara)
    copy = Path(services.store.path(spec.id, given_mara.image.path))
    assert copy.read_bytes() == mara and copy.is_relative_to(Path(services.store.project_root(spec.id)))
    assert given_mara.image.path.startswith("inputs/") and ".." not in given_mara.image.path
    assert "source" not in json.dumps(load_spec(services, spec.id).model_dump(mode="json"))  # no local path kept
    assert {p for p in _tree(tmp_path) - before if not p.startswith(("data", "dagster_home"))} == set()
    assert emu.stats()["requests"].get("image", 0) == 0

    assert render(spec.id, assets=["storyboard"]).success
    # What is left to pay counts one sheet (Tom's), not Mara's.
    state = resolve_state(services, spec.id)
    models = stage_models(services, spec)
    left = estimate(services.settings, spec, models, frames=3, clips=2, sheets=1).after_storyboard_usd
    assert state.sheets_left() == 1 and project_status(services, spec.id)["cost"]["projected_usd"] == pytest.approx(left)

    result = render(spec.id, assets=UP_TO_KEYFRAMES[1:])
    assert result.success, failure_message(result)
    state = resolve_state(services, spec.id)
    # The storyboard keeps the given names (first), the appearance as given, and shows both.
    assert [c.name for c in state.style.characters][:2] == ["Mara", "Tom"]
    assert state.style.characters[0].appearance == "tall, red coat"
    assert {"Mara", "Tom"} <= {n for s in state.scenes for n in s.characters}

    # One image request for a sheet: Tom's. None names Mara's sheet.
    records = emu.records("image")
    sheet_requests = [r for r in records if "reference sheet of" in r.prompt and r.image_parts == 0]
    assert [("Tom" in r.prompt) for r in sheet_requests] == [True]
    assert not any("Character reference sheet of Mara" in r.prompt for r in records)
    assert len(records) == 1 + len(state.frames)

    # Mara's sheet is her image, byte for byte, at no cost.
    sheet = state.sheet("Mara")
    assert sheet.row is not None and sheet.row.sha256 == _sha(mara) and sheet.row.cost_usd == 0
    assert services.store.read_bytes(spec.id, sheet.row.path) == mara
    with services.db.session() as s:
        rows = {r.name: r for r in s.scalars(select(CharacterSheetRow).where(CharacterSheetRow.project_id == spec.id))}
    assert rows["Mara"].provider == "given" and rows["Tom"].cost_usd > 0

    # Every keyframe request that shows Mara carries exactly her image's bytes, where her sheet goes.
    frame_requests = records[1:]
    shown_mara = 0
    for k, record in enumerate(frame_requests):
        shown = frame_characters(state.scenes, k)
        if "Mara" in shown:
            shown_mara += 1
            assert record.image_sha256[shown.index("Mara")] == _sha(mara), f"frame {k + 1}"
        else:
            assert _sha(mara) not in record.image_sha256
    assert shown_mara >= 1

    # A damaged sheet is taken again from the project's copy: free, same bytes, no request.
    Path(services.store.path(spec.id, sheet.row.path)).write_bytes(b"broken")
    [finding] = find_damage(services, resolve_state(services, spec.id))
    assert finding.paid_usd == 0 and "copied again from the image you gave" in finding.repair
    images = emu.request_count("image")
    result = render(spec.id, assets=["characters"])
    assert result.success, failure_message(result)
    assert emu.request_count("image") == images
    assert services.store.read_bytes(spec.id, resolve_state(services, spec.id).sheet("Mara").row.path) == mara


def _bad_files(tmp: Path) -> dict[str, tuple[list[dict], str]]:
    """Each kind of bad file: the characters to ask for, and the words of the refusal."""
    inside = tmp / "in"
    inside.mkdir()
    (inside / "notes.png").write_text("not an image at all")
    good = _image(inside / "good.png", (300, 300), (10, 200, 10))
    (inside / "cut.png").write_bytes(good[: len(good) // 2])
    with open(inside / "huge.png", "wb") as f:
        f.write(good)
        f.truncate(20 * 1024 * 1024 + 1)
    _image(inside / "small.png", (600, 200), (10, 10, 200))
    (tmp / "elsewhere").mkdir()
    _image(tmp / "elsewhere" / "outside.png", (300, 300), (1, 2, 3))
    (inside / "link.png").symlink_to(tmp / "elsewhere" / "outside.png")
    p = str(inside)
    return {
        "not an image": ([{"name": "Mara", "image": f"{p}/notes.png"}], "is not a readable PNG, JPEG or WebP image"),
        "unreadable": ([{"name": "Mara", "image": f"{p}/cut.png"}], "is not a readable PNG, JPEG or WebP image"),
        "missing": ([{"name": "Mara", "image": f"{p}/gone.png"}], "does not exist"),
        "over 20 MB": ([{"name": "Mara", "image": f"{p}/huge.png"}], "is 20.0 MB (allowed: at most 20 MB)"),
        "under 256 px": ([{"name": "Mara", "image": f"{p}/small.png"}], "is 600x200 pixels, too small"),
        "outside": ([{"name": "Mara", "image": str(tmp / "elsewhere" / "outside.png")}], "is outside the folders"),
        "a link to outside": ([{"name": "Mara", "image": f"{p}/link.png"}], "is outside the folders"),
        "a name twice": ([{"name": "Mara", "image": f"{p}/good.png"}, {"name": "mara"}], "character 'mara': is given twice"),
    }


def _cli_args(characters: list[dict]) -> list[str]:
    args = []
    for c in characters:
        args += ["--character", f"{c['name']}={c['image']}" if "image" in c else c["name"]]
    return args


def test_each_bad_file_is_refused_at_new_in_the_same_words_everywhere_and_nothing_is_written(vp_env, tmp_path, monkeypatch):
    from tests.dagster.test_new_project_job import _launch, _registered

    monkeypatch.setenv("VIDPIPE_INPUT_ROOTS", json.dumps([str(tmp_path / "in")]))
    monkeypatch.setenv("VIDPIPE_INBOX_MIN_AGE_S", "0")
    cases = _bad_files(tmp_path)
    inbox = get_settings().resolved_inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    store_root = Path(vp_env.services().store.root)
    for case, (characters, words) in cases.items():
        cli = CliRunner().invoke(app, ["new", "Mara crosses the bridge", "--scenes", "1", *_cli_args(characters)])
        assert cli.exit_code == 2, (case, cli.output)
        [line] = cli.stderr.strip().splitlines()
        assert line.startswith("error: ") and words in line, (case, line)
        message = line.removeprefix("error: ")

        drop = inbox / f"{case.replace(' ', '-')}.json"
        drop.write_text(json.dumps({"prompt": "Mara crosses the bridge", "scenes": 1, "characters": characters}))
        with pytest.raises(InvalidInput) as refused:
            parse_inbox_file(drop, get_settings())
        assert str(refused.value) == message, case
        tick = process_inbox(vp_env.services())
        assert [reason for _, reason in tick.rejected] == [message] and not tick.registered, case

        result = _launch(vp_env, prompt="Mara crosses the bridge", scenes=1, characters=characters)
        assert not result.success
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert failure.step_failure_data.user_failure_data.description == message, case

        assert _registered(vp_env) == ([], []), case
        assert not (store_root / "projects").exists(), case


def _wav(path: Path, seconds: float = 1.0, rate: int = 22050) -> bytes:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(int(seconds * rate)))
        )
    return path.read_bytes()


def test_music_is_checked_and_copied_with_its_sha256(vp_env, tmp_path):
    data = _wav(tmp_path / "track.wav")
    cli = CliRunner().invoke(
        app, ["new", "A fox runs through snow", "--music", "track.wav", "--id", "with-music", "--scenes", "1"]
    )
    assert cli.exit_code == 0, cli.output
    services = vp_env.services()
    spec = load_spec(services, "with-music")
    assert spec.music is not None and spec.music.sha256 == _sha(data) and spec.music.size == len(data)
    relpath = spec.music.path if spec.music is not None else None
    assert relpath == "inputs/music.wav"
    copied = services.store.read_bytes(spec.id, relpath)
    assert copied == data
    with av.open(io.BytesIO(copied)) as container:  # what the mix will read: an audio stream of a second
        [stream] = container.streams.audio
        assert stream.rate == 22050 and float(container.duration) / av.time_base == pytest.approx(1.0, abs=0.05)

    # What the final mix opens: the checked copy as a local file; a damaged copy is refused by name.
    with music_file(services.store, spec) as local:
        assert local is not None and local.read_bytes() == data
    Path(services.store.path(spec.id, relpath)).write_bytes(data[:100])
    with pytest.raises(ConfigurationError, match=r"the copy of your music \(inputs/music.wav\) is damaged"):
        with music_file(services.store, spec):
            pass

    # Text named .mp3, and an image named .mp3: refused, nothing registered.
    (tmp_path / "song.mp3").write_text("la la la " * 100)
    _image(tmp_path / "cover.mp3", (300, 300), (0, 0, 0))
    for name, words in (("song.mp3", "is not a readable audio file"), ("cover.mp3", "has no audio stream")):
        cli = CliRunner().invoke(app, ["new", "A fox runs through snow", "--music", name, "--scenes", "2"])
        assert cli.exit_code == 2 and words in cli.stderr, cli.output
    assert [p.id for p in list_projects(services)] == ["with-music"]
    assert sorted(vp_env.instance().get_dynamic_partitions(projects_partitions.name)) == ["with-music"]


# What a project registered before given characters and music existed had (computed before them).
OLD_FINGERPRINTS = {
    "storyboard": "83c1e5bd32ff853b53531c7b678cae09b4161625200c3052a6817eefc3c4af78",
    "sheets": [
        "d4587be5fd369dcbc583977efbc95fbf4da1cb4cfeedbdfcad58ee444bd32690",
        "a65963da8ee6b23318c0ffa9cf748a20f7f84ef5a9d9ed79693fc9696cbf2221",
    ],
    "frames": [
        "9efa9ebbace5ab223a65ab7badfc4089cbe9ca17813b85012b937f5402f05dc7",
        "368805e8edb687d6b9909949fc72fe6b2bdbc895ec8179a65f0fc46cbf2b5857",
        "b7cdafdfa2dc1fcd2478a39f81391d422e7b66bbce6a2e8a3d6a838b553490fc",
    ],
    "clips": [
        "c397af38d8fdeee0485ceaa1c0adc0bf4fa711ea78393d43985f656b2e52194f",
        "bc2df4a7f08899ab063aeb030fbbe98e17442938953d80113738bec0a39e2e57",
    ],
}


def test_a_project_registered_before_these_fields_keeps_its_fingerprints(vp_env):
    spec = register(
        "A fox and an old owl watch the snow fall over a quiet forest", id="old-fingerprints", scenes=2, narration=False
    )
    services: Services = vp_env.services()
    with services.db.session() as s:  # written as before: no characters, no music (an earlier version reads it)
        assert not {"characters", "music"} & set(s.get(Project, spec.id).spec)
    result = render(spec.id)
    assert result.success, failure_message(result)
    state = resolve_state(services, spec.id)
    found = {
        "storyboard": stored_document(services, spec.id)["fingerprint"],
        "sheets": [c.fingerprint for c in state.sheets],
        "frames": [f.fingerprint for f in state.frames],
        "clips": [c.fingerprint for c in state.clips],
    }
    assert found == OLD_FINGERPRINTS


def test_an_image_in_s3_is_read_when_the_artifacts_are_in_s3_and_its_prefix_is_allowed(vp_env, s3, tmp_path, monkeypatch):
    mara = _image(tmp_path / "mara.png", (300, 300), (90, 30, 160))
    s3.put("inputs/mara.png", mara)
    s3.put("private/mara.png", mara)
    url = f"s3://{s3.bucket}/inputs/mara.png"

    # Local artifacts: no s3:// file is read.
    cli = CliRunner().invoke(app, ["new", "Mara sings", "--scenes", "1", "--character", f"Mara={url}"])
    assert cli.exit_code == 2 and "s3:// files are read only when the artifacts are on S3" in cli.stderr, cli.output

    monkeypatch.setenv("VIDPIPE_ARTIFACTS_URL", s3.url)
    monkeypatch.setenv("VIDPIPE_INPUT_ROOTS", json.dumps([f"s3://{s3.bucket}/inputs/"]))
    outside = f"s3://{s3.bucket}/private/mara.png"
    cli = CliRunner().invoke(app, ["new", "Mara sings", "--scenes", "1", "--character", f"Mara={outside}"])
    assert cli.exit_code == 2 and "is outside the places files may be read from" in cli.stderr, cli.output
    assert [k for k in s3.keys() if k.startswith("vidpipe/")] == []

    spec = register("Mara sings", id="s3-mara", scenes=1, characters=[{"name": "Mara", "image": url}])
    image = spec.characters[0].image
    assert image is not None and image.sha256 == _sha(mara)
    assert s3.get(f"vidpipe/projects/s3-mara/{image.path}") == mara


def test_a_mistyped_field_of_a_character_in_the_job_config_is_named_like_the_inbox_names_it(vp_env):
    from tests.dagster.test_new_project_job import _launch, _registered

    result = _launch(vp_env, prompt="Mara walks", characters=[{"name": "Mara", "img": "a.png"}])
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.user_failure_data.description == (
        "characters[1].img: is not a known field; did you mean 'image'? (allowed: name, appearance, image)"
    )
    assert _registered(vp_env) == ([], [])


def test_an_inbox_file_whose_image_changed_is_another_request(vp_env):
    inbox = get_settings().resolved_inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    _image(inbox / "mara.png", (300, 300), (1, 1, 1))
    (inbox / "with.json").write_text(json.dumps({"prompt": "Mara rows", "characters": [{"name": "Mara", "image": "mara.png"}]}))
    (inbox / "without.json").write_text(json.dumps({"prompt": "Mara rows"}))
    first = parse_inbox_file(inbox / "with.json", get_settings())
    _image(inbox / "mara.png", (300, 300), (2, 2, 2))
    assert parse_inbox_file(inbox / "with.json", get_settings()).digest != first.digest
    plain = parse_inbox_file(inbox / "without.json", get_settings())
    assert plain.digest == plain.request.digest()  # a file naming no files keeps the digest it had
