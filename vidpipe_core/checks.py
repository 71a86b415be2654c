"""Checks a user would otherwise do by hand; the Dagster assets report them as asset checks."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from vidpipe_core.config import ASPECT_RATIOS
from vidpipe_core.errors import MediaError
from vidpipe_core.integrity import digest_problem
from vidpipe_core.media import MediaInfo, probe_file
from vidpipe_core.providers import keyframe_provider
from vidpipe_core.scenes import frame_label, scene_label, scene_number
from vidpipe_core.schemas import ProjectSpec, Storyboard
from vidpipe_core.services import Services
from vidpipe_core.steps.state import FrameState, checked_frames, resolve_state

if TYPE_CHECKING:
    from vidpipe_core.steps.characters import CharactersReport
    from vidpipe_core.steps.keyframes import KeyframesReport

DURATION_TOLERANCE_S = 0.25
ASPECT_TOLERANCE = 0.02

# What each check verifies, as the Dagster UI shows it next to the check.
DESCRIPTIONS = {
    "storyboard_complete": "The storyboard has as many scenes as the project asks for, and every scene has a "
    "description, a start and an end frame prompt and a motion prompt.",
    "characters_complete": "Every character a scene shows has a recorded reference sheet whose bytes match the "
    "ledger and decode.",
    "keyframes_decode": "Every keyframe (N scenes have N+1) is recorded, its bytes match the ledger's sha256, and "
    "it is an image of the provider's size (or at least of the project's aspect ratio).",
    "clips_complete": "Every scene has a finished clip whose file decodes with a video stream and lasts the "
    f"planned clip duration (± {DURATION_TOLERANCE_S} s), or was rejected by the safety filter and is skipped "
    "by the project's policy (the reason is in the metadata).",
    "final_video_valid": "The final MP4 has a video stream, an audio stream when audio was asked for, and lasts "
    f"the sum of its clips less the crossfades (± {DURATION_TOLERANCE_S} s).",
}


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def check_storyboard(spec: ProjectSpec, board: Storyboard) -> CheckOutcome:
    problems = []
    if len(board.scenes) != spec.scenes:
        problems.append(f"{len(board.scenes)} scenes, {spec.scenes} asked for")
    for i, s in enumerate(board.scenes):
        for name in ("description", "start_frame_prompt", "end_frame_prompt", "motion_prompt"):
            if not getattr(s, name).strip():
                problems.append(f"{scene_label(i)} has an empty {name}")
    return CheckOutcome(
        "storyboard_complete",
        not problems,
        "; ".join(problems) or f"{len(board.scenes)} scenes, all prompts set",
        {"scene_count": len(board.scenes)},
    )


def check_keyframes(services: Services, project_id: str, made: KeyframesReport | None = None) -> CheckOutcome:
    """Every frame is recorded, its bytes are the ones the ledger recorded, and they are a PNG of
    the provider's size (or at least of the project's aspect ratio).

    ``made`` is what the keyframes step of this materialization left: its frames and the bytes it
    read and checked, or rendered and wrote; they are checked against the ledger again (a hash, no
    read). Without it every file is read once. Frames are not decoded again: bytes that match the
    recorded sha256 are the bytes that decoded when the frame was rendered, so the header gives
    their size. A frame recorded without a digest is decoded in full."""
    if made is None or made.spec is None:
        state = resolve_state(services, project_id)
        spec, frames = state.spec, state.frames
        good, damaged = checked_frames(services, state)
    else:
        spec, frames = made.spec, made.frames
        good, damaged = _held_frames(made.frames, made.pngs)
    expected = keyframe_provider(spec.providers.keyframes, services.settings).expected_size(spec.aspect_ratio)
    problems, sizes = [], set()
    for f in frames:
        label = frame_label(f.index, len(frames) - 1)
        if not f.done or f.row is None or not f.row.path:
            problems.append(f"{label}: missing")
            continue
        data = good.get(f.row.id)
        if data is None:
            problems.append(f"{label}: {damaged.get(f.index, 'its bytes were not read')}")
            continue
        try:
            size = _png_size(data, decode=not f.row.sha256)
        except Exception as exc:
            problems.append(f"{label} does not decode: {exc}")
            continue
        sizes.add(size)
        problem = _size_problem(size, expected, spec.aspect_ratio)
        if problem is not None:
            problems.append(f"{label} {problem}")
    return CheckOutcome(
        "keyframes_decode",
        not problems,
        "; ".join(problems) or f"{len(frames)} frames decode at {sorted(sizes)}",
        {"frames": len(frames)},
    )


def _size_problem(size: tuple[int, int], expected: tuple[int, int] | None, aspect_ratio: str) -> str | None:
    aw, ah = ASPECT_RATIOS[aspect_ratio]
    if expected and size != expected:
        return f"is {size[0]}x{size[1]}, expected {expected[0]}x{expected[1]}"
    if abs(size[0] / size[1] - aw / ah) > ASPECT_TOLERANCE * aw / ah:
        return f"is {size[0]}x{size[1]}, not {aspect_ratio}"
    return None


def keyframe_test(services: Services, spec: ProjectSpec) -> Callable[[int, bytes], str | None]:
    """The `keyframes_decode` check of one frame the keyframes step has just recorded (its bytes
    match the ledger and decoded when they were made): None, or what is wrong with frame ``k``.
    A clip made beside the keyframes step (frame_feed) starts only from frames that pass it."""
    expected = keyframe_provider(spec.providers.keyframes, services.settings).expected_size(spec.aspect_ratio)

    def test(k: int, png: bytes) -> str | None:
        try:
            problem = _size_problem(_png_size(png, decode=False), expected, spec.aspect_ratio)
        except Exception as exc:
            problem = f"does not decode: {exc}"
        return None if problem is None else f"{frame_label(k, spec.scenes)} {problem}"

    return test


def check_characters(made: CharactersReport) -> CheckOutcome:
    """Every character a scene shows has a recorded reference sheet whose bytes are the ones the
    ledger recorded (the bytes the step checked or rendered) and decode as an image.

    A sheet the step rendered (``made.decoded``) is not decoded again: its bytes decoded in full
    when they were made, and they still match the ledger's digest. A sheet read back from the
    store, or taken from the image the person gave, is decoded in full here."""
    problems, names = [], []
    for sheet, data in zip(made.sheets, made.pngs, strict=True):
        names.append(sheet.name)
        if not sheet.done or sheet.row is None:
            problems.append(f"the reference sheet of {sheet.name!r}: missing")
            continue
        problem = digest_problem(data, sheet.row.sha256)
        if problem is not None:
            problems.append(f"the reference sheet of {sheet.name!r}: {problem}")
            continue
        try:
            _png_size(data, decode=sheet.name not in made.decoded or not sheet.row.sha256)
        except Exception as exc:
            problems.append(f"the reference sheet of {sheet.name!r} does not decode: {exc}")
    if len(made.pngs) != len(made.sheets):
        problems.append(f"{len(made.pngs)} sheets for {len(made.sheets)} characters")
    return CheckOutcome(
        "characters_complete",
        not problems,
        "; ".join(problems) or (f"{len(names)} reference sheets recorded and decoding" if names else "no characters"),
        {"characters": len(made.sheets)},
    )


def _held_frames(frames: list[FrameState], pngs: list[bytes]) -> tuple[dict[int, bytes], dict[int, str]]:
    """`checked_frames` for bytes already in memory (frame order): row id -> bytes that match the
    ledger, and frame index -> problem."""
    good: dict[int, bytes] = {}
    damaged: dict[int, str] = {}
    for f, data in zip(frames, pngs, strict=True):
        if f.done and f.row is not None and f.row.path:
            problem = digest_problem(data, f.row.sha256)
            if problem is None:
                good[f.row.id] = data
            else:
                damaged[f.index] = problem
    return good, damaged


def _png_size(data: bytes, *, decode: bool) -> tuple[int, int]:
    """The image's size from its header, or after decoding every pixel (``decode``)."""
    with Image.open(io.BytesIO(data)) as im:
        if decode:
            im.load()
        return im.size


