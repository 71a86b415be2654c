"""The animatic provider: storyboard, keyframes and clips in one, offline and free."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from vidpipe_core import media
from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.config import ANIMATIC_DURATIONS, Settings
from vidpipe_core.errors import InvalidInput, MediaError, ProviderError
from vidpipe_core.providers.animatic import figures, motion
from vidpipe_core.providers.animatic.drawing import render_keyframe
from vidpipe_core.providers.animatic.planner import plan_storyboard
from vidpipe_core.providers.base import (
    ClipOutcome,
    ClipOutcomeKind,
    ClipRequest,
    DecodedImage,
    KeyframeRequest,
    PollCallback,
    SheetRequest,
    Usage,
    decoded,
)
from vidpipe_core.scenes import scene_number
from vidpipe_core.schemas import ProjectSpec, Storyboard
from vidpipe_core.scratch import scratch_dir
from vidpipe_core.steps import CLIPS

if TYPE_CHECKING:
    from vidpipe_core.poll_types import PollSchedule

MODEL = "animatic"

_RENDER_SLOTS: dict[int, threading.BoundedSemaphore] = {}  # process-wide: limit -> its semaphore
_RENDER_SLOTS_LOCK = threading.Lock()
_SLOT_POLL_S = 0.25


@contextlib.contextmanager
def render_slot(limit: int, cancel: CancelToken = NEVER, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold one of ``limit`` local render slots of this process (``Settings.local_renders``): every
    animatic provider of the process shares them, whatever run or step it serves. ``on_wait`` is
    called once when no slot is free at once; waiting ends (Interrupted) when ``cancel`` is cancelled."""
    with _RENDER_SLOTS_LOCK:
        slots = _RENDER_SLOTS.setdefault(limit, threading.BoundedSemaphore(limit))
    if not slots.acquire(blocking=False):
        if on_wait is not None:
            on_wait()
        while not slots.acquire(timeout=_SLOT_POLL_S):
            cancel.check()
    try:
        yield
    finally:
        slots.release()


def _seed_text(request: ClipRequest) -> str:
    """The prompt decides the camera move and tone; a seed or a regeneration take varies them
    (after a blank line, so a move the prompt names explicitly is still honoured)."""
    if request.seed is None and not request.variant:
        return request.prompt
    return f"{request.prompt}\n\ntake {request.variant!r} seed {request.seed!r}"


def clip_caption(request: ClipRequest) -> str:
    """The caption a clip shows for its whole length: "Scene N: <description>", N counted from 1.
    The description is the prompt's "Scene: ..." line (``steps.state.clip_prompt``), else its first line."""
    lines = [line.strip() for line in request.prompt.splitlines() if line.strip()]
    described = [line.removeprefix("Scene:").strip() for line in lines if line.startswith("Scene:")]
    text = described[0] if described else (lines[0] if lines else "")
    return f"Scene {scene_number(request.scene_index)}: {text}".rstrip(": ")


class AnimaticProvider:
    """Storyboard, keyframe and clip provider in one; free and deterministic."""

    name = "animatic"
    reproducible = True  # the same request renders the same bytes, so a damaged file is re-rendered for free
    # A keyframe is drawn from its own prompt, not on the frame before: a new frame changes no later
    # frame's bytes (steps.retake: the continuity cascade stops at the next frame).
    chains_on_reference = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def model_for(self, spec: ProjectSpec) -> str:
        return MODEL

    # StoryboardProvider
    def plan(self, spec: ProjectSpec) -> tuple[Storyboard, Usage]:
        return plan_storyboard(spec), Usage()

    # KeyframeProvider
    def expected_size(self, aspect_ratio: str) -> tuple[int, int] | None:
        return media.dimensions(aspect_ratio, self.settings.animatic_resolution)

    def render(self, request: KeyframeRequest) -> tuple[DecodedImage, Usage]:
        """The frame drawn for ``request`` as a PNG, decoded in full once (as every provider's frame)."""
        size = media.dimensions(request.aspect_ratio, self.settings.animatic_resolution)
        return decoded(render_keyframe(request, size)), Usage()

    def render_sheet(self, request: SheetRequest) -> tuple[DecodedImage, Usage]:
        """The character's silhouette in its colours (named in its appearance, else from its name)
        on a plain background, with its name; keyframes read the look back from this sheet."""
        size = media.dimensions(request.aspect_ratio, self.settings.animatic_resolution)
        return decoded(figures.render_sheet(request.name, request.appearance, size, request.variant)), Usage()

    # ClipProvider
    def allowed_durations(self, spec: ProjectSpec) -> tuple[int, ...]:
        return tuple(ANIMATIC_DURATIONS)

    def _operation(self, request: ClipRequest) -> str:
        digest = hashlib.sha256()
        for part in (
            request.prompt,
            request.duration_s,
            request.aspect_ratio,
            request.generate_audio,
            request.seed,
            request.variant,
            self.settings.fps,
            self.settings.animatic_resolution,
        ):
            digest.update(repr(part).encode("utf-8") + b"\x1f")
        digest.update(hashlib.sha256(request.start_png).digest() + hashlib.sha256(request.end_png).digest())
        return f"animatic:{request.project_id}:{request.scene_index}:{digest.hexdigest()[:12]}"

    def submit(self, request: ClipRequest, model: str, cancel: CancelToken = NEVER) -> str:
        """Nothing runs remotely: the operation name identifies the render, which happens in `wait`."""
        if request.duration_s not in ANIMATIC_DURATIONS:
            raise InvalidInput(
                "clip_duration",
                f"{request.duration_s} s is not an animatic clip length",
                allowed=", ".join(str(d) for d in ANIMATIC_DURATIONS),
            )
        media.dimensions(request.aspect_ratio, self.settings.animatic_resolution)
        return self._operation(request)

    def wait(
        self,
        operation: str,
        request: ClipRequest,
        model: str,
        on_poll: PollCallback | None = None,
        cancel: CancelToken = NEVER,
        schedule: PollSchedule | None = None,
    ) -> ClipOutcome:
        """Render the clip here and now (nothing to poll: ``schedule`` does not apply)."""
        if not operation.startswith("animatic:"):
            raise ProviderError(CLIPS, f"{operation!r} is not an animatic operation", scene=request.scene_index)
        size = media.dimensions(request.aspect_ratio, self.settings.animatic_resolution)
        limit = self.settings.local_renders
        waiting = (
            None
            if on_poll is None
            else (lambda: on_poll(f"waiting for one of {limit} local render slots (VIDPIPE_LOCAL_RENDERS)"))
        )
        try:
            with render_slot(limit, cancel, on_wait=waiting), scratch_dir(self.settings.data_dir, "vidpipe-clip") as workdir:
                if on_poll is not None:
                    on_poll(f"rendering {request.duration_s}s animatic clip at {size[0]}x{size[1]}", opening=True)
                video = motion.render_animatic_clip(
                    request.start_png,
                    request.end_png,
                    duration_s=request.duration_s,
                    fps=self.settings.fps,
                    size=size,
                    audio=request.generate_audio,
                    seed_text=_seed_text(request),
                    caption=clip_caption(request),
                    workdir=workdir,
                    cancel=cancel,
                )
        except MediaError as exc:
            return ClipOutcome(kind=ClipOutcomeKind.FAILED, error=str(exc))
        return ClipOutcome(kind=ClipOutcomeKind.DONE, video=video, usage=Usage(video_seconds=float(request.duration_s)))
