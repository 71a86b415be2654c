"""What a person wants to know about a project at a glance, for the final video's metadata: the
prompt and settings, the providers and models of each stage, what it cost (from the ledger) against
its budget, what the safety filter did, and one row per scene.

Costs are read, never computed (``state.ledger_costs``): the storyboard's from its stored
document, character sheets', keyframes' and clips' from their ledger rows (every row the project
paid for, superseded takes included). Prices live only in ``vidpipe_core.cost``. Scene numbers count from 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidpipe_core.scenes import scene_number
from vidpipe_core.services import Services
from vidpipe_core.steps import CHARACTERS, CLIPS, KEYFRAMES, NARRATION, STORYBOARD
from vidpipe_core.steps.narration import resolve_lines
from vidpipe_core.steps.state import Costs, ProjectState, ledger_costs, resolve_state, stored_document
from vidpipe_core.steps.stitch import FinalResult

# Dagster's UI shows a markdown value of up to 1000 characters inline (longer ones behind "[Show
# Markdown]"), so the summary is terse and the style is cut to this length.
STYLE_CHARS = 80


@dataclass(frozen=True)
class SceneRow:
    """One scene as the UI's table shows it."""

    scene: int  # 1-based
    status: str
    duration_s: float | None
    cost_usd: float
    detail: str

    def as_dict(self) -> dict[str, str | int | float | None]:
        return {
            "scene": self.scene,
            "status": self.status,
            "duration_s": self.duration_s,
            "cost_usd": self.cost_usd,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Summary:
    markdown: str
    scenes: list[SceneRow]
    costs: Costs
    budget_usd: float


def scene_rows(state: ProjectState, final: FinalResult) -> list[SceneRow]:
    """One row per planned scene: in the video, skipped by the safety policy (with the reason), or missing."""
    rows = []
    for c in state.clips:
        row = c.row
        cost = row.cost_usd if row is not None else 0.0
        if c.index in final.durations:
            how = f"{row.provider} / {row.model}" if row is not None else ""
            rows.append(
                SceneRow(scene_number(c.index), "in video", round(final.durations[c.index], 3), cost, f"clip by {how}".strip())
            )
        elif c.index in final.skipped:
            reason = final.skipped[c.index]
            rows.append(SceneRow(scene_number(c.index), "skipped", None, cost, f"rejected by the safety filter: {reason}"))
        else:
            status = row.status.value if row is not None else "missing"
            rows.append(SceneRow(scene_number(c.index), status, None, cost, "not in the video: its clip is not finished"))
    return rows


def _fenced(text: str) -> str:
    """``text`` verbatim in a fenced block (longer than any run of backticks inside it)."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _stages(services: Services, state: ProjectState) -> list[tuple[str, str, str]]:
    """(stage, provider, model) as made: from the storyboard document and the ledger rows in use."""
    document = stored_document(services, state.spec.id) or {}
    spec = state.spec

    def used(rows: list[tuple[str, str]], planned: str) -> tuple[str, str]:
        if not rows:
            return planned, "-"
        providers = sorted({p for p, _ in rows})
        models = sorted({m for _, m in rows})
        return ", ".join(providers), ", ".join(models)

    sheets = [(c.row.provider, c.row.model) for c in state.sheets if c.row is not None]
    frames = [(f.row.provider, f.row.model) for f in state.frames if f.row is not None]
    clips = [(c.row.provider, c.row.model) for c in state.clips if c.row is not None]
    stages = [
        (STORYBOARD, str(document.get("provider") or spec.providers.storyboard), str(document.get("model") or "-")),
        (CHARACTERS, *used(sheets, spec.providers.keyframes)),
        (KEYFRAMES, *used(frames, spec.providers.keyframes)),
        (CLIPS, *used(clips, spec.providers.clips)),
    ]
    if spec.narration:  # the narrator's row (its lines' providers and models) only where there is one
        lines = [
            (line.row.provider, line.row.model) for line in resolve_lines(services, spec, state.scenes) if line.row is not None
        ]
        stages.append((NARRATION, *used(lines, spec.providers.clips)))
    return stages


def project_summary(services: Services, project_id: str, final: FinalResult, *, title: str = "") -> Summary:
    """The summary of a project whose final video ``final`` was just made."""
    state = resolve_state(services, project_id)
    spec = state.spec
    costs = ledger_costs(services, project_id)
    rows = scene_rows(state, final)
    if not title:
        document = stored_document(services, project_id) or {}
        title = str((document.get("storyboard") or {}).get("title") or "")
    stage_cost = {
        STORYBOARD: costs.storyboard,
        CHARACTERS: costs.characters,
        KEYFRAMES: costs.keyframes,
        CLIPS: costs.clips,
        NARRATION: costs.narration,
    }
    clip_total = sum(final.durations.values())
    share = f", {costs.total / spec.max_cost_usd:.0%}" if spec.max_cost_usd > 0 else ""
    style = spec.style if len(spec.style) <= STYLE_CHARS else spec.style[: STYLE_CHARS - 1].rstrip() + "…"
    settings = [
        f"{len(state.clips)} scenes planned, {len(final.durations)} in the video",
        f"clips {spec.clip_duration} s each, {clip_total:.2f} s in all",
        f"video {final.info.duration_s:.2f} s {final.info.width}x{final.info.height}",
        spec.aspect_ratio,
        "audio" if spec.generate_audio else "no audio",
        f"crossfade {final.crossfade:g} s",
        f"safety policy {spec.safety_policy}",
        f"style: {_cell(style)}",
    ]
    if final.skipped:
        safety = "; ".join(f"Scene {scene_number(i)} skipped ({_cell(r)})" for i, r in sorted(final.skipped.items()))
    else:
        safety = "no scene was rejected"
    lines = [
        f"### {_cell(title) or project_id}",
        _fenced(spec.prompt),
        f"**Total cost: ${costs.total:.4f}** of the ${spec.max_cost_usd:.2f} budget{share} "
        "(every paid call in the ledger, replaced takes included)",
        "",
        "| stage | provider | model | USD |",
        "|---|---|---|---|",
        *(f"| {st} | {_cell(p)} | {_cell(m)} | {stage_cost[st]:.4f} |" for st, p, m in _stages(services, state)),
        "",
        " · ".join(settings),
        "",
        f"**Safety:** {safety}",
        "",
        f"**Video:** `{final.uri}`",
    ]
    return Summary("\n".join(lines), rows, costs, spec.max_cost_usd)


__all__ = ["Costs", "SceneRow", "Summary", "ledger_costs", "project_summary", "scene_rows"]
