"""Characters step: one reference sheet per character a scene shows, made once through the keyframes
provider (`render_sheet`) and given to every frame that shows the character, so a character looks
the same in every scene.

A sheet is a ledger entry like a keyframe (`CharacterSheetRow`: fingerprint, path, sha256, cost):
it is reused, never paid for again, while its fingerprint holds and its bytes match the ledger. A
damaged sheet is rendered again only when that is free and gives the same bytes (the animatic), or
when the user agrees to pay (``repair``): a new sheet changes every frame that shows the character
and, through continuity, everything after the first of them."""

from __future__ import annotations

import io
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image

from vidpipe_core.cost import guard_budget, image_cost, usage_cost
from vidpipe_core.errors import VidpipeError
from vidpipe_core.integrity import Damage, DamagedArtifacts, read_checked
from vidpipe_core.models import CharacterSheetRow
from vidpipe_core.providers import keyframe_provider
from vidpipe_core.providers.base import KeyframeProvider, SheetRequest
from vidpipe_core.services import Services
from vidpipe_core.steps import CHARACTERS
from vidpipe_core.steps.keyframes import cascade_cost
from vidpipe_core.steps.locking import step_lock
from vidpipe_core.steps.report import Action, ItemReport, Progress, ProgressEvent, StepReport, no_progress
from vidpipe_core.steps.state import ProjectState, SheetState, checked_sheets, record_image, resolve_state, spent_usd
from vidpipe_core.storage import Layout, sha256_bytes

SHEET_WORKERS = 4  # reference sheets rendered at once
GIVEN = "given"  # the provider and model of a sheet that is the person's own image


@dataclass
class CharactersReport(StepReport):
    """The step's report and the sheets as it left them, in the style guide's order: each sheet's
    ledger row and the bytes that match it (checked against the ledger, or just rendered)."""

    sheets: list[SheetState] = field(default_factory=list)
    pngs: list[bytes] = field(default_factory=list)
    # The sheets this step rendered: their bytes decoded in full when they were made (the
    # characters check need not decode them again while they still match the ledger).
    decoded: set[str] = field(default_factory=set)


def make_characters(
    services: Services, project_id: str, *, run_id: str | None = None, repair: bool = False, progress: Progress = no_progress
) -> CharactersReport:
    with step_lock(services, project_id, run_id):
        return _make_characters(services, project_id, repair, progress)


def sheet_label(name: str) -> str:
    return f"the reference sheet of {name!r}"


def redo_cost(services: Services, state: ProjectState, names: list[str]) -> float:
    """What new sheets for ``names`` cost: the sheets, and every frame and clip from the first frame
    that shows one of them on (continuity)."""
    spec = state.spec
    model = keyframe_provider(spec.providers.keyframes, services.settings).model_for(spec)
    shown = [f.index for f in state.frames if set(f.characters) & set(names)]
    return image_cost(services.settings, model, len(names)) + (cascade_cost(services, state, min(shown)) if shown else 0.0)


def _make_characters(services: Services, project_id: str, repair: bool, progress: Progress) -> CharactersReport:
    state = resolve_state(services, project_id)
    if not state.has_storyboard or state.style is None:
        raise VidpipeError(f"project {project_id!r} has no storyboard yet; run `vidpipe render {project_id}`")
    spec, settings = state.spec, services.settings
    provider = keyframe_provider(spec.providers.keyframes, settings)
    model = provider.model_for(spec)
    report = CharactersReport(CHARACTERS, provider.name, model, sheets=state.sheets)
    good, damaged = checked_sheets(services, state)
    reproducible = bool(getattr(provider, "reproducible", False))
    given = {c.name for c in state.sheets if c.given is not None}  # taken again from the project's copy, free
    paid_damage = {name: problem for name, problem in damaged.items() if name not in given}
    if paid_damage and not repair and not reproducible:
        found = [
            Damage(sheet_label(name), problem, f"{provider.name} cannot render the same image again")
            for name, problem in paid_damage.items()
        ]
        raise DamagedArtifacts(
            CHARACTERS,
            project_id,
            found,
            redo_cost(services, state, list(paid_damage)),
            note="A new sheet also changes every frame that shows the character, and every frame and clip after the first of them.",
        )

    to_make = [c for c in state.sheets if not c.done or c.name in damaged]
    paid = [c for c in to_make if c.given is None]
    report.projected_usd = image_cost(settings, model, len(paid))
    if paid:
        guard_budget(CHARACTERS, spent_usd(services, project_id), report.projected_usd, spec.max_cost_usd, project_id)

    total = len(state.sheets)
    pngs: dict[int, bytes] = {}
    missing = []
    for i, sheet in enumerate(state.sheets):
        data = good.get(sheet.name)
        if sheet.done and sheet.row is not None and data is not None:
            pngs[i] = data
            report.items.append(ItemReport(i, Action.REUSED, sheet.fingerprint, path=sheet.row.path, detail=sheet.name))
            progress(ProgressEvent(CHARACTERS, f"{sheet_label(sheet.name)} reused", done=i + 1, total=total))
        else:
            missing.append(i)

    def render(i: int) -> tuple[int, bytes]:
        sheet = state.sheets[i]
        if sheet.given is not None:
            return i, _adopt(services, state, i, sheet, damaged.get(sheet.name), report, progress)
        png = _render(services, state, i, sheet, provider, model, damaged.get(sheet.name), repair, report, progress)
        report.decoded.add(sheet.name)
        return i, png

    # The sheets do not depend on each other (unlike keyframes): their image calls are made at once.
    # A failure surfaces once the others are done, each of them recorded (nothing is paid twice).
    with ThreadPoolExecutor(max_workers=max(1, min(SHEET_WORKERS, len(missing))), thread_name_prefix="vidpipe-sheet") as pool:
        pngs.update(pool.map(render, missing))
    report.items.sort(key=lambda item: item.index)
    report.pngs = [pngs[i] for i in range(total)]
    return report


