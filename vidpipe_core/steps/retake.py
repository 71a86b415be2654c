"""A new take of one keyframe or one character sheet, from the same prompt: what it re-makes (the
continuity cascade) and costs, said before anything is spent (`plan_retake`), then the take's
token recorded (`apply_retake`) so the next run renders it and exactly that cascade.

A keyframe feeds the next frame (frame k+1 is rendered on frame k) and the two clips it joins; a
character sheet feeds every frame that shows the character. So a new frame k re-makes frames k..N
and the clips from the scene that ends on it; a new sheet re-makes the frames from the first that
shows the character. A provider that does not draw a frame on the one before (the animatic:
``chains_on_reference = False``) renders the next frame again with the same bytes, and the cascade
stops there. The token is a `ProjectSpec.takes` entry (as `vidpipe regenerate` records for a
clip): a project without one keeps every fingerprint."""

from __future__ import annotations

from dataclasses import dataclass

from vidpipe_core.cost import image_cost, video_cost
from vidpipe_core.errors import InvalidInput, VidpipeError
from vidpipe_core.projects import load_spec, update_spec
from vidpipe_core.providers import clip_provider, keyframe_provider
from vidpipe_core.scenes import frame_index, frame_label, frame_number, scene_list, scene_number
from vidpipe_core.schemas import ProjectSpec, frame_take_key, sheet_take_key
from vidpipe_core.services import Services
from vidpipe_core.steps.state import ProjectState, resolve_state


@dataclass(frozen=True)
class RetakePlan:
    """What a retake re-makes (0-based frame and scene indices) and what that costs, in USD: the
    images now (the take and the frames after it), the clips when the project's clips are made."""

    project_id: str
    what: str  # "frame 3 (the frame between scenes 2 and 3)" / "the reference sheet of 'Mara'"
    key: str  # its `ProjectSpec.takes` key
    sheets: list[str]
    frames: list[int]
    clips: list[int]
    scenes: int
    images_usd: float
    clips_usd: float

    @property
    def total_usd(self) -> float:
        return round(self.images_usd + self.clips_usd, 6)

    def cascade(self) -> str:
        """The frames and clips made again, as people number them."""
        frames = ", ".join(str(frame_number(k)) for k in self.frames)
        parts = [f"frame{'s' if len(self.frames) > 1 else ''} {frames}"] if self.frames else []
        if self.clips:
            parts.append(f"the clip{'s' if len(self.clips) > 1 else ''} of {scene_list(self.clips)}")
        return " and ".join(parts) or "nothing else"

    def summary(self) -> str:
        images = len(self.sheets) + len(self.frames)
        return (
            f"a new take of {self.what} re-makes {self.cascade()} (continuity); it costs ${self.total_usd:.2f}: "
            f"${self.images_usd:.2f} for {images} image{'s' if images != 1 else ''} and ${self.clips_usd:.2f} "
            f"for {len(self.clips)} clip{'s' if len(self.clips) != 1 else ''}"
        )

    def document(self) -> dict[str, object]:
        """The plan as JSON (numbers as people see them)."""
        return {
            "project_id": self.project_id,
            "retake": self.what,
            "sheets": self.sheets,
            "frames": [frame_number(k) for k in self.frames],
            "clip_scenes": [scene_number(i) for i in self.clips],
            "images_usd": round(self.images_usd, 6),
            "clips_usd": round(self.clips_usd, 6),
            "total_usd": self.total_usd,
        }


def _cascade(state: ProjectState, changed: set[int], chains: bool) -> tuple[list[int], list[int]]:
    """The frames rendered again and the clips made again when frames ``changed`` get new bytes. A
    provider that draws each frame on the one before (``chains``) changes every later frame too;
    one that does not (the animatic) renders the next frame again (its fingerprint names the frame
    before) with the same bytes, so nothing after it changes."""
    last = len(state.frames) - 1
    new_bytes = set(range(min(changed), last + 1)) if chains else set(changed)
    rendered = new_bytes | {k + 1 for k in new_bytes if k < last}
    clips = [i for i in range(len(state.scenes)) if i in new_bytes or i + 1 in new_bytes]
    return sorted(rendered), clips


def plan_retake(services: Services, project_id: str, *, frame: int | None = None, character: str | None = None) -> RetakePlan:
    """The plan of a new take of frame ``frame`` (as people number frames, from 1) or of the sheet
    of ``character``; InvalidInput (nothing written) when neither or both are given, the frame is
    out of range, the character has no sheet (the message names those that do), or what is asked
    for was never made (there is nothing to take again)."""
    if (frame is None) == (character is None):
        raise InvalidInput("retake", "give exactly one of --frame K (a keyframe, from 1) or --character NAME")
    state = resolve_state(services, project_id)
    if not state.has_storyboard:
        raise VidpipeError(f"project {project_id!r} has no storyboard yet; run `vidpipe render {project_id}` first")
    n = len(state.scenes)
    sheets: list[str] = []
    if frame is not None:
        k = frame_index(frame, n)
        if not state.frames[k].done:
            raise InvalidInput("frame", f"{frame} ({frame_label(k, n)}) is not made yet; `vidpipe resume {project_id}` makes it")
        what, key, changed = f"frame {frame} ({frame_label(k, n)})", frame_take_key(k), {k}
    else:
        assert character is not None
        known = [s.name for s in state.sheets]
        if character not in known:
            raise InvalidInput(
                "character",
                f"{character!r} has no reference sheet in this project",
                ", ".join(map(repr, known)) or "none: no scene shows a character",
            )
        if not state.sheet(character).done:
            raise InvalidInput("character", f"the sheet of {character!r} is not made yet; `vidpipe resume {project_id}` makes it")
        changed = {f.index for f in state.frames if character in f.characters}
        what, key = f"the reference sheet of {character!r}", sheet_take_key(character)
        sheets = [character]
    spec, settings = state.spec, services.settings
    provider = keyframe_provider(spec.providers.keyframes, settings)
    frames, clips = _cascade(state, changed, getattr(provider, "chains_on_reference", True))
    k_model = provider.model_for(spec)
    c_model = clip_provider(spec.providers.clips, settings).model_for(spec)
    return RetakePlan(
        project_id=project_id,
        what=what,
        key=key,
        sheets=sheets,
        frames=frames,
        clips=clips,
        scenes=n,
        images_usd=image_cost(settings, k_model, len(sheets) + len(frames)),
        clips_usd=video_cost(settings, c_model, len(clips) * spec.clip_duration, spec.generate_audio),
    )


def apply_retake(services: Services, plan: RetakePlan, token: str) -> ProjectSpec:
    """Record the take (its token under the plan's key): the frame or sheet gets a new fingerprint,
    and through continuity so does the cascade the plan names. Nothing is rendered here; the next
    run of the characters and keyframes (and then the clips) makes them."""

    spec = load_spec(services, plan.project_id)
    spec = spec.model_copy(update={"takes": {**spec.takes, plan.key: token}})
    update_spec(services, spec)
    # Under review, the retake's clips are approved (`approvals.record_approval(kind="retake")`) by the
    # caller once the new frames exist: an approval covers the frames' bytes.
    return spec
