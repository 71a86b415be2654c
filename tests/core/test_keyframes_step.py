"""The keyframes step resolves the project once and reads each stored frame at most once; it hands
the bytes it holds to the contact sheet and the keyframes check, which still fails for real."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import update

from vidpipe_core import checks
from vidpipe_core.checks import check_keyframes
from vidpipe_core.models import Keyframe, KeyframeStatus
from vidpipe_core.projects import build_spec, create_project
from vidpipe_core.providers.animatic import provider as keyframes_provider
from vidpipe_core.request import ProjectRequest
from vidpipe_core.services import Services
from vidpipe_core.steps import keyframes as keyframes_step
from vidpipe_core.steps import state
from vidpipe_core.steps.characters import make_characters
from vidpipe_core.steps.keyframes import make_keyframes
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.steps.storyboard import make_storyboard
from vidpipe_core.storage import ArtifactStore, sha256_bytes

SCENES = 3


@dataclass
class KeyframeIO:
    resolves: int = 0  # entries into resolve_state
    reads: int = 0  # stored keyframe files read
    decodes: int = 0  # PNG pixel data decoded (opening one reads only its header)


def count_keyframe_io(monkeypatch: pytest.MonkeyPatch, thread: int | None = None) -> KeyframeIO:
    """Count, never change, what a keyframes materialization costs: every call goes through.
    ``thread``: count only the decodes on that thread."""
    counts = KeyframeIO()
    resolve, read, prepare = state.resolve_state, ArtifactStore.read_bytes, PngImagePlugin.PngImageFile.load_prepare

    def counting_resolve(*args, **kwargs):  # type: ignore[no-untyped-def]
        counts.resolves += 1
        return resolve(*args, **kwargs)

    def counting_read(self: ArtifactStore, project_id: str, relpath: str) -> bytes:
        counts.reads += relpath.startswith("keyframes/")
        return read(self, project_id, relpath)

    def counting_prepare(self: PngImagePlugin.PngImageFile) -> None:  # Pillow's load calls it once per decode
        counts.decodes += thread is None or threading.get_ident() == thread
        prepare(self)

    for module in (state, keyframes_step, checks):
        monkeypatch.setattr(module, "resolve_state", counting_resolve)
    monkeypatch.setattr(ArtifactStore, "read_bytes", counting_read)
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load_prepare", counting_prepare)
    return counts


@pytest.fixture
def project(vp_env) -> tuple[Services, str]:  # type: ignore[no-untyped-def]
    services = Services.create()
    request = ProjectRequest(
        prompt="A kite rises over the dunes. The string snaps. A child runs after it.", id="kites", scenes=SCENES, clip_duration=1
    )
    spec = create_project(services, build_spec(services.settings, request), "cli")
    make_storyboard(services, spec.id)
    make_characters(services, spec.id)  # the sheets the keyframes are drawn from
    return services, spec.id


def _file(services: Services, project_id: str, relpath: str) -> Path:
    return Path(services.store.path(project_id, relpath))


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()


def test_the_step_resolves_once_and_reads_each_stored_frame_at_most_once(project, monkeypatch):
    services, project_id = project
    counts = count_keyframe_io(monkeypatch)

    made = make_keyframes(services, project_id)
    assert (counts.resolves, counts.reads) == (1, 0)  # every frame rendered: nothing to read back
    frames = resolve_state(services, project_id).frames
    assert [f.row.id for f in made.frames] == [f.row.id for f in frames]
    assert made.pngs == [_file(services, project_id, f.row.path).read_bytes() for f in frames]

    counts.resolves = counts.reads = 0
    again = make_keyframes(services, project_id)
    assert again.counts["reused"] == SCENES + 1
    assert (counts.resolves, counts.reads) == (1, SCENES + 1)  # each stored frame read once, against the ledger
    assert again.pngs == made.pngs


def test_the_check_takes_the_steps_bytes_without_reading_or_decoding_them(project, monkeypatch):
    services, project_id = project
    made = make_keyframes(services, project_id)
    counts = count_keyframe_io(monkeypatch)
    outcome = check_keyframes(services, project_id, made)
    assert outcome.passed, outcome.description
    assert outcome.description == f"{SCENES + 1} frames decode at [(256, 144)]"
    assert outcome.metadata == {"frames": SCENES + 1}
    assert (counts.resolves, counts.reads, counts.decodes) == (0, 0, 0)

    # Alone (no step before it), the check resolves the project and reads every file once.
    assert check_keyframes(services, project_id).passed
    assert (counts.resolves, counts.reads, counts.decodes) == (1, SCENES + 1, 0)


def test_the_check_fails_when_the_steps_bytes_are_not_the_ledgers(project):
    services, project_id = project
    made = make_keyframes(services, project_id)
    made.pngs[1] = made.pngs[2]  # a valid PNG, but not the frame the ledger recorded
    outcome = check_keyframes(services, project_id, made)
    assert not outcome.passed
    assert outcome.description.startswith("the frame between scenes 1 and 2: its content does not match the ledger")


def test_the_check_alone_fails_for_damaged_missing_and_misshapen_frames(project):
    services, project_id = project
    make_keyframes(services, project_id)
    frames = resolve_state(services, project_id).frames
    _file(services, project_id, frames[0].row.path).unlink()
    _file(services, project_id, frames[1].row.path).write_bytes(_file(services, project_id, frames[2].row.path).read_bytes())
    # A frame of the wrong size that the ledger vouches for (as a provider returning it would leave it).
    wrong = _png((100, 100))
    _file(services, project_id, frames[3].row.path).write_bytes(wrong)
    with services.db.session() as s:
        s.execute(update(Keyframe).where(Keyframe.id == frames[3].row.id).values(sha256=sha256_bytes(wrong)))

    outcome = check_keyframes(services, project_id)
    assert not outcome.passed
    problems = outcome.description.split("; ")
    assert problems[0] == "the start frame of scene 1: the file is missing"
    assert problems[1].startswith("the frame between scenes 1 and 2: its content does not match the ledger")
    assert problems[2] == "the end frame of scene 3 is 100x100, expected 256x144"
    assert len(problems) == 3


def test_a_frame_recorded_without_a_digest_is_decoded_in_full(project, monkeypatch):
    services, project_id = project
    make_keyframes(services, project_id)
    row = resolve_state(services, project_id).frames[2].row
    path = _file(services, project_id, row.path)
    path.write_bytes(path.read_bytes()[:-200])  # the header survives; the pixels do not
    with services.db.session() as s:
        s.execute(update(Keyframe).where(Keyframe.id == row.id).values(sha256=None))
    counts = count_keyframe_io(monkeypatch)

    outcome = check_keyframes(services, project_id)
    assert not outcome.passed and outcome.description.startswith("the frame between scenes 2 and 3 does not decode")
    assert counts.decodes == 1


def test_each_frame_the_step_renders_is_decoded_once_and_recorded_at_that_size(gp, monkeypatch):
    """Google's frames are decoded in full by the provider (which asks again for one that does not
    decode); the step records the size that decode found and decodes nothing again."""
    services = Services.create()
    request = ProjectRequest(prompt="A kite rises over the dunes. The string snaps.", id="kites", scenes=2, clip_duration=4)
    spec = create_project(services, build_spec(services.settings, request), "cli")
    make_storyboard(services, spec.id)
    make_characters(services, spec.id)
    counts = count_keyframe_io(monkeypatch, thread=threading.get_ident())  # the emulator decodes on its own threads

    made = make_keyframes(services, spec.id)
    assert made.counts["generated"] == 3
    assert counts.decodes == 3  # one per frame (two before: the provider's, then the step's)
    for f, png in zip(made.frames, made.pngs, strict=True):
        with Image.open(io.BytesIO(png)) as im:
            assert (f.row.width, f.row.height) == im.size and f.row.sha256 == sha256_bytes(png)


def test_a_frame_that_does_not_decode_is_neither_written_nor_recorded(project, monkeypatch):
    services, project_id = project
    draw = keyframes_provider.render_keyframe

    def drawn(request, size):  # type: ignore[no-untyped-def]
        png = draw(request, size)
        return png[: len(png) // 2] if request.frame_index == 2 else png  # the header still reads

    monkeypatch.setattr(keyframes_provider, "render_keyframe", drawn)
    with pytest.raises(ValueError, match="image does not decode"):
        make_keyframes(services, project_id)
    frames = resolve_state(services, project_id).frames
    assert [f.done for f in frames] == [True, True, False, False]
    stored = {p.name for p in Path(services.store.path(project_id, "keyframes")).iterdir()}
    assert stored == {Path(f.row.path).name for f in frames[:2]}

    monkeypatch.setattr(keyframes_provider, "render_keyframe", draw)
    again = make_keyframes(services, project_id)
    assert (again.counts["reused"], again.counts["generated"]) == (2, 2)
    assert check_keyframes(services, project_id, again).passed


def test_a_frame_after_a_new_render_is_found_in_the_ledger_and_reused(project, monkeypatch):
    """Frame 1 is rendered again (its row is not done); the animatic draws the same bytes, so
    frames 2 and 3 chain on to fingerprints the ledger holds: reused, read once each, not drawn."""
    services, project_id = project
    first = make_keyframes(services, project_id)
    with services.db.session() as s:
        s.execute(update(Keyframe).where(Keyframe.id == first.frames[1].row.id).values(status=KeyframeStatus.PENDING))
    assert [f.fingerprint is not None for f in resolve_state(services, project_id).frames] == [True, True, False, False]
    counts = count_keyframe_io(monkeypatch)

    again = make_keyframes(services, project_id)
    assert [i.action.value for i in again.items] == ["reused", "generated", "reused", "reused"]
    assert [f.row.id for f in again.frames] == [f.row.id for f in first.frames]
    assert again.pngs == first.pngs and counts.reads == 3
