"""The characters step decodes each sheet it renders once, where it is made, and records the size
that decode found; a sheet that does not decode is neither written nor recorded. Its check
(`check_characters`) decodes again only the sheets the step did not render: one read back from
the store or taken from the image the person gave."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import select, update

from vidpipe_core.checks import check_characters
from vidpipe_core.models import CharacterSheetRow
from vidpipe_core.projects import build_spec, create_project
from vidpipe_core.providers.animatic import figures
from vidpipe_core.request import ProjectRequest
from vidpipe_core.services import Services
from vidpipe_core.steps.characters import make_characters
from vidpipe_core.steps.state import resolve_state
from vidpipe_core.steps.storyboard import make_storyboard
from vidpipe_core.storage import sha256_bytes

PROMPT = "A kite rises over the dunes. The string snaps. A child runs after it."


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """PNG pixel data decoded, on any thread (opening a PNG reads only its header); counts, never
    changes: every call goes through."""
    count, prepare = [0], PngImagePlugin.PngImageFile.load_prepare

    def counting_prepare(self: PngImagePlugin.PngImageFile) -> None:  # Pillow's load calls it once per decode
        count[0] += 1
        prepare(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load_prepare", counting_prepare)
    return count


def _project(project_id: str = "kites", **request: object) -> tuple[Services, str]:
    services = Services.create()
    spec = create_project(
        services,
        build_spec(services.settings, ProjectRequest(prompt=PROMPT, id=project_id, scenes=3, clip_duration=1, **request)),
        "cli",
    )
    make_storyboard(services, spec.id)
    return services, spec.id


def _rows(services: Services, project_id: str) -> dict[str, CharacterSheetRow]:
    with services.db.session() as s:
        return {r.name: r for r in s.scalars(select(CharacterSheetRow).where(CharacterSheetRow.project_id == project_id))}


def _sheet_files(services: Services, project_id: str) -> set[str]:
    root = Path(services.store.path(project_id, "characters"))
    return {p.name for p in root.iterdir()} if root.exists() else set()


def _truncated(png: bytes) -> bytes:
    """``png`` cut short: its header still reads, its pixels do not decode."""
    data = png[: len(png) // 2]
    with Image.open(io.BytesIO(data)) as im:
        im.size  # noqa: B018  (the header reads)
    return data


def test_a_rendered_sheet_is_recorded_at_its_size_and_not_decoded_again_by_the_check(vp_env, decodes):
    services, project_id = _project()
    decodes[0] = 0
    made = make_characters(services, project_id)
    assert len(made.sheets) >= 2 and made.decoded == {s.name for s in made.sheets}
    assert decodes[0] == len(made.sheets)  # one decode per sheet, in the provider
    for sheet, png in zip(made.sheets, made.pngs, strict=True):
        with Image.open(io.BytesIO(png)) as im:
            assert (sheet.row.width, sheet.row.height) == im.size == (256, 144)

    decodes[0] = 0
    outcome = check_characters(made)
    assert outcome.passed, outcome.description
    assert outcome.description == f"{len(made.sheets)} reference sheets recorded and decoding"
    assert decodes[0] == 0


def test_a_sheet_read_back_from_the_store_is_decoded_by_the_check(vp_env, decodes):
    services, project_id = _project()
    first = make_characters(services, project_id)
    again = make_characters(services, project_id)
    assert again.counts["reused"] == len(first.sheets) and again.decoded == set()
    decodes[0] = 0
    assert check_characters(again).passed
    assert decodes[0] == len(again.sheets)

    # Stored bytes the ledger vouches for, whose pixels do not decode: reused (the digest matches),
    # and the check says so.
    name, row = next(iter(_rows(services, project_id).items()))
    path = Path(services.store.path(project_id, row.path))
    broken = _truncated(path.read_bytes())
    path.write_bytes(broken)
    with services.db.session() as s:
        s.execute(update(CharacterSheetRow).where(CharacterSheetRow.id == row.id).values(sha256=sha256_bytes(broken)))
    reused = make_characters(services, project_id)
    assert reused.counts["reused"] == len(first.sheets) and reused.decoded == set()
    outcome = check_characters(reused)
    assert not outcome.passed
    assert outcome.description.startswith(f"the reference sheet of {name!r} does not decode")


def test_the_check_fails_when_the_steps_bytes_are_not_the_ledgers(vp_env, decodes):
    services, project_id = _project()
    made = make_characters(services, project_id)
    made.pngs[0] = made.pngs[1]  # a sheet that decoded, but not the one the ledger recorded
    outcome = check_characters(made)
    assert not outcome.passed
    assert outcome.description.startswith(
        f"the reference sheet of {made.sheets[0].name!r}: its content does not match the ledger"
    )


def test_a_sheet_that_does_not_decode_is_neither_written_nor_recorded(vp_env, monkeypatch):
    services, project_id = _project()
    names = [s.name for s in resolve_state(services, project_id).sheets]
    bad = names[0]
    draw = figures.render_sheet

    def drawn(name: str, *args: object, **kwargs: object) -> bytes:
        png = draw(name, *args, **kwargs)  # type: ignore[arg-type]
        return _truncated(png) if name == bad else png

    monkeypatch.setattr(figures, "render_sheet", drawn)
    with pytest.raises(ValueError, match="image does not decode"):
        make_characters(services, project_id)
    made_rows = {name: row for name, row in _rows(services, project_id).items() if row.made}
    assert bad not in made_rows
    # Only what was recorded is on disk (another sheet may be recorded, or not started yet).
    assert _sheet_files(services, project_id) == {Path(row.path).name for row in made_rows.values()}

    monkeypatch.setattr(figures, "render_sheet", draw)
    made = make_characters(services, project_id)
    assert made.counts["reused"] == len(made_rows) and made.counts["generated"] == len(names) - len(made_rows)
    assert check_characters(made).passed


def test_the_image_a_person_gave_is_decoded_by_the_check(vp_env, decodes, tmp_path):
    out = io.BytesIO()
    Image.new("RGB", (320, 400), (200, 40, 40)).save(out, format="PNG")
    (tmp_path / "mara.png").write_bytes(out.getvalue())
    services, project_id = _project("given", characters=[{"name": "Mara", "image": "mara.png"}, {"name": "Tom"}])
    made = make_characters(services, project_id)
    assert "Mara" in [s.name for s in made.sheets] and "Mara" not in made.decoded and "Tom" in made.decoded
    decodes[0] = 0
    assert check_characters(made).passed
    assert decodes[0] == 1  # Mara's: the step read only its header