def check_final_video(info: MediaInfo, expected_duration_s: float, audio_expected: bool) -> CheckOutcome:
    problems = []
    if not info.has_video:
        problems.append("no video stream")
    if audio_expected and not info.has_audio:
        problems.append("audio was asked for but the video has no audio stream")
    if abs(info.duration_s - expected_duration_s) > DURATION_TOLERANCE_S:
        problems.append(f"duration {info.duration_s:.2f}s, expected {expected_duration_s:.2f}s ± {DURATION_TOLERANCE_S}")
    return CheckOutcome(
        "final_video_valid",
        not problems,
        "; ".join(problems) or f"{info.duration_s:.2f}s, video ok" + (", audio ok" if audio_expected else ""),
        {"duration_s": round(info.duration_s, 3), "expected_duration_s": round(expected_duration_s, 3)},
    )


def check_clips(services: Services, project_id: str) -> CheckOutcome:
    """Every scene of the current plan has a done clip of the planned duration (probed from its
    file), or is skipped by the safety policy with a reason. Reads the ledger and probes each file
    (its header: on an object store nothing else is transferred)."""
    state = resolve_state(services, project_id)
    spec = state.spec
    problems: list[str] = []
    skipped: dict[str, str] = {}
    durations: dict[str, float] = {}
    if not state.clips:
        problems.append("no scenes planned (the storyboard is missing)")
    for c in state.clips:
        label = scene_label(c.index)
        if c.skipped(spec.safety_policy) and c.row is not None:
            skipped[f"Scene {scene_number(c.index)}"] = "; ".join(c.row.safety_reasons or []) or "rejected by the safety filter"
            continue
        if not c.done or c.row is None or not c.row.path:
            state_text = c.row.status.value if c.row is not None else "missing"
            problems.append(f"{label}: no finished clip ({state_text})")
            continue
        try:
            with services.store.open(project_id, c.row.path) as f:  # the header only, not the whole clip
                info = probe_file(f, name=c.row.path)
        except (MediaError, OSError, FileNotFoundError) as exc:
            problems.append(f"{label}: the clip does not decode ({exc})")
            continue
        durations[f"Scene {scene_number(c.index)}"] = round(info.duration_s, 3)
        if not info.has_video:
            problems.append(f"{label}: the clip has no video stream")
        elif abs(info.duration_s - spec.clip_duration) > DURATION_TOLERANCE_S:
            problems.append(
                f"{label}: the clip lasts {info.duration_s:.2f} s, planned {spec.clip_duration} s ± {DURATION_TOLERANCE_S}"
            )
    made = len(durations)
    summary = f"{made} of {len(state.clips)} scenes have a clip of {spec.clip_duration} s"
    if skipped:
        summary += "; skipped by policy: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())
    metadata: dict[str, Any] = {"scenes": len(state.clips), "clips": made, "planned_duration_s": spec.clip_duration}
    if skipped:
        metadata["skipped"] = skipped
    if durations:
        metadata["durations_s"] = durations
    return CheckOutcome("clips_complete", not problems, "; ".join(problems) or summary, metadata)
