"""Where a project stands: the fingerprint each keyframe and clip *should* have for the current
storyboard, and the stored row that matches it (if any). Every step and `status` reads this;
nothing stores a derived "scene status" that could disagree with it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import select

from vidpipe_core.fingerprint import clip_fingerprint, given_sheet_fingerprint, keyframe_fingerprint, sheet_fingerprint
from vidpipe_core.integrity import read_checked
from vidpipe_core.models import CharacterSheetRow, ClipStatus, Keyframe, NarrationLine, Project, Scene, VideoClip
from vidpipe_core.projects import load_spec
from vidpipe_core.providers import clip_provider, keyframe_provider
from vidpipe_core.providers.base import KeyframeProvider
from vidpipe_core.schemas import Character, GivenFile, ProjectSpec, ScenePlan, Storyboard, StyleGuide
from vidpipe_core.services import Services
from vidpipe_core.speech import veo_cues
from vidpipe_core.storage import Layout


@dataclass
class SheetState:
    """One character's reference sheet: what it should be (fingerprint) and its ledger row, if made."""

    character: Character
    prompt: str
    fingerprint: str
    row: CharacterSheetRow | None = None
    given: GivenFile | None = None  # the person's image: the sheet as given, copied from the project's copy

    @property
    def name(self) -> str:
        return self.character.name

    @property
    def done(self) -> bool:
        return self.row is not None and self.row.made


@dataclass
class FrameState:
    index: int
    prompt: str
    fingerprint: str | None  # None when the previous frame or a character's sheet does not exist yet
    row: Keyframe | None = None
    characters: list[str] = field(default_factory=list)  # the characters it shows (storyboard order)

    @property
    def done(self) -> bool:
        return self.row is not None and self.row.made


@dataclass
class ClipState:
    index: int
    prompt: str
    fingerprint: str | None  # None while its keyframes are missing
    row: VideoClip | None = None

    @property
    def status(self) -> ClipStatus | None:
        return self.row.status if self.row else None

    @property
    def done(self) -> bool:
        """Its clip is made and recorded with a file."""
        return self.row is not None and self.row.status == ClipStatus.DONE and bool(self.row.path)

    def skipped(self, safety_policy: str) -> bool:
        """Rejected by the safety filter, and the project's policy leaves the scene out."""
        return self.row is not None and self.row.status == ClipStatus.REJECTED and safety_policy == "skip"

    def refused(self, safety_policy: str, retries: int) -> bool:
        """Rejected by the safety filter and, under the project's policy, never submitted again:
        `fail`, or `retry` with its rephrased attempts used up (`resubmits_rejected`). Only an edit
        of the scene (a new fingerprint) or the `skip` policy moves the project on."""
        if self.row is None or self.row.status != ClipStatus.REJECTED or safety_policy == "skip":
            return False
        return not resubmits_rejected(safety_policy, self.row.safety_reasons, retries)

    def settled(self, safety_policy: str) -> bool:
        """The scene needs no more work: its clip is done, or it is skipped by policy. The one rule
        the clips step, `status`, `resume` and the stitcher share."""
        return self.done or self.skipped(safety_policy)

    @property
    def unpaid(self) -> bool:
        """Making this clip now means paying for a new operation (a SUBMITTED row re-attaches to its
        paid one; DONE and REJECTED rows are settled or reported)."""
        return self.row is None or self.row.status in (ClipStatus.CLAIMED, ClipStatus.FAILED)


def resubmits_rejected(safety_policy: str, reasons: list[str] | None, retries: int) -> bool:
    """Whether the clips step submits a clip the safety filter rejected again, rephrased: only under
    the `retry` policy, while its rejections (one recorded reason each) number at most ``retries``
    (VIDPIPE_SAFETY_RETRIES). The one rule the clips step and `status` share."""
    return safety_policy == "retry" and len(reasons or []) <= retries


