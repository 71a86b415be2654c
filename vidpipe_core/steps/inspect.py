"""What is damaged in a project, without changing anything: for `vidpipe resume`'s plan and
`vidpipe status`. The steps themselves check again before reusing anything."""

from __future__ import annotations

from dataclasses import dataclass

from vidpipe_core.cost import video_cost
from vidpipe_core.providers import clip_provider, keyframe_provider
from vidpipe_core.scenes import frame_label, scene_label
from vidpipe_core.services import Services
from vidpipe_core.steps import CHARACTERS, CLIPS, KEYFRAMES, STORYBOARD
from vidpipe_core.steps.characters import redo_cost, sheet_label
from vidpipe_core.steps.keyframes import cascade_cost
from vidpipe_core.steps.state import (
    ProjectState,
    checked_frames,
    checked_sheets,
    damaged_clips,
    stored_document,
    storyboard_file_ok,
)


@dataclass(frozen=True)
class Finding:
    stage: str  # the asset that repairs it
    index: int  # frame or scene (0-based); -1 for the storyboard
    what: str
    problem: str
    repair: str  # how, and whether it is free
    paid_usd: float  # what regenerating costs when no free copy exists (0: always free)


def find_damage(services: Services, state: ProjectState) -> list[Finding]:
    spec, settings = state.spec, services.settings
    found: list[Finding] = []
    document = stored_document(services, spec.id)
    if document is not None and not storyboard_file_ok(services, spec.id, document):
        found.append(
            Finding(
                STORYBOARD,
                -1,
                "storyboard.json",
                "missing or different from the stored plan",
                "rewritten from the database at no cost",
                0.0,
            )
        )
    n = len(state.scenes)
    kp = keyframe_provider(spec.providers.keyframes, settings)
    for name, problem in checked_sheets(services, state)[1].items():
        index = next(i for i, c in enumerate(state.sheets) if c.name == name)
        if state.sheets[index].given is not None:
            found.append(
                Finding(CHARACTERS, index, sheet_label(name), problem, "copied again from the image you gave, at no cost", 0.0)
            )
        elif getattr(kp, "reproducible", False):
            found.append(Finding(CHARACTERS, index, sheet_label(name), problem, f"rendered again by {kp.name} at no cost", 0.0))
        else:
            cost = redo_cost(services, state, [name])
            found.append(
                Finding(
                    CHARACTERS,
                    index,
                    sheet_label(name),
                    problem,
                    f"{kp.name} cannot render the same image again: a new sheet and, through it and continuity, "
                    f"the frames and clips that follow cost ${cost:.2f} (needs --repair)",
                    cost,
                )
            )
    for k, problem in sorted(checked_frames(services, state)[1].items()):
        if getattr(kp, "reproducible", False):
            found.append(Finding(KEYFRAMES, k, frame_label(k, n), problem, f"rendered again by {kp.name} at no cost", 0.0))
        else:
            cost = cascade_cost(services, state, k)
            found.append(
                Finding(
                    KEYFRAMES,
                    k,
                    frame_label(k, n),
                    problem,
                    f"{kp.name} cannot render the same image again: regenerating it and, through "
                    f"continuity, everything after it costs ${cost:.2f} (needs --repair)",
                    cost,
                )
            )
    clips = damaged_clips(services, state)
    if clips:
        model = clip_provider(spec.providers.clips, settings).model_for(spec)
        cost = video_cost(settings, model, spec.clip_duration, spec.generate_audio)
        regenerate = f"regenerating costs ${cost:.2f} (needs --repair)"
        for i, problem in sorted(clips.items()):
            row = state.clips[i].row
            repair = (
                f"fetched again from its operation at no cost while the provider holds it; otherwise {regenerate}"
                if row is not None and row.operation_name
                else regenerate
            )
            found.append(Finding(CLIPS, i, f"the clip of {scene_label(i)}", problem, repair, cost))
    return found
