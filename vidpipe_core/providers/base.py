"""The provider interface: one per stage, so stages can mix providers
(a Gemini storyboard with animatic clips is a cheap way to preview a real plan)."""

from __future__ import annotations

import enum
import hashlib
import io
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.poll_types import PollObservation, PollSchedule
from vidpipe_core.schemas import ProjectSpec, Storyboard, StyleGuide


@dataclass(frozen=True)
class Usage:
    """What a call consumed, for the cost ledger."""

    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    video_seconds: float = 0.0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class DecodedImage:
    """An image a keyframe provider made: bytes that decoded in full (every pixel read, so a
    truncated or corrupt file is never written nor recorded) and the size that decode found. Made
    by `decoded` (or by a provider that converts while it decodes, as Google's `to_png`): the one
    decode of a new frame or sheet, whose size the steps record."""

    data: bytes
    size: tuple[int, int]


def decoded(data: bytes) -> DecodedImage:
    """``data`` decoded in full, once; ValueError when it does not decode."""
    from PIL import Image, UnidentifiedImageError  # here: importing the interface needs no Pillow

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return DecodedImage(data, img.size)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"image does not decode ({exc})") from exc


@dataclass(frozen=True)
class CharacterSheet:
    """A character's fixed reference image, made once per project by the characters step and
    given to every keyframe that shows the character."""

    name: str
    appearance: str
    png: bytes


@dataclass(frozen=True)
class SheetRequest:
    """One character reference sheet to make."""

    project_id: str
    name: str
    appearance: str
    prompt: str  # full image prompt (character + style guide)
    style: StyleGuide
    aspect_ratio: str
    variant: str = ""  # a retake: the same prompt, a new rendition


@dataclass(frozen=True)
class KeyframeRequest:
    project_id: str
    frame_index: int  # frame k = scene k's start = scene k-1's end
    prompt: str  # full image prompt (frame prompt + style guide)
    caption: str  # short human caption (scene number and description)
    style: StyleGuide
    aspect_ratio: str
    reference_png: bytes | None  # frame k-1 for k >= 1 (continuity), None for frame 0
    # The sheets of the characters this frame shows: frame k shows scene k's characters (k < N),
    # the last frame shows the last scene's. In the storyboard's order.
    characters: tuple[CharacterSheet, ...] = ()
    variant: str = ""  # a retake: the same prompt, a new rendition


def variant_seed(variant: str) -> int | None:
    """A retake's seed for a provider that takes one: stable per token, None without a take."""
    if not variant:
        return None
    return int(hashlib.sha256(variant.encode()).hexdigest()[:8], 16) % 2**31


@dataclass(frozen=True)
class ClipRequest:
    project_id: str
    scene_index: int
    prompt: str  # motion prompt + style guide
    start_png: bytes
    end_png: bytes
    duration_s: int
    aspect_ratio: str
    generate_audio: bool
    negative_prompt: str = ""
    seed: int | None = None
    variant: str = ""  # a regeneration "take": same inputs, a new rendition


@dataclass(frozen=True)
class SpeechRequest:
    """One scene's narration line to say."""

    project_id: str
    scene_index: int
    text: str
    voice: str
    language: str  # BCP-47
    planned_s: float  # the line's estimated length (speech.estimated_seconds): the silence of a narrator that cannot speak
    scene_s: float = 0.0  # the scene's length, which the line must fit (a narrator that can set its pace uses it)


@dataclass(frozen=True)
class Speech:
    """A said line: a WAV (16-bit PCM) and what it cost; ``note`` says when it is not speech (silence
    of the planned length, and why)."""

    wav: bytes
    usage: Usage = Usage()
    note: str | None = None


class ClipOutcomeKind(str, enum.Enum):
    DONE = "done"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass
class ClipOutcome:
    kind: ClipOutcomeKind
    video: bytes | None = None
    reasons: list[str] = field(default_factory=list)
    error: str | None = None
    usage: Usage = Usage()
    observed: PollObservation | None = None  # None: the provider does not poll


class PollCallback(Protocol):
    """Called with a short status line while waiting. ``opening``: the line says work starts whose
    end is reported anyway (a clip rendered here: "scene N generated"): a live display shows it, a
    log may leave it out."""

    def __call__(self, line: str, *, opening: bool = False) -> None: ...


class SlotLimiter(Protocol):
    """Bounds live video operations across everything sharing it (see vidpipe_dagster.pools)."""

    def hold(self, scene_index: int, cancel: CancelToken = NEVER) -> AbstractContextManager[None]:
        """Hold one slot while the block runs; waiting for it ends (Interrupted) when ``cancel`` is cancelled."""
        ...


class NoLimit:
    @contextmanager
    def hold(self, scene_index: int, cancel: CancelToken = NEVER) -> Iterator[None]:
        cancel.check()
        yield


@runtime_checkable
class StoryboardProvider(Protocol):
    name: str

    def model_for(self, spec: ProjectSpec) -> str: ...
    def plan(self, spec: ProjectSpec) -> tuple[Storyboard, Usage]: ...


@runtime_checkable
class KeyframeProvider(Protocol):
    name: str

    def model_for(self, spec: ProjectSpec) -> str: ...
    def expected_size(self, aspect_ratio: str) -> tuple[int, int] | None:
        """Exact pixel size this provider renders, or None when only the aspect ratio is known."""
        ...

    def render(self, request: KeyframeRequest) -> tuple[DecodedImage, Usage]:
        """One frame, decoded in full where it was made (the keyframes step records its size)."""
        ...

    def render_sheet(self, request: SheetRequest) -> tuple[DecodedImage, Usage]:
        """A character reference sheet (one image, priced as one image), decoded in full."""
        ...


@runtime_checkable
class NarrationProvider(Protocol):
    """The narrator: one voice for every scene of a project."""

    name: str
    voices: tuple[str, ...]
    reproducible: bool  # saying a line again gives the same bytes (a damaged file is repaired for free)

    def model_for(self, spec: ProjectSpec) -> str: ...
    def speak(self, request: SpeechRequest, model: str, cancel: CancelToken = NEVER) -> Speech:
        """Say one line (called from several threads at once: the narration step says its lines
        side by side); a cancelled ``cancel`` ends its waits early with Interrupted."""
        ...


@runtime_checkable
class ClipProvider(Protocol):
    name: str

    def model_for(self, spec: ProjectSpec) -> str: ...
    def allowed_durations(self, spec: ProjectSpec) -> tuple[int, ...]: ...
    def submit(self, request: ClipRequest, model: str, cancel: CancelToken = NEVER) -> str:
        """Start one clip; returns an operation name that `wait` can re-attach to after a crash."""
        ...

    def wait(
        self,
        operation: str,
        request: ClipRequest,
        model: str,
        on_poll: PollCallback | None = None,
        cancel: CancelToken = NEVER,
        schedule: PollSchedule | None = None,
    ) -> ClipOutcome:
        """Wait for the operation's outcome (polling is free: waiting again re-fetches a finished result).

        ``schedule`` (learned from the ledger, vidpipe_core.polling) says when to poll a remote
        operation; None: the provider's own backoff. Providers that do not poll ignore it."""
        ...