@dataclass
class ProjectState:
    spec: ProjectSpec
    style: StyleGuide | None
    scenes: list[ScenePlan]
    frames: list[FrameState] = field(default_factory=list)
    clips: list[ClipState] = field(default_factory=list)
    sheets: list[SheetState] = field(default_factory=list)  # one per character a scene shows

    @property
    def has_storyboard(self) -> bool:
        return bool(self.scenes)

    def sheets_to_make(self) -> list[SheetState]:
        return [c for c in self.sheets if not c.done]

    def sheet(self, name: str) -> SheetState:
        return next(c for c in self.sheets if c.name == name)

    def sheets_left(self) -> int | None:
        """Reference sheets still to pay for (None before there is a storyboard: not known yet); a
        sheet that is the person's own image costs nothing."""
        return len([c for c in self.sheets_to_make() if c.given is None]) if self.scenes else None

    def frames_to_make(self) -> list[FrameState]:
        return [f for f in self.frames if not f.done]

    def clips_to_finish(self) -> list[ClipState]:
        """Scenes whose clip is not settled (see `ClipState.settled`)."""
        return [c for c in self.clips if not c.settled(self.spec.safety_policy)]

    def clips_to_pay(self) -> list[ClipState]:
        return [c for c in self.clips if c.unpaid]

    def frames_left(self) -> int:
        """Keyframes still to make (all of them before there is a storyboard)."""
        return len(self.frames_to_make()) if self.frames else self.spec.scenes + 1

    def clips_left_to_pay(self) -> int:
        """Clips that will be paid for (all of them before there is a storyboard)."""
        return len(self.clips_to_pay()) if self.clips else self.spec.scenes


def frame_prompt(scenes: list[ScenePlan], style: StyleGuide, k: int) -> str:
    """Frame 0 is scene 0's start; frame k >= 1 is scene k-1's end (and scene k's start)."""
    text = scenes[0].start_frame_prompt if k == 0 else scenes[k - 1].end_frame_prompt
    return f"{text}\n\n{style.prompt_suffix()}"


def frame_characters(scenes: list[ScenePlan], k: int) -> list[str]:
    """The characters frame k shows: scene k's for k < N, the last scene's for the last frame."""
    return list(scenes[min(k, len(scenes) - 1)].characters)


def shown_characters(scenes: list[ScenePlan], style: StyleGuide) -> list[Character]:
    """The style guide's characters that at least one scene shows (each gets a sheet), in its order."""
    shown = {n for scene in scenes for n in scene.characters}
    return [c for c in style.characters if c.name in shown]


def sheet_prompt(character: Character, style: StyleGuide) -> str:
    """The image prompt of a character's reference sheet: the character and the look of the film
    (not the other characters)."""
    return (
        f"Character reference sheet of {character.name}: {character.appearance}.\n\n"
        f"Style: {style.visual_style}. Palette: {', '.join(style.color_palette)}."
    )


def frame_caption(scenes: list[ScenePlan], k: int) -> str:
    if k == 0:
        return f"Scene 1 - {scenes[0].description}"
    return f"Scene {k} end - {scenes[k - 1].description}"


def clip_prompt(scene: ScenePlan, style: StyleGuide) -> str:
    """The Veo prompt; a scene without audio cues (every scene planned before them) keeps the
    prompt, and so the fingerprint, it had."""
    cues = veo_cues(scene.dialogue, scene.sound)
    return f"{scene.motion_prompt}\n\nScene: {scene.description}\n{cues}{style.prompt_suffix()}"


def load_storyboard_rows(services: Services, project_id: str) -> list[ScenePlan]:
    with services.db.session() as s:
        rows = s.scalars(select(Scene).where(Scene.project_id == project_id).order_by(Scene.index)).all()
        return [
            ScenePlan(
                description=r.description,
                start_frame_prompt=r.start_frame_prompt,
                end_frame_prompt=r.end_frame_prompt,
                motion_prompt=r.motion_prompt,
                transition_notes=r.transition_notes,
                characters=list(r.characters or []),
                narration=r.narration or "",
                dialogue=r.dialogue or "",
                sound=r.sound or "",
            )
            for r in rows
        ]


