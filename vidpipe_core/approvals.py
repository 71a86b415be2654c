"""The review gate: a project under review (`review: keyframes`) pays for a clip only when an
approval in the ledger covers it.

An approval (`record_approval`) is a person's go-ahead: `vidpipe approve`, the `approve_project`
job, or a deliberate new take (`regenerate`, `retake`), which states its cost first and counts as
its own approval. It records when, from where (cli, ui, api), the estimate approved, and the
fingerprints it covers: the storyboard's, and for each scene it pays for, its start and end
frames' and its clip's. A clip is covered when an approval of the current project record lists
its clip fingerprint, which chains the prompt and both frames' bytes: an edit that changes a
scene's frames (or its motion) makes a new clip fingerprint, so that scene waits for a new
approval while the scenes still covered go on. A clip already paid for (made, or submitted and
re-attached to) never waits.

`gate` says what the clips step would hold back; the clips step raises `AwaitingApproval` after
paying for what is covered, and the Dagster asset turns it into a successful step that
materializes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from vidpipe_core.cost import guard_budget, video_cost
from vidpipe_core.errors import InvalidInput, VidpipeError
from vidpipe_core.models import ApprovalRow
from vidpipe_core.projects import check_budget, update_spec
from vidpipe_core.providers import clip_provider
from vidpipe_core.scenes import frame_label, scene_list, scene_number
from vidpipe_core.services import Services
from vidpipe_core.steps import CLIPS
from vidpipe_core.steps.state import ClipState, ProjectState, project_nonce, resolve_state, spent_usd, stored_document

KINDS = ("approve", "regenerate", "retake")
UNDER_REVIEW = "keyframes"


@dataclass(frozen=True)
class Gate:
    """What the review gate holds back now: the scenes (0-based) whose clip would be paid for and
    that no approval covers, and what they would cost."""

    project_id: str
    review: str
    waiting: list[int] = field(default_factory=list)
    estimate_usd: float = 0.0
    approved_before: bool = False  # an earlier approval exists: the waiting scenes changed since

    @property
    def closed(self) -> bool:
        return bool(self.waiting)

    @property
    def message(self) -> str:
        """The one line a run, `status` and the CLI show (scene numbers from 1)."""
        n = len(self.waiting)
        what = "the clips" if not self.approved_before else f"the clip{'s' if n > 1 else ''} of {scene_list(self.waiting)}"
        changed = " (changed since the last approval)" if self.approved_before else ""
        return (
            f"awaiting approval: {what}{changed} would cost ${self.estimate_usd:.2f} ({n} scene{'s' if n != 1 else ''}); "
            f"approve with `vidpipe approve {self.project_id}`"
        )

    def document(self) -> dict[str, Any]:
        return {
            "review": self.review,
            "awaiting_approval": self.closed,
            "scenes": [scene_number(i) for i in self.waiting],
            "projected_cost_usd": round(self.estimate_usd, 4),
            "message": self.message if self.closed else None,
        }


class AwaitingApproval(VidpipeError):
    """The clips step stopped before paying for clips no approval covers (not a failure)."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        super().__init__(gate.message)


def _rows(services: Services, project_id: str) -> list[ApprovalRow]:
    nonce = project_nonce(services, project_id)
    with services.db.session() as s:
        rows = s.scalars(select(ApprovalRow).where(ApprovalRow.project_id == project_id).order_by(ApprovalRow.id))
        return [r for r in rows if r.nonce == nonce]


def _covered(rows: list[ApprovalRow]) -> set[str]:
    """The clip fingerprints ``rows`` cover."""
    return {entry["clip"] for row in rows for entry in row.scenes if entry.get("clip")}


def _clips_cost(services: Services, state: ProjectState, count: int) -> float:
    spec = state.spec
    model = clip_provider(spec.providers.clips, services.settings).model_for(spec)
    return video_cost(services.settings, model, count * spec.clip_duration, spec.generate_audio)


def _needs_payment(c: ClipState) -> bool:
    return c.unpaid and c.fingerprint is not None


