"""Checks a user would otherwise do by hand; the Dagster assets report them as asset checks."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from vidpipe_core.config import ASPECT_RATIOS
from vidpipe_core.media import MediaInfo
from vidpipe_core.providers import keyframe_provider
from vidpipe_core.schemas import ProjectSpec, Storyboard
from vidpipe_core.services import Services
from vidpipe_core.steps.state import resolve_state

DURATION_TOLERANCE_S = 0.25
ASPECT_TOLERANCE = 0.02


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
                problems.append(f"scene {i} has an empty {name}")
    return CheckOutcome("storyboard_complete", not problems, "; ".join(problems) or f"{len(board.scenes)} scenes, all prompts set",
                        {"scene_count": len(board.scenes)})


def check_keyframes(services: Services, project_id: str) -> CheckOutcome:
    state = resolve_state(services, project_id)
    spec = state.spec
    expected = keyframe_provider(spec.providers.keyframes, services.settings).expected_size(spec.aspect_ratio)
    aw, ah = ASPECT_RATIOS[spec.aspect_ratio]
    problems, sizes = [], set()
    for f in state.frames:
        if not f.done or f.row is None or not f.row.path:
            problems.append(f"frame {f.index} missing")
            continue
        try:
            with Image.open(io.BytesIO(services.store.read_bytes(project_id, f.row.path))) as im:
                im.load()
                size = im.size
        except Exception as exc:  # noqa: BLE001 - any decode failure is the finding
            problems.append(f"frame {f.index} does not decode: {exc}")
            continue
        sizes.add(size)
        if expected and size != expected:
            problems.append(f"frame {f.index} is {size[0]}x{size[1]}, expected {expected[0]}x{expected[1]}")
        elif abs(size[0] / size[1] - aw / ah) > ASPECT_TOLERANCE * aw / ah:
            problems.append(f"frame {f.index} is {size[0]}x{size[1]}, not {spec.aspect_ratio}")
    return CheckOutcome("keyframes_decode", not problems, "; ".join(problems) or f"{len(state.frames)} frames decode at {sorted(sizes)}",
                        {"frames": len(state.frames)})


def check_final_video(info: MediaInfo, expected_duration_s: float, audio_expected: bool) -> CheckOutcome:
    problems = []
    if not info.has_video:
        problems.append("no video stream")
    if audio_expected and not info.has_audio:
        problems.append("audio was asked for but the video has no audio stream")
    if abs(info.duration_s - expected_duration_s) > DURATION_TOLERANCE_S:
        problems.append(f"duration {info.duration_s:.2f}s, expected {expected_duration_s:.2f}s ± {DURATION_TOLERANCE_S}")
    return CheckOutcome("final_video_valid", not problems, "; ".join(problems) or f"{info.duration_s:.2f}s, video ok"
                        + (", audio ok" if audio_expected else ""),
                        {"duration_s": round(info.duration_s, 3), "expected_duration_s": round(expected_duration_s, 3)})