@dataclass(frozen=True)
class Costs:
    """What the project has paid, per stage, from the ledger (USD): every paid call, replaced takes
    included. The one place recorded costs are summed (budget guards, the UI's summary)."""

    storyboard: float
    characters: float
    keyframes: float
    clips: float
    narration: float = 0.0

    @property
    def media(self) -> float:
        """Everything after the storyboard: what the budget guards of later steps add to."""
        return self.characters + self.keyframes + self.clips + self.narration

    @property
    def total(self) -> float:
        return round(self.storyboard + self.media, 6)


def ledger_costs(services: Services, project_id: str) -> Costs:
    document = stored_document(services, project_id) or {}
    with services.db.session() as s:
        sheets = sum(r.cost_usd for r in s.scalars(select(CharacterSheetRow).where(CharacterSheetRow.project_id == project_id)))
        frames = sum(r.cost_usd for r in s.scalars(select(Keyframe).where(Keyframe.project_id == project_id)))
        clips = sum(r.cost_usd for r in s.scalars(select(VideoClip).where(VideoClip.project_id == project_id)))
        lines = sum(r.cost_usd for r in s.scalars(select(NarrationLine).where(NarrationLine.project_id == project_id)))
    return Costs(float(document.get("cost_usd") or 0.0), float(sheets), float(frames), float(clips), float(lines))


def spent_usd(services: Services, project_id: str) -> float:
    """What the project's character sheets, keyframes, clips and narration have cost so far (the ledger)."""
    return ledger_costs(services, project_id).media


ImageRowT = TypeVar("ImageRowT", CharacterSheetRow, Keyframe)


def record_image(
    services: Services,
    row_type: type[ImageRowT],
    key: Mapping[str, Any],
    provider: str,
    model: str,
    path: str,
    sha256: str,
    width: int,
    height: int,
    cost_usd: float,
) -> ImageRowT:
    """Record a stored image (the bytes are already in place) as made in the ledger row of
    ``row_type`` keyed by ``key`` (project, sheet name or frame index, fingerprint), making the row
    when there is none; the recorded row. The one writer of sheet and keyframe rows."""
    with services.db.session() as s:
        row = s.scalars(select(row_type).filter_by(**key)).first()
        if row is None:
            row = row_type(**key, provider=provider, model=model)
            s.add(row)
        row.record_done(path, sha256, width, height, cost_usd)
    return row


def project_nonce(services: Services, project_id: str) -> str | None:
    """The nonce of the current project record (None for projects registered before nonces)."""
    with services.db.session() as s:
        row = s.get(Project, project_id)
        return row.nonce if row is not None else None


def stored_document(services: Services, project_id: str) -> dict[str, Any] | None:
    """The storyboard document (plan, style guide, fingerprint) from the database. A project
    registered before the database kept it (no nonce) adopts a valid storyboard.json once."""
    with services.db.session() as s:
        row = s.get(Project, project_id)
        if row is None:
            return None
        if row.storyboard is not None or row.nonce is not None:
            return row.storyboard
    document = _read_document_file(services, project_id)
    if document is not None:
        with services.db.session() as s:
            row = s.get(Project, project_id)
            if row is not None and row.storyboard is None:
                row.storyboard = document
    return document


def _read_document_file(services: Services, project_id: str) -> dict[str, Any] | None:
    try:
        document = json.loads(services.store.read_bytes(project_id, Layout.STORYBOARD))
        Storyboard.model_validate(document["storyboard"])
    except (FileNotFoundError, ValueError, KeyError, TypeError, ValidationError):
        return None
    return document if isinstance(document, dict) else None


def load_style(services: Services, project_id: str) -> StyleGuide | None:
    document = stored_document(services, project_id)
    if document is None:
        return None
    return StyleGuide.model_validate(document["storyboard"]["style_guide"])