def gate(services: Services, state: ProjectState) -> Gate:
    """What the review gate of ``state``'s project holds back (nothing for `review: none`)."""
    spec = state.spec
    if spec.review != UNDER_REVIEW:
        return Gate(spec.id, spec.review)
    rows = _rows(services, spec.id)
    covered = _covered(rows)
    waiting = [c.index for c in state.clips if _needs_payment(c) and c.fingerprint not in covered]
    return Gate(spec.id, spec.review, waiting, _clips_cost(services, state, len(waiting)), bool(rows))


@dataclass(frozen=True)
class Approval:
    """What `record_approval` did: the scenes (0-based) it covers now and the estimate; ``recorded``
    is False when there was nothing left to approve (nothing new is paid)."""

    project_id: str
    kind: str
    scenes: list[int]
    estimate_usd: float
    recorded: bool

    @property
    def message(self) -> str:
        if not self.recorded:
            return (
                f"{self.project_id}: nothing to approve: every clip is approved or paid for already; approving again pays nothing"
            )
        n = len(self.scenes)
        return (
            f"{self.project_id}: {self.kind} of {scene_list(self.scenes)} recorded: "
            f"${self.estimate_usd:.2f} for {n} clip{'s' if n != 1 else ''}"
        )

    def document(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "recorded": self.recorded,
            "scenes": [scene_number(i) for i in self.scenes],
            "estimate_usd": round(self.estimate_usd, 4),
        }


def record_approval(
    services: Services,
    project_id: str,
    *,
    kind: str = "approve",
    source: str = "cli",
    run_id: str | None = None,
    scenes: list[int] | None = None,
    budget_usd: float | None = None,
) -> Approval:
    """Record a person's approval of ``project_id``'s clips: by default every clip that would be paid
    for and no approval covers yet; ``scenes`` (0-based) names the ones a `regenerate` or `retake`
    makes anew (their new takes are already in the spec). Refused, recording nothing, before the
    keyframes exist (there is nothing to look at) or when the budget cannot pay for what is
    approved (BudgetExceeded, which names the command that raises it). Approving what is already
    covered records nothing (``Approval.recorded`` is False). ``budget_usd``: the project's budget
    from now on, stored only when the approval fits in it (or there is nothing to approve)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    state = resolve_state(services, project_id)
    missing = [f.index for f in state.frames if not f.done]
    if not state.has_storyboard or missing:
        n = len(state.scenes)
        what = ", ".join(frame_label(k, n) for k in missing) if state.has_storyboard else "its storyboard and keyframes"
        raise InvalidInput(
            "project",
            f"{project_id!r} has nothing to approve yet: {what} not made; "
            f"`vidpipe render {project_id} --until keyframes` makes them, then look and approve",
        )
    covered = _covered(_rows(services, project_id))
    chosen = set(scenes) if scenes is not None else None
    clips = [
        c for c in state.clips if _needs_payment(c) and c.fingerprint not in covered and (chosen is None or c.index in chosen)
    ]
    estimate = _clips_cost(services, state, len(clips))
    budget = state.spec.max_cost_usd if budget_usd is None else check_budget(budget_usd)
    if clips:
        # Everything the clips step would pay for next: what this approves and what was approved before.
        paying = [c for c in state.clips if _needs_payment(c) and (c in clips or c.fingerprint in covered)]
        guard_budget(CLIPS, spent_usd(services, project_id), _clips_cost(services, state, len(paying)), budget, project_id)
    if budget != state.spec.max_cost_usd:
        update_spec(services, state.spec.model_copy(update={"max_cost_usd": budget}))
    if not clips:
        return Approval(project_id, kind, [], 0.0, False)
    document = stored_document(services, project_id) or {}
    entries = [
        {
            "scene": scene_number(c.index),
            "start_frame": state.frames[c.index].fingerprint,
            "end_frame": state.frames[c.index + 1].fingerprint,
            "clip": c.fingerprint,
        }
        for c in clips
    ]
    with services.db.session() as s:
        s.add(
            ApprovalRow(
                project_id=project_id,
                nonce=project_nonce(services, project_id),
                kind=kind,
                source=source,
                run_id=run_id,
                estimate_usd=round(estimate, 6),
                budget_usd=budget,
                storyboard_fingerprint=document.get("fingerprint"),
                scenes=entries,
            )
        )
    return Approval(project_id, kind, [c.index for c in clips], estimate, True)