def _render(
    services: Services,
    state: ProjectState,
    i: int,
    sheet: SheetState,
    provider: KeyframeProvider,
    model: str,
    damage: str | None,
    repair: bool,
    report: StepReport,
    progress: Progress,
) -> bytes:
    """Render one sheet and record it (``sheet.row`` becomes the recorded row). A damaged sheet that
    renders to its recorded bytes is a free repair; new bytes need ``repair``."""
    assert state.style is not None
    spec, total = state.spec, len(state.sheets)
    damaged = damage is not None
    progress(
        ProgressEvent(
            CHARACTERS,
            f"{'re-rendering damaged' if damaged else 'rendering'} {sheet_label(sheet.name)}",
            done=i,
            total=total,
            opening=not damaged,
        )
    )
    request = SheetRequest(
        project_id=spec.id,
        name=sheet.name,
        appearance=sheet.character.appearance,
        prompt=sheet.prompt,
        style=state.style,
        aspect_ratio=spec.aspect_ratio,
        variant=spec.sheet_take(sheet.name),
    )
    # Decoded in full where it was made (`DecodedImage`): nothing that does not decode gets here.
    image, usage = provider.render_sheet(request)
    png, (width, height) = image.data, image.size
    sha = sha256_bytes(png)
    if damaged and not repair and sheet.row is not None and sheet.row.sha256 != sha:
        raise DamagedArtifacts(
            CHARACTERS,
            spec.id,
            [Damage(sheet_label(sheet.name), str(damage), "rendering it again gave different bytes")],
            redo_cost(services, state, [sheet.name]),
            note="A new sheet also changes every frame that shows the character.",
        )
    relpath = Layout.character_sheet(sheet.name, sheet.fingerprint)
    services.store.write_bytes(spec.id, relpath, png)
    cost = usage_cost(services.settings, model, usage)
    same = damaged and sheet.row is not None and sheet.row.sha256 == sha
    key = {"project_id": spec.id, "name": sheet.name, "fingerprint": sheet.fingerprint}
    sheet.row = record_image(services, CharacterSheetRow, key, provider.name, model, relpath, sha, width, height, cost)
    action = Action.REPAIRED if same else Action.GENERATED
    detail = sheet.name + (
        " (damaged file rendered again, same bytes)" if same else (" (damaged file replaced by a new render)" if damaged else "")
    )
    report.items.append(ItemReport(i, action, sheet.fingerprint, cost_usd=cost, path=relpath, detail=detail))
    progress(
        ProgressEvent(CHARACTERS, f"{sheet_label(sheet.name)} {'repaired' if same else 'rendered'}", done=i + 1, total=total)
    )
    return png


def _adopt(
    services: Services,
    state: ProjectState,
    i: int,
    sheet: SheetState,
    damage: str | None,
    report: StepReport,
    progress: Progress,
) -> bytes:
    """The sheet of a character the person gave an image for: that image, as given, from the
    project's copy of it (checked against the digest taken at `new`), recorded at no cost. A damaged
    sheet is taken again from the copy: the same bytes, a free repair."""
    assert sheet.given is not None
    spec, total = state.spec, len(state.sheets)
    data, problem = read_checked(services.store, spec.id, sheet.given.path, sheet.given.sha256)
    if data is None or problem is not None:
        raise DamagedArtifacts(
            CHARACTERS,
            spec.id,
            [Damage(f"the copy of the image given for {sheet.name!r}", problem or "unreadable", "vidpipe cannot make it again")],
            0.0,
            note="Register the project again with the image (vidpipe new ... --character NAME=IMAGE).",
        )
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    relpath = Layout.character_sheet(sheet.name, sheet.fingerprint, posixpath.splitext(sheet.given.path)[1])
    services.store.write_bytes(spec.id, relpath, data)
    key = {"project_id": spec.id, "name": sheet.name, "fingerprint": sheet.fingerprint}
    sheet.row = record_image(services, CharacterSheetRow, key, GIVEN, GIVEN, relpath, sheet.given.sha256, width, height, 0.0)
    repaired = damage is not None
    detail = sheet.name + (" (damaged file taken again from the image you gave)" if repaired else " (the image you gave)")
    report.items.append(
        ItemReport(i, Action.REPAIRED if repaired else Action.GENERATED, sheet.fingerprint, path=relpath, detail=detail)
    )
    progress(ProgressEvent(CHARACTERS, f"{sheet_label(sheet.name)} taken from the image you gave", done=i + 1, total=total))
    return data