def storyboard_file_ok(services: Services, project_id: str, document: dict[str, Any]) -> bool:
    """storyboard.json says what the database says."""
    try:
        return bool(json.loads(services.store.read_bytes(project_id, Layout.STORYBOARD)) == document)
    except (FileNotFoundError, ValueError):
        return False


def write_storyboard_file(services: Services, project_id: str, document: dict[str, Any]) -> None:
    services.store.write_bytes(project_id, Layout.STORYBOARD, json.dumps(document, indent=2).encode())


def clip_render_params(spec: ProjectSpec, services: Services) -> dict[str, Any]:
    if spec.providers.clips == "animatic":
        return {"fps": services.settings.fps, "short_side": services.settings.animatic_resolution}
    return {}


def frame_fingerprint(
    provider: KeyframeProvider,
    spec: ProjectSpec,
    prompt: str,
    reference_sha256: str | None,
    character_sha256: tuple[str, ...] = (),
    take: str = "",
) -> str:
    """The fingerprint of a frame rendered from ``prompt`` on the frame before it (that frame's
    recorded sha256; None for frame 0) and on the sheets of the characters it shows (their
    recorded sha256, storyboard order). `resolve_state` chains it over the ledger; the keyframes
    step over the frames it has just made."""
    return keyframe_fingerprint(
        provider=provider.name,
        model=provider.model_for(spec),
        prompt=prompt,
        aspect_ratio=spec.aspect_ratio,
        reference_sha256=reference_sha256,
        render_size=provider.expected_size(spec.aspect_ratio),
        character_sha256=character_sha256,
        take=take,
    )


def sheet_shas(state: ProjectState, names: list[str]) -> tuple[str, ...] | None:
    """The recorded sha256 of each named character's sheet, or None while one is not made."""
    shas = []
    for name in names:
        sheet = state.sheet(name)
        if not sheet.done or sheet.row is None or not sheet.row.sha256:
            return None
        shas.append(sheet.row.sha256)
    return tuple(shas)


def resolve_sheets(services: Services, spec: ProjectSpec, scenes: list[ScenePlan], style: StyleGuide) -> list[SheetState]:
    """Each shown character's sheet as it should be, and the ledger row that matches it."""
    characters = shown_characters(scenes, style)
    if not characters:
        return []
    kp = keyframe_provider(spec.providers.keyframes, services.settings)
    model, size = kp.model_for(spec), kp.expected_size(spec.aspect_ratio)
    look = {"visual_style": style.visual_style, "color_palette": list(style.color_palette)}
    with services.db.session() as s:
        rows = {
            (r.name, r.fingerprint): r
            for r in s.scalars(select(CharacterSheetRow).where(CharacterSheetRow.project_id == spec.id))
        }
    images = {c.name: c.image for c in spec.characters if c.image is not None}
    sheets = []
    for character in characters:
        prompt = sheet_prompt(character, style)
        given = images.get(character.name)
        if given is not None:
            fp = given_sheet_fingerprint(name=character.name, image_sha256=given.sha256)
            sheets.append(SheetState(character, prompt, fp, rows.get((character.name, fp)), given=given))
            continue
        fp = sheet_fingerprint(
            provider=kp.name,
            model=model,
            name=character.name,
            appearance=character.appearance,
            prompt=prompt,
            style=look,
            aspect_ratio=spec.aspect_ratio,
            render_size=size,
            take=spec.sheet_take(character.name),
        )
        sheets.append(SheetState(character=character, prompt=prompt, fingerprint=fp, row=rows.get((character.name, fp))))
    return sheets


