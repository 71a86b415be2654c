"""What is damaged in a project, without changing anything: for `vidpipe resume`'s plan and
`vidpipe status`. The steps themselves check again before reusing anything."""
from __future__ import annotations

import json
from dataclasses import dataclass

from vidpipe_core.cost import video_cost
from vidpipe_core.integrity import frame_label, read_checked, scene_label
from vidpipe_core.models import ClipStatus
from vidpipe_core.providers import clip_provider, keyframe_provider
from vidpipe_core.services import Services
from vidpipe_core.steps.keyframes import cascade_cost
from vidpipe_core.steps.state import ProjectState, stored_document
from vidpipe_core.storage import Layout


@dataclass(frozen=True)
class Finding:
    stage: str            # the asset that repairs it
    index: int            # frame or scene (0-based); -1 for the storyboard
    what: str
    problem: str
    repair: str           # how, and whether it is free
    paid_usd: float       # what regenerating costs when no free copy exists (0: always free)


def find_damage(services: Services, state: ProjectState) -> list[Finding]:
    spec, store, settings = state.spec, services.store, services.settings
    found: list[Finding] = []
    document = stored_document(services, spec.id)
    if document is not None:
        try:
            ok = json.loads(store.read_bytes(spec.id, Layout.STORYBOARD)) == document
        except (FileNotFoundError, ValueError):
            ok = False
        if not ok:
            found.append(Finding("storyboard", -1, "storyboard.json", "missing or different from the stored plan",
                                 "rewritten from the database at no cost", 0.0))
    n = len(state.scenes)
    if state.frames:
        kp = keyframe_provider(spec.providers.keyframes, settings)
        for f in state.frames:
            if f.done and f.row is not None and f.row.path:
                problem = read_checked(store, spec.id, f.row.path, f.row.sha256)[1]
                if problem is None:
                    continue
                if getattr(kp, "reproducible", False):
                    found.append(Finding("keyframes", f.index, frame_label(f.index, n), problem,
                                         f"rendered again by {kp.name} at no cost", 0.0))
                else:
                    cost = cascade_cost(services, state, f.index)
                    found.append(Finding("keyframes", f.index, frame_label(f.index, n), problem,
                                         f"{kp.name} cannot render the same image again: regenerating it and, through "
                                         f"continuity, everything after it costs ${cost:.2f} (needs --repair)", cost))
    if state.clips:
        model = clip_provider(spec.providers.clips, settings).model_for(spec)
        cost = video_cost(settings, model, spec.clip_duration, spec.generate_audio)
        for c in state.clips:
            row = c.row
            if row is None or row.status != ClipStatus.DONE or not row.path:
                continue
            problem = read_checked(store, spec.id, row.path, row.sha256)[1]
            if problem is None:
                continue
            repair = (f"fetched again from its operation at no cost while the provider holds it; otherwise "
                      f"regenerating costs ${cost:.2f} (needs --repair)") if row.operation_name else \
                f"regenerating costs ${cost:.2f} (needs --repair)"
            found.append(Finding("clips", c.index, f"the clip of {scene_label(c.index)}", problem, repair, cost))
    return found