def resolve_state(services: Services, project_id: str) -> ProjectState:
    spec = load_spec(services, project_id)
    scenes = load_storyboard_rows(services, project_id)
    style = load_style(services, project_id) if scenes else None
    state = ProjectState(spec=spec, style=style, scenes=scenes)
    if not scenes or style is None:
        return state

    state.sheets = resolve_sheets(services, spec, scenes, style)
    kp = keyframe_provider(spec.providers.keyframes, services.settings)
    cp = clip_provider(spec.providers.clips, services.settings)
    c_model = cp.model_for(spec)
    with services.db.session() as s:
        kf_rows = {
            (r.frame_index, r.fingerprint): r for r in s.scalars(select(Keyframe).where(Keyframe.project_id == project_id))
        }
        clip_rows = {
            (r.scene_index, r.fingerprint): r for r in s.scalars(select(VideoClip).where(VideoClip.project_id == project_id))
        }

    previous_sha: str | None = None
    chain_ok = True
    for k in range(len(scenes) + 1):
        prompt = frame_prompt(scenes, style, k)
        names = frame_characters(scenes, k)
        shas = sheet_shas(state, names)
        fp = None
        if chain_ok and shas is not None:
            fp = frame_fingerprint(kp, spec, prompt, previous_sha, shas, spec.frame_take(k))
        fs = FrameState(index=k, prompt=prompt, fingerprint=fp, row=kf_rows.get((k, fp)) if fp else None, characters=names)
        state.frames.append(fs)
        chain_ok = fs.done
        previous_sha = fs.row.sha256 if fs.done and fs.row else None

    render = clip_render_params(spec, services)
    for i, scene in enumerate(scenes):
        start, end = state.frames[i], state.frames[i + 1]
        prompt = clip_prompt(scene, style)
        fp = None
        if start.done and end.done and start.row and end.row:
            fp = clip_fingerprint(
                provider=cp.name,
                model=c_model,
                prompt=prompt,
                start_sha256=start.row.sha256 or "",
                end_sha256=end.row.sha256 or "",
                duration_s=spec.clip_duration,
                aspect_ratio=spec.aspect_ratio,
                generate_audio=spec.generate_audio,
                negative_prompt=spec.negative_prompt,
                seed=spec.seed,
                render={**render, "take": spec.takes[str(i)]} if str(i) in spec.takes else render,
            )
        state.clips.append(ClipState(index=i, prompt=prompt, fingerprint=fp, row=clip_rows.get((i, fp)) if fp else None))
    return state


def checked_frames(services: Services, state: ProjectState) -> tuple[dict[int, bytes], dict[int, str]]:
    """The bytes of done frames that match the ledger (keyframe row id -> bytes) and the damaged
    frames (index -> problem). Every frame file is read once."""
    good: dict[int, bytes] = {}
    damaged: dict[int, str] = {}
    for f in state.frames:
        if f.done and f.row is not None and f.row.path:
            data, problem = read_checked(services.store, state.spec.id, f.row.path, f.row.sha256)
            if problem is None and data is not None:
                good[f.row.id] = data
            else:
                damaged[f.index] = problem or "unreadable"
    return good, damaged


def checked_sheets(services: Services, state: ProjectState) -> tuple[dict[str, bytes], dict[str, str]]:
    """The bytes of made sheets that match the ledger (name -> bytes) and the damaged ones (name ->
    problem). Every sheet file is read once."""
    good: dict[str, bytes] = {}
    damaged: dict[str, str] = {}
    for c in state.sheets:
        if c.done and c.row is not None and c.row.path:
            data, problem = read_checked(services.store, state.spec.id, c.row.path, c.row.sha256)
            if problem is None and data is not None:
                good[c.name] = data
            else:
                damaged[c.name] = problem or "unreadable"
    return good, damaged


def damaged_clips(services: Services, state: ProjectState) -> dict[int, str]:
    """Done clips whose file no longer matches the ledger: scene index -> problem."""
    found: dict[int, str] = {}
    for c in state.clips:
        if c.row is not None and c.row.status == ClipStatus.DONE and c.row.path:
            problem = read_checked(services.store, state.spec.id, c.row.path, c.row.sha256)[1]
            if problem is not None:
                found[c.index] = problem
    return found
